#!/usr/bin/env bash
# Set-up on a fresh machine: system codecs (when run as root on Debian/Ubuntu), a virtualenv in .venv
# with torch (known-good 2.9.1) and the package with its test dependencies.
# A system library that did not install is named on the LAST line (exit 0, so that .ci/run goes on and the
# tests that need it skip with the reason); SETUP_STRICT=1 makes that exit 1 instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# AMR-WB has no encoder in PyAV's FFmpeg; Debian's libvo-amrwbenc0 provides one (used through ctypes).
# (found as perturbations/codecs/amr_wb.py looks for it: ctypes.util.find_library)
have_amrwb() { "$PY" -c 'import ctypes.util, sys; sys.exit(not ctypes.util.find_library("vo-amrwbenc"))' 2>/dev/null; }
if ! have_amrwb; then
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
echo "set-up done; next (as in the README): BENCH_WEIGHTS_DIR=../shared/weights .venv/bin/bench run --suite compression (--limit 16 for a quick first look)"
if ! have_amrwb; then
  echo "SET-UP INCOMPLETE: libvo-amrwbenc0 is not installed, so the amr-wb family cannot run (bench run refuses suites with it; --skip-unavailable runs the rest and names it). Fix: apt-get install libvo-amrwbenc0 (macOS: brew install vo-amrwbenc)" >&2
  if [ "${SETUP_STRICT:-0}" = 1 ]; then exit 1; fi
fi
