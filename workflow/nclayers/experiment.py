"""From a validated config dict to the experiment's runs; name checks against the registries.

Pure functions of the dict the workflow loaded: the JSON schema (workflow/schemas/) checks the
shape and types, :func:`check_names` what a schema cannot know, such as registry names.
"""

from __future__ import annotations

from nclayers.errors import UserError
from nclayers.vocabulary import DEFAULT_SELECT, IMPLICIT_GROUP, MEASURE_DEFAULTS

# The registries (nclayers.data, nclayers.models) are imported where they are used: they import
# torch (2 s), which a `snakemake` call whose plan is remembered skips (nclayers.parsecache).


def split_options(entry: dict) -> tuple[str, dict]:
    """(registry name, options) of a dataset or architecture entry of a spec."""
    options = {k: v for k, v in entry.items() if k not in ("name", "label")}
    return entry["name"], options


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
    from nclayers.data import DATASETS, DatasetUnavailable, check_available, dataset_options
    from nclayers.models import ARCHITECTURES, arch_options

    source = config.get("data", {})
    for label, entry in entries(config, "datasets").items():
        _known("datasets", label, entry["name"], DATASETS)
        _check_entry("datasets", label, entry, DATASETS, dataset_options(entry["name"]))
    for label, entry in entries(config, "architectures").items():
        _known("architectures", label, entry["name"], ARCHITECTURES)
        _check_entry("architectures", label, entry, ARCHITECTURES,
                     list(arch_options(entry["name"])))
    check_groups(config)
    for name, group in groups(config).items():
        for epochs in _values(group["train"]["epochs"]):
            where = train_key(name, group, "epochs")
            for key, values in ((train_key(name, group, "checkpoints"),
                                 group["train"]["checkpoints"]),
                                (train_key(name, group, "milestones"),
                                 group["train"].get("milestones", [])),
                                ("features.epochs", config.get("features", {}).get("epochs", []))):
                late = [e for e in values if e > epochs]
                if late:
                    whose = f" (group {name})" if group["explicit"] else ""
                    raise ConfigError(f"config key '{key}': epochs {late} lie beyond {where} = "
                                      f"{epochs}{whose}; lower them or raise {where}"
                                      + (f" (or set groups.{name}.train.epochs)"
                                         if group["explicit"] and where == "train.epochs"
                                         else ""))
    for label, entry in entries(config, "datasets").items():
        try:
            check_available(entry["name"], source.get("root"), source.get("download", False))
        except DatasetUnavailable as error:
            raise ConfigError(f"config key 'datasets.{label}': {error}") from None


def _values(value) -> list:
    return value if isinstance(value, list) else [value]


def check_groups(config: dict) -> None:
    """The groups' references to the config's datasets and architectures, and their
    ``select`` keys."""
    select_keys = [("select", config.get("select", []))]
    for name, group in (config.get("groups") or {}).items():
        key = f"groups.{name}"
        if "pairs" in group and ("datasets" in group or "architectures" in group):
            raise ConfigError(f"config key '{key}': give pairs, or datasets and architectures "
                              "(crossed), not both")
        for section in ("datasets", "architectures"):
            for label in group.get(section, []):
                _listed(config, f"{key}.{section}", section, label)
        for pair in group.get("pairs", []):
            _listed(config, f"{key}.pairs", "datasets", pair[0])
            _listed(config, f"{key}.pairs", "architectures", pair[1])
        select_keys.append((f"{key}.select", group.get("select", [])))
    for key, names in select_keys:
        unknown = [n for n in names if n not in TAGS]
        if unknown:
            raise ConfigError(f"config key '{key}': {unknown[0]!r} is not a setting that can be "
                              f"an axis; allowed: {', '.join(TAGS)}")


def _listed(config: dict, key: str, section: str, label: str) -> None:
    if label not in config[section]:
        raise ConfigError(f"config key '{key}': no {section[:-1]} {label!r} in the config's "
                          f"{section}; its {section}: {', '.join(config[section])}")


def checkpoint_epochs(config: dict, train: dict | None = None) -> list[int]:
    """The checkpoints to keep of a run trained by ``train`` (default: the config's train
    section): those configured, initialisation (0), the last epoch and those the feature
    analysis reads."""
    train = config["train"] if train is None else train
    return sorted({0, train["epochs"], *train["checkpoints"],
                   *config.get("features", {}).get("epochs", [])})


# --- groups and axes --------------------------------------------------------------------------

