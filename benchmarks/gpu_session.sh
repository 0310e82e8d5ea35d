#!/usr/bin/env bash
# Every GPU measurement of the project in one call (GPU time is short): run from the repository
# root on a CUDA machine whose python3 has torch, with the workflow's other packages either
# installed or carried as wheels in .whl/ (see benchmarks/README.md, "The GPU path").
#   bash benchmarks/gpu_session.sh [out-dir]
# Writes one Markdown/text file per measurement into out-dir (default: $OUT, else gpu_out/).
set -uo pipefail
out=${1:-${OUT:-gpu_out}}
mkdir -p "$out"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && cp -r .whl/extra/. /tmp/site/ || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/workflow PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"

step() {  # step <seconds> <file> <command...>: one measurement, bounded, its output kept
    local limit=$1 file=$2
    shift 2
    echo "== $file: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$file"
}

# Issue 31 §1-2: no wait for the device per batch, counted by CUDA's sync debug mode (float64
# and float32 arithmetic); bench_gpu.md times measure in both.
if python3 -c "import pytest" 2>/dev/null; then
    step 120 host_reads.txt python3 -m pytest -q --noconftest -p no:cacheprovider \
        tests/test_host_reads.py
else
    echo "pytest is not installed here: tests/test_host_reads.py not run" | tee "$out/host_reads.txt"
fi
# Issue 16 §4: the project's training loop against an airbench-style loop; measure vs forward.
step 120 bench_gpu.md python3 benchmarks/bench_gpu.py --n 20000 --epochs 3 --measure-n 10000
# Issue 13 §3 and §5: metrics every epoch, and augmentation, against training alone.
step 120 epoch_metrics.md python3 benchmarks/bench_epoch_metrics.py --device cuda \
    --cases mlp resnet18 --n-train 10000 --n-test 2000 --repeat 3
step 90 epoch_metrics_float32.md python3 benchmarks/bench_epoch_metrics.py --device cuda \
    --cases resnet18 --n-train 10000 --n-test 2000 --repeat 2 --precision float32
step 60 augment.md python3 benchmarks/bench_augment.py --device cuda --n 10240 --epochs 1 \
    --repeat 3
# Issue 16 §4: the default pipeline end to end with device: auto (everything but the LaTeX
# report, which needs a TeX installation the GPU machine lacks).
start=$(date +%s.%N)
step 240 pipeline.txt python3 -m snakemake --cores 16 --omit-from report --quiet rules
end=$(date +%s.%N)
python3 - "$start" "$end" <<'EOF' | tee -a "$out/pipeline.txt"
import json, pathlib, sys
print(f"default pipeline without the report, --cores 16: {float(sys.argv[2]) - float(sys.argv[1]):.1f} s wall")
for info in sorted(pathlib.Path("results/default/runs").glob("*/run.json")):
    i = json.loads(info.read_text())
    epochs = i["final_epoch"]
    print(f"{i['run']}: {i['device_used']}, {i['train_seconds']} s for {epochs} epochs "
          f"({1000 * i['train_seconds'] / epochs:.1f} ms/epoch, "
          f"{i['n_train'] * epochs / i['train_seconds']:,.0f} train images/s), "
          f"test acc {i['final_test_acc']:.4f}")
EOF
cp results/default/tables/runs.csv "$out/runs.csv" 2>/dev/null
for f in results/default/logs/train/*.log; do tail -3 "$f"; done > "$out/train_logs.txt" 2>&1
