"""The GLUE tasks of benshaul2022 (CoLA, SST-2, MRPC, RTE) as token-id datasets for a BERT.

Each task is read from GLUE's own distribution files under ``<data root>/glue/<Task>/`` (the
layout of GLUE's ``download_glue_data.py``; ``data.download: true`` fetches them the same way):

- CoLA, SST-2 and RTE: ``train.tsv`` and ``dev.tsv`` from GLUE's zip of the task;
- MRPC: ``msr_paraphrase_train.txt`` (Microsoft's corpus as SentEval hosts it) and GLUE's
  ``dev_ids.tsv``, the pairs of that file that form the dev split; train is the rest.

GLUE's test labels are not public, so the dev split is the test split here, as in the papers
that report GLUE dev scores (benshaul2022 calls it the test set). The sentences (or sentence
pairs) are tokenized with a Hugging Face tokenizer (``tokenizer``: a hub name, fetched once
into Hugging Face's cache, or a local directory), padded or truncated to ``max_length`` tokens
(benshaul2022 App. B: 32, "both for computing NCC mismatch and maintaining same size
features"): the features are the token ids, int64 (N, max_length), which
:class:`nclayers.sequence.SequenceClassifier` takes. The segment (token type) ids of a pair are
not stored: the adapter rebuilds them from the [SEP] token, as the tokenizer assigns them.

The TSV files are read as GLUE's processors read them: tab-separated, no quoting; CoLA's have no
header (label in column 2, sentence in column 4); RTE's label is a word (``entailment`` is 0).
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nclayers.splits import DatasetUnavailable, Splits

FOLDER = "glue"
_HOST = "https://dl.fbaipublicfiles.com"


@dataclass(frozen=True)
class GlueTask:
    """One binary GLUE task, read from its files under ``<root>/glue/<folder>/``."""

    name: str                     # registry name
    folder: str                   # GLUE's folder name, e.g. "CoLA"
    files: tuple[str, str]        # what is read: (train, dev) or MRPC's (corpus, dev ids)
    urls: tuple[str, ...]         # what download fetches (a zip, or MRPC's two files)
    metric: str = "accuracy"      # what the paper reports on it (CoLA: Matthews correlation)
    num_classes: int = 2

    def paths(self, root: Path) -> list[Path]:
        return [root / FOLDER / self.folder / f for f in self.files]

    def source(self) -> str:
        return " and ".join(self.urls)

    def __call__(self, root: Path, download: bool, *, tokenizer: str = "bert-base-uncased",
                 max_length: int = 32) -> Any:
        """The task's train and dev splits as token ids (see the module docstring)."""
        if not isinstance(max_length, int) or max_length < 4:
            raise ValueError(f"dataset {self.name!r}: max_length must be an integer of at least "
                             f"4 tokens ([CLS], two [SEP] and one word), got {max_length!r}")
        if download:
            self.fetch(root)
        (text_tr, y_tr), (text_te, y_te) = self.read(root)
        encode = _tokenizer(self.name, tokenizer)
        return Splits(self.name, _ids(encode, text_tr, max_length), torch.as_tensor(y_tr),
                      _ids(encode, text_te, max_length), torch.as_tensor(y_te),
                      self.num_classes)

    def read(self, root: Path) -> tuple[tuple[list, np.ndarray], tuple[list, np.ndarray]]:
        """((texts, labels) of train, of dev): texts a list of sentences or of pairs."""
        self.check_present(root)
        try:
            rows = self._rows(root)
        except (ValueError, IndexError, KeyError, UnicodeDecodeError) as err:
            raise DatasetUnavailable(
                f"dataset {self.name!r}: cannot read {', '.join(map(str, self.paths(root)))} as "
                f"GLUE's {self.folder} files ({type(err).__name__}: {err}); delete them and "
                f"download them again (data.download: true), or copy the original files there "
                f"(from {self.source()})") from None
        out = []
        for split, (texts, labels) in zip(("train", "dev"), rows, strict=True):
            if not labels:
                raise DatasetUnavailable(f"dataset {self.name!r}: the {split} file of "
                                         f"{root / FOLDER / self.folder} holds no example")
            out.append((texts, np.asarray(labels, dtype=np.int64)))
        return out[0], out[1]

    def check_present(self, root: Path) -> None:
        """DatasetUnavailable naming the task's missing files and how to get them."""
        missing = [p for p in self.paths(root) if not p.is_file()]
        if missing:
            raise DatasetUnavailable(
                f"dataset {self.name!r}: missing {', '.join(map(str, missing))}; set "
                f"data.download: true on a machine with internet, or copy GLUE's files there "
                f"(from {self.source()})")

    def label_counts(self, root: Path) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
        """Class counts of train and dev from the files alone (no tokenizer); None, None where
        they are missing or unreadable (the job then says why)."""
        try:
            (_, y_tr), (_, y_te) = self.read(root)
        except Exception:  # missing or corrupt: the job names the files
            return None, None
        return tuple(np.bincount(y_tr, minlength=2).tolist()), \
            tuple(np.bincount(y_te, minlength=2).tolist())

    def fetch(self, root: Path) -> None:
        """Download what is missing, as GLUE's download script does (zip, or MRPC's files).

        Into a folder of this process's own, each file then renamed into place: the CE and
        SVSL jobs of a task may fetch at the same time, and neither must read the other's
        half-written file."""
        if all(p.is_file() for p in self.paths(root)):
            return
        from torchvision.datasets.utils import download_and_extract_archive, download_url

        folder = root / FOLDER / self.folder
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{self.folder}-") as tmp:
            if self.name == "mrpc":
                for url, name in zip(self.urls, self.files, strict=True):
                    download_url(url, tmp, name)
                fetched = Path(tmp)
            else:  # the zip holds <Task>/train.tsv, dev.tsv, test.tsv
                download_and_extract_archive(self.urls[0], tmp, remove_finished=True)
                fetched = Path(tmp) / self.folder
            for name in self.files:
                os.replace(fetched / name, folder / name)

    def _rows(self, root: Path) -> list[tuple[list, list]]:
        first, second = self.paths(root)
        if self.name == "mrpc":
            return _mrpc(first, second)
        return [_task_rows(self.name, path) for path in (first, second)]


