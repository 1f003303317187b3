#!/usr/bin/env bash
# Benchmark Tessera's OAuth 2.0 endpoints on loopback (127.0.0.1 only), beside a minimal axum
# handler (the bench_baseline example of tessera-server) measured in the same run.
#
#   bench/oauth.sh
#
# Measures, against one freshly started server with a fresh SQLite data dir:
#   - POST /oauth2/introspect, opaque token  (resource server "rs" authenticates with HTTP Basic)
#   - POST /oauth2/introspect, EdDSA JWT     (same)
#   - POST /env/bench/oauth2/token           (client_credentials; client "op": opaque tokens,
#                                             client "jw": EdDSA JWTs), tokens/s
# each right after a baseline run: GET <bench_baseline>/ (minimal axum handler, fixed {"ok":true}).
#
# Knobs (environment variables):
#   WRK_THREADS (2) WRK_CONNS (50) WRK_DURATION (10s)
#   SKIP_BUILD (unset)   set to 1 to reuse target/release/tessera and target/release/examples/bench_baseline
#   CARGO_TARGET_DIR     honoured like cargo does: binaries are built in and taken from it
#   KEEP_TMP (unset)     set to 1 to keep the temp dir (server logs, wrk outputs; it then also
#                        holds the root token, the master key and the client secrets)
set -euo pipefail

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-50}
WRK_DURATION=${WRK_DURATION:-10s}
STARTUP_DEADLINE=${STARTUP_DEADLINE:-30}

# Targets (printed beside the results).
TARGET_INTROSPECT_RATIO=0.7
TARGET_INTROSPECT_P99_MS=2
TARGET_TOKENS_PER_S=5000

BENCH_NAME=oauth
STEP2_TITLE="Start tessera (fresh data dir) and the baseline server"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "data dir: $tmp"
# Run private copies: another build replacing target/release/* mid-run must not change the
# binaries under test (or make the CLI differ from the server).
cp "$tessera" "$tmp/tessera" && tessera="$tmp/tessera"
cp "$baseline_bin" "$tmp/bench_baseline" && baseline_bin="$tmp/bench_baseline"
TESSERA_DATA_DIR="$tmp" "$tessera" server --listen 127.0.0.1:0 --data-dir "$tmp" \
    >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
echo "tessera pid: $server_pid"
"$baseline_bin" 127.0.0.1:0 >"$tmp/baseline.out" 2>"$tmp/baseline.err" &
baseline_pid=$!
echo "bench_baseline pid: $baseline_pid"

url=$(wait_url "$tmp/server.out" "tessera listening on " "$server_pid" tessera) ||
    { cat "$tmp/server.err" >&2; exit 1; }
echo "tessera URL: $url"
base_url=$(wait_url "$tmp/baseline.out" "listening on " "$baseline_pid" bench_baseline) ||
    { cat "$tmp/baseline.err" >&2; exit 1; }
echo "baseline URL: $base_url"

read_root_token

# ---------------------------------------------------------------------------
step "3. Set up environment 'bench', clients rs/op/jw, one opaque token and one JWT"
echo "+ tessera env create bench --max-ttl 24h"
"$tessera" env create bench --max-ttl 24h
# Client secrets are shown once; keep them out of the log.
client_secret() {
    local id=$1 secret
    shift
    echo "+ tessera client create $id $* -o json" >&2
    "$tessera" client create "$id" "$@" -o json >"$tmp/client-$id.json"
    secret=$(jq -r '.client_secret // empty' "$tmp/client-$id.json")
    [[ -n "$secret" ]] || die "no .client_secret in the output of client create $id"
    printf '%s' "$secret"
}
rs_secret=$(client_secret rs --scopes bench=introspect)
op_secret=$(client_secret op --scopes bench=orders:read)
jw_secret=$(client_secret jw --scopes bench=orders:read --token-format jwt)
echo "clients created"

# HTTP Basic for a client (RFC 6749 §2.3.1: id and secret form-urlencoded first).
basic() { printf '%s:%s' "$(jq -rn --arg s "$1" '$s|@uri')" "$(jq -rn --arg s "$2" '$s|@uri')" | base64 -w0; }
rs_basic=$(basic rs "$rs_secret")
op_basic=$(basic op "$op_secret")
jw_basic=$(basic jw "$jw_secret")

