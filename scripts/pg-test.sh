#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the test suite (and for trying replicas).
#
#   eval "$(scripts/pg-test.sh start)"   # starts it; prints `export TESSERA_TEST_POSTGRES=…`
#   scripts/pg-test.sh stop              # stops it and removes its data
#
# Needs PostgreSQL's server programs (Debian: apt-get install postgresql). Data lives in
# $TESSERA_PG_DIR (default /tmp/tessera-pg-test); the port is $TESSERA_PG_PORT (default 55432).
# Runs the server as the `postgres` user when invoked as root.
set -euo pipefail

dir=${TESSERA_PG_DIR:-/tmp/tessera-pg-test}
port=${TESSERA_PG_PORT:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] && command -v pg_config >/dev/null; then bin=$(pg_config --bindir); fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-test.sh: PostgreSQL's server programs are not installed (apt-get install postgresql)" >&2
  exit 2
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if [ -f "$dir/data/postmaster.pid" ]; then as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    echo "export TESSERA_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -d "$dir/data" ]; then as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
