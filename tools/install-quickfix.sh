#!/usr/bin/env bash
# Installs the QuickFIX reference engine (Python bindings to the C++ engine) into a virtualenv
# used by the interoperability tests. Idempotent: does nothing when it is already importable.
# The build compiles QuickFIX from source: about 5 minutes on a 2-core machine.
#
# Usage: tools/install-quickfix.sh [VENV_DIR]   (default: $HOME/.cache/tickrec/quickfix-venv)
# Prints the venv's python path on the last line.
set -euo pipefail
venv="${1:-${TICKREC_QUICKFIX_VENV:-$HOME/.cache/tickrec/quickfix-venv}}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c "import quickfix" 2>/dev/null; then
  echo "$py"
  exit 0
fi
python3 -m venv "$venv"
"$py" -m pip install --quiet --upgrade pip setuptools wheel >&2
# MAKEFLAGS lets the C++ build use both cores.
MAKEFLAGS="-j$(nproc)" "$py" -m pip install --quiet quickfix==1.16.0 >&2
"$py" -c "import quickfix" >&2
echo "$py"
