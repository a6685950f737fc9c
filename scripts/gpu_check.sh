#!/usr/bin/env bash
# The first GPU run of accel in one command (under 10 minutes on one H100):
#   scripts/gpu_check.sh [OUT_DIR]        (default bench/results/gpu; e.g. "$OUT" on a remote machine)
# Prints versions, runs the CuPy and blocked-inverse tests, times the inverse, the Gram, EASE fits
# and top-10 scoring at 1M users, and similaripy beside them; writes OUT_DIR/summary.json and
# summary.md. Without a usable CUDA device it runs the CPU-side steps, writes nothing and exits 0.
# Wheels placed in .whl/ (similaripy, Dask, numba: scripts/numba_wheels.sh; for an image that
# lacks them) are installed first
# (into /tmp/site; ACCEL_NO_WHEELS=1 skips that).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ "${ACCEL_NO_WHEELS:-0}" != 1 ] && compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
exec "$python" scripts/gpu_check.py "$@"
