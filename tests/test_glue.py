"""The GLUE tasks and the pretrained ``bert`` architecture, offline: tiny files in GLUE's own
formats, a tiny vocabulary and a tiny BERT saved as a local "pretrained" directory, read through
the real readers, tokenizer and ``from_pretrained``; then the whole workflow on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from conftest import snakemake, write_config  # noqa: E402

from nclayers import data, models, preflight  # noqa: E402
from nclayers.data import DatasetUnavailable  # noqa: E402
from nclayers.sequence import bert_tapped_layers, tiny_bert  # noqa: E402
from nclayers.train import Recipe, Tally, lr_factor, matthews  # noqa: E402

WORDS = ["good", "bad", "great", "awful", "the", "film", "was", "a", "plot", "is", "it",
         "not", "very", "so", "story", "and", "actors", "fine", "boring", "fun"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE, NEGATIVE = ["good", "great", "fine", "fun"], ["bad", "awful", "boring"]


def sentence(rng: np.random.Generator, label: int) -> str:
    """A few filler words and one word of the label's side: a task a tiny BERT learns."""
    fill = list(rng.choice(WORDS[4:16], size=rng.integers(2, 6)))
    fill.insert(int(rng.integers(0, len(fill) + 1)),
                str(rng.choice(POSITIVE if label == 1 else NEGATIVE)))
    return " ".join(fill)


def write_glue(root, n_train: int = 40, n_dev: int = 20) -> dict[str, dict[str, list[int]]]:
    """CoLA, SST-2, RTE and MRPC under root/glue in GLUE's formats; the labels written."""
    rng = np.random.default_rng(0)
    labels = {}
    for task in ("CoLA", "SST-2", "RTE"):
        folder = root / "glue" / task
        folder.mkdir(parents=True)
        labels[task] = {}
        for split, n in (("train", n_train), ("dev", n_dev)):
            y = [i % 2 for i in range(n)]
            labels[task][split] = y
            if task == "CoLA":  # no header: source, label, original label, sentence
                lines = [f"gj04\t{v}\t\t{sentence(rng, v)}" for v in y]
            elif task == "SST-2":
                lines = ["sentence\tlabel", *(f"{sentence(rng, v)} \t{v}" for v in y)]
            else:  # RTE: the label as a word, entailment first
                words = ["entailment", "not_entailment"]
                lines = ["index\tsentence1\tsentence2\tlabel",
                         *(f"{i}\t{sentence(rng, v)}\t\"it is {WORDS[i % 4]}\t{words[v]}"
                           for i, v in enumerate(y))]
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder = root / "glue" / "MRPC"
    folder.mkdir()
    rows, dev_ids = [], []
    for i in range(n_train + n_dev):
        v = i % 2
        rows.append(f"{v}\t{100 + i}\t{200 + i}\t{sentence(rng, v)}\t{sentence(rng, 1 - v)}")
        if i % 3 == 0:
            dev_ids.append(f"{100 + i}\t{200 + i}")
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    # Microsoft's file starts with a byte-order mark.
    (folder / "msr_paraphrase_train.txt").write_text("\ufeff" + "\n".join([header, *rows]) + "\n",
                                                     encoding="utf-8")
    (folder / "dev_ids.tsv").write_text("\n".join(dev_ids) + "\n", encoding="utf-8")
    labels["MRPC"] = {"train": [i % 2 for i in range(n_train + n_dev) if i % 3],
                      "dev": [i % 2 for i in range(n_train + n_dev) if i % 3 == 0]}
    return labels


@pytest.fixture(scope="module")
def glue_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, write_glue(root)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> str:
    """A local directory as ``from_pretrained`` reads one: a tiny BERT and its tokenizer."""
    from transformers import BertTokenizerFast

    where = tmp_path_factory.mktemp("tiny-bert")
    tokens = [*SPECIAL, *WORDS, "\"", *"abcdefghijklmnopqrstuvwxyz"]
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)
    tokenizer.save_pretrained(where)
    net = tiny_bert(2, vocab_size=tokenizer.vocab_size, max_length=32, dropout=0.0,
                    initializer_range=0.2, seed=7)
    net.save_pretrained(where)
    return str(where)


