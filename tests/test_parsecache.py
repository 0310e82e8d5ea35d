"""The plan of an experiment kept per user (nclayers.parsecache): the same plan as planning it,
a call like an earlier one without torch, and a new plan whenever what it depends on changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nclayers import parsecache, preflight
from nclayers.experiment import ConfigError, resume_every
from nclayers.preflight import SCHEMA, plan, prepare

ROOT = Path(__file__).resolve().parents[1]


def tiny() -> dict:
    return yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty plan cache, and a working directory of the test's own (the data root)."""
    monkeypatch.setenv("NCLAYERS_PARSE_CACHE", str(tmp_path / "plans"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "plans"


def test_a_kept_plan_is_the_plan(cache):
    """A second plan of the same config comes from the cache and equals what planning gives:
    the experiment of prepare() and the design job's defaults."""
    from nclayers.design import option_defaults

    first, defaults = plan(tiny())
    assert len(list(cache.glob("*.json"))) == 1
    planned = prepare(tiny())
    with pytest.MonkeyPatch.context() as patch:  # the second plan is read, not planned
        patch.setattr(preflight, "prepare", lambda *a, **k: pytest.fail("planned again"))
        again, defaults_again = plan(tiny())
    assert repr(again) == repr(first) == repr(planned)  # types and order too
    assert defaults_again == defaults == option_defaults(list(planned.runs.values()))


def two_groups(order: list[str]) -> dict:
    """The tiny experiment in two groups, one sweeping lr, the other momentum, in ``order``."""
    config = tiny()
    groups = {"one": {"train": {"lr": [0.1, 0.05]}}, "two": {"train": {"momentum": [0.9, 0.5]}}}
    config["groups"] = {name: groups[name] for name in order}
    return config


def test_the_order_of_the_config_is_part_of_the_plan(cache):
    """Runs and axes follow the config's order: a config that only reorders its groups is
    another plan, and each kept plan is its own config's."""
    for order in (["one", "two"], ["two", "one"], ["one", "two"], ["two", "one"]):
        kept, _ = plan(two_groups(order))
        planned = prepare(two_groups(order))
        assert repr(kept) == repr(planned)
    assert len(list(cache.glob("*.json"))) == 2
    assert prepare(two_groups(["one", "two"])).design["axes"] != \
        prepare(two_groups(["two", "one"])).design["axes"]


@pytest.mark.parametrize("change", [
    {"data": "/scratch/data"}, {"data": {"root": 5}}, {"architectures": "mlp"},
    {"datasets": {1: {}, "digits": {}}}, {"train": {"lr": 0.1, 3: 1}},
])
def test_a_config_the_schema_refuses_is_refused_with_its_message(cache, change):
    """The key reads the raw config: what it cannot read is planned, and the plan says what is
    wrong with it, as without the cache."""
    config = {**tiny(), **change}
    assert parsecache.key(config, local=True, schema=SCHEMA) is None
    with pytest.raises(ConfigError, match="config key"):
        plan(config)
    assert not list(cache.glob("*.json"))


def test_the_key_follows_what_the_plan_depends_on(cache):
    def key(config=None, local=True):
        return parsecache.key(config or tiny(), local=local, schema=SCHEMA)

    base = key()
    assert key() == base  # the same facts, the same key
    changed = tiny()
    changed["train"]["epochs"] = 4
    assert key(changed) != base
    assert key(local=False) != base
    data = Path("data")
    data.mkdir()  # an empty root holds what a missing one does: no file
    assert key() == base
    (data / "labels.bin").write_bytes(b"\0" * 8)
    added = key()
    assert added != base
    os.utime(data / "labels.bin", ns=(1, 1))  # a changed date, the same content
    assert key() != added
    moved = tiny()
    moved["data"] = {"root": "elsewhere"}  # the files are those of the config's root
    before = key(moved)
    Path("elsewhere").mkdir()
    (Path("elsewhere") / "labels.bin").write_bytes(b"\0")
    assert key(moved) != before


def test_the_key_follows_the_code(cache, monkeypatch, tmp_path):
    base = parsecache.key(tiny(), local=True, schema=SCHEMA)
    package = tmp_path / "package"
    package.mkdir()
    (package / "data.py").write_text("A = 1\n")
    monkeypatch.setattr(parsecache, "PACKAGE", package)
    other = parsecache.key(tiny(), local=True, schema=SCHEMA)
    assert other not in (None, base)
    (package / ".#data.py").symlink_to("editor@host.1234")  # Emacs' lock while editing
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) == other
    (package / "data.py").write_text("A = 2\n")
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) not in (None, other)


