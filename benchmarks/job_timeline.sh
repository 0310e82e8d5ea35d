#!/usr/bin/env bash
# Where a Snakemake run's time goes: every Python process it starts (snakemake itself, each
# job's `python -m nclayers <step>`) logs its start, end and CPU seconds, and which of torch,
# torch._dynamo, scikit-learn and matplotlib it imported; the table is sorted by start, in
# seconds from the first process. The critical path and the idle cores show in the gaps.
#   bash benchmarks/job_timeline.sh [snakemake arguments...]
#   bash benchmarks/job_timeline.sh -s "$PWD/Snakefile" --directory "$(mktemp -d)" --configfile .test/config.yaml --cores all all
# (the example is the tiny experiment in a fresh folder, issue 31 §4). The logging is a
# sitecustomize module put first on PYTHONPATH for this run only; it costs ~1 ms a process.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
cat > "$shim/sitecustomize.py" <<'EOF'
import atexit, os, resource, sys, time

_start = time.time()


def _log() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    imported = "".join(flag if name in sys.modules else "." for name, flag in (
        ("torch", "t"), ("torch._dynamo", "d"), ("sklearn", "s"), ("matplotlib", "m")))
    words = [w for w in sys.argv if not w.startswith("{")][:6]  # not the JSON arguments
    with open(os.environ["NCLAYERS_TIMELINE"], "a") as f:
        f.write(f"{_start:.3f} {time.time():.3f} {usage.ru_utime + usage.ru_stime:.2f} "
                f"{imported} {' '.join(words)}\n")


atexit.register(_log)
EOF
export NCLAYERS_TIMELINE="$shim/timeline.txt"
source "$root/.venv/bin/activate"
status=0
/usr/bin/time -f "snakemake: %e s wall, %U + %S s CPU" env PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}" \
  snakemake --quiet "$@" > "$shim/snakemake.log" 2>&1 || status=$?
tail -1 "$shim/snakemake.log"
python - "$NCLAYERS_TIMELINE" <<'EOF'
import sys

rows = [line.split(maxsplit=4) for line in open(sys.argv[1])]
t0 = min(float(r[0]) for r in rows)
print(f"{'start':>6} {'end':>6} {'wall':>5} {'CPU':>5} imports  process (t torch, d torch._dynamo,"
      " s scikit-learn, m matplotlib)")
for start, end, cpu, imported, command in sorted(rows, key=lambda r: float(r[0])):
    command = command.strip().replace("-m nclayers", "").split("__main__.py")[-1].strip()
    print(f"{float(start) - t0:6.2f} {float(end) - t0:6.2f} {float(end) - float(start):5.2f} "
          f"{float(cpu):5.2f} {imported:>7}  {command[:90]}")
EOF
exit "$status"
