#!/usr/bin/env bash
# The tiny experiment (.test/config.yaml) in a fresh working directory, as a new clone or
# folder runs it: with a cold numba cache (an empty NCLAYERS_NUMBA_CACHE, what every fresh
# directory paid while the cache lived under its .snakemake/) and with the user's warm one.
#   bash benchmarks/bench_fresh_dir.sh [repeats]      (default 3; prints each time and medians)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
repeats="${1:-3}"
snakemake="${SNAKEMAKE:-$root/.venv/bin/snakemake}"

once() {  # $1: cold or warm; prints the wall seconds of one run in a new folder
  local dir cache start
  dir="$(mktemp -d)"
  cp "$root/.test/config.yaml" "$dir/"
  start=$(date +%s.%N)
  if [ "$1" = cold ]; then
    cache="$(mktemp -d)"
    NCLAYERS_NUMBA_CACHE="$cache" "$snakemake" -s "$root/Snakefile" --directory "$dir" \
      --cores all --quiet all > "$dir.log" 2>&1
    rm -rf "$cache"
  else
    "$snakemake" -s "$root/Snakefile" --directory "$dir" --cores all --quiet all > "$dir.log" 2>&1
  fi
  echo "$(date +%s.%N) - $start" | bc
  rm -rf "$dir" "$dir.log"
}

once warm > /dev/null  # fill the user's cache, whatever it held
for kind in cold warm; do
  times=()
  for _ in $(seq "$repeats"); do times+=("$(once "$kind")"); done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (repeats + 1) / 2 ))p")
  printf '%s: %s s (median %.1f s)\n' "$kind" "${times[*]}" "$median"
done