def test_what_the_key_cannot_cover_is_planned_each_time(cache, monkeypatch):
    cuda = {**tiny(), "device": "cuda"}
    assert parsecache.key(cuda, local=True, schema=SCHEMA) is None  # asks this machine's driver
    assert parsecache.key(cuda, local=False, schema=SCHEMA) is not None  # the job checks
    bert = tiny()
    bert["architectures"] = {"enc": {"name": "bert"}}
    assert parsecache.key(bert, local=True, schema=SCHEMA) is None  # reads the HF cache
    Path("data/x").mkdir(parents=True)
    (Path("data/x") / "a").symlink_to(".")  # a loop of links with no file in it
    (Path("data/x") / "b").symlink_to(".")
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) is None
    for link in ("a", "b"):
        (Path("data/x") / link).unlink()
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) is not None
    monkeypatch.setattr(parsecache, "MAX_DATA_ENTRIES", 3)
    for name in "abc":
        (Path("data") / name).write_text(name)
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) is None
    assert parsecache.remembered(lambda: None, lambda: {"plan": 1}, ["plan"]) == {"plan": 1}
    assert not cache.exists()


def test_a_folder_others_can_write_to_is_not_read(cache):
    """A plan there could have been put by someone else, and would skip the checks."""
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    parsecache.remembered(lambda: "k" * 64, lambda: {"plan": 1}, ["plan"])
    assert not list(cache.iterdir())


def test_a_fault_is_checked_again_and_said(cache):
    broken = tiny()
    broken["train"]["checkpoints"] = [0, 30]  # beyond epochs 3
    for _ in range(2):
        with pytest.raises(ConfigError, match="beyond"):
            plan(broken)
    assert not list(cache.glob("*.json"))


def test_a_damaged_or_foreign_entry_is_planned_again(cache):
    calls = []

    def compute():
        calls.append(1)
        return {"runs": {"r": [1, 2]}}

    k = "a" * 64
    for text in ('{"runs": ', "null", "{}", '{"other": 1}'):  # cut short, or another shape
        (cache / f"{k}.json").parent.mkdir(mode=0o700, exist_ok=True)
        (cache / f"{k}.json").write_text(text)
        assert parsecache.remembered(lambda: k, compute, ["runs"]) == {"runs": {"r": [1, 2]}}
    assert parsecache.remembered(lambda: k, compute, ["runs"]) == {"runs": {"r": [1, 2]}}
    assert len(calls) == 4  # the last one read
    t = "b" * 64
    kept = parsecache.remembered(lambda: t, lambda: {"shape": (1, 8, 8)}, ["shape"])
    assert kept == {"shape": (1, 8, 8)}
    assert not (cache / f"{t}.json").exists()  # JSON would read it back as a list: not kept


def test_a_plan_whose_key_changed_while_planning_is_not_kept(cache):
    """A data file that arrived while planning: the plan is of the new files, not the old."""
    keys = iter(["c" * 64, "d" * 64])
    assert parsecache.remembered(lambda: next(keys), lambda: {"plan": 1}, ["plan"]) == \
        {"plan": 1}
    assert not list(cache.glob("*.json"))


def test_only_the_newest_plans_are_kept(cache, monkeypatch):
    monkeypatch.setattr(parsecache, "KEEP", 3)
    cache.mkdir(mode=0o700)
    (cache / "notes.json").write_text("{}")  # not a plan: left alone
    os.utime(cache / "notes.json", ns=(0, 0))
    names = [f"{i}" * 64 for i in range(6)]
    for i, name in enumerate(names[:5]):
        parsecache.remembered(lambda name=name: name, lambda i=i: {"plan": i}, ["plan"])
        os.utime(cache / f"{name}.json", ns=(i + 1, i + 1))  # their order, whatever the clock
    parsecache.remembered(lambda: names[5], lambda: {"plan": 5}, ["plan"])
    assert sorted(p.stem for p in cache.glob("*.json")) == sorted([*names[3:], "notes"])
    assert not list(cache.glob(".*"))  # no temporary file left


def test_resume_every_reads_the_planned_groups():
    config = two_groups(["one", "two"])
    config["train"]["resume_every"] = 5
    config["groups"]["two"]["train"]["resume_every"] = 7
    planned = prepare(config)
    every = resume_every(planned.config, planned.design)
    assert every == {run: 5 if entry["group"] == "one" else 7
                     for run, entry in planned.design["runs"].items()}
    assert set(every.values()) == {5, 7} and list(every) == list(planned.runs)


def test_a_kept_plan_imports_no_torch(cache):
    """What `snakemake -n` gains: planning a config seen before, in a new process, imports
    neither torch nor the registries."""
    script = (f"import json, sys, yaml\n"
              f"from nclayers.preflight import plan\n"
              f"plan(yaml.safe_load(open({str(ROOT / '.test' / 'config.yaml')!r})))\n"
              f"print(json.dumps(sorted(m for m in ('torch', 'nclayers.data', "
              f"'nclayers.models') if m in sys.modules)))\n")
    env = {**os.environ, "NCLAYERS_PARSE_CACHE": str(cache)}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=env, check=True) for _ in range(2)]
    assert json.loads(runs[0].stdout) == ["nclayers.data", "nclayers.models", "torch"]
    assert json.loads(runs[1].stdout) == []


def test_the_walked_root_is_the_schemas_default():
    """The key walks ``data.root`` or DEFAULT_ROOT where the raw config has none: the folder
    the checks read once the schema's default is filled in."""
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["data"]["properties"]["root"]["default"] == \
        parsecache.DEFAULT_ROOT
