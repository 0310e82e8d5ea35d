"""A run's specification (one dataset × architecture × seed × recipe) and its files.

The workflow hands each job its run's spec as a JSON dict; this module turns it into data, a
model and a recipe, and names the files of a run directory. It never reads the config file.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import math
import os
import pickle
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd
import torch

from nclayers import data, models
from nclayers.datacache import digest
from nclayers.errors import UserError
from nclayers.experiment import split_options
from nclayers.io import atomic_path
from nclayers.train import Recipe
from nclayers.vocabulary import (
    FEATURE_COLUMNS,
    MEASURE_DEFAULTS,
    RUN_COLUMNS,
    SPECTRA_COLUMNS,
    TIDY_COLUMNS,
)

if TYPE_CHECKING:
    from nclayers.epoch_metrics import EpochMetrics


def run_columns(spec: dict) -> dict:
    """The identifying columns of a run in every tidy table (``vocabulary.RUN_COLUMNS``)."""
    values = (spec["run"], spec["dataset"]["label"], spec["arch"]["label"], spec["seed"])
    return dict(zip(RUN_COLUMNS, values, strict=True))


def with_run(table: pd.DataFrame, spec: dict, epoch: int) -> pd.DataFrame:
    """``table`` with the run's identifying columns and the epoch in front."""
    return pd.concat([pd.DataFrame({**run_columns(spec), "epoch": epoch}, index=table.index),
                      table], axis=1)


def load_data(spec: dict, device: torch.device | str = "cpu") -> data.Splits:
    """The run's dataset; its seed fixes the label noise, if any."""
    name, options = split_options(spec["dataset"])
    source = spec.get("data", {})
    return data.load(name, root=source.get("root"), download=source.get("download", False),
                     seed=spec["seed"], **options).to(device)


def build_model(spec: dict, splits: data.Splits) -> torch.nn.Module:
    """The run's model, initialised from its seed (same seed → same initial weights)."""
    torch.manual_seed(spec["seed"])
    name, options = split_options(spec["arch"])
    return models.build(name, splits.input_shape, splits.num_classes, **options)


def recipe(spec: dict) -> Recipe:
    """The run's :class:`Recipe`: the spec's train section minus the keys of the workflow."""
    names = {f.name for f in dataclasses.fields(Recipe)}
    return Recipe(**{k: v for k, v in spec["train"].items() if k in names})


class DeviceUnavailable(UserError, RuntimeError):
    """The spec asks for a device this machine lacks (a cluster node without a GPU, say)."""


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("device: cuda was requested but torch sees no CUDA device on "
                                "this machine; set device: auto or cpu in the config, or run "
                                "the job where there is a GPU (its finished results are kept)")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"epoch{epoch}.pt"


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


class Trained(NamedTuple):
    """A run's model at a checkpoint, with the data it was trained on."""

    model: torch.nn.Module
    splits: data.Splits
    epoch: int


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be read; the message names it and how to rebuild it."""


def _gist(error: BaseException) -> str:
    """The first line of an error's message, cut short (torch's run on for paragraphs)."""
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else ""


# The checkpoints folder is the train rule's output: forcing it reruns the run's train job.
_REBUILD = ("rebuild it, and what was computed from it, with "
            "`snakemake --cores all --forcerun {folder}`")


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """The dict saved at a checkpoint: ``epoch``, ``model`` (a state dict, or None after a
    divergence) and ``diverged``."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {_gist(error)}): it is "
            f"damaged or incomplete; {_REBUILD.format(folder=Path(path).parent)}") from None
    if not isinstance(state, dict) or not {"epoch", "model"} <= state.keys():
        held = (f"a dict of {', '.join(map(str, list(state)[:4]))}" if isinstance(state, dict)
                else f"a {type(state).__name__}")
        raise CheckpointError(
            f"checkpoint {path} holds {held}, not the epoch and model weights the train step "
            f"saves; {_REBUILD.format(folder=Path(path).parent)}")
    return state


def load_checkpoint(spec: dict, path: str | Path,
                    device: torch.device | str = "cpu") -> Trained | None:
    """The run's data and its model with the weights saved at ``path``; None if the run had
    diverged before that checkpoint (the file is then a marker without weights, see
    :func:`train_run`), in which case no data is loaded."""
    state = read_checkpoint(path, device)
    if state.get("diverged"):
        return None
    splits = load_data(spec, device)
    model = build_model(spec, splits).to(device)
    _load_weights(model, spec, state, path)
    return Trained(model, splits, int(state["epoch"]))


