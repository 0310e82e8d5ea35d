"""The datasets registry: tiny files in the real on-disk formats, read by the real torchvision
classes (only their expected md5s are patched to those of the tiny files), and real MNIST."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
import torchvision.datasets as tvd

from nclayers import data, models
from nclayers.data import DatasetUnavailable
from nclayers.train import Recipe, fit

VISION = ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10"]
GENERIC = ["per_class", "test_per_class", "label_noise", "normalize", "resize"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX ubyte: magic 0 0 8 ndim, the sizes as big-endian uint32, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, x: dict, y: dict) -> None:
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", x[split][:, 0])
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", y[split])


def write_cifar(root: Path, monkeypatch, cls, x: dict, y: dict) -> None:
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if cls is tvd.CIFAR10 else "fine_labels"

    def dump(name: str, obj: dict) -> list[str]:
        with (folder / name).open("wb") as f:
            pickle.dump(obj, f)
        return [name, md5(folder / name)]

    # Rows of 3072 bytes: the red, green and blue 32×32 planes, as in the real batches.
    train = [dump(name, {"data": xs.reshape(len(xs), -1), label_key: ys.tolist()})
             for name, xs, ys in zip([f for f, _ in cls.train_list],
                                     np.array_split(x["train"], len(cls.train_list)),
                                     np.array_split(y["train"], len(cls.train_list)),
                                     strict=True)]
    test = [dump(cls.test_list[0][0], {"data": x["test"].reshape(len(x["test"]), -1),
                                       label_key: y["test"].tolist()})]
    meta = dump(cls.meta["filename"], {cls.meta["key"]: [f"class{i}" for i in range(100)]})
    monkeypatch.setattr(cls, "train_list", train)
    monkeypatch.setattr(cls, "test_list", test)
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": meta[1]})


def write_svhn(root: Path, monkeypatch, x: dict, y: dict) -> None:
    split_list = {}
    for split in ("train", "test"):
        url, name, _ = tvd.SVHN.split_list[split]
        labels = np.where(y[split] == 0, 10, y[split])[:, None]  # SVHN writes digit 0 as 10
        scipy.io.savemat(root / name, {"X": x[split].transpose(2, 3, 1, 0), "y": labels})
        split_list[split] = [url, name, md5(root / name)]
    monkeypatch.setattr(tvd.SVHN, "split_list", split_list)


def write_stl10(root: Path, monkeypatch, x: dict, y: dict) -> None:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    files = {"unlabeled_X.bin": b""}
    for split in ("train", "test"):
        # Column-major images (torchvision transposes H and W back), labels 1..10.
        files[f"{split}_X.bin"] = x[split].transpose(0, 1, 3, 2).tobytes()
        files[f"{split}_y.bin"] = (y[split] + 1).astype(np.uint8).tobytes()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    listed = {n: [n, md5(folder / n)] for n in files}
    monkeypatch.setattr(tvd.STL10, "train_list", [listed["train_X.bin"], listed["train_y.bin"],
                                                  listed["unlabeled_X.bin"]])
    monkeypatch.setattr(tvd.STL10, "test_list", [listed["test_X.bin"], listed["test_y.bin"]])


SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          "cifar100": (3, 32, 32), "svhn": (3, 32, 32), "stl10": (3, 96, 96)}


def build(name: str, root: Path, monkeypatch, n_train: int = 30, n_test: int = 20,
          y_train: np.ndarray | None = None) -> tuple[dict, dict]:
    """Write tiny random files of dataset ``name`` under ``root``; return (images, labels)
    per split as the loader should see them (N×C×H×W uint8, labels 0..C-1)."""
    rng = np.random.default_rng(0)
    classes = 100 if name == "cifar100" else 10
    labels = {"train": np.arange(n_train) % classes if y_train is None else y_train,
              "test": np.arange(n_test) % classes}
    images = {s: rng.integers(0, 256, (len(labels[s]), *SHAPES[name]), dtype=np.uint8)
              for s in labels}
    root.mkdir(parents=True, exist_ok=True)
    if name in ("mnist", "fashion_mnist"):
        folder = "MNIST" if name == "mnist" else "FashionMNIST"
        write_mnist(root, folder, images, labels)
    elif name in ("cifar10", "cifar100"):
        write_cifar(root, monkeypatch, tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100,
                    images, labels)
    elif name == "svhn":
        write_svhn(root, monkeypatch, images, labels)
    else:
        write_stl10(root, monkeypatch, images, labels)
    return images, labels


@pytest.mark.parametrize("name", VISION)
def test_real_formats_load_through_torchvision_and_round_trip(name, tmp_path, monkeypatch):
    images, labels = build(name, tmp_path, monkeypatch, n_train=200 if name == "cifar100" else 30)
    s = data.load(name, root=str(tmp_path), normalize=False)
    assert s.name == name and s.num_classes == (100 if name == "cifar100" else 10)
    assert s.input_shape == SHAPES[name] == data.DATASETS[name].input_shape
    for split in ("train", "test"):
        x, y = getattr(s, f"x_{split}"), getattr(s, f"y_{split}")
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.is_contiguous() and float(x.min()) >= 0 and float(x.max()) <= 1
        assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(images[split]))
        assert torch.equal(y, torch.from_numpy(labels[split]).long())


def test_normalize_standardises_each_channel_with_train_statistics(tmp_path, monkeypatch):
    images, _ = build("cifar10", tmp_path, monkeypatch)
    s = data.load("cifar10", root=str(tmp_path))
    assert s.x_train.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (s.x_train.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-5
    raw = {k: torch.from_numpy(v).float() / 255 for k, v in images.items()}
    mean = raw["train"].mean(dim=(0, 2, 3), keepdim=True)
    std = raw["train"].std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(s.x_test, (raw["test"] - mean) / std, atol=1e-5)


def test_per_class_subsets_are_balanced_fixed_and_checked(tmp_path, monkeypatch):
    y_train = np.r_[np.arange(60) % 10, [3] * 7]  # class 3 has 13 samples, the others 6
    images, _ = build("mnist", tmp_path, monkeypatch, y_train=y_train)
    root = str(tmp_path)
    a = data.load("mnist", root=root, seed=0, per_class=4, test_per_class=2, normalize=False)
    b = data.load("mnist", root=root, seed=9, per_class=4, test_per_class=2, normalize=False)
    assert torch.bincount(a.y_train).tolist() == [4] * 10
    assert torch.bincount(a.y_test).tolist() == [2] * 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    raw_rows = {row.tobytes() for row in images["train"]}
    assert all((x * 255).round().to(torch.uint8).numpy().tobytes() in raw_rows for x in a.x_train)
    with pytest.raises(ValueError, match="per_class = 7, but class 0 has only 6"):
        data.load("mnist", root=root, per_class=7)


def test_label_noise_changes_an_exact_share_of_train_labels_by_seed():
    clean = data.load("digits")
    noisy = data.load("digits", seed=0, label_noise=0.25)
    changed = noisy.y_train != clean.y_train
    assert int(changed.sum()) == round(0.25 * len(clean.y_train))  # each to another class
    assert set(noisy.y_train[changed].tolist()) == set(range(10))
    assert torch.equal(noisy.y_test, clean.y_test) and torch.equal(noisy.x_train, clean.x_train)
    assert torch.equal(data.load("digits", seed=0, label_noise=0.25).y_train, noisy.y_train)
    assert not torch.equal(data.load("digits", seed=1, label_noise=0.25).y_train, noisy.y_train)


def test_resize_is_bilinear_on_the_tensors(tmp_path, monkeypatch):
    images, _ = build("mnist", tmp_path, monkeypatch)
    s = data.load("mnist", root=str(tmp_path), resize=32, normalize=False)
    assert s.input_shape == (1, 32, 32) and s.x_test.shape[1:] == (1, 32, 32)
    expected = F.interpolate(torch.from_numpy(images["train"]).float() / 255, size=(32, 32),
                             mode="bilinear", align_corners=False, antialias=False)
    assert torch.allclose(s.x_train, expected)
    with pytest.raises(ValueError, match="resize needs images"):
        data.load("synthetic", resize=32)


def test_missing_files_name_dataset_paths_and_fix(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetUnavailable) as error:
        data.check_available("cifar10", str(root), download=False)
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert "'cifar10'" in message and str(root / "cifar-10-batches-py" / "data_batch_1") in message
    assert "does not exist" in message and "data.download: true" in message
    assert "cifar-10-python.tar.gz" in message
    with pytest.raises(DatasetUnavailable, match="data.download: true"):
        data.load("stl10", root=str(root))
    for name in ("digits", "synthetic"):
        data.check_available(name, None, download=False)
    data.check_available("cifar10", str(root), download=True)  # torchvision will fetch them


def test_missing_mnist_points_at_gzipped_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DatasetUnavailable) as error:
        data.check_available("mnist", str(tmp_path), download=False)
    assert str(raw / "t10k-labels-idx1-ubyte") in str(error.value)
    assert f"found {raw / 'train-images-idx3-ubyte.gz'}: decompress" in str(error.value)


@pytest.mark.parametrize("file", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_truncated_idx_file_is_named(file, tmp_path, monkeypatch):
    build("fashion_mnist", tmp_path, monkeypatch)
    path = tmp_path / "FashionMNIST" / "raw" / file
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetUnavailable, match="truncated or corrupt") as error:
        data.load("fashion_mnist", root=str(tmp_path))
    assert str(path) in str(error.value)


def test_checksum_mismatch_names_the_file(tmp_path, monkeypatch):
    build("cifar10", tmp_path, monkeypatch)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetUnavailable, match="corrupt or not the original files") as error:
        data.load("cifar10", root=str(tmp_path))
    assert str(path) in str(error.value) and "data_batch_1" not in str(error.value)


def test_unreadable_file_with_good_checksum_is_named(tmp_path, monkeypatch):
    build("svhn", tmp_path, monkeypatch)
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(b"not a mat file")
    url = tvd.SVHN.split_list["train"][0]
    monkeypatch.setitem(tvd.SVHN.split_list, "train", [url, path.name, md5(path)])
    with pytest.raises(DatasetUnavailable, match="cannot read") as error:
        data.load("svhn", root=str(tmp_path))
    assert str(path) in str(error.value)


def test_dataset_options_and_bad_options():
    assert data.dataset_options("digits") == ["test_fraction", *GENERIC]
    assert data.dataset_options("synthetic") == ["num_classes", "dim", "n_train", "n_test",
                                                  "separation", *GENERIC]
    assert all(data.dataset_options(name) == GENERIC for name in VISION)
    assert list(data.DATASETS) == ["digits", "synthetic", *VISION, "cola", "sst2", "mrpc",
                                   "rte"]
    assert all(data.dataset_options(name) == ["tokenizer", "max_length", *GENERIC]
               for name in ("cola", "sst2", "mrpc", "rte"))
    with pytest.raises(KeyError, match="unknown dataset 'cifar'; known: digits, synthetic"):
        data.dataset_options("cifar")
    with pytest.raises(ValueError, match="no option depth; allowed: test_fraction, per_class"):
        data.load("digits", depth=3)
    for bad in ({"label_noise": 1.0}, {"per_class": 0}, {"resize": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            data.load("mnist", root="/nonexistent", **bad)  # fails before looking for files


def test_synthetic_is_a_fixed_balanced_gaussian_mixture():
    a = data.load("synthetic", num_classes=3, dim=5, n_train=60, n_test=30, normalize=False)
    b = data.load("synthetic", num_classes=3, dim=5, n_train=60, n_test=30, normalize=False,
                  seed=4)
    assert a.x_train.shape == (60, 5) and a.x_test.shape == (30, 5) and a.num_classes == 3
    assert torch.bincount(a.y_train).tolist() == [20] * 3
    assert torch.equal(a.x_train, b.x_train) and a.x_train.dtype == torch.float32
    z = data.load("synthetic").x_train
    assert z.mean(dim=0).abs().max() < 1e-5 and (z.std(dim=0) - 1).abs().max() < 1e-5


def test_digits_pixels_without_normalisation_lie_in_unit_range():
    s = data.load("digits", normalize=False, test_fraction=0.5)
    assert float(s.x_train.min()) == 0 and float(s.x_train.max()) == 1
    assert len(s.y_train) + len(s.y_test) == 1797 and abs(len(s.y_test) - 898) <= 1


def real_mnist() -> Path:
    """The folder of the real MNIST test set's IDX files: the shared data folder beside the
    repository (../shared/data/mnist/raw), or $NCLAYERS_MNIST_RAW."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "raw"
    return Path(os.environ.get("NCLAYERS_MNIST_RAW", default))


