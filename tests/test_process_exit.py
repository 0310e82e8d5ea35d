"""The workflow's processes leave their objects out of Python's last garbage collections.

Exiting, Python collects every object still alive; torch, pandas and matplotlib create about a
million on import, so each job spent 0.3-0.6 s and each `snakemake` call ~0.8 s walking them
(benchmarks/README.md, the fourth round). ``gc.freeze()`` at exit leaves them out. Each test
registers its probe before the process under test registers its own handler: exit handlers
run last-registered first, so the probe sees the state the final collections see."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import ROOT

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
