#!/usr/bin/env bash
# The whole test suite: set up .venv with the test extras, install the real peers the suite
# drives (scripts/provision.sh), check lint and types, run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
HIVECAST_EXTRAS=test source scripts/_venv.sh
bash scripts/provision.sh
echo "== ruff" && .venv/bin/ruff check src tests bench
echo "== mypy" && .venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
