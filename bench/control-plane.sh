#!/usr/bin/env bash
# Benchmark the Tessera control plane on loopback (127.0.0.1 only).
#
#   bench/control-plane.sh
#
# Measures, against one freshly started server with a fresh SQLite data dir:
#   - GET  /healthz           (baseline: fixed small JSON, no auth)
#   - POST /v1/tokens         (token create/s, plus non-2xx count)
#   - GET  /v1/tokens/{id}    (token show/s)
#   - tessera audit verify    (wall time once the audit log holds >= AUDIT_TARGET entries)
#
# Knobs (environment variables):
#   WRK_THREADS (2) WRK_CONNS (50) WRK_DURATION (10s)
#   AUDIT_TARGET (100000)       audit entries to reach before timing `audit verify`
#   AUDIT_FILL_DEADLINE (1800)  seconds allowed for filling the audit log
#   VERIFY_RUNS (3)             how many times `audit verify` is timed
#   SKIP_BUILD (unset)          set to 1 to reuse an existing target/release/tessera
#   KEEP_TMP (unset)            set to 1 to keep the temp dir (server log, wrk outputs)
set -euo pipefail

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-50}
WRK_DURATION=${WRK_DURATION:-10s}
AUDIT_TARGET=${AUDIT_TARGET:-100000}
AUDIT_FILL_DEADLINE=${AUDIT_FILL_DEADLINE:-1800}
VERIFY_RUNS=${VERIFY_RUNS:-3}
STARTUP_DEADLINE=${STARTUP_DEADLINE:-30}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
# shellcheck source=bench/wrk.sh
source "$script_dir/wrk.sh"
tessera="$repo_root/target/release/tessera"


# ---------------------------------------------------------------------------
step "1. Tools and build"
if command -v wrk >/dev/null 2>&1; then
    echo "wrk: $(command -v wrk)"
else
    echo "wrk missing; installing it with apt-get"
    (apt-get update -qq && apt-get install -y -qq wrk)
fi
command -v wrk >/dev/null 2>&1 || die "wrk is not available"
if [[ "${SKIP_BUILD:-}" == 1 && -x "$tessera" ]]; then
    echo "SKIP_BUILD=1: using existing $tessera"
else
    echo "cargo build --release -p tessera-cli   (in $repo_root)"
    (cd "$repo_root" && cargo build --release -p tessera-cli)
fi
[[ -x "$tessera" ]] || die "$tessera not found after the build"

# ---------------------------------------------------------------------------
step "2. Start the server in a fresh data dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        # Bounded wait for a clean shutdown, then force.
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ "${KEEP_TMP:-}" == 1 ]]; then
        echo "kept $tmp (server.out, server.err, wrk-*.txt)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "data dir: $tmp"
TESSERA_DATA_DIR="$tmp" "$tessera" server --listen 127.0.0.1:0 --data-dir "$tmp" \
    >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
echo "server pid: $server_pid"

url=""
deadline=$((SECONDS + STARTUP_DEADLINE))
while ((SECONDS < deadline)); do
    line=$(grep -m1 -E '^tessera listening on http://' "$tmp/server.out" || true)
    if [[ -n "$line" ]]; then
        url=${line#tessera listening on }
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.err" >&2; die "server exited during startup"; }
    sleep 0.1
done
[[ -n "$url" ]] || { cat "$tmp/server.err" >&2; die "server did not announce its address within ${STARTUP_DEADLINE}s"; }
case "$url" in
    http://127.0.0.1:*) ;;
    *) die "server announced a non-loopback URL: $url" ;;
esac
echo "server URL: $url"

root_token=""
deadline=$((SECONDS + 5))
while ((SECONDS < deadline)); do
    [[ -s "$tmp/root-token" ]] && { root_token=$(tr -d '[:space:]' <"$tmp/root-token"); break; }
    sleep 0.1
