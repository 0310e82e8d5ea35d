"""Datasets registry: each loader returns the train and test splits as in-memory tensors.

Keeping whole (small) datasets as tensors and slicing batches by index is much faster than a
``DataLoader`` for the models here (see benchmarks/), and makes shuffling exactly reproducible.

``load(name, root=..., download=..., seed=..., **options)`` reads a dataset's raw splits (the
registry entry), then applies the options every dataset takes (:class:`Preparation`). The
image datasets are read by the real torchvision classes from files under ``root`` and converted
from their arrays in one go (never image by image through PIL).
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import importlib.util
import inspect
import math
import pickle
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nclayers import datacache
from nclayers.glue import TASKS, GlueTask
from nclayers.splits import DatasetUnavailable, SmallClass, Splits, balanced_index
from nclayers.vocabulary import DEFAULT_ROOT

_FIX = "set data.download: true on a machine with internet, or copy the files there"
_FIX_CORRUPT = ("delete and download them again (data.download: true, on a machine with "
                "internet), or copy the original files there")


# --- options every dataset takes ------------------------------------------------------------

@dataclass(frozen=True)
class Preparation:
    """The generic dataset options, applied in this order to the raw splits:

    1. ``per_class`` / ``test_per_class``: a class-balanced subset of n samples per class
       (parker2023), drawn with a fixed generator: every seed and run sees the same subset;
    2. pixels to float32 (uint8 images to [0, 1]);
    3. ``label_noise``: that share of the *train* labels, exactly round(share·N), replaced by
       a uniformly random different class (galanti2022), drawn from the run's seed;
    4. ``resize``: bilinear resize to resize×resize (e.g. MNIST 28→32 for VGG/ResNet);
    5. ``normalize``: per-channel mean/std standardisation with train-split statistics.

    Token ids (int64 features, the GLUE tasks) are neither made float nor normalised: ids are
    categories, not intensities; ``resize`` is refused for them as for vectors.
    """

    per_class: int | None = None
    test_per_class: int | None = None
    label_noise: float = 0.0
    normalize: bool = True
    resize: int | None = None

    def __post_init__(self) -> None:
        # Checked before any file is read, so a bad option fails fast.
        for key in ("per_class", "test_per_class", "resize"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"dataset option {key} must be a positive integer or null, "
                                 f"got {value!r}")
        if not 0 <= self.label_noise < 1:
            raise ValueError(f"dataset option label_noise must lie in [0, 1), "
                             f"got {self.label_noise!r}")

    def apply(self, raw: Splits, seed: int) -> Splits:
        c = raw.num_classes
        x_tr, y_tr = _balanced(raw.name, raw.x_train, raw.y_train, c, self.per_class, "per_class")
        x_te, y_te = _balanced(raw.name, raw.x_test, raw.y_test, c, self.test_per_class,
                               "test_per_class")
        tokens = x_tr.dtype == torch.int64
        if not tokens:
            x_tr, x_te = _to_float(x_tr), _to_float(x_te)
        y_tr = _noisy(y_tr, self.label_noise, c, seed)
        if self.resize is not None:
            x_tr, x_te = _resize(raw.name, x_tr, self.resize), _resize(raw.name, x_te, self.resize)
        if self.normalize and not tokens:
            x_tr, x_te = _standardised(x_tr, x_te)
        return Splits(raw.name, x_tr, y_tr, x_te, y_te, c)


def _balanced(name: str, x: Tensor, y: Tensor, num_classes: int, n: int | None,
              option: str) -> tuple[Tensor, Tensor]:
    if n is None:
        return x, y
    # A generator of its own, not the run's: the subset is part of the dataset's definition.
    try:
        order = balanced_index(y, n, torch.Generator().manual_seed(0), range(num_classes))
    except SmallClass as small:
        raise ValueError(f"dataset {name!r}: {option} = {n}, but class {small.label} has only "
                         f"{small.count} samples in that split; lower {option}") from None
    return x[order], y[order]


def _to_float(x: Tensor) -> Tensor:
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255)
    return x.to(torch.float32)


def _noisy(y: Tensor, share: float, num_classes: int, seed: int) -> Tensor:
    k = round(share * len(y))
    if k == 0:
        return y
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y), generator=generator)[:k]
    # An offset in 1..C-1 modulo C: uniform over the *other* classes, so exactly k labels change.
    offset = torch.randint(1, num_classes, (k,), generator=generator)
    y = y.clone()
    y[idx] = (y[idx] + offset) % num_classes
    return y


def _resize(name: str, x: Tensor, size: int) -> Tensor:
    # Bilinear on the in-memory tensors, antialias off (F.interpolate's default): exact for
    # the intended upsampling (28→32); a large downsampling (STL10 96→32) would alias.
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"dataset {name!r}: resize needs images (N, C, H, W), "
                         f"got shape {tuple(x.shape)}")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=False)


def _standardised(x_train: Tensor, x_test: Tensor) -> tuple[Tensor, Tensor]:
    dims = [d for d in range(x_train.ndim) if d != 1]  # all but the channel (feature) axis
    std, mean = torch.std_mean(x_train, dim=dims, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel stays finite
    # In place: the float tensors are ours, and a copy of CIFAR's would cost 600 MB.
    return x_train.sub_(mean).div_(std), x_test.sub_(mean).div_(std)


# --- readers of raw splits --------------------------------------------------------------------
# A reader is called as reader(root, download, **dataset-specific options) and returns the raw
# splits: images as uint8 (or float) N×C×H×W tensors, labels as int64.

def load_digits(root: Path | None = None, download: bool = False, *,
                test_fraction: float = 0.3) -> Splits:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes): offline, seconds to train.

    The train/test split is part of the dataset's definition, fixed and stratified, independent
    of the run's seed (scikit-learn's ``train_test_split``, ``random_state=0``). Pixels (0…16)
    are scaled to [0, 1].

    The file is read as scikit-learn's ``load_digits`` reads it, and the split's row numbers
    are kept as a fact of that file (:mod:`nclayers.datacache`, one file per user): a job that
    finds them does not import scikit-learn (1.3 s of each train and measure job of the default
    run, or of a fresh working directory's).
    """
    path = _digits_file()
    x, y = _read_digits(path)

    def split(_: Path) -> list[list[int]]:
        from sklearn.model_selection import train_test_split

        rows = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y,
                                random_state=0)
        return [part.tolist() for part in rows]

    version = importlib.metadata.version("scikit-learn")
    train, test = (np.asarray(rows, dtype=np.int64) for rows in datacache.facts(
        [path], f"split:{test_fraction!r}:scikit-learn {version}:{_source()}", split)[0])
    x = (x / 16).astype(np.float32)
    return Splits("digits", torch.from_numpy(x[train].reshape(-1, 1, 8, 8)),
                  torch.from_numpy(y[train]).long(), torch.from_numpy(x[test].reshape(-1, 1, 8, 8)),
                  torch.from_numpy(y[test]).long(), num_classes=10)


