#!/usr/bin/env bash
# One device call: GPU facts, then the stages named as arguments (tests, kernel-tests,
# kernels-smoke, sampled, full, bars, shared-fold, step-time, passes-d64, passes-d256, memory,
# memory-default-allocator, step-memory, gpu-tests, loss-memory, train-per-position, tune,
# tune-serial, tune-dlrm, dlrm, quality, train-ml20m, synthetic-calibration, grid-1, grid-2,
# bert4rec, bert4rec-quality, step-profile, step-compiled, batching-quality,
# batching-quality-fixed, memory-check, dlrm-hybrid, tune-ml20m, tuning-bars, step-graphs,
# step-packed, sparse-item-grad, memory-packed, memory-packed-graphs, step-memory-packed,
# packed-peak, per-position-floor, per-position-kernels, per-position-baseline,
# per-position-passes, per-position-tensor-passes, tile-quality, memory-per-position,
# fp32-bars, full-bars, fp32-passes, memory-sparse, full-passes, tile16-kernels,
# gpu-kernel-tests, per-position-item-programs, per-position-items-passes,
# per-position-chunks, per-position-drawn-steps, per-position-counted, full-catalog-passes,
# full-forward-directions, full-forward-directions-d256, memory-full-catalog, full-tokens,
# step-memory-full-catalog, cublas-kernel-tests, fp32-tile16, fp32-tile64,
# fp32-cublas-passes, memory-cublas, fp32-cublas-chunks).
# Logs and results go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 CCE_TUNE_CACHE=/tmp/cce-cache
# A new folder in which links stand this checkout's packages up as the cce_tune namespace,
# with kernels/ from $1 (default this checkout's); prints the folder.
cce_namespace() {
  local kernels=${1:-$PWD/kernels} folder package
  folder=$(mktemp -d)
  mkdir "$folder/cce_tune"
  for package in models search_spaces tuner; do
    ln -s "$PWD/$package" "$folder/cce_tune/$package"
  done
  ln -s "$kernels" "$folder/cce_tune/kernels"
  echo "$folder"
}
# A folder to run this checkout's benchmarks/ from against an older commit's kernels/ ($1,
# e.g. `.baseline/92fd809` from `git archive 92fd809 kernels | tar -x -C .baseline/92fd809`,
# carried: the device's copy has no history), under both names its code may import itself by
# (kernels, as it was then, and cce_tune.kernels, as the benchmarks import it); prints it.
baseline_namespace() {
  local folder
  folder=$(cce_namespace "$PWD/$1/kernels")
  ln -s "$PWD/$1/kernels" "$folder/kernels"
  ln -s "$PWD/benchmarks" "$folder/benchmarks"
  echo "$folder"
}
# Not pip-installed on the device machine.
if ! python3 -c "import cce_tune.tuner" 2>/dev/null; then
  namespace=$(cce_namespace)
  export PYTHONPATH="$namespace${PYTHONPATH:+:$PYTHONPATH}"
fi

