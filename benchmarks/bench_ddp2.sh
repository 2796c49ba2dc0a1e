#!/usr/bin/env bash
# IDEC on USPS (fast preset): 1 process vs 2 local gloo processes (deepclust run --nproc).
# Usage: benchmarks/bench_ddp2.sh OUT_DIR   (run from the repository root; DEEPCLUST_DATA set)
set -euo pipefail
OUT=${1:-runs/bench_ddp2}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 PYTHONPATH=${PYTHONPATH:-$PWD}
PY=${PYTHON:-python}
for NP in 1 2; do
  echo "== nproc $NP, load: $(uptime)"
  /usr/bin/time -v "$PY" -m deepclust run idec --dataset usps --preset fast --seed 0 --nproc "$NP" \
    --no-pictures --out "$OUT/idec-usps-np$NP" 2> "$OUT/time-np$NP.txt"
  grep -E "Elapsed|User time|System time|Maximum resident" "$OUT/time-np$NP.txt"
  echo "== done, load: $(uptime)"
done
