#!/usr/bin/env bash
# Regenerate every committed benchmark under bench/results/ (about 45 minutes on 2 cores).
# Usage: scripts/run_benchmarks.sh [ML100K_DIR]   (run inside an environment with accel[test] installed)
set -euo pipefail
cd "$(dirname "$0")/.."
ml100k=${1:-../shared/data/ml-100k}
out=bench/results
mkdir -p "$out"

accel info --json > "$out/machine.json"
if [ -f "$ml100k/u.data" ]; then
    accel bench --movielens "$ml100k" --out "$out/ml-100k" --quiet
fi
ACCEL_BENCH_SLOW=1 python -m pytest bench --benchmark-only -q -p no:cacheprovider \
    --benchmark-json "$out/micro.json"
accel bench --users 100000 --items 10000 --out "$out/synthetic-100k-10k" --quiet
python bench/dask_scoring.py --out "$out/dask_scoring.json"
python bench/serving.py --out "$out/serving.json"
accel bench --sweep-only --sweep-items 2000,4000,8000,16000,32000,64000,96000 \
    --timeout 400 --out "$out/sweep" --quiet
