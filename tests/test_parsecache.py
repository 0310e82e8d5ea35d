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

from nclayers import parsecache
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
    again, defaults_again = plan(tiny())
    planned = prepare(tiny())
    assert again == first == planned
    assert defaults_again == defaults == option_defaults(list(planned.runs.values()))


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
    moved["data"] = {"root": "elsewhere"}
    assert key(moved) != base  # the config differs, and so do the runs' specs


def test_the_key_follows_the_code(cache, monkeypatch):
    base = parsecache.key(tiny(), local=True, schema=SCHEMA)
    monkeypatch.setattr(parsecache, "_source_digest", lambda: "another clone's source")
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) != base


def test_what_the_key_cannot_cover_is_planned_each_time(cache, monkeypatch):
    cuda = {**tiny(), "device": "cuda"}
    assert parsecache.key(cuda, local=True, schema=SCHEMA) is None  # asks this machine's driver
    assert parsecache.key(cuda, local=False, schema=SCHEMA) is not None  # the job checks
    bert = tiny()
    bert["architectures"] = {"enc": {"name": "bert"}}
    assert parsecache.key(bert, local=True, schema=SCHEMA) is None  # reads the HF cache
    monkeypatch.setattr(parsecache, "MAX_DATA_FILES", 2)
    Path("data").mkdir()
    for name in "abc":
        (Path("data") / name).write_text(name)
    assert parsecache.key(tiny(), local=True, schema=SCHEMA) is None
    assert parsecache.remembered(None, lambda: {"plan": 1}) == {"plan": 1}
    assert not cache.exists()


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

    assert parsecache.remembered("k", compute) == {"runs": {"r": [1, 2]}}
    (cache / "k.json").write_text('{"runs": ')  # cut short
    assert parsecache.remembered("k", compute) == {"runs": {"r": [1, 2]}}
    assert parsecache.remembered("k", compute) == {"runs": {"r": [1, 2]}}
    assert len(calls) == 2
    assert parsecache.remembered("t", lambda: {"shape": (1, 8, 8)}) == {"shape": (1, 8, 8)}
    assert not (cache / "t.json").exists()  # JSON would read it back as a list: not kept


def test_only_the_newest_plans_are_kept(cache, monkeypatch):
    monkeypatch.setattr(parsecache, "KEEP", 3)
    for i in range(5):
        parsecache.remembered(f"k{i}", lambda i=i: {"plan": i})
        os.utime(cache / f"k{i}.json", ns=(i, i))  # their order, whatever the clock's grain
    parsecache.remembered("k5", lambda: {"plan": 5})
    assert sorted(p.stem for p in cache.glob("*.json")) == ["k3", "k4", "k5"]
    assert not list(cache.glob(".*"))  # no temporary file left


def test_resume_every_reads_the_planned_groups():
    config = prepare(tiny()).config
    config["train"]["resume_every"] = 5
    planned = prepare(config)
    assert resume_every(planned.config, planned.design) == {run: 5 for run in planned.runs}


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
