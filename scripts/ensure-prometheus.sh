#!/usr/bin/env bash
# Installs what the monitoring tests (internal/monitoring) need and a fresh
# Debian machine lacks: promtool, for the alert rules' unit tests, and a
# prometheus server, which the tests start on a port of their own. Debian's
# prometheus package ships both. Without them the tests skip, except in CI
# (CI=true), where they fail.
set -euo pipefail

have_prometheus() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1
}

# missing reports what to do; it fails only in CI, where the tests would.
missing() {
  echo "promtool and prometheus not found: $1; the monitoring tests skip without them" >&2
  if [ "${CI:-}" = true ]; then
    exit 1
  fi
  exit 0
}

if have_prometheus; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  missing "run 'sudo apt-get install prometheus' (or put both on PATH)"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  missing "no apt-get: install Prometheus 2.x (promtool and prometheus on PATH)"
fi
echo "installing Debian's prometheus package (promtool and prometheus for the monitoring tests)..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show prometheus >/dev/null 2>&1; then
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package enables a system-wide server on :9090; the tests need only the
# binaries, so do not leave it running on a machine booted with systemd.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
have_prometheus || { echo "prometheus installed but promtool or prometheus not on PATH" >&2; exit 1; }
