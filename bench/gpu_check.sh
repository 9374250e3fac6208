#!/usr/bin/env bash
# The prepared GPU check of issue 8 (run it on a lent GPU machine, from the repository root):
# FE-06 and FE-50 epoch times for K = 1, 8, 32 seeds on the GPU, and the grouped LF-P2 priority
# against its experiments one by one. Results go to bench/results/gpu/ (BENCHMARKS.md untouched:
# copy the figures into it by hand with the card's name). About 5-8 minutes on an H100.
#   bash bench/gpu_check.sh            (then read bench/results/gpu/*.json)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
out=bench/results/gpu
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/card.txt" || true
$PY bench/bench_epoch.py --which seeds --platform gpu --models FE-06,FE-50 --seeds-list 1,8,32 \
    --seeds-devices 1 --repeats 3 --results "$out" --no-render
$PY bench/bench_epoch.py --which grouping --results "$out" --no-render
cat "$out/card.txt"
