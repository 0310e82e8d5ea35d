"""CIFAR's, SVHN's and STL10's files checked at `snakemake -n`: their md5s (computed once per
version of a file, then read from the user's cache) and their labels' class counts
against the sample sizes asked for. Tiny files in the real formats (tests/test_data.py), read by
the real code; only torchvision's expected md5s are those of the tiny files, patched in this
process by ``build`` and in snakemake's through a sitecustomize module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
from conftest import tiny_config
from test_config import dry_run_refuses, refused
from test_data import build

from nclayers import data, datacache
from nclayers.experiment import ConfigError
from nclayers.preflight import _raw_counts, check_config, describe

LABELLED = ["cifar10", "cifar100", "svhn", "stl10"]
CACHE = Path("cache/datafiles.json")  # under tmp_path, each test's own (NCLAYERS_DATA_CACHE)


def skewed(classes: int) -> np.ndarray:
    """Train labels with every class: class 0 (SVHN's "10") the largest, class 4 the smallest
    (2 samples), the others 3 or more."""
    labels = np.r_[np.arange(3 * classes) % classes, [0] * 5, [7] * 2]
    return np.r_[labels[labels != 4], [4, 4]]


def tiny(name: str, tmp_path: Path, monkeypatch) -> Path:
    """Tiny files of ``name`` under tmp_path/data (train labels :func:`skewed`, the test split
    2 a class), tmp_path the working directory and tmp_path/CACHE the data files' cache;
    returns the data root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NCLAYERS_DATA_CACHE", str(tmp_path / CACHE))
    classes = 100 if name == "cifar100" else 10
    build(name, tmp_path / "data", monkeypatch, n_test=2 * classes, y_train=skewed(classes))
    return tmp_path / "data"


def config_for(name: str, root: Path, features: int = 1, **options) -> dict:
    config = tiny_config(datasets={"d": {"name": name, **options}},
                         data={"root": str(root), "download": False})
    config["features"]["per_class"] = features
    return config


@pytest.mark.parametrize("name", LABELLED)
def test_counts_are_those_of_the_loaded_labels(name, tmp_path, monkeypatch):
    root = tiny(name, tmp_path, monkeypatch)
    shape, classes, train, test = _raw_counts(name, {}, root)
    s = data.load(name, root=str(root), normalize=False)
    assert (shape, classes) == (s.input_shape, s.num_classes)
    assert train == tuple(np.bincount(s.y_train.numpy(), minlength=classes))
    assert test == tuple(np.bincount(s.y_test.numpy(), minlength=classes))
    assert min(train) == 2 and train[0] > train[1]  # SVHN's 10 is digit 0


@pytest.mark.parametrize(("name", "key", "needles"), [
    ("svhn", "per_class", ["datasets.d.per_class", "train split has 2", "at most 2"]),
    ("stl10", "per_class", ["datasets.d.per_class", "train split has 2", "at most 2"]),
    ("cifar100", "per_class", ["datasets.d.per_class", "train split has 2", "at most 2"]),
    ("stl10", "test_per_class", ["datasets.d.test_per_class", "test split has 2"]),
    ("svhn", "features", ["features.per_class", "dataset 'd' has 2", "at most 2"]),
])
def test_sample_sizes_above_the_smallest_class_are_refused(name, key, needles, tmp_path,
                                                            monkeypatch):
    root = tiny(name, tmp_path, monkeypatch)
    check_config(config_for(name, root, per_class=2, test_per_class=2, features=2))
    config = (config_for(name, root, features=3) if key == "features"
              else config_for(name, root, **{key: 3}))
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert all(needle in str(error.value) for needle in needles), error.value


def counting(monkeypatch, module, name: str) -> list[Path]:
    """Record the paths module.name is called with (it still runs)."""
    calls, real = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda path, *a: calls.append(path) or real(path, *a))
    return calls


def flip(path: Path, keep_mtime: bool = False) -> None:
    """Flip bytes in the middle of ``path``: same size, and with keep_mtime the same mtime (as
    ``cp -p`` or ``tar x`` would leave a file)."""
    stat = path.stat()
    content = bytearray(path.read_bytes())
    middle = len(content) // 2
    content[middle:middle + 8] = bytes(255 - b for b in content[middle:middle + 8])
    path.write_bytes(bytes(content))
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def test_a_second_check_hashes_and_unpickles_nothing(tmp_path, monkeypatch):
    root = tiny("cifar10", tmp_path, monkeypatch)
    hashed = counting(monkeypatch, datacache, "md5")
    unpickled = counting(monkeypatch, data, "_cifar_labels")
    config = config_for("cifar10", root, per_class=2)
    check_config(config)
    assert len(hashed) == 7 and len(unpickled) == 6  # 5 train batches, test, meta
    assert (tmp_path / CACHE).is_file()
    hashed.clear()
    unpickled.clear()
    check_config(config)
    assert describe("d", {"name": "cifar10"}, str(root)).train_counts[4] == 2
    assert hashed == [] and unpickled == []
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    flip(batch, keep_mtime=True)
    with pytest.raises(ConfigError, match="md5 mismatch") as error:
        check_config(config)
    assert hashed == [batch] and str(batch) in str(error.value)
    assert "data_batch_1" not in str(error.value) and "data.download: true" in str(error.value)


@pytest.mark.parametrize("garbage", [b"\x00\xff\xfe not json", b'{"version": 1, "fil', b"[1, 2]",
                                     b'{"version": 1, "files": {"/x": 5, "/y": {"facts": 1}}}',
                                     b'{"version": 1, "files": []}', b'"text"', b""])
