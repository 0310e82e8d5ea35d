"""A Hugging Face BERT through the library: taps, measure, fit (CE, SVSL) and per-epoch metrics,
offline, on a tiny randomly initialised BertForSequenceClassification and synthetic tokens."""

from __future__ import annotations

import copy
import math

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from nclayers import measure  # noqa: E402
from nclayers.data import Batches  # noqa: E402
from nclayers.epoch_metrics import EpochMetrics, EpochMetricsConfig  # noqa: E402
from nclayers.metrics import SPLIT_METRICS  # noqa: E402
from nclayers.metrics_dense import dense_metrics  # noqa: E402
from nclayers.sequence import (  # noqa: E402
    SequenceClassifier,
    TokenReduction,
    tiny_bert,
    token_splits,
)
from nclayers.taps import tap  # noqa: E402
from nclayers.train import Objective, Recipe, fit  # noqa: E402

C = 3
EPOCHS = 4
LAYERS = ["input", "embeddings", "encoder.layer.0", "encoder.layer.1", "pooler", "classifier"]


@pytest.fixture(scope="module")
def splits():
    return token_splits(96, 48, C, seed=0, length=16, markers=2)  # p = 16 · 32 flattened


def bert(seed: int = 0, dropout: float = 0.1):
    # A wider initialisation than BERT's 0.02, so that SGD learns the toy task in a few epochs.
    return tiny_bert(C, seed=seed, dropout=dropout, initializer_range=0.2)


def model(reduce: str = "flatten", seed: int = 0, dropout: float = 0.1) -> SequenceClassifier:
    return SequenceClassifier(bert(seed, dropout), reduce=reduce)


def test_adapter_is_the_hf_model_with_named_taps(splits):
    hf = bert().eval()
    net = SequenceClassifier(hf).eval()
    assert net.tapped_layers == LAYERS
    assert net.classifier is hf.classifier and isinstance(net.classifier, torch.nn.Linear)
    assert list(net.state_dict()) == list(hf.state_dict())  # the HF checkpoint layout
    x = splits.x_test
    with torch.no_grad(), tap(net, net.tapped_layers) as acts:
        logits = net(x)
        ref = hf(x, attention_mask=(x != 0).long(), output_hidden_states=True)
    assert torch.equal(logits, ref.logits)  # the hooks change nothing
    hidden = ref.hidden_states  # (embeddings, layer 0, layer 1)
    for name, h in zip(LAYERS[1:4], hidden, strict=True):
        assert torch.equal(acts[name], h.flatten(1)), name
    assert torch.equal(acts["input"], x)
    assert torch.equal(acts["classifier"], logits)
    assert acts["pooler"].shape == (len(x), 32)
    # A copy taps its own modules.
    twin = copy.deepcopy(net)
    with torch.no_grad(), tap(twin, ["encoder.layer.1"]) as acts:
        twin(x)
    assert torch.equal(acts["encoder.layer.1"], hidden[2].flatten(1))


def test_reductions():
    h = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    assert torch.equal(TokenReduction("cls")((h, None)), h[:, 0])  # tuples: the first element
    assert torch.equal(TokenReduction("flatten")(h), h.reshape(2, 12))
    mean = TokenReduction("mean")
    mean.mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.allclose(mean(h), torch.stack([h[0, :2].mean(0), h[1].mean(0)]))
    assert torch.equal(TokenReduction("cls")(h[:, 0]), h[:, 0])  # 2-D: as it is
    with pytest.raises(ValueError, match="unknown reduction"):
        TokenReduction("max")


@pytest.mark.parametrize("reduce", ["flatten", "cls"])
def test_measure_every_layer_against_dense_reference(splits, reduce):
    net = model(reduce).eval()
    train = Batches(splits.x_train, splits.y_train, 32)
    test = Batches(splits.x_test, splits.y_test, 20)
    table = measure(net, train, test)
    assert list(table.drop_duplicates("layer")["layer"]) == LAYERS
    for (layer, split), rows in table.groupby(["layer", "split"]):
        values = dict(zip(rows["metric"], rows["value"], strict=True))
        for metric in SPLIT_METRICS:
            degenerate = reduce == "cls" and layer == "embeddings"
            if degenerate or metric == "nc3_pabs":
                continue
            assert math.isfinite(values[metric]), (layer, split, metric)
    if reduce == "cls":  # every [CLS] embedding is the same vector: no class means to tell
        nc1 = table.query("layer == 'embeddings' and metric == 'nc1'")["value"]
        assert nc1.isna().all()
    # By hand: Hugging Face's own hidden states of layer 0, reduced as the adapter does.
    hf_net = bert().eval()

    def features(x):
        with torch.no_grad():
            out = hf_net(x, attention_mask=(x != 0).long(), output_hidden_states=True)
        h = out.hidden_states[1]
        h = h.flatten(1) if reduce == "flatten" else h[:, 0]
        return h.numpy(), out.logits.argmax(1).numpy()

    h_train, pred_train = features(splits.x_train)
    for split, x, y in (("train", splits.x_train, splits.y_train),
                        ("test", splits.x_test, splits.y_test)):
        h, pred = features(x)
        ref = dense_metrics(h_train, splits.y_train.numpy(), h, y.numpy(), pred, C)
        got = table.query(f"layer == 'encoder.layer.0' and split == '{split}'")
        got = dict(zip(got["metric"], got["value"], strict=True))
        for metric in ("nc1", "nc1_ratio", "ncc_accuracy", "nc4_mismatch", "cdnv"):
            assert math.isclose(got[metric], ref[metric], rel_tol=1e-6, abs_tol=1e-9), (
                split, metric)


