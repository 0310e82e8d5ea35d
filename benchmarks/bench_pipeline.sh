#!/usr/bin/env bash
# Wall time of the whole default pipeline, every job rerun: snakemake --cores all --forceall.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s%N)
snakemake --cores all --forceall --quiet all
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
echo "default pipeline, --forceall, $(nproc) cores: $((ms / 1000)).$(( (ms % 1000) / 100 )) s"
