#!/usr/bin/env bash
# Set-up on a fresh machine: a virtualenv in .venv with torch (known-good 2.9.1) and the package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/python -c "import torch, torchaudio" 2>/dev/null || \
  .venv/bin/pip install -q "torch==2.9.1" "torchaudio==2.9.1"
.venv/bin/pip install -q -e '.[dev]'