echo "+ tessera token create --env bench --client op"
opaque=$("$tessera" token create --env bench --client op | tr -d '[:space:]')
echo "+ tessera token create --env bench --client jw"
jwt=$("$tessera" token create --env bench --client jw | tr -d '[:space:]')
[[ -n "$opaque" ]] || die "empty opaque token"
[[ "$jwt" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || die "the jw token does not look like a JWT: ${jwt:0:20}…"
echo "opaque token: ${opaque:0:8}… (${#opaque} chars); JWT: ${#jwt} chars"

# ---------------------------------------------------------------------------
step "4. Check sample answers with curl"
# check_post NAME URL BASIC BODY JQ_CHECK: one request, prints status and a redacted answer.
check_post() {
    local name=$1 target=$2 auth=$3 body=$4 check=$5 code
    code=$(curl -sS -o "$tmp/sample-$name.json" -w '%{http_code}' -X POST \
        -H "Authorization: Basic $auth" -H 'Content-Type: application/x-www-form-urlencoded' \
        --data-raw "$body" "$target") || die "curl $name failed"
    echo "$name: HTTP $code $(jq -c 'if has("access_token") then .access_token = "<redacted>" else . end' \
        "$tmp/sample-$name.json" 2>/dev/null || head -c 300 "$tmp/sample-$name.json")"
    [[ "$code" == 200 ]] || die "$name answered HTTP $code"
    jq -e "$check" "$tmp/sample-$name.json" >/dev/null || die "$name: answer fails the check $check"
}
code=$(curl -sS -o "$tmp/sample-baseline.json" -w '%{http_code}' "$base_url/") || die "curl baseline failed"
echo "baseline: HTTP $code $(cat "$tmp/sample-baseline.json")"
[[ "$code" == 200 ]] || die "baseline answered HTTP $code"
check_post introspect-opaque "$url/oauth2/introspect" "$rs_basic" "token=$opaque" '.active == true'
check_post introspect-jwt "$url/oauth2/introspect" "$rs_basic" "token=$jwt" '.active == true'
check_post token-op "$url/env/bench/oauth2/token" "$op_basic" grant_type=client_credentials \
    '.token_type == "Bearer" and (.access_token | startswith("ey") | not)'
check_post token-jw "$url/env/bench/oauth2/token" "$jw_basic" grant_type=client_credentials \
    '.token_type == "Bearer" and (.access_token | split(".") | length == 3)'

# ---------------------------------------------------------------------------
# CPU accounting around each wrk run, to see what the server costs per request and whether
# anything else (another build, say) was using the 2 cores at the same time.
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run_wrk NAME PID URL [LUA] runs wrk and keeps its output in $tmp/wrk-NAME.txt; PID is the
# server under test. $tmp/cpu-NAME.txt gets: wall seconds, CPU ticks of tessera, of
# bench_baseline, of the whole machine, and wrk's CPU seconds (-1 without /usr/bin/time).
run_wrk() {
    local name=$1 pid=$2 target=$3 lua=${4:-}
    local args=(-t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" --latency)
    [[ -n "$lua" ]] && args+=(-s "$lua")
    echo "+ wrk ${args[*]} $target"
    local t0 s0 b0 m0 t1 s1 b1 m1 wrk_cpu=-1
    t0=$(now_s) s0=$(proc_cpu "$server_pid") b0=$(proc_cpu "$baseline_pid") m0=$(busy_cpu)
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%U %S' -o "$tmp/time-$name.txt" wrk "${args[@]}" "$target" >"$tmp/wrk-$name.txt"
        wrk_cpu=$(awk 'END {print $1 + $2}' "$tmp/time-$name.txt")
    else
        wrk "${args[@]}" "$target" >"$tmp/wrk-$name.txt"
    fi
    t1=$(now_s) s1=$(proc_cpu "$server_pid") b1=$(proc_cpu "$baseline_pid") m1=$(busy_cpu)
    cat "$tmp/wrk-$name.txt"
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}') $((s1 - s0)) $((b1 - b0)) $((m1 - m0)) $wrk_cpu" >"$tmp/cpu-$name.txt"
    kill -0 "$pid" 2>/dev/null || die "the server under test (pid $pid) died during $name"
}
# cpu_us_per_req NAME tessera|baseline: CPU microseconds (user + system) that process spent
# per request of run NAME. other_cores NAME: cores used during run NAME by anything other than
# tessera, bench_baseline and wrk (another build on the machine, say).
cpu_us_per_req() {
    awk -v n="$(wrk_total "$tmp/wrk-$1.txt")" -v k="$2" -v hz="$clk_tck" '{
        ticks = (k == "tessera") ? $2 : $3
        if (n > 0) printf "%.1f", ticks / hz * 1e6 / n; else print "n/a" }' "$tmp/cpu-$1.txt"
}
other_cores() {
    awk -v hz="$clk_tck" '{ if ($5 < 0 || $1 <= 0) { print "n/a"; exit }
        o = ($4 - $2 - $3) / hz - $5; if (o < 0) o = 0; printf "%.2f", o / $1 }' "$tmp/cpu-$1.txt"
}
# post_lua FILE PATH BASIC BODY: a wrk script for a form POST with HTTP Basic.
post_lua() {
    cat >"$1" <<EOF
wrk.method = "POST"
wrk.path = "$2"
wrk.headers["Authorization"] = "Basic $3"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "$4"
EOF
}
post_lua "$tmp/introspect-opaque.lua" /oauth2/introspect "$rs_basic" "token=$opaque"
post_lua "$tmp/introspect-jwt.lua" /oauth2/introspect "$rs_basic" "token=$jwt"
post_lua "$tmp/token-op.lua" /env/bench/oauth2/token "$op_basic" grant_type=client_credentials
post_lua "$tmp/token-jw.lua" /env/bench/oauth2/token "$jw_basic" grant_type=client_credentials