# List-valued keys that are settings, never axes.
NOT_AXES = {"name", "label", "milestones", "checkpoints"}
# An axis's tag in run ids: the short name, then the value ("" = the value alone: "ce", "tanh").
TAGS = {"lr": "lr", "weight_decay": "wd", "momentum": "m", "batch_size": "bs", "epochs": "ep",
        "loss": "", "mse_scale": "scale", "mse_reduction": "", "svsl_alpha": "alpha",
        "svsl_gamma": "gamma",
        "schedule": "", "onecycle_pct": "pct", "onecycle_div": "div",
        "onecycle_final_div": "fdiv", "lr_decay": "decay", "warmup_epochs": "warm", "depth": "d",
        "width": "w", "activation": "", "batchnorm": "bn", "etf_layers": "etf", "stem": "",
        "taps": "taps", "label_noise": "noise", "per_class": "n", "test_per_class": "ntest",
        "resize": "px", "normalize": "norm", "optimizer": ""}


def groups(config: dict) -> dict[str, dict]:
    """Group name → ``{pairs, seeds, train, select, explicit, own}``: the (dataset label,
    architecture label) pairs it trains (its ``pairs``, else its datasets × architectures,
    each defaulting to all of the config's); its train section is the top-level one with the
    group's own keys (``own``) over it; seeds and select likewise inherited."""
    top = {"seeds": config["seeds"], "train": config["train"],
           "select": config.get("select", DEFAULT_SELECT)}
    if not config.get("groups"):
        pairs = [(d, a) for d in config["datasets"] for a in config["architectures"]]
        return {IMPLICIT_GROUP: {**top, "pairs": pairs, "explicit": False, "own": set()}}
    resolved = {}
    for name, group in config["groups"].items():
        own = group.get("train", {})
        pairs = [tuple(p) for p in group["pairs"]] if "pairs" in group else [
            (d, a) for d in group.get("datasets", list(config["datasets"]))
            for a in group.get("architectures", list(config["architectures"]))]
        resolved[name] = {**top, **{k: group[k] for k in ("seeds", "select") if k in group},
                          "train": _over(config["train"], own), "own": set(own),
                          "pairs": pairs, "explicit": True}
    return resolved


def _over(top: dict, own: dict) -> dict:
    """``own`` over ``top`` key by key, and within sections (epoch_metrics, augment) too."""
    return {**top, **{k: {**top[k], **v} if isinstance(v, dict) and isinstance(top.get(k), dict)
                      else v for k, v in own.items()}}


def train_key(group_name: str, group: dict, key: str) -> str:
    """The config key a group's train ``key`` comes from, for messages."""
    return f"groups.{group_name}.train.{key}" if key in group["own"] else f"train.{key}"


def _tag(key: str, value) -> str:
    text = ("1" if value else "0") if isinstance(value, bool) else (
        f"{value:g}" if isinstance(value, float) else str(value))
    return f"{TAGS.get(key, key)}{text}"


def _ordered(keys, order) -> list[str]:
    """``keys`` in the fixed ``order`` (unknown ones after, as given): axis tags must not move
    when a config's keys are reordered."""
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: rank.get(k, len(rank)))


def variants(entry: dict, order=tuple(TAGS)) -> list[tuple[dict, dict]]:
    """(concrete entry, its axis values) for each combination of ``entry``'s list-valued keys
    (a list of one value is a setting, not an axis), the axes in ``order``."""
    out: list[tuple[dict, dict]] = [(dict(entry), {})]
    for key in _ordered(entry, order):
        values = entry[key]
        if key in NOT_AXES or not isinstance(values, list):
            continue
        out = [({**chosen, key: v}, {**axes, key: v} if len(values) > 1 else axes)
               for chosen, axes in out for v in values]
    return out


def _run_id(group: str, explicit: bool, ds: str, arch: str, axes: dict, seed: int) -> str:
    tags = [_tag(k, v) for k, v in axes.items()]
    return "-".join([*([group] if explicit else []), ds, arch, *tags, f"s{seed}"])


