#!/usr/bin/env bash
# One device call: GPU facts, the test suite compiled on the GPU, then the stages named as
# arguments (kernels-smoke, sampled, full, passes, memory, tune, tune-serial, tune-dlrm, dlrm,
# quality, train-ml20m). Logs and results go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 CCE_TUNE_CACHE=/tmp/cce-cache
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
for stage in "$@"; do
  echo "=== $stage $(date +%T)"
  case $stage in
    tests) python3 -m pytest -q -x tests 2>&1 | tee "$out/tests.log" | tail -25 ;;
    kernels-smoke) python3 -m benchmarks.kernels --out-dir "$out" --tokens 32768 \
        --negatives 512 4095 --dims 256 --catalogs 26744 --dtypes bf16 --kinds sampled \
        2>&1 | tail -12 ;;
    sampled) python3 -m benchmarks.kernels --out-dir "$out" --tag sampled --kinds sampled \
        --extra fp16:131072:4095:256:26744 2>&1 | tail -60 ;;
    full) python3 -m benchmarks.kernels --out-dir "$out" --tag full --kinds full \
        --negatives 1 --tokens 8192 32768 51200 131072 2>&1 | tail -50 ;;
    passes) python3 -m benchmarks.passes --out-dir "$out" --block-t 64 128 --block-n 32 64 \
        --warps 8 --stages 3 4 2>&1 | tail -12 ;;
    memory) python3 -m tuner.cli verify-memory --grid default --out "$out" --calibrate \
        2>&1 | tee "$out/memory.log" | tail -20 ;;
    tune) python3 -m tuner.cli data --dataset synthetic-ml-20m
        python3 -m tuner.cli --gpu-mem 40GB --dataset synthetic-ml-20m --trials 16 --epochs 3 \
          --out "$out/tune-run" 2>&1 | tee "$out/tune.log" | grep -v "^\[.*epoch" | tail -40
        tar czf "$out/tune-run.tar.gz" --exclude=report.html --exclude=tuner.pkl -C "$out" tune-run && rm -rf "$out/tune-run" ;;
    tune-serial)  # one trial at a time on the whole GPU: the between-trials gap uncontended
      python3 -m tuner.cli data --dataset synthetic-ml-20m
      python3 -m tuner.cli --gpu-mem 40GB --dataset synthetic-ml-20m --trials 8 --epochs 1 \
        --gpus-per-trial 1 --out "$out/tune-serial" 2>&1 | tee "$out/tune-serial.log" \
        | grep -v "^\[.*epoch" | tail -30
      tar czf "$out/tune-serial.tar.gz" --exclude=report.html --exclude=tuner.pkl -C "$out" tune-serial && rm -rf "$out/tune-serial" ;;
    tune-dlrm)
      python3 -m tuner.cli --model dlrm --dataset synthetic-dlrm --gpu-mem 40GB --trials 16 \
        --epochs 3 --out "$out/tune-dlrm" 2>&1 | tee "$out/tune-dlrm.log" \
        | grep -v "^\[.*epoch" | tail -30
      tar czf "$out/tune-dlrm.tar.gz" --exclude=report.html --exclude=tuner.pkl -C "$out" tune-dlrm && rm -rf "$out/tune-dlrm" ;;
    dlrm) for run in "fused graph" "fused eager" "sparse eager" "fused graph"; do
          read -r update step <<<"$run"
          python3 -m benchmarks.dlrm --table-update "$update" --step "$step" --out-dir "$out" \
            2>&1 | tee -a "$out/dlrm.log"
        done ;;
    quality) python3 -m benchmarks.quality --out-dir "$out" 2>&1 | tail -10 ;;
    train-ml20m)
      for precision in fp32 bf16; do
        for loss in ce_minus cce_minus; do
          flag=$([[ $precision == bf16 ]] && echo --bf16)
          python3 -m tuner.cli train --dataset synthetic-ml-20m --loss $loss --negatives 1024 \
            --batch-size 256 --max-len 200 --epochs 1 $flag \
            --out "$out/train-ml20m-$loss-$precision.json" 2>&1 | tail -6
        done
      done ;;
    *) echo "unknown stage $stage" ;;
  esac
done
echo "=== done $(date +%T)"
