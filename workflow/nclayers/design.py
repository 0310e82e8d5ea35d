"""The experiment's resolved design as one table, ``tables/design.csv``: a row per run with its
group, its seed, every option of its dataset and architecture entries and every field of its
training recipe, defaults filled in, and which of its axes are selected and which compared.

What the papers' figures and claims need to know about a run is read here, from what was
trained (the runs' run.json files), instead of from run ids or group names. Column names are
the config's keys: ``dataset.per_class``, ``arch.depth``, ``train.lr``,
``train.augment.crop``; lists and mappings are written as JSON, an option a run lacks is empty.
"""

from __future__ import annotations

import json

import pandas as pd

from nclayers.vocabulary import DEFAULT_SELECT, IMPLICIT_GROUP

FRONT = ["run", "group", "seed", "dataset", "arch", "selected_axes", "compared_axes"]


def _cell(value):
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True)
    return value


def _flat(prefix: str, entry: dict) -> dict:
    """``entry`` as columns ``prefix.key`` (nested sections as ``prefix.section.key``)."""
    out = {}
    for key, value in sorted(entry.items()):
        if isinstance(value, dict) and value:
            out.update(_flat(f"{prefix}.{key}", value))
        else:
            out[f"{prefix}.{key}"] = _cell(value)
    return out


def option_defaults(infos: list[dict]) -> dict:
    """The defaults of the runs' datasets and architectures, ``{"dataset": {name: options},
    "arch": {name: options}}`` (JSON-ready): what :func:`design_table` fills in where a run
    leaves an option out. The workflow computes them when it plans (it has torch imported
    then) and passes them to the ``design`` job, which then imports neither torch nor the
    readers (2.2 s → 0.4 s)."""
    from nclayers.data import dataset_defaults
    from nclayers.models import arch_options

    return {"dataset": {n: dataset_defaults(n) for n in sorted({i["dataset"]["name"]
                                                               for i in infos})},
            "arch": {n: arch_options(n) for n in sorted({i["arch"]["name"] for i in infos})}}


def design_row(info: dict, design: dict | None, defaults: dict | None = None) -> dict:
    """One run's row, from its run.json record (``info``) and the experiment's design
    (:func:`nclayers.experiment.run_design`; None: one implicit group, no axes).
    ``defaults``: :func:`option_defaults` of (at least) this run; None computes them."""
    if defaults is None:
        defaults = option_defaults([info])
    run = (design or {}).get("runs", {}).get(info["run"], {})
    group = run.get("group", IMPLICIT_GROUP)
    chosen = (design or {}).get("select", {}).get(group, DEFAULT_SELECT)
    axes = list(run.get("axes", {}))
    dataset, arch = info["dataset"], info["arch"]
    options = {
        **_flat("dataset", {**defaults["dataset"][dataset["name"]],
                            **{k: v for k, v in dataset.items() if k != "label"}}),
        **_flat("arch", {**defaults["arch"][arch["name"]],
                         **{k: v for k, v in arch.items() if k != "label"}}),
        **_flat("train", info["train"]),
    }
    return {"run": info["run"], "group": group, "seed": info["seed"],
            "dataset": dataset["label"], "arch": arch["label"],
            "selected_axes": ";".join(a for a in axes if a in chosen),
            "compared_axes": ";".join(a for a in axes if a not in chosen),
            "device": info.get("device"), **options}


def design_table(infos: list[dict], design: dict | None = None,
                 defaults: dict | None = None) -> pd.DataFrame:
    """Every run's :func:`design_row`, in the order of ``infos``; the identifying columns
    first, then the options in sorted order. ``defaults``: :func:`option_defaults` of the
    runs (None computes them)."""
    if defaults is None:
        defaults = option_defaults(infos)
    table = pd.DataFrame([design_row(info, design, defaults) for info in infos])
    rest = sorted(c for c in table.columns if c not in FRONT)
    return table[[*FRONT, *rest]]