def design(config: dict) -> list[dict]:
    """Every run of the experiment as ``{run, group, axes, spec}``, in config order: per group,
    per pair, per variant of the dataset entry, of the architecture entry and of the train
    section (in that order of axes), per seed."""
    datasets, archs = entries(config, "datasets"), entries(config, "architectures")
    out = []
    for name, group in groups(config).items():
        train = {k: v for k, v in group["train"].items() if k != "resume_every"}
        for ds_label, arch_label in group["pairs"]:
            for dataset, ds_axes in variants(datasets[ds_label]):
                for arch, arch_axes in variants(archs[arch_label]):
                    for train_entry, train_axes in variants(train, TRAIN_ORDER):
                        axes = {**ds_axes, **arch_axes, **train_axes}
                        for seed in group["seeds"]:
                            run = _run_id(name, group["explicit"], ds_label, arch_label, axes,
                                          seed)
                            out.append({"run": run, "group": name, "axes": axes,
                                        "spec": _spec(config, run, ds_label, dataset,
                                                      arch_label, arch, train_entry,
                                                      seed)})
    return out


# Train sections that are off when every value in them is 0, false or null.
OPTIONAL_SECTIONS = ("epoch_metrics", "augment")
# The train keys in the order their axes appear in run ids (lr before wd, as always).
TRAIN_ORDER = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "loss", "mse_scale",
               "mse_reduction", "svsl_alpha", "svsl_gamma", "schedule", "onecycle_pct",
               "onecycle_div", "onecycle_final_div", "milestones", "lr_decay",
               "warmup_epochs")


def _spec(config: dict, run: str, ds_label: str, dataset: dict, arch_label: str, arch: dict,
          train: dict, seed: int) -> dict:
    """A run's spec: what decides its numbers and nothing else, since a changed spec reruns the
    run: the data section only for datasets read from files, not the in-code ones, and no
    ``train.resume_every`` (how often the state is saved; the train rule passes it apart)."""
    from nclayers.data import dataset_defaults, reads_files
    from nclayers.models import arch_options

    train = {**train, "checkpoints": checkpoint_epochs(config, train)}
    for section in OPTIONAL_SECTIONS:  # off: left out, so that a new option reruns nothing
        if not any(train.get(section, {}).values()):
            train.pop(section, None)
    spec = {"run": run,
            "dataset": {"label": ds_label, **_set(dataset, dataset_defaults(dataset["name"]))},
            "arch": {"label": arch_label, **_set(arch, arch_options(arch["name"]))},
            "seed": seed, "train": train, "device": config["device"]}
    if reads_files(dataset["name"]):
        spec["data"] = config["data"]
    measure = {key: value for key, value in config.get("measure", {}).items()
               if key in MEASURE_DEFAULTS and value != MEASURE_DEFAULTS[key]}
    if measure:  # defaults left out: a new option reruns nothing
        spec["measure"] = measure
    return spec


def _set(entry: dict, defaults: dict) -> dict:
    """``entry`` without the options it sets to their default: writing a default out, or
    leaving it out, gives the same spec, and reruns nothing."""
    def default(key, value) -> bool:
        return (key in defaults and value == defaults[key]
                and isinstance(value, bool) == isinstance(defaults[key], bool))

    return {key: value for key, value in entry.items() if key == "name" or not default(key, value)}


def expand_runs(config: dict) -> dict[str, dict]:
    """Run id → run spec, for every run of :func:`design`."""
    runs: dict[str, dict] = {}
    for run in design(config):
        if run["run"] in runs:
            raise ConfigError(f"run id {run['run']!r} names two different runs: two axis "
                              "values print alike (e.g. floats equal to 6 digits); make "
                              "them differ visibly")
        runs[run["run"]] = run["spec"]
    return runs


def run_design(config: dict) -> dict:
    """What the tables need beyond the specs: each run's group and axis values, and each
    group's selected axes (``select``; the group's other axes are compared). Kept out of the
    specs, so that changing what is selected reruns no training."""
    runs = design(config)
    axes = dict.fromkeys(a for r in runs for a in r["axes"])
    return {"runs": {r["run"]: {"group": r["group"], "axes": r["axes"]} for r in runs},
            "axes": list(axes),
            "select": {name: list(g["select"]) for name, g in groups(config).items()}}


def feature_epochs(config: dict, spec: dict) -> list[int]:
    """The checkpoints of a run that the feature analysis reads: ``features.epochs``, else
    the run's last epoch."""
    return sorted(config.get("features", {}).get("epochs", [])) or [spec["train"]["epochs"]]


def resume_every(config: dict, planned: dict) -> dict[str, int]:
    """Run id → how often its train job saves the full state (its group's
    ``train.resume_every``; not part of the spec: it changes no number). ``planned``: the
    config's :func:`run_design`, which knows each run's group."""
    resolved = groups(config)
    return {run: resolved[entry["group"]]["train"].get("resume_every", 1)
            for run, entry in planned["runs"].items()}
