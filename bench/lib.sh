# Shared by bench/oauth.sh and bench/gateway.sh (sourced, not run): tools and build, the temp
# dir and cleanup, process helpers. The caller sets BENCH_NAME and STEP2_TITLE first.
# shellcheck shell=bash

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
# shellcheck source=bench/wrk.sh
source "$script_dir/wrk.sh"
# Cargo's target directory: CARGO_TARGET_DIR when set (as cargo itself does; a relative one is
# taken from the repository root, where the build runs), else target/ under the repository.
target_dir=${CARGO_TARGET_DIR:-$repo_root/target}
[[ "$target_dir" == /* ]] || target_dir="$repo_root/$target_dir"
tessera="$target_dir/release/tessera"
baseline_bin="$target_dir/release/examples/bench_baseline"
proxy_bin="$target_dir/release/examples/bench_proxy"


# ---------------------------------------------------------------------------
step "1. Tools and build"
if command -v wrk >/dev/null 2>&1; then
    echo "wrk: $(command -v wrk)"
else
    echo "wrk missing; installing it with apt-get"
    (apt-get update -qq && apt-get install -y -qq wrk)
fi
command -v wrk >/dev/null 2>&1 || die "wrk is not available"
command -v curl >/dev/null 2>&1 || die "curl is not available"
command -v jq >/dev/null 2>&1 || die "jq is not available (apt-get install jq)"
if [[ "${SKIP_BUILD:-}" == 1 && -x "$tessera" && -x "$baseline_bin" && -x "$proxy_bin" ]]; then
    echo "SKIP_BUILD=1: using existing $tessera, $baseline_bin and $proxy_bin"
else
    echo "cargo build --release -p tessera-cli -p tessera-server --bin tessera --example bench_baseline --example bench_proxy   (in $repo_root)"
    (cd "$repo_root" && cargo build --release -p tessera-cli -p tessera-server --bin tessera --example bench_baseline \
        --example bench_proxy)
fi
[[ -x "$tessera" ]] || die "$tessera not found after the build"
[[ -x "$baseline_bin" ]] || die "$baseline_bin not found after the build"
[[ -x "$proxy_bin" ]] || die "$proxy_bin not found after the build"
echo "tessera binary: built $(date -u -r "$tessera" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$tessera" | cut -c1-12)"
if head=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null); then
    dirty=$(git -C "$repo_root" status --porcelain --untracked-files=no -- crates Cargo.toml Cargo.lock | wc -l)
    echo "source: HEAD $head, $dirty modified tracked files under crates/ and Cargo.* (now; the binary may be older)"
fi

# ---------------------------------------------------------------------------
step "2. $STEP2_TITLE"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-${BENCH_NAME}.XXXXXX")
server_pid=""
baseline_pid=""
proxy_pid=""
stop_pid() {
    local pid=$1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    # Bounded wait for a clean shutdown, then force.
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$server_pid"
    stop_pid "$baseline_pid"
    stop_pid "$proxy_pid"
    if [[ "${KEEP_TMP:-}" == 1 ]]; then
        echo "kept $tmp (server.*, baseline.*, wrk-*.txt)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_url FILE PREFIX PID NAME: polls FILE for a line "PREFIXhttp://ADDR", prints the URL.
wait_url() {
    local file=$1 prefix=$2 pid=$3 name=$4 line deadline=$((SECONDS + STARTUP_DEADLINE))
    while ((SECONDS < deadline)); do
        line=$(grep -m1 -E "^${prefix}http://" "$file" || true)
        if [[ -n "$line" ]]; then
            line=${line#"$prefix"}
            case "$line" in
                http://127.0.0.1:*) echo "$line"; return 0 ;;
                *) die "$name announced a non-loopback URL: $line" ;;
            esac
        fi
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        sleep 0.1
    done
    die "$name did not announce its address within ${STARTUP_DEADLINE}s"
}

# read_root_token: waits (5 s) for the server's $tmp/root-token, sets root_token, and exports
# TESSERA_URL (from $url) and TESSERA_TOKEN for the CLI calls that follow.
read_root_token() {
    root_token=""
    local deadline=$((SECONDS + 5))
    while ((SECONDS < deadline)); do
        [[ -s "$tmp/root-token" ]] && { root_token=$(tr -d '[:space:]' <"$tmp/root-token"); break; }
        sleep 0.1
    done
    [[ -n "$root_token" ]] || die "no root token in $tmp/root-token"
    echo "root token: read from $tmp/root-token"
    export TESSERA_URL="$url" TESSERA_TOKEN="$root_token"
}
