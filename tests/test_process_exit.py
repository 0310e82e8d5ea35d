"""The workflow's processes exit once their work is done (benchmarks/README.md, "What a
process costs when it exits").

Exiting, Python collects every object still alive; torch, pandas and matplotlib create about a
million on import, so each job spent 0.3-0.6 s and each `snakemake` call ~0.8 s walking them.
``gc.freeze()`` at exit leaves them out. The freeze tests register their probe before the
process under test registers its own handler: exit handlers run last-registered first, so the
probe sees the state the final collections see. And a `snakemake` run waited up to 1 s for
its job-rate limiter's last timer."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import ROOT, copy_experiment

PROBE = "import atexit, gc, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count()))"


def frozen_at_exit(code: str, cwd=None) -> int:
    run = subprocess.run([sys.executable, "-c", f"{PROBE}; {code}"], capture_output=True,
                         text=True, cwd=cwd, timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.startswith("frozen ")]
    assert lines, f"no probe output; rc {run.returncode}, stderr:\n{run.stderr[-2000:]}"
    return int(lines[-1].split()[1])


def test_a_step_process_freezes_its_objects_at_exit():
    code = ("import runpy; sys.argv = ['nclayers', '--help']; "
            "runpy.run_module('nclayers', run_name='__main__')")
    assert frozen_at_exit(code) > 10_000


def test_the_library_leaves_the_collector_alone():
    # only the step process (python -m nclayers) freezes: importing the package changes nothing
    assert frozen_at_exit("import nclayers.cli, nclayers.measurement") == 0


def test_snakemake_freezes_its_objects_at_exit(tmp_path):
    shutil.copy(ROOT / ".test" / "config.yaml", tmp_path / "config.yaml")
    code = ("import snakemake.cli; sys.argv = ['snakemake', '-s', "
            f"{str(ROOT / 'Snakefile')!r}, '-n', '--quiet']; snakemake.cli.main()")
    assert frozen_at_exit(code, cwd=tmp_path) > 10_000


def test_a_run_leaves_no_timer_of_snakemake_behind(tiny_run, tmp_path):
    # its job-rate limiter starts a 1 s timer after every scheduling round; the process would
    # wait for the last one. The workflow's onsuccess cancels Snakemake's timers, not others.
    workdir = copy_experiment(tiny_run, tmp_path / "run")
    report = workdir / "results" / "tiny" / "report.pdf"
    built = report.stat().st_mtime_ns
    code = f"""
import sys, threading
import snakemake.cli
mine = threading.Timer(60, lambda: None)
mine.start()
sys.argv = ["snakemake", "-s", {str(ROOT / "Snakefile")!r}, "--cores", "1", "--forcerun",
            "report", "--quiet", "all"]
try:
    snakemake.cli.main()
except SystemExit as done:
    assert not done.code, done.code
left = []
for thread in threading.enumerate():
    if isinstance(thread, threading.Timer) and thread is not mine:
        thread.join(0.2)  # a cancelled timer ends at once; a running one has ~1 s to go
        left.append(thread.is_alive())
print("snakemake timers alive", sum(left), "of", len(left), "mine alive", mine.is_alive())
mine.cancel()
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert report.stat().st_mtime_ns > built, "the report job did not run: nothing was tested"
    alive, mine = re.search(r"snakemake timers alive (\d+) of \d+ mine alive (\w+)",
                            run.stdout).groups()
    assert (alive, mine) == ("0", "True"), run.stdout