@pytest.mark.parametrize("task", ["cola", "sst2", "rte", "mrpc"])
def test_tasks_read_as_token_ids(glue_root, pretrained, task):
    root, labels = glue_root
    folder = {"cola": "CoLA", "sst2": "SST-2", "rte": "RTE", "mrpc": "MRPC"}[task]
    splits = data.load(task, root=str(root), tokenizer=pretrained, max_length=16)
    assert splits.x_train.dtype == torch.int64 and splits.x_train.shape[1] == 16
    assert splits.y_train.tolist() == labels[folder]["train"]
    assert splits.y_test.tolist() == labels[folder]["dev"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(pretrained)
    assert (splits.x_train[:, 0] == tok.cls_token_id).all()
    seps = (splits.x_train == tok.sep_token_id).sum(dim=1)
    assert (seps == (2 if task in ("rte", "mrpc") else 1)).all()  # pairs: two segments
    assert not (splits.x_train == tok.unk_token_id).any()  # every word known: read right
    assert splits.num_classes == 2 and splits.input_shape == (16,)


def test_rebuilt_segment_ids_are_the_tokenizers(glue_root, pretrained):
    from transformers import AutoTokenizer

    root, _ = glue_root
    net = models.build("bert", (16,), 2, pretrained=pretrained)
    tok = AutoTokenizer.from_pretrained(pretrained)
    (texts, _), _ = data.DATASETS["rte"].read(root)
    enc = tok([a for a, _ in texts], [b for _, b in texts], padding="max_length",
              truncation=True, max_length=16, return_tensors="pt")
    assert torch.equal(net.token_type_ids(enc["input_ids"]), enc["token_type_ids"])
    # Truncated pairs too: both segments cut, each still closed by its [SEP].
    enc = tok([a for a, _ in texts], [b for _, b in texts], padding="max_length",
              truncation=True, max_length=8, return_tensors="pt")
    assert torch.equal(net.token_type_ids(enc["input_ids"]), enc["token_type_ids"])


def test_bert_is_the_pretrained_model_with_a_seeded_head(pretrained):
    from transformers import BertForSequenceClassification

    saved = BertForSequenceClassification.from_pretrained(pretrained)
    torch.manual_seed(3)
    a = models.build("bert", (16,), 2, pretrained=pretrained)
    torch.manual_seed(3)
    b = models.build("bert", (16,), 2, pretrained=pretrained)
    for (name, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), name  # same seed, same head
    for name, v in saved.bert.state_dict().items():
        assert torch.equal(a.bert.state_dict()[name], v), name  # the pretrained encoder
    assert a.tapped_layers == bert_tapped_layers((16,), pretrained)
    assert a.tapped_layers[:3] == ["input", "embeddings", "encoder.layer.0"]
    with pytest.raises(ValueError, match="lower the dataset's max_length"):
        models.build("bert", (33,), 2, pretrained=pretrained)
    with pytest.raises(ValueError, match="token ids"):
        bert_tapped_layers((1, 8, 8), pretrained)


def test_missing_files_name_them_and_the_fix(tmp_path, pretrained):
    with pytest.raises(DatasetUnavailable, match=r"glue/MRPC/dev_ids.tsv.*data.download: true"):
        data.check_available("mrpc", str(tmp_path), download=False)
    (tmp_path / "glue" / "CoLA").mkdir(parents=True)
    (tmp_path / "glue" / "CoLA" / "train.tsv").write_text("only one column\n")
    (tmp_path / "glue" / "CoLA" / "dev.tsv").write_text("x\t1\t\tfine\n")
    with pytest.raises(DatasetUnavailable, match="cannot read .*CoLA"):
        data.load("cola", root=str(tmp_path), tokenizer=pretrained)


def test_download_fetches_glues_files_into_place(tmp_path, glue_root, pretrained, monkeypatch):
    """data.download: the task's zip (or MRPC's two files) from its URL, extracted and renamed
    into <root>/glue/<Task>/; the transfer itself is replaced by a copy from a local folder."""
    import shutil
    import zipfile

    import torchvision.datasets.utils as tv

    root, labels = glue_root
    server = tmp_path / "server"
    server.mkdir()
    with zipfile.ZipFile(server / "CoLA.zip", "w") as zf:
        for name in ("train.tsv", "dev.tsv"):
            zf.write(root / "glue" / "CoLA" / name, f"CoLA/{name}")
    for name in ("msr_paraphrase_train.txt", "dev_ids.tsv"):
        shutil.copy(root / "glue" / "MRPC" / name, server / name)
    server_names = {"mrpc_dev_ids.tsv": "dev_ids.tsv"}
    fetched = []

    def fake_download(url, folder, filename=None, md5=None, **_):
        fetched.append(url)
        base = url.rsplit("/", 1)[1]
        shutil.copy(server / server_names.get(base, base),
                    Path(folder) / (filename or base))

    monkeypatch.setattr(tv, "download_url", fake_download)
    mine = tmp_path / "data"
    for task, folder in (("cola", "CoLA"), ("mrpc", "MRPC")):
        splits = data.load(task, root=str(mine), download=True, tokenizer=pretrained)
        assert splits.y_test.tolist() == labels[folder]["dev"]
    assert fetched == [*data.DATASETS["cola"].urls, *data.DATASETS["mrpc"].urls]
    assert sorted(p.name for p in (mine / "glue").iterdir()) == ["CoLA", "MRPC"]  # no leftovers
    data.load("cola", root=str(mine), download=True, tokenizer=pretrained)
    assert len(fetched) == 3  # present: not fetched again


def test_preflight_never_fetches(glue_root, pretrained, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root, labels = glue_root
    shape = preflight.describe("rte", {"name": "rte", "max_length": 16}, str(root))
    assert shape.input_shape == (16,)
    assert shape.train_counts == tuple(np.bincount(labels["RTE"]["train"]))
    # A hub name whose config is not on this machine: nothing to check yet, nothing fetched.
    assert bert_tapped_layers((16,), "nclayers-test/not-cached") is None


def test_matthews_is_scikit_learns():
    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(0)
    for c in (2, 2, 3, 5):
        y, pred = rng.integers(0, c, 200), rng.integers(0, c, 200)
        pred[:120] = y[:120]
        tally = Tally(lambda out, y: torch.zeros(()))
        out = torch.nn.functional.one_hot(torch.as_tensor(pred), c).double()
        for i in range(0, 200, 64):  # batch by batch
            tally.add(out[i:i + 64], torch.as_tensor(y[i:i + 64]))
        assert math.isclose(tally.mcc(), matthews_corrcoef(y, pred), rel_tol=1e-12)
    constant = torch.tensor([[5.0, 0.0], [3.0, 0.0]])  # one class always predicted
    assert matthews(constant) == 0.0 == matthews_corrcoef([0] * 5 + [1] * 3, [0] * 8)


def test_linear_schedule_is_hugging_faces():
    recipe = Recipe(epochs=2, batch_size=8, lr=1.0, schedule="linear")
    factors = [lr_factor(recipe, step, 5) for step in range(10)]
    assert factors == [(10 - k) / 10 for k in range(10)]


@pytest.mark.slow
def test_glue_workflow_to_the_report(tmp_path, glue_root, pretrained):
    """Two GLUE tasks, CE against SVSL at a named BERT layer, AdamW with the linear schedule,
    the light metrics every epoch: the workflow runs to the PDF, and the logs hold test_mcc."""
    root, _ = glue_root
    config = {
        "experiment": "glue",
        "data": {"root": str(root)},
        "datasets": {"cola": {"tokenizer": pretrained, "max_length": 16},
                     "rte": {"tokenizer": pretrained, "max_length": 16}},
        "architectures": {"bert": {"name": "bert", "pretrained": pretrained}},
        "seeds": [0],
        "train": {"epochs": 2, "batch_size": 8, "lr": 1.0e-3, "optimizer": "adamw",
                  "momentum": 0.9, "weight_decay": 0.0, "schedule": "linear",
                  "loss": ["ce", "svsl"], "checkpoints": [],
                  "epoch_metrics": {"every": 1}},
        "select": [],
        "features": {"runs": "none"},
        "report": {"papers": ["benshaul2022"]},
        "groups": {
            "cola": {"pairs": [["cola", "bert"]],
                     "train": {"svsl_alpha": 0.5, "svsl_gamma": "encoder.layer.0"}},
            "rte": {"pairs": [["rte", "bert"]],
                    "train": {"svsl_alpha": 0.5, "svsl_gamma": "encoder.layer.1"}},
        },
    }
    write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2")
    out = tmp_path / "results" / "glue"
    assert (out / "report.pdf").stat().st_size > 0
    training = pd.read_csv(out / "tables" / "training.csv")
    assert training["test_mcc"].between(-1, 1).all()
    assert set(training["group"]) == {"cola", "rte"}
    per_epoch = pd.read_csv(out / "tables" / "epoch_metrics.csv")
    layers = set(per_epoch["layer"])
    assert {"embeddings", "encoder.layer.0", "encoder.layer.1", "pooler"} <= layers
    runs = {p.parent.name: json.loads(p.read_text()) for p in (out / "runs").glob("*/run.json")}
    assert len(runs) == 4
    svsl = next(r for name, r in runs.items() if "svsl" in name and name.startswith("rte"))
    assert svsl["train"]["svsl_gamma"] == "encoder.layer.1"
    log = training[training["run"] == svsl["run"]]
    assert log["lr"].iloc[-1] == pytest.approx(1.0e-3 / 10)  # linear: the last of 10 steps
    ce = training[training["run"] == svsl["run"].replace("svsl", "ce")]
    assert not ce["train_loss"].iloc[1:].equals(log["train_loss"].iloc[1:])  # SVSL's term acts