def _tsv(path: Path) -> list[list[str]]:
    # utf-8-sig: MSR's corpus starts with a byte-order mark. No quoting: GLUE's sentences hold
    # unbalanced quotes.
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _task_rows(name: str, path: Path) -> tuple[list, list[int]]:
    rows = _tsv(path)
    if name == "cola":  # no header: source, label, original label, sentence
        return [r[3] for r in rows], [int(r[1]) for r in rows]
    header, body = rows[0], rows[1:]
    col = {key: header.index(key) for key in header}
    if name == "sst2":
        return [r[col["sentence"]] for r in body], [int(r[col["label"]]) for r in body]
    labels = {"entailment": 0, "not_entailment": 1}  # RTE
    return ([(r[col["sentence1"]], r[col["sentence2"]]) for r in body],
            [labels[r[col["label"]]] for r in body])


def _mrpc(corpus: Path, dev_ids: Path) -> list[tuple[list, list[int]]]:
    dev = {(r[0], r[1]) for r in _tsv(dev_ids) if r}
    rows = _tsv(corpus)
    col = {key: rows[0].index(key) for key in ("Quality", "#1 ID", "#2 ID", "#1 String",
                                                 "#2 String")}
    splits: dict[bool, tuple[list, list[int]]] = {False: ([], []), True: ([], [])}
    for r in rows[1:]:
        texts, labels = splits[(r[col["#1 ID"]], r[col["#2 ID"]]) in dev]
        texts.append((r[col["#1 String"]], r[col["#2 String"]]))
        labels.append(int(r[col["Quality"]]))
    return [splits[False], splits[True]]


def _tokenizer(dataset: str, name: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DatasetUnavailable(f"dataset {dataset!r} is tokenized with Hugging Face "
                                 "transformers, which is not installed: pip install "
                                 "'nclayers[bert]'") from None
    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as err:
        raise DatasetUnavailable(f"dataset {dataset!r}: cannot load tokenizer {name!r} ({err}); "
                                 "run where the Hugging Face hub is reachable once (it is then "
                                 "cached), or name a local directory holding the tokenizer's "
                                 "files") from None


def _ids(encode: Any, texts: list, max_length: int) -> torch.Tensor:
    pairs = bool(texts) and isinstance(texts[0], tuple)
    first = [t[0] for t in texts] if pairs else texts
    second = [t[1] for t in texts] if pairs else None
    out = encode(first, second, padding="max_length", truncation=True, max_length=max_length,
                 return_tensors="pt")
    return out["input_ids"].to(torch.int64)


TASKS = {
    "cola": GlueTask("cola", "CoLA", ("train.tsv", "dev.tsv"),
                     (f"{_HOST}/glue/data/CoLA.zip",), metric="mcc"),
    "sst2": GlueTask("sst2", "SST-2", ("train.tsv", "dev.tsv"),
                     (f"{_HOST}/glue/data/SST-2.zip",)),
    "mrpc": GlueTask("mrpc", "MRPC", ("msr_paraphrase_train.txt", "dev_ids.tsv"),
                     (f"{_HOST}/senteval/senteval_data/msr_paraphrase_train.txt",
                      f"{_HOST}/glue/data/mrpc_dev_ids.tsv")),
    "rte": GlueTask("rte", "RTE", ("train.tsv", "dev.tsv"),
                    (f"{_HOST}/glue/data/RTE.zip",)),
}