# ---------------------------------------------------------------------------
# Each endpoint is measured right after its own baseline run (the same wrk settings against
# bench_baseline), so a ratio compares two adjacent 10 s windows even if the machine's load
# changes during the script.
pair() {
    local name=$1 title=$2 path=$3
    step "$title"
    run_wrk "base-$name" "$baseline_pid" "$base_url/"
    run_wrk "$name" "$server_pid" "$url$path" "$tmp/$name.lua"
}
pair introspect-opaque "5. Introspection of the opaque token: POST /oauth2/introspect (after its baseline)" \
    /oauth2/introspect
pair introspect-jwt "6. Introspection of the JWT: POST /oauth2/introspect (after its baseline)" /oauth2/introspect
pair token-op "7. Token endpoint, opaque tokens (client op): POST /env/bench/oauth2/token (after its baseline)" \
    /env/bench/oauth2/token
pair token-jw "8. Token endpoint, EdDSA JWTs (client jw): POST /env/bench/oauth2/token (after its baseline)" \
    /env/bench/oauth2/token

# ---------------------------------------------------------------------------
step "9. After the load: tokens still active, use counts, server state"
check_post introspect-opaque-after "$url/oauth2/introspect" "$rs_basic" "token=$opaque" '.active == true'
check_post introspect-jwt-after "$url/oauth2/introspect" "$rs_basic" "token=$jwt" '.active == true'
# Each successful introspection by a client counts one use; the counts are flushed to the
# store every second. Compare them with what wrk sent (wrk's count excludes requests still in
# flight when it stopped, so uses may exceed it by up to WRK_CONNS, plus the curl checks).
sleep 2
uses_of() {
    local id
    id=$(jq -r '.jti' "$tmp/sample-$1.json")
    "$tessera" token show "$id" -o json >"$tmp/show-$1.json" 2>&1 || { echo "?"; return 0; }
    jq -r '(.uses // .info.uses // .token.uses // "?") | tostring' "$tmp/show-$1.json" 2>/dev/null || echo "?"
}
uses_opaque=$(uses_of introspect-opaque)
uses_jwt=$(uses_of introspect-jwt)
echo "opaque token: uses $uses_opaque, wrk sent $(wrk_total "$tmp/wrk-introspect-opaque.txt") (+2 curl checks)"
echo "JWT:          uses $uses_jwt, wrk sent $(wrk_total "$tmp/wrk-introspect-jwt.txt") (+2 curl checks)"
server_rss=$(awk '/^VmRSS:/ {print $2, $3}' "/proc/$server_pid/status" 2>/dev/null || echo "?")
baseline_rss=$(awk '/^VmRSS:/ {print $2, $3}' "/proc/$baseline_pid/status" 2>/dev/null || echo "?")
kill -0 "$server_pid" 2>/dev/null || die "tessera is no longer running"

