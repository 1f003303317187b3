#!/usr/bin/env bash
# Benchmark Tessera's credential-injecting gateway on loopback (127.0.0.1 only): requests sent
# directly to an upstream vs the same requests through `GET /gw/{upstream}/{path}`, and through
# a minimal reverse proxy (the floor of any axum + reqwest proxy on this machine).
#
#   bench/gateway.sh
#
# The upstream is the bench_baseline example of tessera-server (minimal axum handler, fixed
# {"ok":true} for any method and path). Measures, at -t1 -c1 and at -t2 -c50:
#   - GET <upstream>/v1/ping                       (direct)
#   - GET <tessera>/gw/up/v1/ping, Bearer token    (through the gateway: token validation,
#                                                   secret injection, proxying with reqwest)
#   - GET <bench_proxy>/v1/ping                    (the bench_proxy example of tessera-server:
#                                                   axum + reqwest forwarding, nothing else)
#
# Knobs (environment variables):
#   WRK_DURATION (10s)
#   SKIP_BUILD (unset)   set to 1 to reuse target/release/tessera and target/release/examples/bench_baseline
#   CARGO_TARGET_DIR     honoured like cargo does: binaries are built in and taken from it
#   KEEP_TMP (unset)     set to 1 to keep the temp dir (server logs, wrk outputs; it then also
#                        holds the root token and the master key)
set -euo pipefail

WRK_DURATION=${WRK_DURATION:-10s}
STARTUP_DEADLINE=${STARTUP_DEADLINE:-30}

# Targets (printed beside the results).
TARGET_ADDED_P50_US=150
TARGET_THROUGHPUT_RATIO=0.6

BENCH_NAME=gw
STEP2_TITLE="Start the upstream (bench_baseline) and tessera (fresh data dir)"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "data dir: $tmp"
# Run private copies: another build replacing target/release/* mid-run must not change the
# binaries under test (or make the CLI differ from the server).
cp "$tessera" "$tmp/tessera" && tessera="$tmp/tessera"
cp "$baseline_bin" "$tmp/bench_baseline" && baseline_bin="$tmp/bench_baseline"
cp "$proxy_bin" "$tmp/bench_proxy" && proxy_bin="$tmp/bench_proxy"
"$baseline_bin" 127.0.0.1:0 >"$tmp/baseline.out" 2>"$tmp/baseline.err" &
baseline_pid=$!
echo "bench_baseline (upstream) pid: $baseline_pid"
TESSERA_DATA_DIR="$tmp" "$tessera" server --listen 127.0.0.1:0 --data-dir "$tmp" \
    >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
echo "tessera pid: $server_pid"

up_url=$(wait_url "$tmp/baseline.out" "listening on " "$baseline_pid" bench_baseline) ||
    { cat "$tmp/baseline.err" >&2; exit 1; }
echo "upstream URL: $up_url"
"$proxy_bin" "$up_url" 127.0.0.1:0 >"$tmp/proxy.out" 2>"$tmp/proxy.err" &
proxy_pid=$!
echo "bench_proxy pid: $proxy_pid"
proxy_url=$(wait_url "$tmp/proxy.out" "listening on " "$proxy_pid" bench_proxy) ||
    { cat "$tmp/proxy.err" >&2; exit 1; }
echo "bench_proxy URL: $proxy_url"
url=$(wait_url "$tmp/server.out" "tessera listening on " "$server_pid" tessera) ||
    { cat "$tmp/server.err" >&2; exit 1; }
echo "tessera URL: $url"

read_root_token

