#!/usr/bin/env bash
# Installs what the tests, demo and benchmarks need and a fresh Debian machine
# with only Go lacks: PostgreSQL server binaries (the harness starts its own
# throwaway cluster; NATS runs embedded, so it needs nothing).
set -euo pipefail

have_pg() {
  command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

if have_pg; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL server binaries not found: run 'sudo apt-get install postgresql' (or put pg_ctl and initdb on PATH)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries not found and no apt-get: install PostgreSQL 14+ server binaries" >&2
  exit 1
fi
echo "installing Debian's postgresql package (server binaries for the test cluster)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_pg || { echo "postgresql installed but pg_ctl not found" >&2; exit 1; }