# ---------------------------------------------------------------------------
step "10. Summary"
{
    echo "Tessera OAuth endpoints, loopback, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION"
    echo "x baseline = requests/s over those of the bench_baseline run just before (the 'baseline' line above it)."
    echo "srv CPU = CPU time (user+sys) of the server under test per request; other = cores used by"
    echo "processes other than tessera, bench_baseline and wrk during the run (should be ~0)."
    printf '%-32s %11s %8s %8s %10s %7s %11s %6s\n' "benchmark" "requests/s" "p50 ms" "p99 ms" "x baseline" \
        "non-2xx" "srv CPU us" "other"
    row() {
        local name=$1 label=$2 kind=$3 base=$4 f="$tmp/wrk-$1.txt" rps
        rps=$(wrk_rps "$f")
        printf '%-32s %11s %8s %8s %10s %7s %11s %6s\n' "$label" "$rps" \
            "$(to_ms "$(wrk_pct "$f" 50%)")" "$(to_ms "$(wrk_pct "$f" 99%)")" \
            "$(ratio "$rps" "$base")" "$(wrk_non2xx "$f")" "$(cpu_us_per_req "$name" "$kind")" "$(other_cores "$name")"
        e=$(wrk_errors "$f")
        [[ -z "$e" ]] || echo "    $label: $e"
    }
    for name in introspect-opaque introspect-jwt token-op token-jw; do
        case $name in
            introspect-opaque) label="introspect, opaque token" ;;
            introspect-jwt) label="introspect, EdDSA JWT" ;;
            token-op) label="token endpoint, opaque (op)" ;;
            token-jw) label="token endpoint, EdDSA JWT (jw)" ;;
        esac
        base=$(wrk_rps "$tmp/wrk-base-$name.txt")
        row "base-$name" "  baseline GET" baseline "$base"
        row "$name" "$label" tessera "$base"
    done
    echo
    echo "Targets:"
    verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
        ok = (op == ">=") ? (v >= t) : (v < t)
        if (ok) print "met"; else if (op == ">=") printf "MISSED (%.0f%% of target)\n", 100 * v / t;
        else printf "MISSED (%.2fx the limit)\n", v / t }'; }
    for name in introspect-opaque introspect-jwt; do
        f="$tmp/wrk-$name.txt"
        r=$(ratio "$(wrk_rps "$f")" "$(wrk_rps "$tmp/wrk-base-$name.txt")")
        p99=$(to_ms "$(wrk_pct "$f" 99%)")
        printf '  %-26s ratio %s (target >= %s): %s; p99 %s ms (target < %s ms): %s [baseline p99 %s ms]\n' \
            "$name" "$r" "$TARGET_INTROSPECT_RATIO" "$(verdict "$r" "$TARGET_INTROSPECT_RATIO" ">=")" \
            "$p99" "$TARGET_INTROSPECT_P99_MS" "$(verdict "$p99" "$TARGET_INTROSPECT_P99_MS" "<")" \
            "$(to_ms "$(wrk_pct "$tmp/wrk-base-$name.txt" 99%)")"
    done
    for name in token-op token-jw; do
        f="$tmp/wrk-$name.txt"
        rps=$(wrk_rps "$f")
        printf '  %-26s %s tokens/s (target >= %s): %s\n' "$name" "$rps" "$TARGET_TOKENS_PER_S" \
            "$(verdict "$rps" "$TARGET_TOKENS_PER_S" ">=")"
    done
    echo
    echo "introspection use counts after the load: opaque $uses_opaque, JWT $uses_jwt"
    echo "tessera RSS at the end: $server_rss; bench_baseline RSS: $baseline_rss"
    echo "tessera log: $(grep -c -E 'WARN|ERROR' "$tmp/server.err" || true) WARN/ERROR lines"
    grep -E 'WARN|ERROR' "$tmp/server.err" | head -5 || true
}
