#!/usr/bin/env bash
# Device-machine wrapper for benchmarks/gpu.py (the preparation here is in that file's docstring):
#   run(command="BENCH_WEIGHTS_DIR=.gpuweights bash benchmarks/gpu.sh", carry=[".gpuweights"], timeout_s=540)
# Installs the carried wheels (.gpuweights/wheels: soundfile, cffi, av, soxr) into /tmp/site, records nvidia-smi,
# then runs the script with the machine's python3 (torch preinstalled); the log is teed to $OUT/gpu.log
# and the figures go to $OUT/gpu.json after every case. Arguments are passed on to gpu.py.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export BENCH_WEIGHTS_DIR="${BENCH_WEIGHTS_DIR:-.gpuweights}"
OUTDIR="${OUT:-/tmp}"
PY="${PYTHON:-python3}"
if ls .gpuweights/wheels/*.whl >/dev/null 2>&1; then
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .gpuweights/wheels/*.whl; then
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu.sh: installing .gpuweights/wheels failed; demo clips and the pipeline section will not work"
  fi
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,power.limit,driver_version \
  --format=csv 2>&1 | tee "$OUTDIR/nvidia-smi.txt"
"$PY" benchmarks/gpu.py "$@" 2>&1 | tee "$OUTDIR/gpu.log"
exit "${PIPESTATUS[0]}"