# The per-position item pass over tiles or settings, at 131,072 tokens, d 256 N 511 and d 64
# N 1,511, ids explicit and drawn: item_sweep TAG D256_SHAPES D64_SHAPES [passes flags...],
# shapes T,N,WARPS,STAGES joined by '+'.
item_sweep() {
  local tag=$1 d256=$2 d64=$3
  shift 3
  for point in "d256 511 256 $d256" "d64 1511 64 $d64"; do
    read -r name negatives dim shapes <<< "$point"
    # shellcheck disable=SC2086
    python3 -m benchmarks.passes --out-dir "$out" --tag "per-position-$tag-$name" \
      --tokens 131072 --negatives "$negatives" --dim "$dim" --kernels items \
      --shapes ${shapes//+/ } --variants "per position" "per position (in-kernel)" "$@" 2>&1 \
      | tee "$out/passes-$tag-$name.log" | tail -18
  done
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
for stage in "$@"; do
  echo "=== $stage $(date +%T)"
  case $stage in
    tests) python3 -m pytest -q -x tests 2>&1 | tee "$out/tests.log" | tail -25 ;;
    kernel-tests) python3 -m pytest -q -x tests/kernels 2>&1 | tee "$out/kernel-tests.log" \
        | tail -8 ;;
    kernels-smoke) python3 -m benchmarks.kernels --out-dir "$out" --tokens 32768 \
        --negatives 512 4095 --dims 256 --catalogs 26744 --dtypes bf16 --kinds sampled \
        2>&1 | tail -12 ;;
    sampled) python3 -m benchmarks.kernels --out-dir "$out" --tag sampled --kinds sampled \
        --extra fp16:131072:4095:256:26744 2>&1 | tail -60 ;;
    full) python3 -m benchmarks.kernels --out-dir "$out" --tag full --kinds full \
        --negatives 1 --tokens 8192 32768 51200 131072 2>&1 | tail -50 ;;
    bars)  # the issue's speed and memory bar points, sampled and full catalog
      python3 -m benchmarks.kernels --out-dir "$out" --tag bars --tokens 32768 131072 \
        --negatives 512 2048 --dims 64 256 --catalogs 26744 1000000 --dtypes bf16 \
        --kinds sampled --extra fp16:131072:4095:256:26744 --max-per-position 0 --rounds 3 \
        2>&1 | tail -3
      python3 -m benchmarks.kernels --out-dir "$out" --tag bars-full --tokens 51200 \
        --negatives 1 --dims 64 --catalogs 26744 --dtypes bf16 fp32 --kinds full --rounds 3 \
        2>&1 | tail -12
      python3 -m benchmarks.bars "$out"/kernels-*-bars.json "$out"/kernels-*-bars-full.json \
        2>&1 | tail -3 ;;
    shared-fold) python3 -m benchmarks.shared_fold --out-dir "$out" 2>&1 | tail -20 ;;
    step-time) python3 -m benchmarks.step_time --out-dir "$out" 2>&1 | tail -30 ;;
    passes-d64)  # the block sweep at the d=64 bar points: full catalog, N = 512
      python3 -m benchmarks.passes --out-dir "$out" --tag full-d64 --tokens 51200 --dim 64 \
        --dtype bf16 --variants "full catalog" --block-n 64 128 2>&1 | tail -6
      python3 -m benchmarks.passes --out-dir "$out" --tag n512-d64 --tokens 32768 \
        --negatives 512 --dim 64 --dtype bf16 --block-n 64 128 \
        --variants shared "tile 128" "tile 128 (in-kernel)" 2>&1 | tail -10 ;;
    passes-d256)  # and at d=256: the 131,072-token N=4,095 fp16 bar, full catalog
      python3 -m benchmarks.passes --out-dir "$out" --tag n4095-d256 --block-n 32 64 \
        --stages 2 3 --variants shared "tile 128 (in-kernel)" 2>&1 | tail -8
      python3 -m benchmarks.passes --out-dir "$out" --tag full-d256 --tokens 51200 --dim 256 \
        --dtype bf16 --variants "full catalog" --block-n 32 64 --stages 2 3 2>&1 | tail -6 ;;
    memory) python3 -m cce_tune.tuner.cli verify-memory --grid default --out "$out" --calibrate \
        2>&1 | tee "$out/memory.log" | tail -40 ;;
    memory-check)  # the default grid against the committed calibration, nothing refitted
      python3 -m cce_tune.tuner.cli verify-memory --grid default --out "$out" \
        2>&1 | tee "$out/memory-check.log" | tail -40 ;;
    memory-per-position)  # the per-position points of that grid: references and fused
      python3 -m cce_tune.tuner.cli verify-memory --grid per-position --out "$out" 2>&1 \
        | tee "$out/memory-per-position.log" | tail -30 ;;
    memory-sparse)  # issue 19: the fused loss's sparse item gradient, SparseAdam's step
      python3 -m cce_tune.tuner.cli verify-memory --grid sparse --out "$out" 2>&1 \
        | tee "$out/memory-sparse.log" | tail -20 ;;
    memory-default-allocator)  # the same grid under the allocator's default setting
      PYTORCH_CUDA_ALLOC_CONF=expandable_segments:False python3 -m cce_tune.tuner.cli verify-memory \
        --grid default --out "$out" --tag default-allocator 2>&1 \
        | tee "$out/memory-default-allocator.log" | tail -40 ;;
    train-per-position)  # issue 20's command: the estimate's verdict, then the real thing
      python3 -m cce_tune.tuner.cli data --dataset synthetic-ml-20m
      args=(--dataset synthetic-ml-20m --loss ce_minus --negative-mode per_position
            --negatives 1512 --batch-size 64 --max-len 512 --hidden 256 --blocks 2 --heads 2
            --bf16)
      python3 -m cce_tune.tuner.cli estimate "${args[@]}" --gpu-mem 140GiB | tail -8
      timeout 150 python3 -m cce_tune.tuner.cli train "${args[@]}" --epochs 1 2>&1 | tail -5
      echo "train exit status ${PIPESTATUS[0]} (124: still training at the time limit)" ;;
    step-memory) python3 -m benchmarks.step_memory --out-dir "$out" 2>&1 \
        | tee "$out/step-memory.log" | tail -12 ;;
    step-memory-full-catalog)  # what the full catalog's bf16 steps hold at their peaks
      python3 -m benchmarks.step_memory --out-dir "$out" --grid full-catalog --bf16 2>&1 \
        | tee "$out/step-memory-full-catalog.log" | tail -12 ;;
    gpu-tests)  # the GPU-marked tests under the allocator setting every trial now runs with
      PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True python3 -m pytest -q -m gpu tests \
        2>&1 | tee "$out/gpu-tests.log" | tail -15 ;;
    loss-memory) python3 -m benchmarks.loss_memory --out-dir "$out" --trace 2>&1 \
        | tee "$out/loss-memory.log" | tail -90 ;;
    tune) python3 -m cce_tune.tuner.cli data --dataset synthetic-ml-20m
        python3 -m cce_tune.tuner.cli --gpu-mem 40GB --dataset synthetic-ml-20m --trials 16 --epochs 3 \
          --out "$out/tune-run" 2>&1 | tee "$out/tune.log" | grep -v "^\[.*epoch" | tail -40
        tar czf "$out/tune-run.tar.gz" --exclude=report.html --exclude=tuner.pkl -C "$out" tune-run && rm -rf "$out/tune-run" ;;
    tune-serial)  # one trial at a time on the whole GPU: the between-trials gap uncontended
      python3 -m cce_tune.tuner.cli data --dataset synthetic-ml-20m
      python3 -m cce_tune.tuner.cli --gpu-mem 40GB --dataset synthetic-ml-20m --trials 8 --epochs 1 \
        --gpus-per-trial 1 --out "$out/tune-serial" 2>&1 | tee "$out/tune-serial.log" \
        | grep -v "^\[.*epoch" | tail -30
      tar czf "$out/tune-serial.tar.gz" --exclude=report.html --exclude=tuner.pkl -C "$out" tune-serial && rm -rf "$out/tune-serial" ;;
    tune-dlrm)
      python3 -m cce_tune.tuner.cli --model dlrm --dataset synthetic-dlrm --gpu-mem 40GB --trials 16 \
        --epochs 3 --out "$out/tune-dlrm" 2>&1 | tee "$out/tune-dlrm.log" \
        | grep -v "^\[.*epoch" | tail -30
      tar czf "$out/tune-dlrm.tar.gz" --exclude=report.html --exclude=tuner.pkl -C "$out" tune-dlrm && rm -rf "$out/tune-dlrm" ;;
    dlrm) for run in "fused graph" "fused eager" "sparse eager" "fused graph"; do
          read -r update step <<<"$run"
          python3 -m benchmarks.dlrm --table-update "$update" --step "$step" --out-dir "$out" \
            2>&1 | tee -a "$out/dlrm.log"
        done ;;
    quality) python3 -m benchmarks.quality --out-dir "$out" 2>&1 | tail -10 ;;
    synthetic-calibration) python3 -m benchmarks.synthetic_calibration --bf16 \
        --out "$out/synthetic-calibration" 2>&1 | tee "$out/synthetic-calibration.log" | tail -20 ;;
    grid-1)  # issue 14's replay targets: a full grid (GRID_SECONDS: its time limit;
      # GRID_RESUME: an earlier call's table folder, whose runs are kept)...
      python3 -m benchmarks.grid_table --dataset synthetic-ml-1m --name ml-1m-cce --bf16 \
        --workers 12 --time-limit "${GRID_SECONDS:-300}" --out-dir "$out/replay" \
        ${GRID_RESUME:+--resume "$GRID_RESUME"} 2>&1 \
        | tee "$out/grid-1.log" | grep -v "^\[" | tail -25
      tar czf "$out/replay-1.tgz" -C "$out" replay && rm -rf "$out/replay" ;;
    grid-2)  # ... and a second table, another budget regime, kept apart from the design
      # (batches down to 16: table 1's best sat at its smallest batch, 32)
      python3 -m benchmarks.grid_table --dataset synthetic-ml-1m --name ml-1m-torch-d128 \
        --losses ce_minus --hidden 128 --batch-sizes 16 32 64 128 256 512 1024 \
        --negatives 64 256 1024 4096 --max-lens 50 200 --bf16 --workers 12 \
        --time-limit "${GRID_SECONDS:-100}" --out-dir "$out/replay" \
        ${GRID_RESUME:+--resume "$GRID_RESUME"} 2>&1 \
        | tee "$out/grid-2.log" | grep -v "^\[" | tail -8
      tar czf "$out/replay-2.tgz" -C "$out" replay && rm -rf "$out/replay" ;;
    bert4rec)  # issue 15's memory grid, beside (peaks are per process) a 16-trial tuning run
      # at a budget that binds; the run folder comes back whole, its report.html included
      python3 -m cce_tune.tuner.cli data --dataset synthetic-ml-1m
      # (B4_MEMORY=0: the tuning run alone; B4_TUNE_SECONDS: how long it launches trials)
      if [[ ${B4_MEMORY:-1} == 1 ]]; then
        python3 -m cce_tune.tuner.cli verify-memory --model bert4rec --out "$out" \
          >"$out/memory-bert4rec.log" 2>&1 &
      else
        echo "memory grid not run (B4_MEMORY=0)" >"$out/memory-bert4rec.log"
      fi
      python3 -m cce_tune.tuner.cli --model bert4rec --gpu-mem 3GB --dataset synthetic-ml-1m \
        --trials 16 --epochs 60 --time-budget "${B4_TUNE_SECONDS:-180}s" \
        --out "$out/tune-bert4rec" 2>&1 | tee "$out/tune-bert4rec.log" \
        | grep -v "^\[.*epoch" | tail -40
      wait
      tail -25 "$out/memory-bert4rec.log"
      tar czf "$out/bert4rec.tgz" --exclude=tuner.pkl -C "$out" tune-bert4rec tune-bert4rec.log \
        memory-bert4rec.log && rm -rf "$out/tune-bert4rec" "$out/tune-bert4rec.log" \
        "$out/memory-bert4rec.log" ;;
    bert4rec-quality)  # alone on the device: its clocks compare the two models
      timeout "${B4_SECONDS:-600}" python3 -m benchmarks.bert4rec_quality --bf16 \
        --bert4rec-epochs 60 \
        --variants ${B4_VARIANTS:-3e-3:0:4:0.2:0 3e-3:0:4:0.2:0.2} --out-dir "$out" 2>&1 \
        | tail -16 ;;
    step-compiled)  # the same with the model compiled by torch.compile
      python3 -m benchmarks.step_profile --bf16 --epoch --compile --tag compiled \
        --out-dir "$out" 2>&1 | tail -30
      python3 -m benchmarks.step_profile --bf16 --epoch --compile --hidden 64 --max-len 200 \
        --batch-size 1024 --tag d64-compiled --out-dir "$out" 2>&1 | tail -30 ;;
    step-profile)  # issue 18's two bar settings, profiled (the paper's, the tuner's corner)
      python3 -m benchmarks.step_profile --bf16 --epoch --out-dir "$out" 2>&1 | tail -30
      python3 -m benchmarks.step_profile --bf16 --epoch --batches random --tag random \
        --out-dir "$out" 2>&1 | tail -30
      python3 -m benchmarks.step_profile --bf16 --epoch --hidden 64 --max-len 200 \
        --batch-size 1024 --tag d64 --out-dir "$out" 2>&1 | tail -30 ;;
    tune-ml20m)  # issue 14's GPU tuning run on the calibrated ml-20m preset (TUNE_SECONDS:
      # how long it launches trials; TUNE_TRIALS, TUNE_EPOCHS: trials and their epoch cap);
      # the run folder comes back packed, and stays unpacked in /tmp for a tuning-bars stage
      # of the same call
      python3 -m cce_tune.tuner.cli data --dataset synthetic-ml-20m
      # TUNE_LIMIT: seconds before the run is interrupted (Ctrl-C: reports still written)
      timeout -s INT -k 60 "${TUNE_LIMIT:-86400}" \
        python3 -m cce_tune.tuner.cli --gpu-mem 40GB --dataset synthetic-ml-20m \
        --trials "${TUNE_TRIALS:-16}" ${TUNE_EPOCHS:+--epochs "$TUNE_EPOCHS"} \
        --bf16 --time-budget "${TUNE_SECONDS:-420}s" --no-dashboard --out "$out/tune-ml20m" \
        2>&1 | tee "$out/tune-ml20m.log" | grep -v "^\[.*epoch" | tail -40
      tar czf "$out/tune-ml20m.tgz" -C "$out" tune-ml20m
      rm -rf /tmp/tune-ml20m && mv "$out/tune-ml20m" /tmp/ ;;
    tuning-bars)  # ... and its bars: stopped-early shares, the recommendation retrained
      # (RUN: the run folder; by default the one tune-ml20m left in /tmp)
      python3 -m benchmarks.tuning_run_bars "${RUN:-/tmp/tune-ml20m}" --seeds 101 102 103 \
        --out-dir "$out" 2>&1 | tail -20 ;;
    dlrm-hybrid)  # DLRM's benchmark over 1, 2, 4 ... GPUs (as many as the machine has)
      gpus=$(nvidia-smi -L | wc -l)
      for world in 1 2 4 8; do
        (( world <= gpus )) || break
        python3 -m benchmarks.dlrm_hybrid --world "$world" --out-dir "$out" 2>&1 | tail -12
      done ;;
    batching-quality)  # does the way users share a batch cost quality? (and replaying graphs?)
      python3 -m benchmarks.batching_quality --bf16 --seeds 0 1 2 3 4 --workers 8 \
        --variants random packed "packed, CUDA graphs" "by length" --out-dir "$out" 2>&1 \
        | tail -30 ;;
    batching-quality-fixed)  # the same, every run 50 epochs: patience's stops left out
      python3 -m benchmarks.batching_quality --bf16 --seeds 0 1 2 3 4 --workers 8 \
        --patience 0 --variants random packed "by length" --out-dir "$out" 2>&1 | tail -22 ;;
    memory-packed)  # issue 18: the packed step's terms at full windows, eager and graphed
      python3 -m cce_tune.tuner.cli verify-memory --grid packed --out "$out" 2>&1 \
        | tee "$out/memory-packed.log" | tail -40 ;;
    memory-packed-graphs)  # the packed grid's graphed points alone
      python3 -m cce_tune.tuner.cli verify-memory --grid packed-graphs --out "$out" 2>&1 \
        | tee "$out/memory-packed-graphs.log" | tail -30 ;;
    step-memory-packed) python3 -m benchmarks.step_memory --packed --out-dir "$out" 2>&1 \
        | tail -4 ;;
    packed-peak)  # issue 18: the packed token cap against an epoch of real lengths
      python3 -m benchmarks.packed_peak --out-dir "$out" 2>&1 | tail -12 ;;
    per-position-floor)  # issue 19: the per-position passes' traffic alone, at its four rows
      python3 -m benchmarks.per_position_floor --out-dir "$out" 2>&1 | tail -8 ;;
    per-position-kernels)  # ... the loss there, ours (ids explicit, drawn in the kernel) and
      # PyTorch's per position, beside ours in tile mode
      python3 -m benchmarks.kernels --out-dir "$out" --tag per-position --kinds sampled \
        --tokens 131072 --negatives 511 --dims 256 --catalogs 26744 --dtypes fp16 \
        --extra fp16:131072:4095:256:26744 fp16:131072:1511:64:26744 \
        fp16:32768:1511:256:26744 --max-per-position 1e12 \
        --modes per_position "per_position (in-kernel)" "tile (in-kernel)" 2>&1 | tail -24 ;;
    per-position-item-programs)  # ... and the item pass's programs per multiprocessor
      item_sweep item-programs 8,1,1,2 32,1,1,2 --item-programs 8 16 32 64 ;;
    per-position-items-passes)  # ... the item pass's time over its pairs per step
      item_sweep items-prefetch 4,1,1,2+8,1,1,2+16,1,1,2 16,1,1,2+32,1,1,2+64,1,1,2 ;;
    per-position-chunks)  # ... the counting sort and item pass over pairs per chunk
      item_sweep chunks 8,1,1,2 32,1,1,2 --max-slots 4194304 8388608 16777216 33554432 ;;
    per-position-drawn-steps)  # ... every pass, over the steps of ids the forward draws ahead
      item_sweep drawn-steps 8,1,1,2 32,1,1,2 --drawn-steps 4 8 16 32 ;;
    per-position-counted)  # ... every pass, pairs counted in the forward or in the backward
      item_sweep counted 8,1,1,2 32,1,1,2 --max-forward-counts 0 4194304 ;;
    tile16-kernels)  # issue 19: the default tile (16) at the per-position rows, beside PyTorch
      python3 -m benchmarks.kernels --out-dir "$out" --tag tile16 --kinds sampled \
        --tokens 131072 --negatives 511 --dims 256 --catalogs 26744 --dtypes fp16 \
        --extra fp16:131072:4095:256:26744 fp16:131072:1511:64:26744 \
        fp16:32768:1511:256:26744 --tile-size 16 --modes tile "tile (in-kernel)" 2>&1 \
        | tail -16 ;;
    gpu-kernel-tests)  # the kernels' GPU-only tests: real sizes, compiled, every dtype
      python3 -m pytest -q tests/kernels/test_fused_gpu.py 2>&1 \
        | tee "$out/gpu-kernel-tests.log" | tail -4 ;;
    fp32-bars)  # issue 19 item 3: fp32 at d 256 against PyTorch's true fp32 (TF32 off),
      # three rounds (products from cuBLAS since session 21, hence the tag; commit 52c8c25's
      # stage wrote the kernels' own as fp32-d256, one round)
      python3 -m benchmarks.kernels --out-dir "$out" --tag fp32-d256-cublas --tokens 32768 \
        131072 --negatives 512 2048 --dims 256 --catalogs 26744 1000000 --dtypes fp32 \
        --kinds sampled --modes "tile (in-kernel)" tile shared --max-per-position 0 \
        --rounds 3 2>&1 | tail -42 ;;
    full-catalog-passes)  # issue 19 item 4: each pass at the library's shapes, over the full
      # catalog (51,200 tokens, bf16, d 64 and 256) and shared at 131,072 x 2,048 (the dense
      # item pass's other mode)
      for point in "full-d64 51200 1 64 full 128,128,4,2" "full-d256 51200 1 256 full 64,64,4,3" \
          "shared-d64 131072 2048 64 shared 128,128,4,2" \
          "shared-d256 131072 2048 256 shared 64,64,4,3"; do
        read -r tag tokens negatives dim variant items <<< "$point"
        [ "$variant" = full ] && variant="full catalog"
        python3 -m benchmarks.passes --out-dir "$out" --tag "$tag-s19" --dtype bf16 \
          --tokens "$tokens" --negatives "$negatives" --dim "$dim" --variants "$variant" \
          --kernels items --shapes "$items" 2>&1 | tail -3
      done ;;
    full-forward-directions)  # issue 19 item 4: the full catalog's forward writing d(hidden)'s
      # directions (d 64 bf16, 51,200 tokens; no hidden pass runs) over block shapes, and
      # without directions (the hidden pass) in the same run
      python3 -m benchmarks.passes --out-dir "$out" --tag full-d64-directions --dtype bf16 \
        --tokens 51200 --negatives 1 --dim 64 --variants "full catalog" --kernels forward \
        --shapes 64,128,4,3 64,128,4,2 64,64,4,3 64,256,4,2 128,64,8,2 128,128,8,2 \
        --catalog-directions-row-bytes 128 0 2>&1 | tail -16 ;;
    full-forward-directions-d256)  # ... and at d 256 (not the library's yet: 512 row bytes
      # turns it on), over shapes that compile without spills (8 warps: the float32 sum of
      # rows is 64 x 256)
      python3 -m benchmarks.passes --out-dir "$out" --tag full-d256-directions --dtype bf16 \
        --tokens 51200 --negatives 1 --dim 256 --variants "full catalog" --kernels forward \
        --shapes 64,32,8,3 64,64,8,2 128,32,8,2 128,64,8,2 64,32,4,3 \
        --catalog-directions-row-bytes 512 0 2>&1 | tail -16 ;;
    full-tokens)  # issue 19: the full catalog at 8k-131k tokens, d 64 and 256, bf16, ours
      # against ours at BASELINE (an older commit's kernels/: baseline_namespace)
      baseline=${BASELINE:-.baseline/b3b2d29}
      namespace=$(baseline_namespace "$baseline")
      for tree in now "$(basename "$baseline")"; do
        where=$PWD
        [ "$tree" = now ] || where=$namespace
        (cd "$where" && PYTHONPATH="$where${PYTHONPATH:+:$PYTHONPATH}" python3 -m \
          benchmarks.kernels --out-dir "$out" --tag "full-tokens-$tree" --kinds full \
          --tokens 8192 32768 51200 131072 --negatives 1 --dims 64 256 --catalogs 26744 \
          --dtypes bf16 --impls ours --ours-label "$tree" --rounds 3 2>&1 | tail -10)
      done ;;
    memory-full-catalog)  # the default grid's full-catalog points (directions at d 64 bf16)
      python3 -m cce_tune.tuner.cli verify-memory --grid full-catalog --out "$out" 2>&1 \
        | tee "$out/memory-full-catalog.log" | tail -20 ;;
    full-bars)  # issue 19: the full catalog at d 64 and 256, 26,744 and 1M items, beside
      # Apple's CCE and Liger (carry .devbundle)
      python3 -m benchmarks.kernels --out-dir "$out" --tag full-bars --tokens 51200 \
        --negatives 1 --dims 64 256 --catalogs 26744 1000000 --dtypes bf16 --kinds full \
        --rounds 3 2>&1 | tail -20 ;;
    tile-quality)  # issue 19: tile-shared negatives against per position, 5 seeds, paired
      # (TILES: the tile sizes beside per position, of 128, 64, 32, 16)
      variants=("cce_minus per_position (in-kernel)")
      for tile in ${TILES:-128 32 16}; do variants+=("cce_minus tile $tile (in-kernel)"); done
      python3 -m benchmarks.quality --out-dir "$out" --tag "calibrated${QUALITY_TAG:-}" \
        --bf16 --dataset synthetic-ml-1m --epochs "${QUALITY_EPOCHS:-20}" \
        --variants "${variants[@]}" 2>&1 | tee "$out/tile-quality.log" | tail -8 ;;
    per-position-baseline)  # ... and ours there as an older commit built it, for the speed-up
      # (BASELINE: that commit's kernels/: baseline_namespace)
      baseline=${BASELINE:-.baseline/92fd809}
      namespace=$(baseline_namespace "$baseline")
      (cd "$namespace" && PYTHONPATH="$namespace" python3 -m benchmarks.kernels --out-dir "$out" \
        --tag "per-position-$(basename "$baseline")" --kinds sampled --tokens 131072 \
        --negatives 511 --dims 256 --catalogs 26744 --dtypes fp16 \
        --extra fp16:131072:4095:256:26744 fp16:131072:1511:64:26744 \
        fp16:32768:1511:256:26744 --max-per-position 1e12 --impls ours \
        --ours-label "ours $(basename "$baseline")" \
        --modes per_position "per_position (in-kernel)") 2>&1 | tail -12 ;;
    per-position-passes)  # ... and the CUDA-core forward's register tiles (d 64; d 256 in half
      # precision is on the tensor cores: per-position-tensor-passes). Few warps: a warp splits
      # the tile's rows, and the pass also sums over rows.
      python3 -m benchmarks.passes --out-dir "$out" --tag per-position-d64 --tokens 131072 \
        --negatives 1511 --dim 64 --kernels forward --block-t 2 4 --block-n 8 16 32 \
        --warps 1 2 --stages 2 --variants "per position (in-kernel)" 2>&1 \
        | tee "$out/passes-d64.log" | tail -6 ;;
    per-position-tensor-passes)  # ... the forward on the tensor cores (half precision, d 256):
      # 16 tokens, 2-8 negatives of each per step
      python3 -m benchmarks.passes --out-dir "$out" --tag per-position-tensor-d256 \
        --tokens 131072 --negatives 511 --dim 256 --kernels forward --block-t 16 \
        --block-n 2 4 8 --warps 4 8 --stages 2 --variants "per position (in-kernel)" 2>&1 \
        | tee "$out/passes-tensor-d256.log" | tail -6 ;;
    cublas-kernel-tests)  # the cuBLAS products' path compiled on the GPU: its tests, and the
      # fused kernels at real sizes (fp32 d 256 shared and tile 128 take it)
      python3 -m pytest -q tests/kernels/test_cublas_chunks.py tests/kernels/test_fused_gpu.py \
        2>&1 | tee "$out/cublas-kernel-tests.log" | tail -4 ;;
    fp32-cublas-chunks)  # ... over the chunks' size (MiB of products, and of gathered rows)
      for mib in ${CHUNK_MIB:-32 128}; do
        python3 -m benchmarks.kernels --out-dir "$out" --tag "fp32-d256-chunk$mib" \
          --tokens 32768 131072 --negatives 512 2048 --dims 256 --catalogs 26744 1000000 \
          --dtypes fp32 --kinds sampled --modes "tile (in-kernel)" tile shared \
          --max-per-position 0 --rounds 3 --cublas-chunk-mib "$mib" \
          --ours-label "ours-$mib" 2>&1 | tail -42 | grep -v "^{"
      done ;;
    fp32-tile16 | fp32-tile64)  # ... in smaller tiles (16: the library's default): the
      # kernels' own products (the CUDA cores' backward), then cuBLAS's
      tile=${stage#fp32-tile}
      for min_tile in $((tile * 2)) "$tile"; do
        python3 -m benchmarks.kernels --out-dir "$out" --tag "fp32-d256-tile$tile-from$min_tile" \
          --tokens 32768 131072 --negatives 512 2048 --dims 256 --catalogs 26744 \
          --dtypes fp32 --kinds sampled --modes "tile (in-kernel)" tile --tile-size "$tile" \
          --max-per-position 0 --cublas-min-tile $min_tile --ours-label "ours-from$min_tile" \
          $([ "$min_tile" = "$tile" ] && echo --impls ours) 2>&1 | tail -12
      done ;;
    fp32-cublas-passes)  # ... each pass's time (and the others': cuBLAS, gathers) over the
      # score passes' block shapes; then the kernels' own products (a row-bytes bound none
      # reaches) at their defaults (the one shape given fails to compile or matches them)
      for point in "cublas 1024 16,64,4,2 16,128,4,2 32,128,8,2 32,64,4,2" \
          "kernels-own 1000000000 32,32,4,2"; do
        read -r tag row_bytes shapes <<< "$point"
        # shellcheck disable=SC2086
        python3 -m benchmarks.passes --out-dir "$out" --tag "fp32-d256-$tag" --dtype fp32 \
          --tokens 131072 --negatives 2048 --dim 256 --variants shared "tile 128" \
          --kernels forward hidden --cublas-min-row-bytes "$row_bytes" --shapes $shapes 2>&1 \
          | tee "$out/fp32-passes-$tag.log" | tail -14
      done ;;
    memory-cublas)  # the cuBLAS products' memory, float32 at d 256 (verify-memory's grid)
      python3 -m cce_tune.tuner.cli verify-memory --grid cublas --out "$out" 2>&1 \
        | tee "$out/memory-cublas.log" | tail -20 ;;
    fp32-passes)  # issue 19's fp32 bar at d 256: each pass's time with tensor-core tf32x3
      # products (what fits the shared memory) against CUDA-core ieee ones, at larger tiles.
      python3 -m benchmarks.passes --out-dir "$out" --tag fp32-d256 --dtype fp32 \
        --tokens 131072 --negatives 2048 --dim 256 --variants "tile 128" shared \
        --precisions ieee tf32x3 --shapes ${FP32_SHAPES:-32,16,4,2 32,16,8,2 32,32,4,2 \
        64,32,4,2 64,64,4,2 64,64,8,2 128,32,8,2 128,64,8,2 64,16,4,2 64,16,8,2} 2>&1 \
        | tee "$out/passes-fp32.log" | tail -12 ;;
    full-passes)  # issue 19's full-catalog bar point: each pass's time over block shapes
      python3 -m benchmarks.passes --out-dir "$out" --tag full-d64 --dtype bf16 --tokens 51200 \
        --dim 64 --variants "full catalog" --shapes ${FULL_SHAPES:-64,128,4,3 128,128,8,3 \
        128,64,4,3 128,128,4,3 64,64,4,4 128,64,8,3 64,256,8,3 128,256,8,3 256,64,8,3 \
        256,128,8,3 64,128,4,4 128,128,8,4} 2>&1 | tee "$out/passes-full.log" | tail -8 ;;
    sparse-item-grad)  # issue 19's bar: a loss step's memory with the item gradient dense, sparse
      python3 -m benchmarks.sparse_item_grad --out-dir "$out" 2>&1 | tail -8 ;;
    step-graphs)  # issue 18: the step replayed from CUDA graphs at the two bar settings, beside
      # the eager epoch (whole logs in the archive); the graph tests and the kernels' first
      python3 -m pytest -q -x tests/tuner/sequences/test_graphed_steps.py \
        tests/kernels/test_fused.py 2>&1 | tail -4
      profile() {  # the figures' lines here, the whole output in the log
        python3 -m benchmarks.step_profile --bf16 --epoch --out-dir "$out/step-graphs" "$@" \
          2>&1 | tee -a "$out/step-graphs/log" | grep -E "^(Wall|A whole|Traceback|\w*Error)"
      }
      mkdir -p "$out/step-graphs"
      for graphs in "" --cuda-graphs; do
        profile $graphs --tag "${graphs:+graphs}"
        profile $graphs --hidden 64 --max-len 200 --batch-size 1024 --tag "d64${graphs:+-graphs}"
      done
      tar czf "$out/step-graphs.tgz" -C "$out" step-graphs && rm -rf "$out/step-graphs" ;;
    step-packed)  # issue 18: packed batches, eager and graphed, at the two bar settings; and
      # the graphed compiled step (grouped and packed) against the 5 % bar
      profile() {
        python3 -m benchmarks.step_profile --bf16 --epoch --out-dir "$out/step-packed" "$@" \
          2>&1 | tee -a "$out/step-packed/log" | grep -E "^(Wall|A whole|Traceback|\w*Error)"
      }
      mkdir -p "$out/step-packed"
      for graphs in "" --cuda-graphs; do
        profile --batches packed $graphs --tag "packed${graphs:+-graphs}"
        profile --batches packed $graphs --hidden 64 --max-len 200 --batch-size 1024 \
          --tag "d64-packed${graphs:+-graphs}"
      done
      profile --cuda-graphs --compile --tag graphs-compiled
      profile --batches packed --cuda-graphs --compile --tag packed-graphs-compiled
      tar czf "$out/step-packed.tgz" -C "$out" step-packed && rm -rf "$out/step-packed" ;;
    train-ml20m)
      for precision in fp32 bf16; do
        for loss in ce_minus cce_minus; do
          flag=$([[ $precision == bf16 ]] && echo --bf16)
          python3 -m cce_tune.tuner.cli train --dataset synthetic-ml-20m --loss $loss --negatives 1024 \
            --batch-size 256 --max-len 200 --epochs 1 $flag \
            --out "$out/train-ml20m-$loss-$precision.json" 2>&1 | tail -6
        done
      done ;;
    *) echo "unknown stage $stage" ;;
  esac
done
echo "=== done $(date +%T)"