def _load_weights(model: torch.nn.Module, spec: dict, state: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"checkpoint {path} does not hold the weights of run {spec['run']}'s model "
            f"({_gist(error)}): {_REBUILD.format(folder=Path(path).parent)}") from None


def measure_checkpoints(spec: dict, paths: list[str | Path], batch_size: int = 1024
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, spectra) of the run's checkpoints at ``paths``, in one tidy table each with
    the run's columns and the epoch (``vocabulary.TIDY_COLUMNS``, ``SPECTRA_COLUMNS``).

    The data are loaded and the model built once, then each checkpoint's weights are loaded
    into it: the numbers are those of one checkpoint measured alone. A checkpoint written
    after a divergence (a marker without weights) adds no rows, so that the workflow goes on
    and reports the run."""
    from nclayers.measurement import measure, weight_spectra
    from nclayers.weights import find_consumers

    device = resolve_device(spec["device"])
    model = splits = consumers = None
    metrics = [pd.DataFrame(columns=TIDY_COLUMNS)]
    spectra = [pd.DataFrame(columns=SPECTRA_COLUMNS)]
    for path in paths:
        state = read_checkpoint(path, device)
        if state.get("diverged"):
            print(f"{spec['run']} diverged before {path}: no metrics", flush=True)
            continue
        if model is None:
            splits = load_data(spec, device)
            model = build_model(spec, splits).to(device)
        _load_weights(model, spec, state, path)
        if consumers is None:
            consumers = find_consumers(model, model.tapped_layers, splits.x_train[:2])
        epoch = int(state["epoch"])
        print(f"{spec['run']}, epoch {epoch}:", flush=True)
        table = measure(model, data.Batches(splits.x_train, splits.y_train, batch_size),
                        data.Batches(splits.x_test, splits.y_test, batch_size),
                        consumers=consumers, progress=True, **measure_options(spec))
        metrics.append(with_run(table, spec, epoch))
        spectra.append(with_run(weight_spectra(model, consumers, model.tapped_layers),
                                spec, epoch))
        if device.type == "cuda":  # what the last one freed counts as free for the next
            torch.cuda.empty_cache()  # (measure keeps activations in a share of free memory)
    return _concat(metrics), _concat(spectra)


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The tables one below the other; the first, empty, gives the columns when all are."""
    return tables[0] if len(tables) == 1 else pd.concat(tables[1:], ignore_index=True)