# ---------------------------------------------------------------------------
step "3. Set up environment 'bench', secret 'upkey', upstream 'up', client 'gwc' and its token"
echo "+ tessera env create bench"
"$tessera" env create bench
echo "+ printf 'sk_test_bench' | tessera secret set bench upkey"
printf 'sk_test_bench' | "$tessera" secret set bench upkey
echo "+ tessera upstream create up --env bench --url $up_url --secret upkey --inject 'header:Authorization=Bearer {secret}'"
"$tessera" upstream create up --env bench --url "$up_url" --secret upkey --inject 'header:Authorization=Bearer {secret}'
echo "+ tessera client create gwc --scopes bench=gw:up"
# The client secret is shown once; it is not needed here, keep it out of the log.
"$tessera" client create gwc --scopes bench=gw:up >"$tmp/client-create.out"
echo "client created"
echo "+ tessera token create --env bench --client gwc"
token=$("$tessera" token create --env bench --client gwc | tr -d '[:space:]')
[[ -n "$token" ]] || die "empty token"
echo "token: ${token:0:8}… (${#token} chars)"

# ---------------------------------------------------------------------------
step "4. Check with curl: direct and through the gateway"
code=$(curl -sS -o "$tmp/sample-direct.json" -w '%{http_code}' "$up_url/v1/ping") || die "curl direct failed"
echo "direct:  HTTP $code $(cat "$tmp/sample-direct.json")"
[[ "$code" == 200 ]] || die "the upstream answered HTTP $code"
code=$(curl -sS -o "$tmp/sample-proxy.json" -w '%{http_code}' "$proxy_url/v1/ping") || die "curl via bench_proxy failed"
echo "proxy:   HTTP $code $(cat "$tmp/sample-proxy.json")"
[[ "$code" == 200 ]] || die "bench_proxy answered HTTP $code"
code=$(curl -sS -D "$tmp/sample-gw.headers" -o "$tmp/sample-gw.json" -w '%{http_code}' \
    -H "Authorization: Bearer $token" "$url/gw/up/v1/ping") || die "curl through the gateway failed"
echo "gateway: HTTP $code $(head -c 300 "$tmp/sample-gw.json")"
tr -d '\r' <"$tmp/sample-gw.headers" | sed 's/^/    /'
[[ "$code" == 200 ]] || die "the gateway answered HTTP $code"
[[ "$(jq -c . "$tmp/sample-gw.json" 2>/dev/null)" == '{"ok":true}' ]] || die 'the gateway did not pass {"ok":true} through'

# ---------------------------------------------------------------------------
# CPU accounting around each wrk run, to see what each server costs per request and whether
# anything else (another build, say) was using the 2 cores at the same time.
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run_wrk NAME THREADS CONNS URL [LUA] keeps the output in $tmp/wrk-NAME.txt, and in
# $tmp/cpu-NAME.txt: wall seconds, CPU ticks of tessera, of bench_baseline, of the whole
# machine, wrk's CPU seconds (-1 without /usr/bin/time), CPU ticks of bench_proxy.
run_wrk() {
    local name=$1 threads=$2 conns=$3 target=$4 lua=${5:-}
    local args=(-t"$threads" -c"$conns" -d"$WRK_DURATION" --latency)
    [[ -n "$lua" ]] && args+=(-s "$lua")
    echo "+ wrk ${args[*]} $target"
    local t0 s0 b0 m0 t1 s1 b1 m1 wrk_cpu=-1
    t0=$(now_s) s0=$(proc_cpu "$server_pid") b0=$(proc_cpu "$baseline_pid") p0=$(proc_cpu "$proxy_pid") m0=$(busy_cpu)
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%U %S' -o "$tmp/time-$name.txt" wrk "${args[@]}" "$target" >"$tmp/wrk-$name.txt"
        wrk_cpu=$(awk 'END {print $1 + $2}' "$tmp/time-$name.txt")
    else
        wrk "${args[@]}" "$target" >"$tmp/wrk-$name.txt"
    fi
    t1=$(now_s) s1=$(proc_cpu "$server_pid") b1=$(proc_cpu "$baseline_pid") p1=$(proc_cpu "$proxy_pid") m1=$(busy_cpu)
    cat "$tmp/wrk-$name.txt"
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}') $((s1 - s0)) $((b1 - b0)) $((m1 - m0)) $wrk_cpu $((p1 - p0))" \
        >"$tmp/cpu-$name.txt"
    kill -0 "$server_pid" 2>/dev/null || die "tessera died during $name"
    kill -0 "$baseline_pid" 2>/dev/null || die "bench_baseline died during $name"
}
# cpu_us_per_req NAME tessera|baseline|proxy: CPU microseconds (user + system) that process
# spent per request of run NAME. other_cores NAME: cores used during run NAME by anything other
# than tessera, bench_baseline, bench_proxy and wrk (another build on the machine, say).
cpu_us_per_req() {
    awk -v n="$(wrk_total "$tmp/wrk-$1.txt")" -v k="$2" -v hz="$clk_tck" '{
        ticks = (k == "tessera") ? $2 : (k == "proxy") ? $6 : $3
        if (n > 0) printf "%.1f", ticks / hz * 1e6 / n; else print "n/a" }' "$tmp/cpu-$1.txt"
}
other_cores() {
    awk -v hz="$clk_tck" '{ if ($5 < 0 || $1 <= 0) { print "n/a"; exit }
        o = ($4 - $2 - $3 - $6) / hz - $5; if (o < 0) o = 0; printf "%.2f", o / $1 }' "$tmp/cpu-$1.txt"
}
# Latency string (e.g. 850.00us, 1.23ms, 2.00s) to microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000; else if (u == "m") n *= 60000000
        printf "%.0f", n }'
}

