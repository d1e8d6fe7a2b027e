#!/usr/bin/env bash
# Set-up on a fresh machine: system codecs (when run as root on Debian/Ubuntu), a virtualenv in .venv
# with torch (known-good 2.9.1) and the package with its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# AMR-WB has no encoder in PyAV's FFmpeg; Debian's libvo-amrwbenc0 provides one (used through ctypes).
if ! ldconfig -p 2>/dev/null | grep -q libvo-amrwbenc; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq libvo-amrwbenc0 >/dev/null 2>&1 || \
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvo-amrwbenc0 >/dev/null)) || \
      echo "note: could not install libvo-amrwbenc0; the amr-wb family will be unavailable" >&2
  else
    echo "note: install libvo-amrwbenc0 (Debian/Ubuntu) for the amr-wb codec family" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || \
  .venv/bin/pip install -q "torch==2.9.1"
.venv/bin/pip install -q -e '.[dev,ray,benchmarks]'
# torchattacks (a reference in the attack tests) declares torchvision and an old requests it does not need
.venv/bin/python -c 'import torchattacks' 2>/dev/null || .venv/bin/pip install -q --no-deps 'torchattacks>=3.5'
echo "set-up done; next: .venv/bin/bench weights --from ../shared/weights (or without --from to download), then .venv/bin/bench run --suite compression --limit 16"
