#!/usr/bin/env bash
# PostgreSQL backend and replicas vs the embedded SQLite default, in one run, on loopback.
#
#   bench/replicas.sh
#
# For each configuration -- SQLite with 1 server, PostgreSQL with 1 replica, PostgreSQL with 2
# replicas -- measures with wrk:
#   - token creation: POST /v1/tokens (root token; durable write + audit entry), requests/s
#   - introspection:  POST /oauth2/introspect of an opaque token (client "rs", HTTP Basic)
# With 2 replicas, two wrk processes run at once, one per replica, half the connections each
# (what a load balancer would do); the numbers are their sums.
# Then, with 2 replicas, the revocation propagation latency: REVOKE_SAMPLES times, revoke a
# token on replica A and poll replica B's introspection until it answers inactive; the time is
# from A's acknowledgement to B's first refusal. Prints p50/p90/p99/max.
#
# PostgreSQL: started for the run by scripts/pg-test.sh (port 55433, data in a temp dir),
# unless BENCH_POSTGRES=postgres://… names a server to use (a fresh database is created).
#
# Knobs: WRK_THREADS (2) WRK_CONNS (50) WRK_DURATION (10s) REVOKE_SAMPLES (300)
#        SKIP_BUILD=1 (reuse target/release/tessera) KEEP_TMP=1 (keep logs; holds secrets)
set -euo pipefail

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-50}
WRK_DURATION=${WRK_DURATION:-10s}
REVOKE_SAMPLES=${REVOKE_SAMPLES:-300}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/wrk.sh
source "$repo_root/bench/wrk.sh"
tessera="$repo_root/target/release/tessera"

step "1. Tools and build"
command -v wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk)
for tool in wrk curl jq python3; do command -v $tool >/dev/null 2>&1 || die "$tool is not available"; done
if [[ "${SKIP_BUILD:-}" == 1 && -x "$tessera" ]]; then
    echo "SKIP_BUILD=1: using $tessera"
else
    (cd "$repo_root" && cargo build --release -p tessera-cli --bin tessera)
fi
echo "source: HEAD $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo '?')"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-replicas.XXXXXX")
cp "$tessera" "$tmp/tessera" && tessera="$tmp/tessera"
pids=()
own_pg=""
pg_dir=""
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$own_pg" ]]; then TESSERA_PG_DIR="$pg_dir" TESSERA_PG_PORT=55433 "$repo_root/scripts/pg-test.sh" stop || true; fi
    if [[ "${KEEP_TMP:-}" == 1 ]]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

step "2. PostgreSQL"
if [[ -n "${BENCH_POSTGRES:-}" ]]; then
    pg_server=$BENCH_POSTGRES
else
    # Not under $tmp (mode 0700): the server runs as the postgres user when this runs as root.
    pg_dir="${TMPDIR:-/tmp}/tessera-pg-bench.$$"
    pg_env=$(TESSERA_PG_DIR="$pg_dir" TESSERA_PG_PORT=55433 "$repo_root/scripts/pg-test.sh" start) ||
        die "could not start PostgreSQL"
    eval "$pg_env"
    pg_server=$TESSERA_TEST_POSTGRES
    own_pg=1
