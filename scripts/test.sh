#!/usr/bin/env bash
# The test command: lint, type-check, then the fast test tier (slow tiers: `pytest -m slow`, see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
$PY -m ruff check src tests bench
$PY -m mypy
set +e
$PY -m pytest -q -n 2 "$@"
code=$?
set -e
# pytest exits 5 when nothing was collected: that is a broken suite here, not a pass.
if [ "$code" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$code"
