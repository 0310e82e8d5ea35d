#!/usr/bin/env bash
# Every paper's MNIST preset (workflow/presets/<paper>/mnist.yaml) on real MNIST, one after the
# other, each to results/<paper>-mnist/; then docs/evidence.md from their claims and runs
# (scripts/evidence.py): no number in it is typed by hand.
#   make evidence                             torchvision's MNIST under data/ (fetched if online)
#   make evidence MNIST_ROOT=/data/torch      a root that holds MNIST/raw/
#   make evidence MNIST_RAW=/path/mnist/raw   no training set and no internet: a root built from
#                                             the official test set, 8,000 / 2,000 (mnist_root.py)
# Extra arguments go to every snakemake call (e.g. --forceall).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${EVIDENCE_DIR:-$root}"
mkdir -p "$dir/results/evidence"
overlay="$dir/results/evidence/data.yaml"
if [ -n "${MNIST_RAW:-}" ]; then
  mnist_root="$dir/results/evidence/mnist_t10k"
  python "$root/scripts/mnist_root.py" "$MNIST_RAW" "$mnist_root"
  printf 'data:\n  root: %s\n  download: false\n' "$mnist_root" > "$overlay"
  source="the official MNIST test set (t10k, $MNIST_RAW) split 8,000 train / 2,000 test by scripts/mnist_root.py"
elif [ -n "${MNIST_ROOT:-}" ]; then
  printf 'data:\n  root: %s\n  download: false\n' "$MNIST_ROOT" > "$overlay"
  source="torchvision's MNIST under $MNIST_ROOT (60,000 train / 10,000 test)"
else
  printf 'data:\n  root: data\n  download: true\n' > "$overlay"
  source="torchvision's MNIST under data/ (60,000 train / 10,000 test, downloaded if missing)"
fi
# A preset's wall time is recorded when it runs from nothing (no results/<paper>-mnist yet); a
# rerun that finds some or all of its results keeps the time recorded before.
times="$dir/results/evidence/times.csv"
[ -f "$times" ] || echo "paper,seconds" > "$times"
for preset in "$root"/workflow/presets/*/mnist.yaml; do
  paper="$(basename "$(dirname "$preset")")"
  echo "== $paper (mnist) ==" >&2
  fresh=$([ -e "$dir/results/$paper-mnist" ] && echo no || echo yes)
  start=$(date +%s)
  snakemake --snakefile "$root/Snakefile" --directory "$dir" --configfile "$preset" "$overlay" \
    --cores "${CORES:-all}" --quiet rules "$@"
  if [ "$fresh" = yes ]; then
    grep -v "^$paper," "$times" > "$times.tmp" || true
    echo "$paper,$(( $(date +%s) - start ))" >> "$times.tmp"
    mv "$times.tmp" "$times"
  fi
done
python "$root/scripts/evidence.py" --results "$dir/results" --times "$times" \
  --source "$source" --out "$root/docs/evidence.md"