def test_a_garbage_cache_is_ignored_and_rewritten(garbage, tmp_path, monkeypatch):
    root = tiny("stl10", tmp_path, monkeypatch)
    (tmp_path / CACHE).parent.mkdir(parents=True)
    (tmp_path / CACHE).write_bytes(garbage)
    hashed = counting(monkeypatch, datacache, "md5")
    assert describe("d", {"name": "stl10"}, str(root)).train_counts[4] == 2
    data.check_available("stl10", str(root), download=False)
    assert len(hashed) == 5  # train_X, train_y, unlabeled_X, test_X, test_y; the y's once
    cached = json.loads((tmp_path / CACHE).read_text())["files"]
    assert len(cached) == 5 and not any(name.endswith("tmp") for name in
                                        os.listdir(tmp_path / CACHE.parent))
    hashed.clear()
    data.check_available("stl10", str(root), download=False)
    assert hashed == []


def test_a_cache_that_cannot_be_written_costs_time_only(tmp_path, monkeypatch):
    root = tiny("svhn", tmp_path, monkeypatch)
    (tmp_path / "blocked").write_text("a file where the cache's folder would be")
    cache = tmp_path / "blocked" / "datafiles.json"
    hashed = counting(monkeypatch, datacache, "md5")
    for _ in range(2):
        data.check_available("svhn", str(root), download=False, cache=cache)
    assert len(hashed) == 4 and not (tmp_path / CACHE).exists()
    assert data.class_counts("svhn", root, cache=cache)[0][4] == 2


def test_with_download_corrupt_files_are_left_to_the_job(tmp_path, monkeypatch):
    root = tiny("cifar100", tmp_path, monkeypatch)
    flip(root / "cifar-100-python" / "train")
    data.check_available("cifar100", str(root), download=True)  # torchvision fetches it again
    assert data.class_counts("cifar100", root) == (None, (2,) * 100)


WRITER = """
import sys
from pathlib import Path
from nclayers import datacache
files = [Path(p) for p in sys.argv[2:]]
for i in range(40):
    datacache.facts(files, f"reader{i}", lambda path: i, sys.argv[1])
"""


def test_concurrent_writers_never_leave_a_torn_cache(tmp_path):
    cache = tmp_path / CACHE
    groups = [[tmp_path / f"f{w}-{i}" for i in range(20)] for w in range(4)]
    for path in sum(groups, []):
        path.write_text(path.name)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(cache), *map(str, files)])
               for files in groups]
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            if cache.is_file():
                seen.append(json.loads(cache.read_text())["version"])

    reader = threading.Thread(target=read)
    reader.start()
    codes = [w.wait() for w in writers]
    stop.set()
    reader.join()
    assert codes == [0] * 4 and seen and set(seen) == {1}
    assert len(json.loads(cache.read_text())["files"]) >= 20  # the last writer's at least
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left


# --- through the Snakefile's check of the config (nclayers.preflight.prepare) ----------------

def test_per_class_above_cifar10s_smallest_class_is_refused(tmp_path, monkeypatch):
    root = tiny("cifar10", tmp_path, monkeypatch)
    out = refused(config_for("cifar10", root, per_class=3),
                  "config key 'datasets.d.per_class': 3 samples per class",
                  "the smallest class of the train split has 2; lower it to at most 2")
    assert "md5" not in out
    assert len(json.loads((tmp_path / CACHE).read_text())["files"]) == 7


def test_a_corrupted_cifar10_batch_is_refused(tmp_path, monkeypatch):
    root = tiny("cifar10", tmp_path, monkeypatch)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    flip(batch)
    out = refused(config_for("cifar10", root), "config key 'datasets.d'",
                  f"{batch}: md5 mismatch", "data.download: true")
    assert "data_batch_1" not in out


# --- through the real snakemake -n: the wiring of the data checks and of their cache ----------

SITECUSTOMIZE = """
import json
from pathlib import Path

import torchvision.datasets as tvd

for cls, attrs in json.loads((Path(__file__).parent / "md5s.json").read_text()).items():
    for attr, value in attrs.items():
        setattr(getattr(tvd, cls), attr, value)
"""


def patch_snakemake(tmp_path: Path, monkeypatch) -> None:
    """Hand the tiny files' md5s, which ``build`` patched into torchvision's classes in this
    process, to the processes the tests start, through a sitecustomize module on PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir()
    md5s = {"CIFAR10": {a: getattr(tvd.CIFAR10, a) for a in ("train_list", "test_list",
                                                                "meta")}}
    (site / "md5s.json").write_text(json.dumps(md5s))
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.getenv("PYTHONPATH", "")]))


def test_a_corrupted_cifar10_batch_stops_the_dry_run(tmp_path, monkeypatch):
    """In a snakemake process of its own: one line, no traceback, no job, and the files' md5s
    cached in the user's cache (here tmp_path/CACHE) for the next dry run."""
    root = tiny("cifar10", tmp_path, monkeypatch)
    patch_snakemake(tmp_path, monkeypatch)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    flip(batch)
    out = dry_run_refuses(tmp_path, config_for("cifar10", root), "config key 'datasets.d'",
                          f"{batch}: md5 mismatch", "data.download: true")
    assert "data_batch_1" not in out
    assert len(json.loads((tmp_path / CACHE).read_text())["files"]) == 7
