#!/usr/bin/env bash
# The test command: sets up .venv/ if needed (see scripts/setup_env.sh), lints, then runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/modeling -k swin`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
# shellcheck disable=SC1091
source .venv/bin/activate
# The web demo's browser test (tests/demo/test_web_demo.py) drives Debian's Chromium: install it
# when missing (needs root and apt-get, as on CI); otherwise that test skips and says why.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[test] installing chromium and chromium-driver (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      chromium chromium-driver >/dev/null; } || echo "[test] chromium install failed: web demo test will skip"
  else
    echo "[test] chromium/chromedriver missing (not root or no apt-get): web demo test will skip"
  fi
fi
echo "[test] ruff"
ruff check mask2former mask2former_onnx tools tests demo datasets
ruff format --check mask2former mask2former_onnx tools tests demo datasets
echo "[test] pytest"
python -m pytest "$@"
