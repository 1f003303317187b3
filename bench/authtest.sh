#!/usr/bin/env bash
# authtest throughput: cases/s against a loopback API beside the raw request rate of the same
# HTTP client on the same endpoints, measured in the same process. Target (issue 6): >= 0.5x.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p tessera-authtest --example bench
for i in 1 2 3; do
  echo "== round $i"
  ./target/release/examples/bench "${OPS:-300}" "${CONCURRENCY:-16}"
done
