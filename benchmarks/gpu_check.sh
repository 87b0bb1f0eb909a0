#!/bin/bash
# The CUDA checks and benchmarks quoted in docs/layers.md ("Devices"), as one script for a GPU
# machine: the device tests (tests/test_devices.py, CPU and CUDA cases), the layer and ensemble
# benchmarks on CUDA, and a short UCI-protocol run on CUDA and on the CPU of the same machine.
#
#   bash benchmarks/gpu_check.sh OUTDIR [UCI_DIR]
#
# UCI_DIR: a data set in the UCI layout (e.g. .../uci/kin8nm); without it the UCI timing is
# skipped. Needs torch with CUDA, scipy, pytest, tqdm, matplotlib, scikit-learn; runs from
# the source tree (PYTHONPATH=src), so nothing is installed.
set -u
out=${1:?usage: gpu_check.sh OUTDIR [UCI_DIR]}
uci=${2:-}
mkdir -p "$out"
export PYTHONPATH=src PYTHONUNBUFFERED=1
log="$out/check.log"
step() { echo; echo "=== $* ($(date -u +%T))"; }
{
  step machine
  nvidia-smi -L
  python3 -c "import torch, os; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name(0), 'cpus', os.cpu_count())"
  step tests/test_devices.py
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py -rs 2>&1 | tail -n 40
  step bench_layers cuda
  timeout 150 python3 benchmarks/bench_layers.py --device cuda --reps 30
  step bench_ensemble cuda
  timeout 90 python3 benchmarks/bench_ensemble.py --device cuda --reps 20
  step bench_ensemble cpu, all threads
  timeout 90 python3 benchmarks/bench_ensemble.py --device cpu --threads "$(nproc)" --reps 10
  if [ -n "$uci" ]; then
    for dev in cuda cpu; do
      step "uci $(basename "$uci") 20 splits bernoulli-mc, 10 epochs, 10000 samples on $dev"
      t0=$(date +%s.%N)
      timeout 200 python3 -m shrinkdrop uci --data "$uci" --out "$out/uci-$dev" \
        --methods bernoulli-mc --epochs-multiplier 0.25 --device "$dev" --no-progress
      echo "rc=$? wall $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s on $dev"
    done
  fi
} 2>&1 | tee "$log"
