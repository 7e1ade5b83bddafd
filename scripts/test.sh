#!/usr/bin/env bash
# The test command: sets up .venv/ if needed (see scripts/setup_env.sh), lints, then runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/modeling -k swin`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
# shellcheck disable=SC1091
source .venv/bin/activate
echo "[test] ruff"
ruff check mask2former tools tests demo datasets
ruff format --check mask2former tools tests demo datasets
echo "[test] pytest"
python -m pytest "$@"
