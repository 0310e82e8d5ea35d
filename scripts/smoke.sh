#!/usr/bin/env bash
# Every paper preset at smoke scale (workflow/presets/<paper>/smoke.yaml), one after the other,
# each to its results/<experiment>/report.pdf; prints each preset's wall time and the total.
#   make smoke                       in the repository
#   make smoke SMOKE_DIR=/tmp/smoke  results under another working directory
# Extra arguments go to every snakemake call (e.g. --forceall).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${SMOKE_DIR:-$root}"
mkdir -p "$dir"
total=0
summary=""
for preset in "$root"/workflow/presets/*/smoke.yaml; do
  paper="$(basename "$(dirname "$preset")")"
  echo "== $paper (smoke) ==" >&2
  start=$(date +%s)
  snakemake --snakefile "$root/Snakefile" --directory "$dir" --configfile "$preset" \
    --cores "${CORES:-all}" --quiet rules "$@"
  seconds=$(( $(date +%s) - start ))
  total=$(( total + seconds ))
  summary+="$paper: ${seconds} s"$'\n'
done
printf '%s' "$summary"
echo "all smoke presets: ${total} s"
