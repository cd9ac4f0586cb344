#!/usr/bin/env bash
# Installs the research engines the export and archive tests read files with (DuckDB, pyarrow,
# polars: Python wheels) into a virtualenv. Idempotent: does nothing when they import.
#
# Usage: tools/install-research.sh [VENV_DIR]   (default: $HOME/.cache/tickrec/research-venv)
# Prints the venv's python path on the last line.
set -euo pipefail
venv="${1:-${TICKREC_RESEARCH_VENV:-$HOME/.cache/tickrec/research-venv}}"
py="$venv/bin/python"
check="import duckdb, pyarrow.parquet, polars"
if [ -x "$py" ] && "$py" -c "$check" 2>/dev/null; then
  echo "$py"
  exit 0
fi
python3 -m venv "$venv"
"$py" -m pip install --quiet --upgrade pip >&2
"$py" -m pip install --quiet "duckdb>=1.1" "pyarrow>=15" "polars>=1.0" >&2
"$py" -c "$check" >&2
echo "$py"
