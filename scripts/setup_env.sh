#!/usr/bin/env bash
# Creates .venv/ in the checkout (if missing) and installs everything mask2former needs, then the
# package itself in editable mode (which compiles the deformable-attention op; with CUDA when nvcc exists).
# Idempotent: a second run only re-installs the package when its sources changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"

# The tested detectron2 is pinned in one place, read here and by the README (D2_WHEEL_*, D2_SOURCE_*).
PIN="$ROOT/mask2former/utils/detectron2_pin.py"
eval "$(python "$PIN" shell)"

stamp="$VENV/.deps-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/requirements.txt" -nt "$stamp" ] || [ "$PIN" -nt "$stamp" ] \
    || [ "$ROOT/requirements-optional.txt" -nt "$stamp" ]; then
  echo "[setup] installing dependencies into $VENV"
  python -m pip install -q --upgrade pip wheel "setuptools>=64,<81" ninja
  python -m pip install -q torch==2.14.1 torchvision==0.29.1
  # The optional extras too (transformers, ONNX, Gradio): the tests exercise them.
  python -m pip install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-optional.txt"
  # (`|| true`: pip show fails when the wheel is not installed yet, which must not end the script)
  wheel_installed="$(python -m pip show "$D2_WHEEL_NAME" 2>/dev/null | sed -n 's/^Version: //p' || true)"
  if ! python -c "import detectron2" 2>/dev/null \
      || { [ -n "$wheel_installed" ] && [ "$wheel_installed" != "$D2_WHEEL_VERSION" ]; }; then
    # detectron2 is not on PyPI under its own name: the wheel route (README "Installing detectron2"; the
    # source route is for GPU machines). The wheel is tagged for CPython 3.10 only, hence the rename.
    tmp="$(mktemp -d)"
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.10 \
      "$D2_WHEEL_NAME==$D2_WHEEL_VERSION" -d "$tmp"
    file="${D2_WHEEL_NAME//-/_}-$D2_WHEEL_VERSION"
    mv "$tmp/$file"-*.whl "$tmp/$file-py3-none-any.whl"
    python -m pip install -q --no-deps --force-reinstall "$tmp/$file-py3-none-any.whl"
    rm -rf "$tmp"
  fi
  touch "$stamp"
fi

# Build the package (and its compiled op). CUDA is compiled whenever nvcc is found, so CI checks the kernel.
if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda
fi
if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
  export FORCE_CUDA="${FORCE_CUDA:-1}"
  # TORCH_CUDA_ARCH_LIST, when unset, is chosen by setup.py: the visible GPU's architecture, else
  # 7.0 (V100, with CUDA < 13), 7.5, 8.0, 8.6, 8.9 and 9.0+PTX.
fi
src_hash="$(cd "$ROOT" && cat setup.py $(find mask2former -path '*/csrc/*' -type f | sort) | sha256sum | cut -c1-16)"
build_stamp="$VENV/.m2f-build-$src_hash-${FORCE_CUDA:-0}"
if [ ! -f "$build_stamp" ]; then
  echo "[setup] building mask2former (FORCE_CUDA=${FORCE_CUDA:-0}); the CUDA kernel takes a few minutes"
  MAX_JOBS="${MAX_JOBS:-2}" python -m pip install -q --no-build-isolation --no-deps -e "$ROOT"
  rm -f "$VENV"/.m2f-build-*
  touch "$build_stamp"
fi