cat >"$tmp/gw.lua" <<EOF
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer $token"
EOF

# ---------------------------------------------------------------------------
step "5. One connection: direct, through the gateway, through bench_proxy"
run_wrk direct-c1 1 1 "$up_url/v1/ping"
run_wrk gw-c1 1 1 "$url/gw/up/v1/ping" "$tmp/gw.lua"
run_wrk proxy-c1 1 1 "$proxy_url/v1/ping"

step "6. 50 connections: direct, through the gateway, through bench_proxy"
run_wrk direct-c50 2 50 "$up_url/v1/ping"
run_wrk gw-c50 2 50 "$url/gw/up/v1/ping" "$tmp/gw.lua"
run_wrk proxy-c50 2 50 "$proxy_url/v1/ping"

# ---------------------------------------------------------------------------
step "7. After the load"
code=$(curl -sS -o "$tmp/sample-gw-after.json" -w '%{http_code}' -H "Authorization: Bearer $token" \
    "$url/gw/up/v1/ping") || die "curl through the gateway failed after the load"
echo "gateway: HTTP $code $(head -c 300 "$tmp/sample-gw-after.json")"
# Uses are counted per gateway request and flushed to the store every second.
sleep 2
token_id=$("$tessera" token list --env bench --client gwc -o json 2>/dev/null |
    jq -r '(if type == "array" then . else .tokens end)[0].id // empty' 2>/dev/null || true)
uses="?"
if [[ -n "$token_id" ]]; then
    uses=$("$tessera" token show "$token_id" -o json 2>/dev/null |
        jq -r '(.uses // .info.uses // .token.uses // "?") | tostring' 2>/dev/null || echo "?")
fi
sent=$(($(wrk_total "$tmp/wrk-gw-c1.txt") + $(wrk_total "$tmp/wrk-gw-c50.txt")))
echo "token uses: $uses; wrk sent $sent through the gateway (+2 curl checks)"
server_rss=$(awk '/^VmRSS:/ {print $2, $3}' "/proc/$server_pid/status" 2>/dev/null || echo "?")
baseline_rss=$(awk '/^VmRSS:/ {print $2, $3}' "/proc/$baseline_pid/status" 2>/dev/null || echo "?")
kill -0 "$server_pid" 2>/dev/null || die "tessera is no longer running"

