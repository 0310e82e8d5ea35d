"""What can be known about an experiment before any job runs, checked at `snakemake -n` time.

A job that fails makes Snakemake delete the outputs it was to replace, so every error that does
not need a trained model is found here instead: the config's shape and values (the JSON
schema, with one-line messages), registry names and options, the device, the data files, each
dataset's shape and class counts against the sample sizes asked for, and each model built on
its dataset's input shape with one sample pushed through it. Every error is a
:class:`ConfigError` naming the config key, the value and the fix.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nclayers.experiment import (
    ConfigError,
    check_names,
    design,
    expand_runs,
    groups,
    run_design,
    split_options,
    train_key,
)
from nclayers.vocabulary import DEFAULT_ROOT, PAPER_AXES, PAPER_GROUPS, in_family

# The config's JSON schema; its defaults fill in the keys a config leaves out.
SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"

# YAML 1.1 (PyYAML) reads 1e-3 as a string; the number it means is taken instead.
_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.\d*|\.\d+)")


def coerce_numbers(value, key: str = ""):
    """``value`` with strings that spell a number or a boolean turned into it: ``"1e-3"``
    (YAML 1.1's reading of ``1e-3``) and the untyped scalars of ``snakemake --config
    "seeds=[0, 1]"`` or ``"train={epochs: 10}"``; the experiment name stays a string. A
    float with an integer value is that integer (``epochs: 3e0`` is ``epochs: 3``,
    ``label_noise: 0.0`` is ``label_noise: 0``), so that a run's spec, and whether it reruns,
    does not depend on how a number is spelled; NaN and infinities are refused."""
    if isinstance(value, dict):
        return {k: v if k == "experiment" and not key else coerce_numbers(v, f"{key}.{k}")
                for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_numbers(v, key) for v in value]
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _SCIENTIFIC.fullmatch(text) or _DECIMAL.fullmatch(text):
            return coerce_numbers(float(text), key)
        if text in ("true", "false"):
            return text == "true"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"config key '{key.lstrip('.')}': {value} is not a finite number; "
                              "give a number")
        return integral_floats(value)
    return value


def integral_floats(value):
    """``value`` with every float that holds an integer turned into that integer."""
    if isinstance(value, dict):
        return {k: integral_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_floats(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Experiment:
    """A config as the workflow uses it: validated, the schema's defaults filled in, with its
    runs (run id → spec) and its design (:func:`nclayers.experiment.run_design`)."""

    config: dict
    runs: dict[str, dict]
    design: dict


def prepare(config: dict, *, local: bool = True, schema: str | Path = SCHEMA) -> Experiment:
    """Every check a config goes through before any job runs, in the order the Snakefile runs
    them (it calls this): numbers spelled as strings, the schema (one line), its defaults, then
    :func:`check_config`, the runs and the design. ``config`` is left as it is; a fault is a
    :class:`ConfigError` naming the key, the value and the fix. ``local``: jobs run on this
    machine (not submitted to a cluster). The defaults are filled in also where this workflow
    is used as a Snakemake module with ``skip_validation``: the runs need them."""
    import yaml
    from snakemake.utils import validate

    config = coerce_numbers(copy.deepcopy(config))
    problem = schema_error(config, yaml.safe_load(Path(schema).read_text()))
    if problem:
        raise ConfigError(problem)
    _check_name_ends(config)
    # The schema's defaults, but not in the groups: a key a group leaves out takes the
    # top-level value (nclayers.experiment.groups), not the schema's default.
    group_entries = config.pop("groups", None)
    validate(config, str(Path(schema).resolve()))
    if group_entries is not None:
        config["groups"] = group_entries
    config = integral_floats(config)  # the schema's defaults too: mse_scale 1.0 is 1
    check_config(config, local=local)
    return Experiment(config, expand_runs(config), run_design(config))


def plan(config: dict, *, local: bool = True, schema: str | Path = SCHEMA
         ) -> tuple[Experiment, dict]:
    """What the Snakefile plans with: :func:`prepare`'s experiment and the design job's
    defaults (:func:`nclayers.design.option_defaults`), remembered per user for the same
    config, code, libraries and data files (:mod:`nclayers.parsecache`): a call like an
    earlier one then imports no torch. A fault raises as from :func:`prepare`."""
    from nclayers import parsecache

    def compute() -> dict:
        from nclayers.design import option_defaults

        experiment = prepare(config, local=local, schema=schema)
        return {"config": experiment.config, "runs": experiment.runs,
                "design": experiment.design,
                "defaults": option_defaults(list(experiment.runs.values()))}

    kept = parsecache.remembered(lambda: parsecache.key(config, local=local, schema=schema),
                                 compute, fields=("config", "runs", "design", "defaults"))
    return Experiment(kept["config"], kept["runs"], kept["design"]), kept["defaults"]


# A config's values after YAML's aliases are expanded: more is an alias bomb, not a config.
MAX_CONFIG_NODES = 100_000


def _check_name_ends(config: dict) -> None:
    """The schema's name patterns end in ``$``, which a trailing newline passes (``'tiny\n'``
    would cut the jobs' shell commands): the names are whole here."""
    names = [("experiment", config.get("experiment", ""))] + [
        (section, label) for section in ("datasets", "architectures", "groups")
        for label in config.get(section) or {}]
    for key, name in names:
        if isinstance(name, str) and name != name.rstrip():
            raise ConfigError(f"config key '{key}': the name {name!r} ends in white space (a "
                              "newline?); remove it")


def check_spec(spec: dict, schema: str | Path = SCHEMA) -> None:
    """A run's spec (``train --spec``, built by hand or by another tool) through the checks a
    config's runs go through at `snakemake -n`: its train section against the schema's, its
    dataset and architecture against the registries, then the same construction on the
    dataset's shape (:func:`describe`, the model, the optimiser and schedule). A fault is a
    :class:`ConfigError` naming the spec's key."""
    import yaml

    from nclayers import data
    from nclayers.experiment import _check_entry, _known

    properties = yaml.safe_load(Path(schema).read_text())["properties"]
    for section, part in (("train", properties["train"]),
                          ("dataset", properties["datasets"]["additionalProperties"]),
                          ("arch", properties["architectures"]["additionalProperties"])):
        entry = {k: v for k, v in spec[section].items() if k != "label"}
        problem = schema_error(entry, part)
        if problem:
            raise ConfigError("spec " + problem.replace("config key '", f"key '{section}.", 1)
                              .replace(f"'{section}.(top level)'", f"'{section}'"))
    if not isinstance(spec["train"]["epochs"], int):
        raise ConfigError(f"spec key 'train.epochs': {spec['train']['epochs']!r} is one value, "
                          "not a list of several (a spec is one run)")
    dataset, arch = spec["dataset"], spec["arch"]
    _known("datasets", dataset["label"], dataset["name"], data.DATASETS)
    _check_entry("datasets", dataset["label"], dataset, data.DATASETS,
                 data.dataset_options(dataset["name"]))
    from nclayers.models import ARCHITECTURES, arch_options

    _known("architectures", arch["label"], arch["name"], ARCHITECTURES)
    _check_entry("architectures", arch["label"], arch, ARCHITECTURES,
                 list(arch_options(arch["name"])))
    epochs = spec["train"]["epochs"]
    late = [e for e in spec["train"].get("checkpoints", []) if e > epochs]
    if late:
        raise ConfigError(f"spec key 'train.checkpoints': epochs {late} lie beyond train.epochs "
                          f"= {epochs}")
    shape = describe(dataset["label"], dataset, spec.get("data", {}).get("root"))
    _check_schedule(spec["train"])
    _check_recipe(spec["train"], shape, lambda name: f"train.{name}")
    _check_model(dataset["label"], shape, arch["label"], arch, spec["train"])
    _check_last_batch(shape, arch, spec["train"]["batch_size"], "train.batch_size")


def check_yaml(path: str | Path) -> None:
    """Raise a ConfigError naming the file (and the line and column) of what a config file
    must not hold: a YAML syntax error or a tag such as ``!!python/object``, a key given twice
    (YAML would keep the later silently), anything but a mapping of keys, YTE templating
    (``__use_yte__``, which runs Python), or aliases that expand past
    :data:`MAX_CONFIG_NODES` values. Reads the text only, never runs it."""
    import yaml

    path = Path(path)
    if not path.is_file():
        return  # Snakemake says that it is missing
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8"
                          ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_nodes(path, root)
        value = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: YAML syntax error: {error.problem or error.context}"
                          ) from None
    except yaml.YAMLError as error:  # e.g. a control character (yaml.reader.ReaderError)
        raise ConfigError(f"{path}: not YAML text: {error}") from None
    if not isinstance(value, dict):
        held = "nothing" if value is None else f"a {type(value).__name__}, {repr(value)[:40]}"
        raise ConfigError(f"{path}: holds {held}, not a mapping of config keys; a config "
                          "reads e.g. `experiment: name` then `datasets:`, `architectures:`, "
                          "... (see config.yaml)")
    if value.get("__use_yte__"):
        raise ConfigError(f"{path}: __use_yte__ turns on YTE templating, which runs Python "
                          "code from the config file; this workflow does not take it: write "
                          "the values out (or generate the file with a script)")


