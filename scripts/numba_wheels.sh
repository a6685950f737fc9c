#!/usr/bin/env bash
# Download numba and llvmlite wheels for Python 3.12 on x86-64 into .whl/ (ignored by git), for a
# CUDA image without numba and without a package registry; scripts/gpu_check.sh installs .whl/*.
# Run from the repository root on a machine with network access.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for pkg in numba==0.62.1 llvmlite==0.45.1; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        -d .whl "$pkg"
done
ls -1 .whl