done
[[ -n "$root_token" ]] || die "no root token in $tmp/root-token"
echo "root token: read from $tmp/root-token"

export TESSERA_URL="$url" TESSERA_TOKEN="$root_token"

# ---------------------------------------------------------------------------
step "3. Set up environment 'bench' and client 'bench-client'"
echo "+ tessera env create bench --max-ttl 24h"
"$tessera" env create bench --max-ttl 24h
echo "+ tessera client create bench-client --scopes bench=orders:read"
# The client secret is shown once; it is not needed here, keep it out of the log.
"$tessera" client create bench-client --scopes bench=orders:read >"$tmp/client-create.out"
echo "client created"

# ---------------------------------------------------------------------------
# wrk helpers. run_wrk NAME URL [LUA] runs wrk and keeps its output in $tmp/wrk-NAME.txt.
run_wrk() {
    local name=$1 target=$2 lua=${3:-}
    local args=(-t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" --latency)
    [[ -n "$lua" ]] && args+=(-s "$lua")
    echo "+ wrk ${args[*]} $target"
    wrk "${args[@]}" "$target" | tee "$tmp/wrk-$name.txt"
}

# Lua scripts for wrk.
cat >"$tmp/create.lua" <<EOF
wrk.method = "POST"
wrk.path = "/v1/tokens"
wrk.headers["Authorization"] = "Bearer $root_token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"env":"bench","client":"bench-client","ttl":"1h"}'
EOF

# ---------------------------------------------------------------------------
step "4. Baseline: GET /healthz"
run_wrk healthz "$url/healthz"
[[ "$(wrk_non2xx "$tmp/wrk-healthz.txt")" == 0 ]] || echo "WARNING: /healthz returned non-2xx responses"

# ---------------------------------------------------------------------------
step "5. Token create: POST /v1/tokens"
run_wrk create "$url/v1/tokens" "$tmp/create.lua"
create_non2xx=$(wrk_non2xx "$tmp/wrk-create.txt")
echo "non-2xx responses: $create_non2xx"

# ---------------------------------------------------------------------------
step "6. Token show: GET /v1/tokens/{id}"
echo "+ tessera token create --env bench --client bench-client -o json"
"$tessera" token create --env bench --client bench-client -o json >"$tmp/token.json"
# The JSON carries the secret token too; only the id is printed.
token_id=$(tr -d '\n' <"$tmp/token.json" |
    grep -oE '"info"[[:space:]]*:[[:space:]]*\{[[:space:]]*"id"[[:space:]]*:[[:space:]]*"[^"]+"' |
    sed -E 's/.*"([^"]+)"$/\1/' || true)
[[ -n "$token_id" ]] || die "could not read info.id from: $(head -c 300 "$tmp/token.json")"
echo "token id: $token_id"
cat >"$tmp/show.lua" <<EOF
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer $root_token"
EOF
run_wrk show "$url/v1/tokens/$token_id" "$tmp/show.lua"
show_non2xx=$(wrk_non2xx "$tmp/wrk-show.txt")
echo "non-2xx responses: $show_non2xx"

# ---------------------------------------------------------------------------
step "7. Audit verify with >= $AUDIT_TARGET entries"
audit_entries() {
    local out
    # No retry: a failing verify is a finding, not noise. (Seen: right after a wrk round, with
    # creates still in flight, verify reported "audit log continues past its recorded head";
    # see bench/README.md.)
    out=$("$tessera" audit verify -o json) || {
        echo "tessera audit verify failed (exit $?):" >&2
        echo "$out" >&2
        return 1
    }
    tr -d '\n' <<<"$out" | grep -oE '"entries"[[:space:]]*:[[:space:]]*[0-9]+' | grep -oE '[0-9]+$'
}
entries=$(audit_entries)
echo "audit entries now: $entries"
create_rps=$(wrk_rps "$tmp/wrk-create.txt")
fill_deadline=$((SECONDS + AUDIT_FILL_DEADLINE))
round=0
while ((entries < AUDIT_TARGET)); do
    left=$((fill_deadline - SECONDS))
    ((left > 0)) || die "audit log has $entries entries after ${AUDIT_FILL_DEADLINE}s of filling (target $AUDIT_TARGET)"
    missing=$((AUDIT_TARGET - entries))
    # Run long enough for the missing entries at the measured create rate (+10%), 5..120 s,
    # never past the deadline.
    secs=$(awk -v m="$missing" -v r="$create_rps" 'BEGIN { s = (r > 0) ? int(m / r * 1.1) + 1 : 60;
        if (s < 5) s = 5; if (s > 120) s = 120; print s }')
    ((secs > left)) && secs=$left
    round=$((round + 1))
    echo "+ fill round $round: $missing entries missing, wrk -t$WRK_THREADS -c$WRK_CONNS -d${secs}s (create)"
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${secs}s" -s "$tmp/create.lua" "$url/v1/tokens" >"$tmp/wrk-fill-$round.txt"
    echo "  $(wrk_total "$tmp/wrk-fill-$round.txt") requests, $(wrk_rps "$tmp/wrk-fill-$round.txt") req/s, non-2xx: $(wrk_non2xx "$tmp/wrk-fill-$round.txt") $(wrk_errors "$tmp/wrk-fill-$round.txt")"
    fill_rps=$(wrk_rps "$tmp/wrk-fill-$round.txt")
    [[ -n "$fill_rps" ]] && create_rps=$fill_rps
    entries=$(audit_entries)
    echo "  audit entries now: $entries"
done

verify_times=()
for i in $(seq 1 "$VERIFY_RUNS"); do
    echo "+ /usr/bin/time tessera audit verify   (run $i/$VERIFY_RUNS)"
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%e %M' -o "$tmp/time-$i.txt" "$tessera" audit verify
        read -r t rss <"$tmp/time-$i.txt"
        echo "  ${t} s, CLI max RSS ${rss} KB"
    else
        start=$(date +%s.%N)
        "$tessera" audit verify
        end=$(date +%s.%N)
        t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
        echo "  ${t} s"
    fi
    verify_times+=("$t")
done
verify_sorted=$(printf '%s\n' "${verify_times[@]}" | sort -g)
verify_min=$(head -n1 <<<"$verify_sorted")
verify_median=$(awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }' <<<"$verify_sorted")
server_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo "?")