# ---------------------------------------------------------------------------
step "8. Summary"
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
    ok = (op == ">=") ? (v >= t) : (v <= t)
    if (ok) print "met"; else if (op == ">=") printf "MISSED (%.0f%% of target)\n", 100 * v / t;
    else printf "MISSED (%.1fx the limit)\n", v / t }'; }
{
    echo "Tessera gateway, loopback, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -d$WRK_DURATION"
    echo "CPU us/req = CPU time (user+sys) of the proxy (tessera, or bench_proxy on its rows) / of the"
    echo "upstream per request; other = cores used by processes other than tessera, bench_baseline,"
    echo "bench_proxy and wrk during the run (should be ~0)"
    printf '%-22s %11s %8s %8s %8s %12s %13s %6s\n' "benchmark" "requests/s" "p50 us" "p99 us" "non-2xx" \
        "proxy CPU" "upstream CPU" "other"
    for name in direct-c1 gw-c1 proxy-c1 direct-c50 gw-c50 proxy-c50; do
        f="$tmp/wrk-$name.txt" who=tessera
        case $name in
            direct-c1) label="direct, -t1 -c1" ;;
            gw-c1) label="gateway, -t1 -c1" ;;
            proxy-c1) label="bench_proxy, -t1 -c1" who=proxy ;;
            direct-c50) label="direct, -t2 -c50" ;;
            gw-c50) label="gateway, -t2 -c50" ;;
            proxy-c50) label="bench_proxy, -t2 -c50" who=proxy ;;
        esac
        cpu=$(cpu_us_per_req "$name" "$who")
        [[ $name == direct-* ]] && cpu=0.0
        printf '%-22s %11s %8s %8s %8s %12s %13s %6s\n' "$label" "$(wrk_rps "$f")" \
            "$(to_us "$(wrk_pct "$f" 50%)")" "$(to_us "$(wrk_pct "$f" 99%)")" "$(wrk_non2xx "$f")" \
            "$cpu" "$(cpu_us_per_req "$name" baseline)" "$(other_cores "$name")"
        e=$(wrk_errors "$f")
        [[ -z "$e" ]] || echo "    $label: $e"
    done
    echo
    echo "Gateway overhead (targets: added p50 <= ${TARGET_ADDED_P50_US} us, throughput >= ${TARGET_THROUGHPUT_RATIO}x direct):"
    for c in c1 c50; do
        d="$tmp/wrk-direct-$c.txt" g="$tmp/wrk-gw-$c.txt"
        added=$(($(to_us "$(wrk_pct "$g" 50%)") - $(to_us "$(wrk_pct "$d" 50%)")))
        r=$(ratio "$(wrk_rps "$g")" "$(wrk_rps "$d")")
        printf '  -%-4s added p50 %6s us: %-28s throughput ratio %s: %s\n' "$c" "$added" \
            "$(verdict "$added" "$TARGET_ADDED_P50_US" "<=")" "$r" "$(verdict "$r" "$TARGET_THROUGHPUT_RATIO" ">=")"
    done
    echo "The same for bench_proxy (no target; the floor of an axum + reqwest proxy here):"
    for c in c1 c50; do
        d="$tmp/wrk-direct-$c.txt" g="$tmp/wrk-proxy-$c.txt"
        added=$(($(to_us "$(wrk_pct "$g" 50%)") - $(to_us "$(wrk_pct "$d" 50%)")))
        printf '  -%-4s added p50 %6s us; throughput ratio %s; gateway/bench_proxy throughput %s\n' "$c" "$added" \
            "$(ratio "$(wrk_rps "$g")" "$(wrk_rps "$d")")" "$(ratio "$(wrk_rps "$tmp/wrk-gw-$c.txt")" "$(wrk_rps "$g")")"
    done
    echo
    echo "tessera RSS at the end: $server_rss; bench_baseline RSS: $baseline_rss"
    echo "tessera log: $(grep -c -E 'WARN|ERROR' "$tmp/server.err" || true) WARN/ERROR lines"
    grep -E 'WARN|ERROR' "$tmp/server.err" | head -5 || true
}
