#!/usr/bin/env bash
# Secret-scan throughput on a generated corpus (default 500 MB of synthetic source and config
# files with planted secrets and decoys), beside ripgrep with an equivalent combined pattern
# over the same files and detect-secrets (PyPI) on a slice, in the same run. Prints MB/s, peak
# memory and findings; recall of the planted secrets for tessera.
# Targets (issue 7): >= 0.5x ripgrep's throughput; recall >= 97%; far fewer false positives
# than detect-secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${MB:-500}
SLICE_MB=${SLICE_MB:-20}
command -v rg >/dev/null || { apt-get update -qq && apt-get install -y -qq ripgrep; }
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
python3 -c 'import detect_secrets' 2>/dev/null || pip install -q detect-secrets || echo "detect-secrets unavailable"
[ "${SKIP_BUILD:-0}" = 1 ] || { cargo build --release -q -p tessera-cli && cargo build --release -q -p tessera-scan --example corpus; }
tmp=${CORPUS_DIR:-$(mktemp -d)}
if [ ! -f "$tmp/expected.tsv" ]; then
  echo "== generating ${MB} MB corpus in $tmp"
  ./target/release/examples/corpus "$tmp" "$MB"
fi
bytes=$(du -sb --exclude=expected.tsv "$tmp" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b/1048576}')
echo "corpus: $mb MB, $(find "$tmp" -type f | wc -l) files"
sync; cat $(find "$tmp" -type f) >/dev/null  # warm the page cache for every tool alike

timed() { # prints "seconds peak_kb" of "$@", output to $out
  /usr/bin/time -f '%e %M' -o "$tmp.time" "$@" >"$out" 2>/dev/null || true
  tail -n 1 "$tmp.time"   # after "Command exited with non-zero status N" when there are findings
}

PATTERN='tsr_[0-9A-Za-z]{38}|tsc_[0-9A-Za-z]{49}|(AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[0-9A-Za-z]{36}|github_pat_[0-9A-Za-z_]{82}|glpat-[0-9A-Za-z_-]{20}|xox[abposr]-[0-9A-Za-z-]{10,}|hooks\.slack\.com/services/|[sr]k_(live|test)_[0-9A-Za-z]{24,}|SK[0-9a-f]{32}|SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43}|AIza[0-9A-Za-z_-]{35}|PRIVATE KEY-----|eyJ[0-9A-Za-z_-]{10,}\.eyJ|://[^/ :@]+:[^/ :@]+@|(?i)(password|passwd|secret|token|api_?key|access_?key)[a-z0-9_-]*["'"'"']?\s*[:=]'

echo "== ripgrep (combined pattern)"
out=$tmp.rg; read -r rg_s rg_kb < <(timed rg -c --no-messages -e "$PATTERN" "$tmp")
rg_hits=$(awk -F: '{s+=$NF} END {print s+0}' "$out")
echo "== tessera scan"
out=$tmp.ts; read -r ts_s ts_kb < <(timed ./target/release/tessera scan "$tmp" --format json)
read -r ts_found recall extra < <(python3 - "$tmp" "$out" <<'PY'
import json, sys
root, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
found = {(f["path"][len(root) + 1:], f["rule"]) for f in r["findings"]}
exp = {tuple(l.rstrip("\n").split("\t")) for l in open(root + "/expected.tsv")}
print(len(found), "%.2f" % (100.0 * len(exp & found) / max(len(exp), 1)), len(found - exp))
PY
)
echo "== detect-secrets on a ${SLICE_MB} MB slice"
slice=$tmp-slice; rm -rf "$slice"; mkdir -p "$slice"
{ find "$tmp" -type f -name '0*' || true; } | head -n $((SLICE_MB * 1024 / 20)) | xargs -I{} cp {} "$slice/"
slice_mb=$(du -sm "$slice" | cut -f1)
ds_line="not run"
if python3 -c 'import detect_secrets' 2>/dev/null; then
  # detect-secrets finds nothing when given an absolute path outside its working directory.
  out=$tmp.ds; read -r ds_s ds_kb < <(timed sh -c "cd '$slice' && exec python3 -m detect_secrets scan --all-files .")
  ds_hits=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(len(v) for v in r["results"].values()))' "$out" 2>/dev/null || echo "?")
  ds_line=$(awk -v s="$ds_s" -v m="$slice_mb" -v k="$ds_kb" -v h="$ds_hits" 'BEGIN {printf "%.1f MB/s, peak %d MB, %s findings on %d MB", m/s, k/1024, h, m}')
fi
out=$tmp.ts2; read -r ts2_s _ < <(timed ./target/release/tessera scan "$slice" --format json)
ts_slice=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["findings"]))' "$out")
planted_slice=$(python3 - "$tmp" "$slice" <<'PY'
import os, sys
root, slice_dir = sys.argv[1], sys.argv[2]
names = set(os.listdir(slice_dir))
print(sum(1 for l in open(root + "/expected.tsv") if l.split("\t")[0].split("/")[-1] in names))
PY
)

echo
echo "corpus: $mb MB"
awk -v s="$rg_s" -v m="$mb" -v k="$rg_kb" -v h="$rg_hits" 'BEGIN {printf "ripgrep:        %7.1f MB/s  peak %4d MB  %d matching lines\n", m/s, k/1024, h}'
awk -v s="$ts_s" -v m="$mb" -v k="$ts_kb" -v h="$ts_found" 'BEGIN {printf "tessera scan:   %7.1f MB/s  peak %4d MB  %d findings\n", m/s, k/1024, h}'
awk -v a="$ts_s" -v b="$rg_s" 'BEGIN {printf "tessera / ripgrep throughput: %.2fx (target >= 0.5x)\n", b/a}'
echo "tessera recall on planted secrets: $recall% (target >= 97%), findings outside the plants: $extra"
echo "detect-secrets: $ds_line; on the same slice tessera reports $ts_slice findings for $planted_slice planted secrets"
[ -n "${CORPUS_DIR:-}" ] || rm -rf "$tmp" "$slice"
rm -f "$tmp".*
