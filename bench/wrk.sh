# Helpers shared by the bench scripts (sourced, not run; defines functions only): steps and
# errors, reading wrk's output, CPU accounting from /proc.
# shellcheck shell=bash

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Requests/sec as printed by wrk.
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
# A latency percentile (50%, 99%) from the --latency distribution, as printed (e.g. 1.23ms).
wrk_pct() { awk -v p="$2" '/Latency Distribution/ {d=1; next} d && $1 == p {print $2; exit}' "$1"; }
# Total requests ("N requests in 10.00s").
wrk_total() { awk '/ requests in / {print $1; exit}' "$1"; }
# Non-2xx/3xx count (wrk prints the line only when there were any).
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ {print $NF; f=1} END {if (!f) print 0}' "$1"; }
# Socket errors line, if any.
wrk_errors() { grep -E '^ *Socket errors:' "$1" | sed 's/^ *//' || true; }
# Latency string (e.g. 850.00us, 1.23ms, 2.00s) to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

# CPU time of a process (user + system), in clock ticks.
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Busy time of the whole machine (user nice system irq softirq steal), in clock ticks.
busy_cpu() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
now_s() { date +%s.%N; }
