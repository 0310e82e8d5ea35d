#!/usr/bin/env bash
# A/B of two trees on this machine, alternating run by run so that its drift hits both:
# the tiny experiment in a fresh folder (warm numba cache) and the default pipeline with
# training (`--forceall`, finished trainings deleted first, as bench_pipeline.sh does).
#   bash benchmarks/ab_trees.sh <commit> [fresh runs] [pipeline runs]   (defaults 5 and 5)
# <commit>'s tree is extracted to a temporary folder and runs with its own package on
# PYTHONPATH (and this repository's .venv); "after" is this working tree. Prints the wall and
# CPU seconds (user+system, the whole process tree) of each run, then the medians.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
commit="${1:?usage: ab_trees.sh <commit> [fresh runs] [pipeline runs]}"
fresh_runs="${2:-5}"
pipeline_runs="${3:-5}"
source "$root/.venv/bin/activate"
before="$(mktemp -d)"
git -C "$root" archive "$commit" | tar -x -C "$before"
trap 'rm -rf "$before"' EXIT
out="$(mktemp)"

timed() {  # label command...: appends "label wall cpu" to $out
  local label="$1" times wall user sys
  shift
  times="$(mktemp)"
  /usr/bin/time -o "$times" -f "%e %U %S" "$@" > /dev/null 2>&1
  read -r wall user sys < "$times"
  rm -f "$times"
  echo "$label $wall $(echo "$user + $sys" | bc)" | tee -a "$out"
}
fresh() {  # tree label
  local dir
  dir="$(mktemp -d)"
  cp "$1/.test/config.yaml" "$dir/"
  PYTHONPATH="$1/workflow" timed "fresh-$2" \
    snakemake -s "$1/Snakefile" --directory "$dir" --cores all --quiet all
  rm -rf "$dir"
}
pipeline() {  # tree label
  rm -rf "$1"/results/default/runs/*/.finished
  (cd "$1" && PYTHONPATH="$1/workflow" timed "pipeline-$2" \
    snakemake --cores all --forceall --quiet all)
}

fresh "$root" warmup > /dev/null  # the user's numba cache, whatever it held
if [ "$pipeline_runs" -gt 0 ]; then  # each tree's results exist before the timed runs
  for tree in "$before" "$root"; do
    (cd "$tree" && PYTHONPATH="$tree/workflow" snakemake --cores all --quiet all > /dev/null 2>&1)
  done
fi
for _ in $(seq "$fresh_runs"); do fresh "$before" before; fresh "$root" after; done
for _ in $(seq "$pipeline_runs"); do pipeline "$before" before; pipeline "$root" after; done
echo "medians (wall s, CPU s):"
for label in fresh-before fresh-after pipeline-before pipeline-after; do
  { grep "^$label " "$out" || true; } | awk -v l="$label" '{w[NR]=$2; c[NR]=$3} END {
    if (NR == 0) exit; n = asort(w); asort(c); m = int((n + 1) / 2)
    printf "  %-16s %6.1f %6.1f  (%d runs)\n", l, w[m], c[m], n }'
done
rm -f "$out"