def real_mnist_splits(tmp_path: Path) -> tuple[data.Splits, np.ndarray]:
    """The real MNIST test set as 8,000 train and 2,000 test digits, read through
    torchvision's MNIST loader from IDX files written under ``tmp_path``; and its labels."""
    raw = real_mnist()
    if not (raw / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the real MNIST test set (t10k-*-idx*-ubyte.gz) is not in {raw}; set "
                    "NCLAYERS_MNIST_RAW to its folder to run this test")
    images = np.frombuffer(gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes()),
                           np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes()),
                           np.uint8, offset=8)
    out = tmp_path / "MNIST" / "raw"
    for prefix, part in (("train", slice(0, 8000)), ("t10k", slice(8000, None))):
        write_idx(out / f"{prefix}-images-idx3-ubyte", images[part])
        write_idx(out / f"{prefix}-labels-idx1-ubyte", labels[part])
    return data.load("mnist", root=str(tmp_path)), labels


def test_real_mnist_digits_train_an_mlp(tmp_path):
    s, labels = real_mnist_splits(tmp_path)
    assert (len(s.y_train), len(s.y_test), s.input_shape) == (8000, 2000, (1, 28, 28))
    assert torch.equal(s.y_test, torch.from_numpy(labels[8000:].astype(np.int64)))
    torch.manual_seed(0)
    model = models.build("mlp", s.input_shape, 10, depth=2, width=128)
    log = fit(model, s, Recipe(epochs=3, batch_size=128, lr=0.01, loss="ce"), seed=0,
              progress=False)
    assert log[0]["test_acc"] < 0.3 and log[-1]["test_acc"] > 0.9


