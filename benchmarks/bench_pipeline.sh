#!/usr/bin/env bash
# Wall time of the whole default pipeline, every job rerun, training included:
#   bash benchmarks/bench_pipeline.sh [N]   (N runs, default 1; prints each and the median)
# `--forceall` alone publishes each run's finished training again from runs/<run>/.finished
# (README, "Finished training is kept") instead of training; those copies are deleted first.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
times=()
for _ in $(seq "$runs"); do
  rm -rf results/default/runs/*/.finished
  start=$(date +%s%N)
  snakemake --cores all --forceall --quiet all
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  times+=("$ms")
  echo "default pipeline, --forceall, training included, $(nproc) cores: $((ms / 1000)).$(( (ms % 1000) / 100 )) s"
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')
echo "median of $runs: $((median / 1000)).$(( (median % 1000) / 100 )) s"
