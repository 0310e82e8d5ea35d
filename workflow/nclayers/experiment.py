"""From a validated config dict to the experiment's runs; name checks against the registries.

Pure functions of the dict the workflow loaded: the JSON schema (workflow/schemas/) checks the
shape and types, :func:`check_names` what a schema cannot know, such as registry names.
"""

from __future__ import annotations

import inspect

from nclayers.data import (
    DATASETS,
    DatasetUnavailable,
    check_available,
    dataset_options,
    reads_files,
)
from nclayers.errors import UserError
from nclayers.models import ARCHITECTURES


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""


def entries(config: dict, key: str) -> dict[str, dict]:
    """Label → entry with its registry ``name`` filled in (it defaults to the label)."""
    return {label: {"name": label, **(entry or {})} for label, entry in config[key].items()}


def _check_entry(key: str, label: str, entry: dict, registry: dict, allowed: list[str]) -> None:
    kind = "dataset" if key == "datasets" else "architecture"
    for option in entry:
        if option not in ("name", "label", *allowed):
            raise ConfigError(f"config key '{key}.{label}.{option}': {kind} {entry['name']!r} "
                              f"has no option {option!r}; allowed: {', '.join(allowed) or 'none'}")


def _known(key: str, label: str, name: str, registry: dict) -> None:
    if name not in registry:
        kind = "dataset" if key == "datasets" else "architecture"
        raise ConfigError(f"config key '{key}.{label}': unknown {kind} {name!r}; "
                          f"allowed: {', '.join(registry)}")


def check_names(config: dict) -> None:
    """Raise :class:`ConfigError` for what the schema cannot know, before any job runs:
    registry names, their options, checkpoint epochs, and whether the dataset files exist."""
    source = config.get("data", {})
    for label, entry in entries(config, "datasets").items():
        _known("datasets", label, entry["name"], DATASETS)
        _check_entry("datasets", label, entry, DATASETS, dataset_options(entry["name"]))
    for label, entry in entries(config, "architectures").items():
        _known("architectures", label, entry["name"], ARCHITECTURES)
        # Options are the builder's parameters after (input_shape, num_classes).
        params = list(inspect.signature(ARCHITECTURES[entry["name"]]).parameters)[2:]
        _check_entry("architectures", label, entry, ARCHITECTURES, params)
    epochs = config["train"]["epochs"]
    for key, values in (("train.checkpoints", config["train"]["checkpoints"]),
                        ("train.milestones", config["train"].get("milestones", [])),
                        ("features.epochs", config.get("features", {}).get("epochs", []))):
        late = [e for e in values if e > epochs]
        if late:
            raise ConfigError(f"config key '{key}': epochs {late} lie beyond train.epochs = "
                              f"{epochs}; lower them or raise train.epochs")
    for label, entry in entries(config, "datasets").items():
        try:
            check_available(entry["name"], source.get("root"), source.get("download", False))
        except DatasetUnavailable as error:
            raise ConfigError(f"config key 'datasets.{label}': {error}") from None


def checkpoint_epochs(config: dict) -> list[int]:
    """The checkpoints to keep: those configured, initialisation (0), the last epoch and those
    the feature analysis reads."""
    return sorted({0, config["train"]["epochs"], *config["train"]["checkpoints"],
                   *config.get("features", {}).get("epochs", [])})


SWEEPABLE = {"lr": "lr", "weight_decay": "wd"}  # train key → its tag in run ids


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def sweep(config: dict) -> list[dict]:
    """The train sections of the grid: one per combination of the swept values, each with its
    tag (``lr0.01-wd0.0005``: only the keys given as lists of several values appear)."""
    train = config["train"]
    grid: list[tuple[str, dict]] = [("", {})]
    for key, short in SWEEPABLE.items():
        values = _as_list(train[key])
        grid = [(f"{tag}-{short}{v:g}" if len(values) > 1 else tag, {**chosen, key: v})
                for tag, chosen in grid for v in values]
    return [{"tag": tag.lstrip("-"), **train, **chosen,
             "checkpoints": checkpoint_epochs(config)} for tag, chosen in grid]


def expand_runs(config: dict) -> dict[str, dict]:
    """Run id → run spec, one per dataset × architecture × swept recipe × seed.

    A spec holds what decides a run's numbers and nothing else, since a changed spec reruns the
    run: the data section only for datasets read from files, not the in-code ones, and no
    ``train.resume_every`` (how often the state is saved; the train rule passes it apart).
    """
    runs = {}
    for ds_label, dataset in entries(config, "datasets").items():
        for arch_label, arch in entries(config, "architectures").items():
            for train in sweep(config):
                for seed in config["seeds"]:
                    tag = f"-{train['tag']}" if train["tag"] else ""
                    run = f"{ds_label}-{arch_label}{tag}-s{seed}"
                    runs[run] = {
                        "run": run,
                        "dataset": {"label": ds_label, **dataset},
                        "arch": {"label": arch_label, **arch},
                        "seed": seed,
                        "train": {k: v for k, v in train.items() if k != "resume_every"},
                        "device": config["device"],
                    }
                    if reads_files(dataset["name"]):
                        runs[run]["data"] = config["data"]
    return runs