fi
echo "server: ${pg_server%%@*}@…"
new_db() {
    local name="bench_$1_$$"
    psql "$pg_server" -qc "CREATE DATABASE $name" >/dev/null
    local base=${pg_server%/*}
    echo "$base/$name"
}

# start_server NAME DB_URL [MASTER_KEY]: starts tessera; sets server_url (not a subshell, so
# that its pid stays in pids).
start_server() {
    local name=$1 db=$2 key=${3:-} dir="$tmp/$1"
    mkdir -p "$dir"
    TESSERA_DB="$db" TESSERA_MASTER_KEY="$key" TESSERA_LOG=warn TESSERA_CHANGE_POLL_INTERVAL=1s \
        "$tessera" server --listen 127.0.0.1:0 --data-dir "$dir" >"$dir/out" 2>"$dir/err" &
    pids+=($!)
    local deadline=$((SECONDS + 30)) line
    while ((SECONDS < deadline)); do
        line=$(grep -m1 '^tessera listening on http://127.0.0.1:' "$dir/out" || true)
        [[ -n "$line" ]] && { server_url=${line#tessera listening on }; return 0; }
        sleep 0.1
    done
    cat "$dir/err" >&2
    die "$name did not start"
}

# setup URL ROOT: environment, clients, one opaque token; writes lua scripts; sets rs_basic, opaque.
setup() {
    local url=$1 root=$2
    TESSERA_URL=$url TESSERA_TOKEN=$root "$tessera" env create bench --max-ttl 24h >/dev/null
    local rs op
    rs=$(TESSERA_URL=$url TESSERA_TOKEN=$root "$tessera" client create rs --scopes bench=introspect -o json | jq -r .client_secret)
    TESSERA_URL=$url TESSERA_TOKEN=$root "$tessera" client create op --scopes bench=orders:read -o json >/dev/null
    opaque=$(TESSERA_URL=$url TESSERA_TOKEN=$root "$tessera" token create --env bench --client op | tr -d '[:space:]')
    rs_basic=$(printf 'rs:%s' "$rs" | base64 -w0)
    cat >"$tmp/create.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $root"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"env":"bench","client":"op","ttl":"1h"}'
LUA
    cat >"$tmp/introspect.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Basic $rs_basic"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "token=$opaque"
LUA
}


# measure CONFIG KIND PATH URL...: one wrk per URL at once, connections split between them.
declare -A rps p50 p99 bad
measure() {
    local config=$1 kind=$2 path=$3
    shift 3
    local n=$# conns=$((WRK_CONNS / $#)) i=0 files=() wrks=()
    for u in "$@"; do
        i=$((i + 1))
        wrk -t"$WRK_THREADS" -c"$conns" -d"$WRK_DURATION" --latency -s "$tmp/$kind.lua" "$u$path" >"$tmp/wrk-$config-$kind-$i.txt" &
        wrks+=($!)
        files+=("$tmp/wrk-$config-$kind-$i.txt")
    done
    wait "${wrks[@]}"
    local sum=0 nb=0
    for f in "${files[@]}"; do
        sum=$(awk -v a="$sum" -v b="$(wrk_rps "$f")" 'BEGIN {print a + b}')
        nb=$((nb + $(wrk_non2xx "$f")))
    done
    rps[$config-$kind]=$sum
    p50[$config-$kind]=$(wrk_pct "${files[0]}" 50%)
    p99[$config-$kind]=$(wrk_pct "${files[0]}" 99%)
    bad[$config-$kind]=$nb
    echo "$config $kind: $sum requests/s over $n server(s), p50 ${p50[$config-$kind]} p99 ${p99[$config-$kind]} (first server), non-2xx $nb"
}

# single CONFIG DB_URL: one server on DB_URL, both measurements, then stop it.
single() {
    local config=$1
    start_server "$config" "$2"
    root=$(tr -d '[:space:]' <"$tmp/$config/root-token")
    setup "$server_url" "$root"
    measure "$config" create /v1/tokens "$server_url"
    measure "$config" introspect /oauth2/introspect "$server_url"
    kill "${pids[-1]}"
}

step "3. SQLite, 1 server"
single sqlite1 "sqlite://$tmp/sqlite1/tessera.db"

step "4. PostgreSQL, 1 replica"
single pg1 "$(new_db one)"

step "5. PostgreSQL, 2 replicas"
db=$(new_db two)
start_server pgA "$db"
url_a=$server_url
root=$(tr -d '[:space:]' <"$tmp/pgA/root-token")
key=$(tr -d '[:space:]' <"$tmp/pgA/master.key")
start_server pgB "$db" "$key"
url_b=$server_url
setup "$url_a" "$root"
measure pg2 create /v1/tokens "$url_a" "$url_b"
measure pg2 introspect /oauth2/introspect "$url_a" "$url_b"

step "6. Revocation propagation, A -> B ($REVOKE_SAMPLES samples)"
python3 - "$url_a" "$url_b" "$root" "$REVOKE_SAMPLES" >"$tmp/propagation.txt" <<'PY'
import http.client, json, sys, time, urllib.parse
a, b, root, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def conn(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)
ca, cb = conn(a), conn(b)
def call(c, method, path, body=None, ctype="application/json"):
    headers = {"Authorization": "Bearer " + root}
    if body is not None:
        headers["Content-Type"] = ctype
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, json.loads(data) if data else None
def active(c, token):
    return call(c, "POST", "/oauth2/introspect", "token=" + token, "application/x-www-form-urlencoded")[1]["active"]
samples, polls = [], []
for _ in range(n):
    status, created = call(ca, "POST", "/v1/tokens", json.dumps({"env": "bench", "client": "op", "ttl": "1h"}))
    assert status == 201, created
    token, tid = created["token"], created["info"]["id"]
    assert active(cb, token)  # B has it indexed
    status, _ = call(ca, "POST", f"/v1/tokens/{tid}/revoke", json.dumps({}))
    assert status in (200, 204), status
    t0 = time.perf_counter()
    k = 0
    while active(cb, token):
        k += 1
        if time.perf_counter() - t0 > 5:
            raise SystemExit("B still accepts a token revoked 5 s ago")
    samples.append((time.perf_counter() - t0) * 1000)
    polls.append(k)
samples.sort()
pct = lambda p: samples[min(len(samples) - 1, int(p / 100 * len(samples)))]
print(f"samples {len(samples)}  p50 {pct(50):.2f} ms  p90 {pct(90):.2f} ms  p99 {pct(99):.2f} ms  max {samples[-1]:.2f} ms  "
      f"(B polls until refused: median {sorted(polls)[len(polls)//2]})")
PY
cat "$tmp/propagation.txt"

step "7. Summary"
{
    echo "Tessera on SQLite vs PostgreSQL, loopback, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION"
    printf '%-28s %14s %10s %16s %10s\n' "configuration" "creates/s" "x sqlite" "introspect/s" "x sqlite"
    for c in sqlite1 pg1 pg2; do
        case $c in sqlite1) l="SQLite, 1 server" ;; pg1) l="PostgreSQL, 1 replica" ;; pg2) l="PostgreSQL, 2 replicas" ;; esac
        printf '%-28s %14s %10s %16s %10s\n' "$l" "${rps[$c-create]}" \
            "$(awk -v a="${rps[$c-create]}" -v b="${rps[sqlite1-create]}" 'BEGIN {printf "%.2f", a / b}')" \
            "${rps[$c-introspect]}" \
            "$(awk -v a="${rps[$c-introspect]}" -v b="${rps[sqlite1-introspect]}" 'BEGIN {printf "%.2f", a / b}')"
    done
    echo "non-2xx: $(for k in "${!bad[@]}"; do printf '%s=%s ' "$k" "${bad[$k]}"; done)"
    echo "revocation propagation A -> B: $(cat "$tmp/propagation.txt")"
} | tee "$tmp/summary.txt"
