#!/usr/bin/env bash
# Runs the tests that exercise PostgreSQL itself (replication, decoding,
# the relay, the end-to-end and failure tests, the schema and the status
# views) against every PostgreSQL version scripts/ensure-pg-versions.sh
# installs, one version after the other, and prints how long each took.
# Every version runs even when one fails; the exit status is 1 if any did.
#
#   scripts/test-pg-matrix.sh                   # 16, 17 and 18
#   scripts/test-pg-matrix.sh 18.4.0-beta.17    # one version
#   PG_MATRIX_PKGS=./relay/... scripts/test-pg-matrix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
read -r -a pkgs <<<"${PG_MATRIX_PKGS:-./replication/... ./decode/... ./checkpoint/... ./relay/... ./internal/e2e/... ./migrations/... ./metrics/... ./cmd/cdcrelay/...}"

installed=$(./scripts/ensure-pg-versions.sh "$@")
summary=()
status=0
while read -r major bin; do
  echo "=== PostgreSQL $major ($bin)"
  start=$(date +%s)
  if CDCRELAY_TEST_PG_BIN=$bin "$GO" test -count=1 -timeout 20m "${pkgs[@]}"; then
    result=ok
  else
    result=FAILED
    status=1
  fi
  summary+=("PostgreSQL $major: $result in $(($(date +%s) - start)) s")
done <<<"$installed"
echo "=== PostgreSQL matrix"
printf '%s\n' "${summary[@]}"
exit $status
