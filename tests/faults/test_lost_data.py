"""Nothing finished is lost by construction (issue 30): a run's finished training is kept in
runs/<run>/.finished and outlives the deletion of a job's outputs that precedes every rerun;
a damaged or foreign resume state costs a restart, not a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_train import run_spec

from nclayers import runs


@pytest.mark.parametrize("state", [b"not a torch file", "old-format", "a tensor"])
def test_a_damaged_or_foreign_resume_state_is_discarded_with_a_line(tmp_path, capsys, state):
    """A resume state that is damaged, of an older format (no spec) or not a dict trains the
    run from the start, saying so, instead of a KeyError or an unpickling traceback."""
    spec = run_spec(tmp_path, epochs=2, checkpoints=[0, 2])
    path = tmp_path / runs.RESUME_DIR / "state.pt"
    path.parent.mkdir()
    if isinstance(state, bytes):
        path.write_bytes(state)
    else:
        torch.save({"log": [{"epoch": 1}]} if state == "old-format" else torch.ones(3), path)
    info = runs.train_run(spec, tmp_path, progress=False)
    assert info["final_epoch"] == 2
    assert f"discarding saved state {path}" in capsys.readouterr().out


def declared(out_dir) -> dict[str, bytes]:
    """The train job's declared outputs as Snakemake sees them, by relative path."""
    return {str(p.relative_to(out_dir)): p.read_bytes() for p in sorted(out_dir.rglob("*"))
            if p.is_file() and not p.relative_to(out_dir).parts[0].startswith(".")}


def delete_declared(out_dir) -> None:
    """What Snakemake does to a job's outputs before it runs the job."""
    shutil.rmtree(out_dir / "checkpoints")
    for name in ("run.json", "train_log.csv", "epoch_metrics.csv"):
        (out_dir / name).unlink()


def test_a_failing_training_of_a_new_spec_takes_nothing_finished_with_it(tmp_path, capsys,
                                                                      monkeypatch):
    """Issue 30's lost data: a finished run, then a changed spec whose job fails after
    Snakemake deleted the outputs; going back to the first spec publishes its files again,
    byte for byte, without training."""
    first = run_spec(tmp_path, epochs=3, checkpoints=[0, 3])
    runs.train_run(first, tmp_path, progress=False)
    finished = declared(tmp_path)
    delete_declared(tmp_path)

    def fails(*args, **kwargs):
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")

    monkeypatch.setattr("nclayers.train.fit", fails)
    with pytest.raises(RuntimeError):
        runs.train_run({**first, "train": {**first["train"], "lr": 0.05}}, tmp_path,
                       progress=False)
    capsys.readouterr()
    info = runs.train_run(first, tmp_path, progress=False)  # fit still fails: not called
    assert declared(tmp_path) == finished and info["final_epoch"] == 3
    assert "published again" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_switch_to_cuda_on_a_node_without_a_gpu_loses_nothing(tmp_path):
    """Under a cluster profile `-n` cannot check device: cuda (the login node may lack the
    GPU the nodes have); on a node without one the train job fails after Snakemake deleted the
    outputs, and the finished CPU training stays kept: back to cpu, it is published again."""
    first = run_spec(tmp_path, epochs=3, checkpoints=[0, 3])
    runs.train_run(first, tmp_path, progress=False)
    finished = declared(tmp_path)
    delete_declared(tmp_path)
    with pytest.raises(runs.DeviceUnavailable, match="no CUDA device"):
        runs.train_run({**first, "device": "cuda"}, tmp_path, progress=False)
    runs.train_run(first, tmp_path, progress=False)
    assert declared(tmp_path) == finished


def test_a_finished_run_rerun_is_published_again_and_a_new_spec_replaces_it(tmp_path):
    """A rerun of a finished spec (Snakemake's --rerun-incomplete after an interrupt, or
    --forcerun) publishes the kept files; a new spec trains, then replaces what is kept."""
    first = run_spec(tmp_path, epochs=3, checkpoints=[0, 3])
    runs.train_run(first, tmp_path, progress=False)
    finished = declared(tmp_path)
    delete_declared(tmp_path)
    runs.train_run(first, tmp_path, progress=False)
    assert declared(tmp_path) == finished
    second = {**first, "train": {**first["train"], "lr": 0.05}}
    runs.train_run(second, tmp_path, progress=False)
    kept = json.loads((tmp_path / runs.FINISHED_DIR / "run.json").read_text())
    assert kept["train"]["lr"] == 0.05 and declared(tmp_path) != finished
    assert not (tmp_path / runs.RESUME_DIR).exists()


def test_a_kept_checkpoint_damaged_in_place_is_trained_anew_not_published(tmp_path, capsys):
    """checkpoints/ and .finished/ share their files (hard links): a checkpoint cut in place
    is cut in both, so the manifest's checksums refuse it and the run trains again."""
    spec = run_spec(tmp_path, epochs=3, checkpoints=[0, 3])
    runs.train_run(spec, tmp_path, progress=False)
    finished = declared(tmp_path)
    checkpoint = tmp_path / "checkpoints" / "epoch3.pt"
    with open(checkpoint, "r+b") as file:  # in place: the same inode as the kept one
        file.truncate(100)
    assert (tmp_path / runs.FINISHED_DIR / "checkpoints" / "epoch3.pt").stat().st_size == 100
    delete_declared(tmp_path)
    capsys.readouterr()
    runs.train_run(spec, tmp_path, progress=False)
    assert "training it anew" in capsys.readouterr().out
    again = declared(tmp_path)  # retrained: bitwise as before on the CPU, but its time
    assert {k: v for k, v in again.items() if k != "run.json"} == \
        {k: v for k, v in finished.items() if k != "run.json"}


def test_a_file_system_without_hard_links_costs_the_kept_copy_not_the_run(tmp_path, capsys,
                                                                          monkeypatch):
    """Keeping links only (a copy would double a run's size): where the file system refuses
    them, the run still ends complete, with a warning, and nothing half-kept is left."""
    spec = run_spec(tmp_path, epochs=2, checkpoints=[0, 2])

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(runs.os, "link", no_links)
    info = runs.train_run(spec, tmp_path, progress=False)
    assert info["final_epoch"] == 2 and (tmp_path / "checkpoints" / "epoch2.pt").is_file()
    assert "finished files are not kept" in capsys.readouterr().out
    assert not (tmp_path / runs.FINISHED_DIR).exists()
    assert not (tmp_path / f"{runs.FINISHED_DIR}.new").exists()
