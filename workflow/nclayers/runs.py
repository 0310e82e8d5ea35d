"""A run's specification (one dataset × architecture × seed × recipe) and its files.

The workflow hands each job its run's spec as a JSON dict; this module turns it into data, a
model and a recipe, and names the files of a run directory. It never reads the config file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nclayers import data, models
from nclayers.train import Recipe


def split_options(entry: dict) -> tuple[str, dict]:
    """(registry name, options) of a dataset or architecture entry of a spec."""
    options = {k: v for k, v in entry.items() if k not in ("name", "label")}
    return entry["name"], options


def load_data(spec: dict, device: torch.device | str = "cpu") -> data.Splits:
    name, options = split_options(spec["dataset"])
    return data.load(name, **options).to(device)


def build_model(spec: dict, splits: data.Splits) -> torch.nn.Module:
    """The run's model, initialised from its seed (same seed → same initial weights)."""
    torch.manual_seed(spec["seed"])
    name, options = split_options(spec["arch"])
    return models.build(name, splits.input_shape, splits.num_classes, **options)


def recipe(spec: dict) -> Recipe:
    t = spec["train"]
    return Recipe(epochs=t["epochs"], batch_size=t["batch_size"], lr=t["lr"],
                  momentum=t["momentum"], weight_decay=t["weight_decay"], loss=t["loss"])


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was requested but torch sees no CUDA device; "
                           "set device: auto or cpu in the config")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"epoch{epoch}.pt"


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
