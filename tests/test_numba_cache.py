"""UMAP's compiled code in a shared numba cache (nclayers.numba_cache): feature-analysis jobs
started together on a cold cache both finish with the same tables, fill the cache, and a later
job reading it gives the same tables again."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import tiny_config

from nclayers import experiment, runs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A two-epoch run of the tiny experiment: (run.json path, checkpoint path)."""
    out = tmp_path_factory.mktemp("run")
    config = tiny_config()
    config["train"].update(epochs=2, checkpoints=[0, 2])
    spec = next(iter(experiment.expand_runs(config).values()))
    runs.train_run(spec, out, progress=False)
    info = out / "run.json"
    info.write_text(json.dumps(spec))
    return info, runs.checkpoint_path(out, 2)


def _features(info, checkpoint, cache, out) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nclayers", "features", "--info", str(info), "--checkpoint",
         str(checkpoint), "--per-class", "6", "--numba-cache", str(cache), "--out-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_jobs_on_a_cold_shared_cache_fill_it_and_agree(checkpoint, tmp_path):
    info, path = checkpoint
    cache = tmp_path / "numba"
    together = [_features(info, path, cache, tmp_path / f"job{k}") for k in range(2)]
    for job in together:
        output, _ = job.communicate(timeout=600)
        assert job.returncode == 0, output[-3000:]
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc")), "nothing was cached"
    later = _features(info, path, cache, tmp_path / "job2")
    output, _ = later.communicate(timeout=600)
    assert later.returncode == 0, output[-3000:]
    for table in ("umap", "clusters", "retention"):
        first = pd.read_csv(tmp_path / "job0" / f"{table}.csv")
        for k in (1, 2):
            pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / f"job{k}" / f"{table}.csv"))


def test_the_cache_folder_must_be_chosen_before_numba_is_imported(tmp_path):
    code = ("import numba, nclayers.numba_cache as c\n"
            f"c.use_folder({str(tmp_path)!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "numba is already imported" in proc.stderr


def test_the_workflow_cache_is_one_per_user_and_can_be_moved(monkeypatch, tmp_path):
    from nclayers.numba_cache import default_folder

    monkeypatch.delenv("NCLAYERS_NUMBA_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_folder() == tmp_path / "home" / ".cache" / "nclayers" / "numba"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_folder() == tmp_path / "xdg" / "nclayers" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba's"))
    assert default_folder() == tmp_path / "numba's"
    monkeypatch.setenv("NCLAYERS_NUMBA_CACHE", str(tmp_path / "mine"))
    assert default_folder() == tmp_path / "mine"