# ---------------------------------------------------------------------------
step "8. Summary"
base_rps=$(wrk_rps "$tmp/wrk-healthz.txt")
{
    echo "Tessera control plane, loopback, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION"
    printf '%-24s %12s %10s %10s %10s %8s\n' "benchmark" "requests/s" "p50 ms" "p99 ms" "x healthz" "non-2xx"
    for name in healthz create show; do
        f="$tmp/wrk-$name.txt"
        case $name in
            healthz) label="GET /healthz" ;;
            create) label="POST /v1/tokens" ;;
            show) label="GET /v1/tokens/{id}" ;;
        esac
        rps=$(wrk_rps "$f")
        printf '%-24s %12s %10s %10s %10s %8s\n' "$label" "$rps" \
            "$(to_ms "$(wrk_pct "$f" 50%)")" "$(to_ms "$(wrk_pct "$f" 99%)")" \
            "$(ratio "$rps" "$base_rps")" "$(wrk_non2xx "$f")"
        e=$(wrk_errors "$f")
        [[ -z "$e" ]] || echo "    $label: $e"
    done
    echo "audit verify: $entries entries, min ${verify_min} s, median ${verify_median} s over $VERIFY_RUNS runs (${verify_times[*]})"
    echo "server RSS at the end: ${server_rss} KB"
    echo "server log: $(grep -c -E 'WARN|ERROR' "$tmp/server.err" || true) WARN/ERROR lines"
}
