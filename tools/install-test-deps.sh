#!/usr/bin/env bash
# Installs everything the test suite needs beyond a Rust toolchain, so that
# `cargo test -- --include-ignored` runs every test on a fresh Debian machine. Idempotent: each
# step does nothing when what it installs is already there.
#
# - Debian packages, as root, only those missing: `kill` (procps), `mount`, `umount`, `prlimit`
#   and `flock` (util-linux, mount) for the fault-injection, signal and nightly-job tests; g++
#   and python3-venv to build QuickFIX; Prometheus and its `promtool` for /metrics;
#   `systemd-analyze` for the recorder's unit; headless Chromium and its WebDriver for the
#   status page.
# - QuickFIX 1.16.0, the interoperability reference (tools/install-quickfix.sh: built from
#   source, about 5 minutes once).
# - DuckDB, pyarrow and polars, the engines the export tests read files with
#   (tools/install-research.sh).
#
# Usage: bash tools/install-test-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { [[ " ${missing[*]} " == *" $1 "* ]] || missing+=("$1"); }
type -P kill >/dev/null 2>&1 || need procps
type -P flock >/dev/null 2>&1 || need util-linux
type -P prlimit >/dev/null 2>&1 || need util-linux
type -P mount >/dev/null 2>&1 || need mount
type -P g++ >/dev/null 2>&1 || need g++
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need python3-venv
{ type -P promtool && type -P prometheus; } >/dev/null 2>&1 || need prometheus
type -P systemd-analyze >/dev/null 2>&1 || need systemd
type -P chromium >/dev/null 2>&1 || need chromium
type -P chromedriver >/dev/null 2>&1 || need chromium-driver
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: run as root, or first: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for tool in kill flock prlimit mount g++ promtool prometheus systemd-analyze chromium chromedriver; do
  type -P "$tool" >/dev/null 2>&1 || { echo "install-test-deps: $tool is still missing after the install" >&2; exit 1; }
done

bash tools/install-quickfix.sh
bash tools/install-research.sh