def _check_nodes(path: Path, root) -> None:
    """Duplicate keys of every mapping, and the number of values once aliases expand
    (counted on the composed graph, where an alias is the same node again)."""
    import yaml

    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in seen:
                        mark = key.start_mark
                        raise ConfigError(
                            f"{path}, line {mark.line + 1}, column {mark.column + 1}: key "
                            f"{key.value!r} is given twice (first on line {seen[key.value]}); "
                            "YAML would keep the later silently: keep one")
                    seen[key.value] = key.start_mark.line + 1
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        sizes[id(node)] = total
        if total > MAX_CONFIG_NODES:
            raise ConfigError(f"{path}: its aliases expand to more than {MAX_CONFIG_NODES:,} "
                              "values (a YAML alias bomb?); write the config out")
        return total

    if root is not None:
        size(root)


def schema_error(config: dict, schema: dict) -> str | None:
    """The most telling schema violation of ``config`` as one line (key path, value, what is
    allowed), or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (f"config key '{_join(path, extra[0])}': unknown key; allowed here: "
                f"{', '.join(allowed)}")
    if error.validator == "required":  # every missing key at once, not one per run
        missing = [k for k in error.validator_value if k not in error.instance]
        return (f"config key '{path}': missing {', '.join(missing)} (required, no default: "
                "every experiment states them)")
    if error.validator in ("oneOf", "anyOf"):
        error = min(error.context, key=lambda e: len(list(e.absolute_path)), default=error)
    return f"config key '{path}': {error.instance!r} {_explain(error)}"


def _join(path: str, key: str) -> str:
    return key if path == "(top level)" else f"{path}.{key}"


def _explain(error) -> str:
    kind = error.validator
    value = error.validator_value
    if kind == "type":
        return f"is not of type {value}"
    if kind == "enum":
        return f"is not one of {', '.join(map(str, value))}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=",
                 "exclusiveMaximum": "<"}
        return f"is out of range: it must be {words[kind]} {value}"
    if kind == "maxLength":
        return f"is longer than {value} characters"
    if kind == "pattern":
        return f"does not match {value} (letters, digits, '_', '.', '-')"
    return error.message


@dataclass(frozen=True)
class DatasetShape:
    """What the preflight knows of a dataset entry without reading its images."""

    input_shape: tuple[int, ...]
    num_classes: int
    train_counts: tuple[int, ...] | None  # per class, after per_class; None: unknown
    test_counts: tuple[int, ...] | None


# The bundled digits' class counts in their fixed default split (test_fraction 0.3), so that
# the check does not import scikit-learn's datasets (1.3 s); the tests hold them to the loader.
DIGITS_COUNTS = ((124, 127, 124, 128, 127, 127, 127, 125, 122, 126),
                 (54, 55, 53, 55, 54, 55, 54, 54, 52, 54))


def _raw_counts(name: str, options: dict, root: Path) -> tuple | None:
    """(input shape, classes, train counts, test counts) from what is cheap to read: the
    in-code datasets themselves, the MNIST family's label files, the label data of CIFAR's,
    SVHN's and STL10's files (read once per version of a file: :func:`data.class_counts`);
    counts None where the files are missing or not the original ones."""
    from nclayers import data

    reader = data.DATASETS[name]
    if name == "digits" and options.get("test_fraction", 0.3) == 0.3:
        return (1, 8, 8), 10, *DIGITS_COUNTS
    if isinstance(reader, data.GlueTask):  # the labels without the tokenizer
        return (options.get("max_length", 32),), reader.num_classes, *reader.label_counts(root)
    if not isinstance(reader, data.TorchvisionDataset):
        raw = data.read_raw(name, str(root), **options)
        return (raw.input_shape, raw.num_classes, _bincount(raw.y_train, raw.num_classes),
                _bincount(raw.y_test, raw.num_classes))
    labels = [rel for rel, _ in reader.files() if "labels-idx1" in rel]
    if not labels:
        return reader.input_shape, reader.num_classes, *data.class_counts(name, root)
    counts = [None, None]
    if len(labels) == 2 and all((root / rel).is_file() for rel in labels):
        for i, rel in enumerate(sorted(labels, key=lambda r: "t10k" in r)):
            y = np.frombuffer((root / rel).read_bytes(), np.uint8, offset=8)
            if len(y) and int(y.max()) >= reader.num_classes:
                raise ConfigError(f"config key 'datasets': dataset {name!r}: {root / rel} holds "
                                  f"label {int(y.max())}, outside 0..{reader.num_classes - 1}: "
                                  f"not {name}'s labels; {data._FIX_CORRUPT}")
            counts[i] = _bincount(y, reader.num_classes)
    return reader.input_shape, reader.num_classes, *counts


def _bincount(y, num_classes: int) -> tuple[int, ...]:
    return tuple(int(c) for c in np.bincount(np.asarray(y), minlength=num_classes))


def describe(label: str, entry: dict, root: str | None) -> DatasetShape:
    """The shape, classes and class counts of dataset entry ``label`` as a run would see it
    (per_class, test_per_class and resize applied); ConfigError if those cannot work."""
    name, options = split_options(entry)
    try:
        shape, classes, train, test = _raw_counts(name, options, Path(root or DEFAULT_ROOT))
    except ConfigError:
        raise
    except ValueError as error:  # e.g. a test_fraction that leaves too few samples
        raise ConfigError(f"config key 'datasets.{label}': dataset {name!r} cannot be split "
                          f"with {options}: {error}") from None
    for split, counts in (("train", train), ("test", test)):
        if counts is not None and min(counts) == 0:
            raise ConfigError(f"config key 'datasets.{label}': the {split} split of {name!r} "
                              f"has no sample of class {counts.index(0)} (class counts "
                              f"{list(counts)}); give it more samples")
    for key, counts in (("per_class", train), ("test_per_class", test)):
        n = options.get(key)
        if n is not None and counts is not None and n > min(counts):
            split = "train" if key == "per_class" else "test"
            raise ConfigError(f"config key 'datasets.{label}.{key}': {n} samples per class, but "
                              f"the smallest class of the {split} split has {min(counts)}; "
                              f"lower it to at most {min(counts)}")
    if options.get("per_class") is not None:
        train = (options["per_class"],) * classes
    if options.get("test_per_class") is not None:
        test = (options["test_per_class"],) * classes
    if options.get("resize") is not None:
        if len(shape) != 3:
            raise ConfigError(f"config key 'datasets.{label}.resize': dataset {name!r} holds "
                              f"vectors of shape {shape}, not images; remove resize")
        shape = (shape[0], options["resize"], options["resize"])
    return DatasetShape(shape, classes, train, test)


def _check_model(ds_label: str, shape: DatasetShape, arch_label: str, arch: dict,
                 train: dict, gamma_key: str = "train.svsl_gamma") -> None:
    """Build the architecture for this dataset and push one sample through it (on the CPU:
    PyTorch's meta device would cost seconds of imports; a ResNet50 costs half a second)."""
    import torch

    from nclayers import models

    options = split_options(arch)[1]
    try:
        if arch["name"] == "bert":  # pretrained: its config if cached, never its weights
            from nclayers.sequence import bert_tapped_layers

            # the builder's defaults, which a spec leaves out (experiment._set)
            defaults = {k: v for k, v in models.arch_options("bert").items() if v is not None}
            tapped = bert_tapped_layers(shape.input_shape, **{**defaults, **options})
        else:
            model = models.build(arch["name"], shape.input_shape, shape.num_classes, **options)
            with torch.no_grad():
                model.eval()(torch.zeros(1, *shape.input_shape))
            tapped = model.tapped_layers
    except (ValueError, RuntimeError, TypeError, IndexError) as error:
        raise ConfigError(f"config key 'architectures.{arch_label}': {arch['name']} cannot "
                          f"take dataset {ds_label!r} (input shape {shape.input_shape}, "
                          f"{shape.num_classes} classes): {error}") from None
    if train.get("loss") == "svsl" and tapped is not None:
        from nclayers.train import svsl_position

        try:
            svsl_position(train.get("svsl_gamma", 1), tapped[1:])
        except ValueError as error:
            raise ConfigError(f"config key '{gamma_key}' for architecture {arch_label!r} "
                              f"({len(tapped) - 1} hidden tapped layers): "
                              f"{error}") from None


def _check_last_batch(shape: DatasetShape, arch: dict, batch_size: int, key: str) -> None:
    """A batch of one sample, where the split's size and the batch size make one (its last
    batch, or every batch at batch_size 1), trained through the model as the train job would:
    BatchNorm on a layer of one value per channel cannot train on it, and says so. (The model
    is built only in that case: it is rare.)"""
    if not shape.train_counts or arch["name"] == "bert":
        return
    size = sum(shape.train_counts)
    if batch_size != 1 and size % batch_size != 1:
        return
    import torch

    from nclayers import models

    options = split_options(arch)[1]
    model = models.build(arch["name"], shape.input_shape, shape.num_classes, **options)
    try:
        model.train()(torch.zeros(1, *shape.input_shape))
    except ValueError as error:
        alone = ("every batch holds one sample" if batch_size == 1 else
                 f"{batch_size} leaves one of the {size} train samples alone in the last batch "
                 "of every epoch")
        raise ConfigError(f"config key '{key}': {alone}, which architecture {arch['label']!r} "
                          f"cannot train on ({error}); change batch_size or the dataset's "
                          "size") from None


def check_device(device: str, local: bool) -> None:
    """``device: cuda`` where this machine has no CUDA device; skipped when jobs run elsewhere
    (a cluster's login node may have no GPU: there the job checks before it touches any file).
    """
    if device != "cuda" or not local:
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("config key 'device': cuda, but torch sees no CUDA device on this "
                          "machine; set device: auto (CUDA when there is one) or cpu")


def check_config(config: dict, local: bool = True) -> None:
    """Every check of this module on a config the schema has validated (defaults filled in);
    ``local``: jobs run on this machine (not submitted to a cluster). Each distinct dataset,
    model and recipe among the experiment's runs is checked once."""
    check_names(config)
    check_papers(config, run_design(config))
    _check_feature_runs(config)
    check_device(config["device"], local)
    root = config.get("data", {}).get("root")
    shapes: dict[str, DatasetShape] = {}
    seen: set[str] = set()
    resolved = groups(config)
    for run in design(config):
        spec, group = run["spec"], resolved[run["group"]]

        def key(name: str, group_name: str = run["group"], group: dict = group) -> str:
            return train_key(group_name, group, name)

        dataset = spec["dataset"]
        ds_key = json.dumps(dataset, sort_keys=True)
        if ds_key not in shapes:
            shapes[ds_key] = describe(dataset["label"], dataset, root)
            if config["features"].get("runs", "selected") != "none":
                _check_feature_sample(dataset["label"], shapes[ds_key],
                                      config["features"]["memory_gib"],
                                      config["features"]["per_class"])
        train = {k: spec["train"].get(k) for k in ("loss", "svsl_gamma", "schedule",
                                                     "milestones", "warmup_epochs", "augment",
                                                     "epoch_metrics")}
        recipe_key = json.dumps([ds_key, spec["train"]], sort_keys=True)
        if recipe_key not in seen:
            seen.add(recipe_key)
            _check_schedule(spec["train"], key)
            _check_recipe(spec["train"], shapes[ds_key], key)
        batch_key = json.dumps([ds_key, spec["arch"], spec["train"]["batch_size"]],
                               sort_keys=True)
        if batch_key not in seen:
            seen.add(batch_key)
            _check_last_batch(shapes[ds_key], spec["arch"], spec["train"]["batch_size"],
                              key("batch_size"))
        model_key = json.dumps([ds_key, spec["arch"], train, run["group"]], sort_keys=True)
        if model_key in seen:
            continue
        seen.add(model_key)
        _check_model(dataset["label"], shapes[ds_key], spec["arch"]["label"], spec["arch"],
                     spec["train"], key("svsl_gamma"))
        _check_augment(spec["train"].get("augment", {}), shapes[ds_key], dataset["label"],
                       key("augment"))
        _check_epoch_metrics(spec["train"].get("epoch_metrics"), key("epoch_metrics"))


def _check_recipe(train: dict, shape: DatasetShape, key) -> None:
    """The train job's own construction: the recipe, the optimiser's options (torch refuses
    e.g. AdamW's β1 = momentum = 1) and the learning rate of every step (sampled),
    with the steps per epoch of this dataset where its size is known."""
    from nclayers.runs import recipe
    from nclayers.train import check_optimizer, lr_factor

    try:
        chosen = recipe({"train": train})
        check_optimizer(chosen)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"config key '{key('optimizer')}' ({train.get('optimizer', 'sgd')}, "
                          f"lr {train.get('lr')}, momentum {train.get('momentum')}, "
                          f"weight_decay {train.get('weight_decay')}): the optimiser refuses "
                          f"them: {error}") from None
    size = sum(shape.train_counts) if shape.train_counts else chosen.batch_size
    per_epoch = -(-size // chosen.batch_size)
    total = chosen.epochs * per_epoch
    for step in {*range(0, total, max(1, total // 1000)), total - 1} - {-1}:
        try:
            factor = lr_factor(chosen, step, per_epoch)
        except (ZeroDivisionError, ValueError, OverflowError) as error:
            factor, problem = None, error
        if factor is None or not math.isfinite(factor):
            raise ConfigError(f"config key '{key('schedule')}': the {chosen.schedule} schedule "
                              f"has no learning rate at step {step} of {total} ({per_epoch} "
                              f"per epoch): {problem if factor is None else factor}; check its "
                              "options against epochs") from None


def check_papers(config: dict, design: dict) -> None:
    """Each paper of ``report.papers`` against what it reads (``vocabulary.PAPER_GROUPS``,
    ``PAPER_AXES``): a group it needs that the config lacks, and does not name in
    ``report.left_out``, or an axis no group varies, is refused in one line naming the group
    or axis and the figures and tables that need it."""
    report = config.get("report", {})
    present = {run["group"] for run in design["runs"].values()}
    left_out = set(report.get("left_out", []))
    for paper in report.get("papers", []):
        for group, needs in PAPER_GROUPS.get(paper, {}).items():
            if group in left_out or any(in_family(g, group) for g in present):
                continue
            raise ConfigError(
                f"config key 'groups': report.papers holds {paper}, whose "
                f"{', '.join(needs)} read group {group!r}, which this config lacks; add it "
                f"(workflow/presets/{paper}/full.yaml has it) or name it in report.left_out")
        for axis, needs in PAPER_AXES.get(paper, {}).items():
            if axis not in design["axes"]:
                raise ConfigError(
                    f"config key 'groups': report.papers holds {paper}, whose "
                    f"{', '.join(needs)} compare runs along axis {axis!r}, which no group "
                    f"varies; give it a list of values (as workflow/presets/{paper}/full.yaml "
                    "does)")


def _check_epoch_metrics(entry: dict | None, key: str) -> None:
    from nclayers.epoch_metrics import EpochMetricsConfig, EpochMetricsError

    try:
        EpochMetricsConfig.from_spec(entry)
    except EpochMetricsError as error:
        message = str(error).removeprefix("train.epoch_metrics: ")
        raise ConfigError(f"config key '{key}': {message}") from None


def _check_augment(options: dict, shape: DatasetShape, label: str, key: str) -> None:
    """Augmentation options that cannot work, and augmentation of data that are not images."""
    from nclayers.augment import Augment, require_images

    try:
        if Augment(**options).active:
            require_images(shape.input_shape, f"dataset {label!r}")
    except ValueError as error:
        raise ConfigError(f"config key '{key}': {error}") from None


def _check_feature_sample(label: str, shape: DatasetShape, memory_gib: float,
                          per_class: int) -> None:
    from nclayers.features import check_sample_size

    if shape.train_counts is not None and per_class > min(shape.train_counts):
        raise ConfigError(f"config key 'features.per_class': {per_class} samples per class, but "
                          f"dataset {label!r} has {min(shape.train_counts)} in its smallest "
                          f"train class; lower it to at most {min(shape.train_counts)}")
    try:
        check_sample_size(per_class * shape.num_classes, memory_gib * 2**30)
    except ValueError as error:
        raise ConfigError(f"config key 'features.per_class': {error}") from None


def _check_feature_runs(config: dict) -> None:
    from nclayers.experiment import expand_runs

    wanted = config["features"].get("runs", "selected")
    if isinstance(wanted, list):
        known = list(expand_runs(config))
        unknown = [run for run in wanted if run not in known]
        if unknown:
            raise ConfigError(f"config key 'features.runs': no run {unknown[0]!r} in this "
                              f"experiment; its runs: {', '.join(known[:6])}"
                              + (", ..." if len(known) > 6 else ""))


def _check_schedule(train: dict, key=lambda name: f"train.{name}") -> None:
    """A multistep schedule without milestones, a warm-up outside it; ``key(name)`` is the
    config key of a train setting, for the message."""
    schedule = train.get("schedule", "constant")
    if schedule == "multistep" and not train.get("milestones"):
        raise ConfigError(f"config key '{key('milestones')}': schedule multistep needs "
                          "milestones (the epochs at which the lr is multiplied by lr_decay), "
                          "e.g. milestones: [100, 200]")
    if train.get("warmup_epochs", 0) and schedule != "multistep":
        raise ConfigError(f"config key '{key('warmup_epochs')}': warm-up belongs to the "
                          f"multistep schedule, not {schedule}; remove it or set schedule: "
                          "multistep")
    if train.get("milestones") and schedule != "multistep":
        raise ConfigError(f"config key '{key('milestones')}': the {schedule} schedule ignores "
                          f"milestones {train['milestones']}; remove them or set schedule: "
                          "multistep")
    epochs = train.get("epochs")
    if epochs is not None and train.get("warmup_epochs", 0) >= epochs:
        raise ConfigError(f"config key '{key('warmup_epochs')}': a warm-up of "
                          f"{train['warmup_epochs']} epochs fills the whole run of {epochs}; "
                          f"make it shorter than epochs")
    late = [m for m in train.get("milestones") or [] if epochs is not None and m >= epochs]
    if schedule == "multistep" and late:
        raise ConfigError(f"config key '{key('milestones')}': milestones {late} come at or "
                          f"after the last epoch ({epochs}), so the lr never decays there; "
                          "drop them or lower them below epochs")
