#!/usr/bin/env bash
# Wall-clock overhead of `tessera run -- true` (5 token needs) against plain `true`, on one
# loopback server with SQLite. Prints min/median/p90 of N runs of each and the added median.
# Target (issue 5): under 50 ms added.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p tessera-cli
BIN=$PWD/target/release/tessera
tmp=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$BIN" server --listen 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
for _ in $(seq 1 300); do grep -q '^tessera listening on ' "$tmp/server.out" 2>/dev/null && break; sleep 0.05; done
export TESSERA_URL=$(sed -n 's/^tessera listening on //p' "$tmp/server.out")
export TESSERA_TOKEN=$(cat "$tmp/data/root-token")
mkdir -p "$tmp/work" && cd "$tmp/work"
{
  echo '[environments.bench]'
  echo '[clients.suite]'
  echo 'scopes = { bench = ["a", "b"] }'
  for i in 1 2 3 4 5; do printf '[needs.TOKEN_%s]\nclient = "suite"\nscopes = ["a"]\n' "$i"; done
} > tessera.toml
"$BIN" apply >/dev/null

ms() { # run "$@" N times, print sorted wall-clock milliseconds
  for _ in $(seq 1 "$N"); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
  done | sort -n
}
stats() { awk '{a[NR]=$1} END {printf "min %.1f ms  median %.1f ms  p90 %.1f ms", a[1]/1000, a[int((NR+1)/2)]/1000, a[int(NR*0.9)]/1000}'; }
median() { awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

base=$(ms true); run=$(ms "$BIN" run --env bench -- true)
echo "true:                      $(echo "$base" | stats)"
echo "tessera run -- true (5):   $(echo "$run" | stats)"
b=$(echo "$base" | median); r=$(echo "$run" | median)
echo "added (median):            $(( (r - b) / 1000 )).$(( (r - b) % 1000 / 100 )) ms   (target < 50 ms)"
left=$("$BIN" token list --env bench --state active -o json | grep -c '"id"' || true)
echo "tokens still active after $N runs: $left"
