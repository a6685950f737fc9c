#!/usr/bin/env bash
# The first GPU run of accel in one command (well under 10 minutes on one H100 or H200):
#   scripts/gpu_check.sh [OUT_DIR] [--host-dry-run] [--skip-tests] [--budget SECONDS]
# (OUT_DIR defaults to bench/results/gpu; e.g. "$OUT" on a remote machine.) Runs the steps of
# scripts/gpu_check.py, each guarded, and writes OUT_DIR/summary.json, summary.md and the whole log
# (gpu_check.log) after every step. Without a usable CUDA device it runs the CPU-side tests, writes
# nothing and exits 0. The budget (default 540 s) counts from this script's start.
# Wheels in .whl/ (similaripy, Dask and its needs, for an image without them) are installed into
# /tmp/site first; numba and llvmlite wheels are never installed over the image's own; a failed
# install is reported and the run goes on. ACCEL_NO_WHEELS=1 skips it.
set -uo pipefail
export ACCEL_GPU_CHECK_START=${ACCEL_GPU_CHECK_START:-$(date +%s.%N)}
cd "$(dirname "$0")/.." || exit 1
python=${PYTHON:-python3}
ACCEL_GPU_CHECK_LOG=$(mktemp "${TMPDIR:-/tmp}/gpu_check.XXXXXX.log") || exit 1
export ACCEL_GPU_CHECK_LOG
trap 'rm -f "$ACCEL_GPU_CHECK_LOG"' EXIT  # gpu_check.py copies it into OUT_DIR after every step
exec > >(tee -a "$ACCEL_GPU_CHECK_LOG") 2>&1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ "${ACCEL_NO_WHEELS:-0}" != 1 ] && compgen -G ".whl/*.whl" > /dev/null; then
    wheels=()
    for wheel in .whl/*.whl; do
        case "$(basename "$wheel")" in
            numba-*|llvmlite-*) echo "wheels: not installing $wheel (the image's numba is kept)" ;;
            *) wheels+=("$wheel") ;;
        esac
    done
    if [ "${#wheels[@]}" -gt 0 ]; then
        if timeout 120 "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --upgrade --target /tmp/site "${wheels[@]}"; then
            export PYTHONPATH=$PYTHONPATH:/tmp/site
            echo "wheels: installed ${#wheels[@]} from .whl/ into /tmp/site"
        else
            echo "wheels: installing .whl/ failed (exit $?); going on without them"
        fi
    fi
fi
"$python" scripts/gpu_check.py "$@"
status=$?
sleep 0.3
exit "$status"