def test_float32_arithmetic_on_real_mnist_matches_the_dense_reference(tmp_path):
    """An MLP trained 2 epochs on real digits, measured with ``precision="float32"``: every
    metric of every layer (the input's 784 pixels, two hidden layers of 128, the logits) within
    the property tests' 1e-5 of the dense float64 reference on the same activations, the NCC
    and NC4 counts equal; the float64 path within their 1e-8."""
    from nclayers.measurement import measure
    from nclayers.metrics import SKETCH_COLUMNS
    from nclayers.metrics_dense import dense_metrics
    from nclayers.taps import tap

    s, _ = real_mnist_splits(tmp_path)
    torch.manual_seed(0)
    model = models.build("mlp", s.input_shape, 10, depth=2, width=128)
    fit(model, s, Recipe(epochs=2, batch_size=128, lr=0.01, loss="ce"), seed=0, progress=False)
    model.eval()
    layers = model.tapped_layers
    batches = [data.Batches(x, y, 1000) for x, y in ((s.x_train, s.y_train), (s.x_test, s.y_test))]
    h, pred = {}, {}  # the activations and predictions measure sees: the same batches
    with torch.no_grad(), tap(model, layers) as acts:
        for split, split_batches in zip(("train", "test"), batches, strict=True):
            parts = []
            for x, _ in split_batches:
                parts.append((model(x).argmax(dim=1), {n: acts[n].flatten(1) for n in layers}))
            pred[split] = torch.cat([p for p, _ in parts]).numpy()
            h[split] = {n: torch.cat([a[n] for _, a in parts]).double().numpy() for n in layers}
    y_train, y_test = s.y_train.numpy(), s.y_test.numpy()
    for precision, rel in (("float32", 1e-5), ("float64", 1e-8)):
        got = measure(model, *batches, precision=precision, consumers={})
        for name in layers:
            for split, y in (("train", y_train), ("test", y_test)):
                want = dense_metrics(h["train"][name], y_train, h[split][name], y, pred[split], 10)
                rows = got[(got["layer"] == name) & (got["split"] == split)]
                for metric, value in zip(rows["metric"], rows["value"], strict=True):
                    if metric not in want or (metric == "stable_rank"
                                              and h[split][name].shape[1] > SKETCH_COLUMNS):
                        continue  # the stable rank's Nyström estimate: tests/test_metrics.py
                    assert value == pytest.approx(want[metric], rel=rel, abs=1e-12), (
                        precision, name, split, metric)