def train(splits, loss: str, seed: int = 0, epoch_metrics=None, **options):
    torch.manual_seed(seed)  # BERT's dropout draws from the global generator
    net = model(seed=seed)
    recipe = Recipe(epochs=EPOCHS, batch_size=8, lr=0.03, weight_decay=0.0, loss=loss, **options)
    log = fit(net, splits, recipe, seed=seed, progress=False, epoch_metrics=epoch_metrics)
    return net, log


def test_fit_ce_and_svsl_learn_and_reproduce(splits):
    runs = {}
    for loss, options in (("ce", {}), ("svsl", {"svsl_gamma": "encoder.layer.0",
                                                 "svsl_alpha": 1e-2})):
        net, log = train(splits, loss, **options)
        assert not log[-1]["diverged"]
        assert log[-1]["eval_train_loss"] < log[0]["eval_train_loss"], (loss, log)
        assert log[-1]["train_acc"] > 0.9, (loss, log)
        again, log_again = train(splits, loss, **options)
        assert repr(log_again) == repr(log)  # bitwise (repr: NaN == NaN), with the same seed
        for (k, v), w in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
            assert torch.equal(v, w), (loss, k)
        runs[loss] = net
    svsl = Objective(Recipe(1, 16, 0.1, loss="svsl", svsl_gamma="encoder.layer.0"),
                     runs["svsl"], C)
    assert svsl.layers == ["encoder.layer.0", "encoder.layer.1", "pooler", "classifier"]
    # The SVSL term reaches the parameters through the tapped reductions.
    w = runs["ce"].bert.encoder.layer[0].output.dense.weight
    assert not torch.equal(w, runs["svsl"].bert.encoder.layer[0].output.dense.weight)


def test_svsl_term_has_gradients_through_the_taps(splits):
    net = model(dropout=0.0).train()
    x, y = splits.x_train[:16], splits.y_train[:16]
    grads = {}
    for loss in ("ce", "svsl"):
        net.zero_grad()
        recipe = Recipe(1, 16, 0.1, loss=loss, svsl_gamma="embeddings", svsl_alpha=1.0)
        Objective(recipe, net, C)(x, y).backward()
        grads[loss] = net.bert.embeddings.word_embeddings.weight.grad.clone()
    assert not torch.allclose(grads["ce"], grads["svsl"])


def test_epoch_metrics_rows_for_every_bert_layer(splits):
    recorder = EpochMetrics(EpochMetricsConfig(every=2), EPOCHS, seed=0, log=lambda _: None)
    _, log = train(splits, "ce", epoch_metrics=recorder)
    table = recorder.table()
    assert sorted(table["epoch"].unique()) == [0, 2, 4]
    assert list(table.drop_duplicates("layer")["layer"]) == LAYERS
    nc1 = table.query("metric == 'nc1' and layer != 'input'")["value"]
    assert nc1.map(math.isfinite).all()
    # The measurement's passes also gave the log's accuracies.
    ncc = table.query("layer == 'classifier' and metric == 'ncc_accuracy' and split == 'train'")
    assert len(ncc) == 3 and len(log) == EPOCHS + 1


def test_resume_with_dropout_and_adamw_is_bitwise(splits):
    """Dropout draws from torch's global generator: the resume state carries it, so a run
    resumed in a process whose global generator is elsewhere continues bitwise."""
    options = {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.9}
    recipe = Recipe(epochs=EPOCHS, batch_size=8, weight_decay=0.01, loss="ce", **options)
    torch.manual_seed(0)
    full = model(seed=0)
    log_full = fit(full, splits, recipe, seed=0, progress=False)
    assert log_full[-1]["train_acc"] > log_full[0]["train_acc"]
    saved = {}

    def keep(state):
        if state["log"][-1]["epoch"] == 2:
            saved.update(copy.deepcopy(state))

    torch.manual_seed(0)
    fit(model(seed=0), splits, recipe, seed=0, on_epoch_end=keep, progress=False)
    torch.manual_seed(123)  # the resuming process's generator is not where the first one was
    resumed = model(seed=7)
    log_resumed = fit(resumed, splits, recipe, seed=0, resume=saved, progress=False)
    assert repr(log_resumed) == repr(log_full)
    for (k, v), w in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