def analyse_checkpoint(spec: dict, path: str | Path, per_class: int, threads: int = 1,
                       ward_scaling: str | None = None, max_bytes: float | None = None
                       ) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(activation sample, tables) of the feature analysis of the run's checkpoint at ``path``
    (:func:`nclayers.features.analyse_layers`; ``ward_scaling`` and ``max_bytes``, the
    clustering's memory budget, None: its defaults), the
    tables with the run's columns and the epoch; an empty sample and empty tables for a run
    that diverged before it."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from nclayers import features

    trained = load_checkpoint(spec, path, "cpu")
    if trained is None:
        print(f"{spec['run']} diverged before {path}: no features", flush=True)
        empty = np.zeros(0, dtype=np.int64)
        return ({"labels": empty, "pred": empty, "index": empty, "layers": []},
                {name: pd.DataFrame(columns=[*RUN_COLUMNS, "epoch", *columns])
                 for name, columns in FEATURE_COLUMNS.items()})
    model, splits, epoch = trained
    # Refuse a sample whose pairwise distances would not fit, before any work.
    budget = features.DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    features.check_sample_size(per_class * splits.num_classes, budget)
    sample = features.sample_activations(model, splits.x_train, splits.y_train,
                                         per_class=per_class, seed=spec["seed"],
                                         max_bytes=budget)
    # Few BLAS threads per job: small eigendecompositions are far slower oversubscribed.
    with threadpool_limits(threads):
        scaling = {} if ward_scaling is None else {"ward_scaling": ward_scaling}
        tables = features.analyse_layers(sample, seed=spec["seed"], log=print, max_bytes=budget,
                                         **scaling)
    return sample, {name: with_run(table, spec, epoch) for name, table in tables.items()}


# What a checkpoint after a divergence holds instead of weights (read by load_checkpoint).
DIVERGED_MARKER = {"model": None, "diverged": True}
RESUME_DIR = ".resume"  # inside a run directory; never a declared output, so it survives reruns
# The least time between two saves of the resume state: a kill loses at most this much work
# (plus an epoch), and a run of many short epochs does not spend its time saving (the default
# MLP saved 400 times in 57 s of training, 10 s of it).
RESUME_MIN_SECONDS = 1.0
# What a saved state holds besides the training state fit() restores from.
RESUME_KEYS = {"spec", "log", "epoch", "model", "optimizer", "scheduler", "generator"}


def saved_log(state: dict) -> list[dict]:
    """The training log of a saved resume state: JSON text since a log of many epochs cost
    more to pickle tensor-aware than the weights (a list of rows in older states)."""
    log = state["log"]
    return json.loads(log) if isinstance(log, str) else list(log)


def _publish(src: Path, dst: Path) -> None:
    """Make ``src`` appear at ``dst``: a hard link (no copy) where the filesystem allows it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _resume_state(state_dir: Path, spec: dict, device: torch.device) -> dict | None:
    """The saved state of an interrupted run with the same spec, else None (and a clean slate)."""
    path = state_dir / "state.pt"
    if path.exists():
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            usable = isinstance(state, dict) and state.keys() >= RESUME_KEYS
            if usable and state["spec"] == spec:
                state["log"] = saved_log(state)
                print(f"resuming {spec['run']} after epoch {state['log'][-1]['epoch']}",
                      flush=True)
                return state
            why = "its spec differs" if usable else "it is not a state this trainer wrote"
        except Exception as error:  # torch.load's errors on a damaged file have no common type
            why = f"it cannot be read ({type(error).__name__}: {str(error)[:120]})"
        print(f"discarding saved state {path}: {why}; training {spec['run']} from the start",
              flush=True)
    shutil.rmtree(state_dir, ignore_errors=True)
    return None


# Inside a run directory, beside .resume/: the trainer that holds it (never deleted, and not a
# declared output, so Snakemake leaves it alone too).
LOCK_FILE = ".train.lock"


class RunLocked(UserError, RuntimeError):
    """Another process is training the run; the message names it and what to do."""


def lock_holder(run_dir: str | Path) -> tuple[int, str] | None:
    """(pid, host) written into the run's lock file by the trainer that took it last, if any
    (whether it still holds the lock is up to the OS: see :func:`hold_run`)."""
    try:
        pid, host = (Path(run_dir) / LOCK_FILE).read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


@contextmanager
def hold_run(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory for one trainer: an exclusive ``flock`` on ``<run_dir>/.train.lock``
    (the OS drops it when the process dies, even by SIGKILL, so it never goes stale), with the
    holder's pid and host written into the file. Raises :class:`RunLocked` at once, without
    touching anything else in the directory, while another process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    try:  # never through a link: truncating it would truncate the file it points to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        fd = None
    if fd is None or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd is not None:
            os.close(fd)
        raise RunLocked(f"{path} is not a plain file (a symbolic link or another kind of "
                        "file), so this trainer will not use it as its lock, nor write into "
                        "it; remove it and rerun")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(run_dir)
            for _ in range(20):  # the holder writes its pid just after it took the lock
                if holder is not None:
                    break
                time.sleep(0.05)
                holder = lock_holder(run_dir)
            pid, host = holder or ("<pid>", "its host")
            raise RunLocked(
                f"{run_dir} is held by another trainer, process {pid} on host {host} (lock "
                f"{path}): it is still training this run (e.g. the train job of a killed "
                "Snakemake, left running), so this one stops without touching it. Wait for "
                f"that process to finish, or stop it with `kill {pid}` on {host}, then rerun "
                "(e.g. snakemake --cores all --rerun-incomplete)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # done: nobody holds it (a killed holder leaves its pid)
    finally:
        os.close(fd)  # releases the lock


def train_run(spec: dict, out_dir: str | Path, progress: bool = True,
              resume_every: int = 1) -> dict:
    """Train the run of ``spec`` into ``out_dir``: checkpoints, train_log.csv, run.json and
    epoch_metrics.csv (the layers' metrics during training, ``spec["train"]["epoch_metrics"]``,
    see :mod:`nclayers.epoch_metrics`; only the header when that is off).

    After every ``resume_every`` epochs (at most once per :data:`RESUME_MIN_SECONDS`) the
    full state goes to ``out_dir/.resume``; a
    rerun with the same spec continues from there, bitwise on CPU. The files of a finished
    training are also kept in ``out_dir/.finished`` (hard links): a rerun of that spec
    publishes them again instead of training, and a training of another spec replaces them
    only once it finishes (:data:`FINISHED_DIR`). A diverged run still writes
    every declared file (later checkpoints as markers without weights), so that the workflow
    goes on and reports it. One trainer at a time holds the run (:func:`hold_run`): while
    another process trains it, this raises :class:`RunLocked` before touching anything.
    """
    out = Path(out_dir)
    with hold_run(out):
        info = _restore_finished(spec, out)
        if info is None:
            info = _train_held(spec, out, progress, resume_every)
            try:
                _keep_finished(spec, out)
            except OSError as error:  # e.g. no hard links here, or the disk is full
                shutil.rmtree(out / f"{FINISHED_DIR}.new", ignore_errors=True)
                print(f"warning: run {spec['run']}'s finished files are not kept in "
                      f"{out / FINISHED_DIR} ({error}); the run itself is complete", flush=True)
        return info


# Inside a run directory: the files of the last spec that finished training, as hard links
# (no copy). Snakemake deletes a job's outputs before it runs it; these it does not know, so a
# job that fails, or is interrupted, after a spec change takes nothing finished with it, and a
# rerun of a spec that finished (e.g. after `--rerun-incomplete`) publishes them again.
FINISHED_DIR = ".finished"
FINISHED_FILES = ("run.json", "train_log.csv", "epoch_metrics.csv")


def _finished_files(spec: dict) -> list[str]:
    return [*FINISHED_FILES, *(f"checkpoints/epoch{e}.pt" for e in spec["train"]["checkpoints"])]


def _restore_finished(spec: dict, out: Path) -> dict | None:
    """The run.json record of ``spec``'s finished training, its files published again, if
    ``out/.finished`` holds them all for this very spec; else None."""
    kept = out / FINISHED_DIR
    try:
        info = json.loads((kept / "run.json").read_text())
    except (OSError, ValueError):
        return None
    files = _finished_files(spec)
    if not isinstance(info, dict) or {key: info.get(key) for key in spec} != spec:
        return None
    try:
        record = json.loads((kept / "manifest.json").read_text())
        intact = all(record.get(name) == digest(kept / name, "sha256") for name in files)
    except (OSError, ValueError, AttributeError):
        intact = False
    if not intact:  # e.g. a checkpoint damaged in place: its hard link here is damaged too
        print(f"run {spec['run']}: the files kept in {kept} are not those it finished with; "
              "training it anew", flush=True)
        return None
    for name in files:
        _publish(kept / name, out / name)
        os.utime(out / name)  # as new as a training that ended now, for Snakemake's times
    shutil.rmtree(out / RESUME_DIR, ignore_errors=True)
    print(f"run {spec['run']}: its spec finished training before; published again from "
          f"{kept} instead of training (delete that folder to train it anew)", flush=True)
    return info


def _keep_finished(spec: dict, out: Path) -> None:
    """Replace ``out/.finished`` by hard links to the files this training just wrote; an
    OSError (a file system without hard links, a full disk) leaves the old one in place."""
    staging, old = out / f"{FINISHED_DIR}.new", out / f"{FINISHED_DIR}.old"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    for name in _finished_files(spec):  # links only: a copy would double the run's size
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        os.link(out / name, staging / name)
    (staging / "manifest.json").write_text(json.dumps(
        {name: digest(staging / name, "sha256") for name in _finished_files(spec)}, indent=1))
    if (out / FINISHED_DIR).exists():
        os.replace(out / FINISHED_DIR, old)
    os.replace(staging, out / FINISHED_DIR)
    shutil.rmtree(old, ignore_errors=True)


def epoch_recorder(spec: dict) -> EpochMetrics | None:
    """The run's :class:`nclayers.epoch_metrics.EpochMetrics`, or None where its spec's
    ``train.epoch_metrics`` is absent or off."""
    from nclayers.epoch_metrics import EpochMetrics, EpochMetricsConfig

    config = EpochMetricsConfig.from_spec(spec["train"].get("epoch_metrics"))
    if not config.enabled:
        return None
    return EpochMetrics(config, spec["train"]["epochs"], spec["seed"],
                        log=lambda message: print(message, flush=True),
                        measure_options=measure_options(spec))


def measure_options(spec: dict) -> dict[str, str]:
    """The run's :func:`nclayers.measurement.measure` keywords from its spec: what centres
    its class means (``global_mean``) and the arithmetic of each batch (``precision``)."""
    return {**MEASURE_DEFAULTS, **spec.get("measure", {})}


def epoch_metrics_table(spec: dict, recorder: EpochMetrics | None) -> pd.DataFrame:
    """The recorded rows with the run's columns (``vocabulary.TIDY_COLUMNS``); no rows
    without a recorder."""
    if recorder is None:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    table = recorder.table()
    return pd.concat([pd.DataFrame(run_columns(spec), index=table.index), table],
                     axis=1)[TIDY_COLUMNS]


def _train_held(spec: dict, out: Path, progress: bool, every: int) -> dict:
    from nclayers.train import fit

    state_dir = out / RESUME_DIR
    recorder = epoch_recorder(spec)  # a bad epoch_metrics section fails before any work
    device = resolve_device(spec["device"])
    print(f"run {spec['run']} on {device}", flush=True)
    splits = load_data(spec, device)
    model = build_model(spec, splits).to(device)
    resume = _resume_state(state_dir, spec, device)
    for saved in state_dir.glob("epoch*.pt"):
        _publish(saved, out / "checkpoints" / saved.name)
    previous = resume["seconds"] if resume else 0.0
    start = time.perf_counter()

    def save_checkpoint(epoch: int, model: torch.nn.Module) -> None:
        with atomic_path(state_dir / f"epoch{epoch}.pt") as tmp:
            torch.save({"epoch": epoch, "model": model.state_dict()}, tmp)
        _publish(state_dir / f"epoch{epoch}.pt", checkpoint_path(out, epoch))

    last_saved = -math.inf

    def save_state(state: dict) -> None:
        nonlocal last_saved
        epoch, now = state["log"][-1]["epoch"], time.perf_counter()
        if epoch % every or now - last_saved < RESUME_MIN_SECONDS:
            return
        with atomic_path(state_dir / "state.pt") as tmp:
            torch.save({**state, "log": json.dumps(state["log"]), "epoch": epoch,
                        "spec": spec, "seconds": previous + now - start}, tmp)
        last_saved = now

    log = fit(model, splits, recipe(spec), seed=spec["seed"],
              checkpoints=spec["train"]["checkpoints"], on_checkpoint=save_checkpoint,
              resume=resume, on_epoch_end=save_state, progress=progress,
              epoch_metrics=recorder)
    # Every saved checkpoint in place again, should its declared path have been deleted while
    # this trainer ran (by a Snakemake that reran the job beside it and was refused).
    for saved in state_dir.glob("epoch*.pt"):
        _publish(saved, out / "checkpoints" / saved.name)
    last = log[-1]
    if last["diverged"]:
        print(f"run {spec['run']} DIVERGED (non-finite loss) in epoch {last['epoch']}",
              flush=True)
        for epoch in spec["train"]["checkpoints"]:
            if not checkpoint_path(out, epoch).exists():
                with atomic_path(checkpoint_path(out, epoch)) as tmp:
                    torch.save(DIVERGED_MARKER | {"epoch": epoch}, tmp)
    with atomic_path(out / "train_log.csv") as tmp:
        pd.DataFrame(log).assign(**run_columns(spec)).to_csv(tmp, index=False)
    with atomic_path(out / "epoch_metrics.csv") as tmp:
        epoch_metrics_table(spec, recorder).to_csv(tmp, index=False)
    info = {**spec, "device_used": str(device),
            "train_seconds": round(previous + time.perf_counter() - start, 2),
            "n_train": len(splits.y_train), "n_test": len(splits.y_test),
            "num_classes": splits.num_classes,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable_parameters": sum(p.numel() for p in model.parameters()
                                        if p.requires_grad),
            "diverged": bool(last["diverged"]),
            "final_epoch": last["epoch"],
            "final_train_acc": last["train_acc"], "final_test_acc": last["test_acc"]}
    with atomic_path(out / "run.json") as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    shutil.rmtree(state_dir, ignore_errors=True)
    return info