def test_the_one_balanced_sampler_draws_n_of_each_class_in_the_splits_order():
    from nclayers.splits import SmallClass, balanced_index

    y = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2, 1, 1])
    got = balanced_index(y, 2, torch.Generator().manual_seed(3))
    assert got.tolist() == sorted(got.tolist()) and torch.bincount(y[got]).tolist() == [2, 2, 2]
    assert got.equal(balanced_index(y, 2, torch.Generator().manual_seed(3)))
    # The draw is, class by class, a permutation of that class's positions: the same as the
    # loop every caller used to write.
    generator, want = torch.Generator().manual_seed(3), []
    for c in (0, 1, 2):
        idx = torch.nonzero(y == c).flatten()
        want += idx[torch.randperm(len(idx), generator=generator)[:2]].tolist()
    assert got.tolist() == sorted(want)
    with pytest.raises(SmallClass) as small:
        balanced_index(y, 2, torch.Generator(), classes=range(4))
    assert (small.value.label, small.value.count) == (3, 0)


@pytest.mark.parametrize("test_fraction", [0.3, 0.5])
def test_digits_are_scikit_learns_split_read_without_importing_it(test_fraction, tmp_path,
                                                                 monkeypatch):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    monkeypatch.setenv("NCLAYERS_DATA_CACHE", str(tmp_path / "datafiles.json"))  # the user's
    x, y = load_digits(return_X_y=True)
    parts = train_test_split((x / 16).astype(np.float32), y, test_size=test_fraction,
                             stratify=y, random_state=0)
    for splits in (data.load_digits(test_fraction=test_fraction),  # learns the split's rows
                   data.load_digits(test_fraction=test_fraction)):  # reads them
        got = (splits.x_train.reshape(-1, 64), splits.x_test.reshape(-1, 64), splits.y_train,
               splits.y_test)
        for tensor, want in zip(got, parts, strict=True):
            assert torch.equal(tensor, torch.from_numpy(want).to(tensor.dtype))
    # A later process (a job), in another working directory too, takes the rows from the
    # user's cache and never imports scikit-learn.
    code = ("import sys; from nclayers import data; "
            f"s = data.load_digits(test_fraction={test_fraction}); "
            "print(len(s.y_train), 'sklearn' in sys.modules)")
    (tmp_path / "elsewhere").mkdir()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path / "elsewhere").stdout.split()
    assert out == [str(len(parts[2])), "False"]
    assert (tmp_path / "datafiles.json").is_file()