@functools.cache
def _source() -> str:
    """A digest of this module's source, part of the name of each fact that its code derives
    from a file (the digits split's rows, the class counts): the user's cache, which every
    clone and branch shares, never answers with what other code computed. (A file's md5 needs
    no such name.)"""
    return "source " + datacache.digest(Path(__file__), "sha256")[:16]


def _digits_file() -> Path:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing the package."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable("dataset 'digits' is scikit-learn's bundled digits, and "
                                 "scikit-learn is not installed; pip install scikit-learn")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def _read_digits(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(pixels as float64 rows of 64, labels as int): ``sklearn.datasets.load_digits``'s own
    reading of the file (``np.loadtxt`` of the gzipped CSV), so the same numbers."""
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int, copy=False)


def load_synthetic(root: Path | None = None, download: bool = False, *, num_classes: int = 4,
                   dim: int = 32, n_train: int = 400, n_test: int = 200,
                   separation: float = 4.0) -> Splits:
    """A Gaussian mixture for tests: vectors (N, dim), class c's mean at distance
    ``separation`` from the origin in a random direction, unit-variance noise, labels i mod C.

    Drawn with a fixed generator: the data are part of the dataset's definition, not the seed's.
    """
    if num_classes < 2 or min(dim, n_train, n_test) < 1:
        raise ValueError("dataset 'synthetic' needs num_classes ≥ 2 and dim, n_train, n_test ≥ 1")
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(num_classes, dim, generator=generator)
    means *= separation / means.norm(dim=1, keepdim=True)

    def sample(n: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(n) % num_classes
        return means[y] + torch.randn(n, dim, generator=generator), y

    (x_tr, y_tr), (x_te, y_te) = sample(n_train), sample(n_test)
    return Splits("synthetic", x_tr, y_tr, x_te, y_te, num_classes)


@dataclass(frozen=True)
class TorchvisionDataset:
    """A dataset read by its torchvision class from files under the data root."""

    name: str       # registry name
    cls_name: str   # class in torchvision.datasets
    input_shape: tuple[int, int, int]  # of one image, C × H × W
    num_classes: int = 10

    @property
    def cls(self) -> Any:
        import torchvision.datasets  # lazily: 1 s of import that digits runs do not need

        return getattr(torchvision.datasets, self.cls_name)

    def files(self) -> list[tuple[str, str | None]]:
        """(path under the root, md5 or None) of every file the torchvision class insists on,
        from the class's own attributes (so they always agree with what it checks)."""
        cls = self.cls
        if hasattr(cls, "resources"):  # MNIST family: decompressed IDX files, no checksum
            return [(f"{cls.__name__}/raw/{f.removesuffix('.gz')}", None)
                    for f, _ in cls.resources]
        if hasattr(cls, "split_list"):  # SVHN: .mat files straight in the root
            return [(cls.split_list[s][1], cls.split_list[s][2]) for s in ("train", "test")]
        listed = [*cls.train_list, *cls.test_list]  # STL10's include unlabeled_X.bin (2.6 GB)
        if hasattr(cls, "meta"):  # CIFAR
            listed.append([cls.meta["filename"], cls.meta["md5"]])
        return [(f"{cls.base_folder}/{f}", md5) for f, md5 in listed]

    def source(self) -> str:
        cls = self.cls
        if hasattr(cls, "resources"):
            return f"the {', '.join(f for f, _ in cls.resources)} of {cls.mirrors[0]}, gunzipped"
        if hasattr(cls, "split_list"):
            return " and ".join(cls.split_list[s][0] for s in ("train", "test"))
        return f"{cls.url}, extracted"

    def __call__(self, root: Path, download: bool) -> Splits:
        for rel, _ in self.files():  # torchvision reads a truncated IDX label file silently
            if rel.endswith("ubyte") and (root / rel).is_file():
                _check_idx(self.name, root / rel, self.input_shape[1:])
        try:
            splits = [self._arrays(self.cls(str(root), download=download, **self._split(train)))
                      for train in (True, False)]
        except Exception as err:  # torchvision, pickle, numpy and scipy.io all raise their own
            raise self._unreadable(root, download, err) from err
        for (x, y), split in zip(splits, ("train", "test"), strict=True):
            labels_ok = len(y) > 0 and 0 <= int(y.min()) <= int(y.max()) < self.num_classes
            if len(x) != len(y) or not labels_ok:
                raise DatasetUnavailable(f"dataset {self.name!r}: the {split} files in {root} "
                                         f"hold {len(x)} images for {len(y)} labels, or labels "
                                         f"outside 0..{self.num_classes - 1}: corrupt; "
                                         f"{_FIX_CORRUPT}")
        (x_tr, y_tr), (x_te, y_te) = splits
        return Splits(self.name, x_tr, y_tr, x_te, y_te, self.num_classes)

    def _split(self, train: bool) -> dict[str, Any]:
        # MNIST and CIFAR take train=...; SVHN and STL10 split=... (STL10: labelled splits only).
        if "split" in inspect.signature(self.cls).parameters:
            return {"split": "train" if train else "test"}
        return {"train": train}

    @staticmethod
    def _arrays(ds: Any) -> tuple[Tensor, Tensor]:
        x = torch.as_tensor(ds.data)
        if x.ndim == 3:  # MNIST family: N×H×W grayscale
            x = x.unsqueeze(1)
        elif hasattr(ds, "meta"):  # CIFAR stores N×H×W×C; SVHN and STL10 are N×C×H×W already
            x = x.permute(0, 3, 1, 2)
        labels = ds.targets if hasattr(ds, "targets") else ds.labels
        return x.contiguous(), torch.as_tensor(np.asarray(labels), dtype=torch.int64)

    def _unreadable(self, root: Path, download: bool, err: Exception) -> DatasetUnavailable:
        from torchvision.datasets.utils import check_integrity

        paths = [(root / rel, md5) for rel, md5 in self.files()]
        bad = [str(p) for p, md5 in paths if md5 and p.is_file() and not check_integrity(p, md5)]
        if bad:
            return DatasetUnavailable(f"dataset {self.name!r}: {', '.join(bad)}: md5 mismatch, "
                                      f"corrupt or not the original files; {_FIX_CORRUPT} "
                                      f"(from {self.source()})")
        fix = ("check that this machine reaches the internet, or copy the files there"
               if download else _FIX_CORRUPT)
        return DatasetUnavailable(f"dataset {self.name!r}: cannot read or fetch "
                                  f"{', '.join(str(p) for p, _ in paths)}: "
                                  f"{type(err).__name__}: {err}; {fix} (from {self.source()})")


def _check_idx(name: str, path: Path, image_size: tuple[int, ...] = ()) -> None:
    """Raise unless an IDX file (magic 0 0 8 ndim, then ndim big-endian sizes, then uint8
    values) is exactly as long as its header says, and holds labels (one number each) or, for
    an images file, images of ``image_size`` (height, width)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(16)
    ndim = head[3] if len(head) >= 4 and head[:3] == b"\0\0\x08" else 0
    if 1 <= ndim <= 3 and len(head) >= 4 + 4 * ndim:
        dims = struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim])
        expected = 4 + 4 * ndim + math.prod(dims)
        wanted = image_size if "images" in path.name else ()
        if expected != size:
            problem = f"truncated or corrupt: its header promises {expected} bytes, it has {size}"
        elif tuple(dims[1:]) != tuple(wanted):
            what = f"images of {'×'.join(map(str, wanted))}" if wanted else "one label each"
            problem = (f"a file of {'×'.join(map(str, dims[1:])) or 'single values'} per "
                       f"sample, where {name} has {what}: not {name}'s file")
        else:
            return
    else:
        problem = "not an IDX ubyte file (bad header): corrupt"
    raise DatasetUnavailable(f"dataset {name!r}: {path} is {problem}; {_FIX_CORRUPT}")


DATASETS: dict[str, Callable[..., Splits]] = {
    "digits": load_digits,
    "synthetic": load_synthetic,
    "mnist": TorchvisionDataset("mnist", "MNIST", (1, 28, 28)),
    "fashion_mnist": TorchvisionDataset("fashion_mnist", "FashionMNIST", (1, 28, 28)),
    "cifar10": TorchvisionDataset("cifar10", "CIFAR10", (3, 32, 32)),
    "cifar100": TorchvisionDataset("cifar100", "CIFAR100", (3, 32, 32), num_classes=100),
    "svhn": TorchvisionDataset("svhn", "SVHN", (3, 32, 32)),
    "stl10": TorchvisionDataset("stl10", "STL10", (3, 96, 96)),
    **TASKS,  # the GLUE tasks: token ids for a BERT
}


def _reader(name: str) -> Callable[..., Splits]:
    if name not in DATASETS:
        # Registry order, digits (the offline default) first.
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def reads_files(name: str) -> bool:
    """Whether dataset ``name`` is read from files under the data root (not made in code)."""
    return isinstance(_reader(name), (TorchvisionDataset, GlueTask))


def dataset_options(name: str) -> list[str]:
    """The options a config entry may give for dataset ``name`` (besides ``name``): the
    reader's own keyword-only parameters, then the generic ones of :class:`Preparation`."""
    return list(dataset_defaults(name))


def dataset_defaults(name: str) -> dict:
    """The options of :func:`dataset_options` with the values dataset ``name`` uses where a
    config leaves them out: the reader's keyword-only parameters, then :class:`Preparation`'s."""
    params = inspect.signature(_reader(name)).parameters.values()
    own = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return {**own, **{f.name: f.default for f in fields(Preparation)}}


def check_available(name: str, root: str | None, download: bool,
                    cache: str | Path | None = None) -> None:
    """Raise :class:`DatasetUnavailable` if files of dataset ``name`` are missing under ``root``,
    are IDX files (the MNIST family) shorter or longer than their header says, or are not the
    files whose md5 torchvision lists (CIFAR, SVHN, STL10).

    For checking a config before any job runs: each file's md5 is computed once per version of
    the file and kept in ``cache`` (:mod:`nclayers.datacache`, by default one file per user),
    so only the first check pays the hashing. Nothing to check for
    the in-code datasets or when the files will be downloaded.
    """
    reader = _reader(name)
    base = Path(root or DEFAULT_ROOT)
    if isinstance(reader, GlueTask) and not download:
        reader.check_present(base)
    if download or not isinstance(reader, TorchvisionDataset):
        return
    missing = [base / rel for rel, _ in reader.files() if not (base / rel).is_file()]
    if missing:
        raise _missing(reader, base, missing)
    for rel, _ in reader.files():
        if rel.endswith("ubyte"):
            _check_idx(name, base / rel, reader.input_shape[1:])
    _check_md5(reader, base, cache)


def _missing(reader: TorchvisionDataset, base: Path, missing: list[Path]) -> DatasetUnavailable:
    where = "" if base.is_dir() else f" (the data root {base} does not exist)"
    message = (f"dataset {reader.name!r}: missing {', '.join(map(str, missing))}{where}; {_FIX} "
               f"(from {reader.source()})")
    gz = [f"{p}.gz" for p in missing if Path(f"{p}.gz").is_file()]
    if gz:
        message += f"; found {', '.join(gz)}: decompress them (gunzip -k)"
    return DatasetUnavailable(message)


def _check_md5(reader: TorchvisionDataset, base: Path, cache: str | Path | None) -> None:
    listed = [(base / rel, md5) for rel, md5 in reader.files() if md5]
    digests = datacache.facts([path for path, _ in listed], "md5", datacache.md5, cache)
    bad = [str(path) for (path, md5), digest in zip(listed, digests, strict=True)
           if digest != md5]
    if bad:  # the message of TorchvisionDataset._unreadable
        raise DatasetUnavailable(f"dataset {reader.name!r}: {', '.join(bad)}: md5 mismatch, "
                                 f"corrupt or not the original files; {_FIX_CORRUPT} "
                                 f"(from {reader.source()})")


# --- class counts from the label data alone, for the checks before any job runs ---------------

def class_counts(name: str, root: str | Path | None, cache: str | Path | None = None
                 ) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """The class counts of the train and test splits of CIFAR10/100, SVHN or STL10 as
    :func:`load` would see them, read from the label data of their files alone and cached
    like the md5s (``cache``); None for a split whose files are missing, not the original
    ones (md5) or unreadable, and for the other datasets."""
    reader = _reader(name)
    recipe = _label_files(reader.cls) if isinstance(reader, TorchvisionDataset) else None
    if recipe is None:
        return None, None
    train, test, read = recipe
    base = Path(root or DEFAULT_ROOT)
    return (_split_counts(reader, base, train, read, cache),
            _split_counts(reader, base, test, read, cache))


def _label_files(cls: Any) -> tuple[list[str], list[str], Callable[[Path], np.ndarray]] | None:
    """The files (under the root) that hold the train and test labels, as the torchvision
    class reads them, and their reader; None for the MNIST family (see preflight)."""
    if hasattr(cls, "meta"):  # CIFAR: every pickled batch holds its labels
        return ([f"{cls.base_folder}/{f}" for f, _ in cls.train_list],
                [f"{cls.base_folder}/{f}" for f, _ in cls.test_list], _cifar_labels)
    if hasattr(cls, "split_list"):  # SVHN: the y of each .mat
        return [cls.split_list["train"][1]], [cls.split_list["test"][1]], _svhn_labels
    if hasattr(cls, "train_list"):  # STL10: train_y.bin and test_y.bin, after the images
        return ([f"{cls.base_folder}/{cls.train_list[1][0]}"],
                [f"{cls.base_folder}/{cls.test_list[1][0]}"], _stl10_labels)
    return None


def _cifar_labels(path: Path) -> np.ndarray:
    with path.open("rb") as f:  # as torchvision's CIFAR10 reads a batch
        entry = pickle.load(f, encoding="latin1")
    return np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"])


def _svhn_labels(path: Path) -> np.ndarray:
    import scipy.io

    # torchvision's SVHN: y as int64, digit 0 written as 10; only y is read (X is skipped).
    labels = scipy.io.loadmat(str(path), variable_names=["y"])["y"].astype(np.int64).squeeze()
    np.place(labels, labels == 10, 0)
    return np.atleast_1d(labels)


def _stl10_labels(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint8) - 1  # torchvision's STL10: 1-based, as uint8


def _split_counts(reader: TorchvisionDataset, base: Path, rels: list[str],
                  read: Callable[[Path], np.ndarray], cache: str | Path | None
                  ) -> tuple[int, ...] | None:
    paths = [base / rel for rel in rels]
    if not all(path.is_file() for path in paths):
        return None
    expected = dict(reader.files())
    digests = datacache.facts(paths, "md5", datacache.md5, cache)
    if any(digest != expected.get(rel) for digest, rel in zip(digests, rels, strict=True)):
        return None  # the job says which file is corrupt (or downloads it again)
    per_file = datacache.facts(paths, f"labels:{reader.cls_name}:{_source()}",
                               lambda path: _label_bincount(read, path), cache)
    if any(c is None or len(c) > reader.num_classes for c in per_file):
        return None  # unreadable or labels out of range: the job names the files
    total = np.zeros(reader.num_classes, np.int64)
    for counts in per_file:
        total[:len(counts)] += counts
    return tuple(int(n) for n in total)


def _label_bincount(read: Callable[[Path], np.ndarray], path: Path) -> list[int] | None:
    try:
        return np.bincount(read(path)).tolist()
    except Exception:  # pickle, scipy.io and numpy all raise their own; the job reports it
        return None


def load(name: str, *, root: str | None = None, download: bool = False, seed: int = 0,
         **options: Any) -> Splits:
    """Dataset ``name``'s splits with ``options`` applied (see :func:`dataset_options`).

    ``root`` is where the torchvision datasets' files are (default :data:`DEFAULT_ROOT`),
    ``download`` lets torchvision fetch missing ones, ``seed`` (the run's) draws the label noise.
    """
    unknown = sorted(set(options) - set(dataset_options(name)))
    if unknown:
        raise ValueError(f"dataset {name!r} has no option {', '.join(unknown)}; allowed: "
                         f"{', '.join(dataset_options(name))}")
    generic = {f.name for f in fields(Preparation)}
    preparation = Preparation(**{k: v for k, v in options.items() if k in generic})
    check_available(name, root, download)
    return preparation.apply(read_raw(name, root, download, **options), seed)


def read_raw(name: str, root: str | None = None, download: bool = False,
             **options: Any) -> Splits:
    """Dataset ``name``'s raw splits from its reader, given the reader's own options (the
    generic ones of :class:`Preparation` among ``options`` are left for :func:`load`)."""
    generic = {f.name for f in fields(Preparation)}
    own = {k: v for k, v in options.items() if k not in generic}
    return _reader(name)(Path(root or DEFAULT_ROOT), download, **own)


def batches(
    x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches by slicing; shuffled with ``generator`` when one is given."""
    n = len(x)
    if generator is None:
        for i in range(0, n, batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    order = torch.randperm(n, generator=generator).to(x.device)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


class Batches:
    """A re-iterable view of (x, y) in fixed order, for the multi-pass measurement."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return batches(self.x, self.y, self.batch_size)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)
