"""From a validated config dict to the experiment's runs; name checks against the registries.

Pure functions of the dict the workflow loaded: the JSON schema (workflow/schemas/) checks the
shape and types, :func:`check_names` what a schema cannot know, such as registry names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from nclayers.data import DATASETS
from nclayers.models import ARCHITECTURES


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""


def _entries(config: dict, key: str) -> dict[str, dict]:
    """Label → entry with its registry ``name`` filled in (it defaults to the label)."""
    return {label: {"name": label, **(entry or {})} for label, entry in config[key].items()}


def _check_entry(key: str, label: str, entry: dict, registry: dict[str, Callable],
                 fixed: int) -> None:
    kind = "dataset" if key == "datasets" else "architecture"
    name = entry["name"]
    if name not in registry:
        raise ConfigError(f"config key '{key}.{label}': unknown {kind} {name!r}; "
                          f"allowed: {', '.join(sorted(registry))}")
    # Options the builder accepts: its parameters after the `fixed` positional ones.
    params = list(inspect.signature(registry[name]).parameters)[fixed:]
    for option in entry:
        if option not in ("name", "label", *params):
            raise ConfigError(f"config key '{key}.{label}.{option}': {kind} {name!r} has no "
                              f"option {option!r}; allowed: {', '.join(params) or 'none'}")


def check_names(config: dict) -> None:
    """Raise :class:`ConfigError` for names the registries do not know, before any job runs."""
    for label, entry in _entries(config, "datasets").items():
        _check_entry("datasets", label, entry, DATASETS, fixed=0)
    for label, entry in _entries(config, "architectures").items():
        _check_entry("architectures", label, entry, ARCHITECTURES, fixed=2)
    epochs = config["train"]["epochs"]
    late = [e for e in config["train"]["checkpoints"] if e > epochs]
    if late:
        raise ConfigError(f"config key 'train.checkpoints': epochs {late} lie beyond "
                          f"train.epochs = {epochs}; lower them or raise train.epochs")


def checkpoint_epochs(config: dict) -> list[int]:
    """The checkpoints to keep: those configured, plus initialisation (0) and the last epoch."""
    return sorted({0, config["train"]["epochs"], *config["train"]["checkpoints"]})


def expand_runs(config: dict) -> dict[str, dict]:
    """Run id → run spec, one per dataset × architecture × seed."""
    runs = {}
    for ds_label, dataset in _entries(config, "datasets").items():
        for arch_label, arch in _entries(config, "architectures").items():
            for seed in config["seeds"]:
                run = f"{ds_label}-{arch_label}-s{seed}"
                runs[run] = {
                    "run": run,
                    "dataset": {"label": ds_label, **dataset},
                    "arch": {"label": arch_label, **arch},
                    "seed": seed,
                    "train": {**config["train"], "checkpoints": checkpoint_epochs(config)},
                    "device": config["device"],
                }
    return runs