def test_a_split_learnt_by_other_code_is_learnt_again(monkeypatch, tmp_path):
    """The user's cache is shared by every clone and branch: a fact is used only by the code
    that computed it (data._source, a digest of data.py, is part of its name)."""
    import sklearn.model_selection

    monkeypatch.setenv("NCLAYERS_DATA_CACHE", str(tmp_path / "datafiles.json"))
    real, calls = sklearn.model_selection.train_test_split, []

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sklearn.model_selection, "train_test_split", spy)
    first = data.load_digits()
    data.load_digits()
    assert len(calls) == 1  # learnt, then read
    assert re.fullmatch("source [0-9a-f]{16}", data._source())
    monkeypatch.setattr(data, "_source", lambda: "source of another clone")
    again = data.load_digits()
    assert len(calls) == 2 and torch.equal(again.y_train, first.y_train)


def test_the_user_cache_folder_follows_xdg_and_survives_no_home(monkeypatch, tmp_path):
    """The folder the data files' facts and UMAP's compiled code share (nclayers.usercache)."""
    from nclayers.usercache import user_cache_folder

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_folder() == tmp_path / "home" / ".cache" / "nclayers"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_folder() == tmp_path / "xdg" / "nclayers"
    # No home at all (a system account's job): a folder of the user's in the temporary one.
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # gettempdir's answer

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", no_home)
    assert user_cache_folder() == tmp_path / "tmp" / f"nclayers-cache-{os.getuid()}"


def test_the_data_files_cache_is_one_per_user_and_can_be_moved(monkeypatch, tmp_path):
    from nclayers.datacache import default_cache

    monkeypatch.delenv("NCLAYERS_DATA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache() == tmp_path / "xdg" / "nclayers" / "datafiles.json"
    monkeypatch.setenv("NCLAYERS_DATA_CACHE", str(tmp_path / "mine.json"))
    assert default_cache() == tmp_path / "mine.json"
