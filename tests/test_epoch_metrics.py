"""Per-layer NC metrics during training (train.epoch_metrics): the schedule, the values (those of
measure itself), the fused log (bitwise the unfused one), the subsample, divergence, and the
files train_run writes. The kill-and-resume test is in test_train.py."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from nclayers import data, experiment, models, runs, train
from nclayers.data import Batches
from nclayers.epoch_metrics import (
    LIGHT,
    EpochMetrics,
    EpochMetricsConfig,
    EpochMetricsError,
    balanced_subsample,
    measured_epochs,
)
from nclayers.measurement import COLUMNS, NonFiniteActivations, measure, measure_rows
from nclayers.metrics import ClassMeans, SplitStats, labels, pairwise
from nclayers.train import Recipe, fit
from nclayers.vocabulary import EPOCH_METRICS, TIDY_COLUMNS

RECIPE = Recipe(epochs=3, batch_size=64, lr=0.05)


def test_every_k_epochs_and_the_last():
    assert measured_epochs(10, every=3) == [0, 3, 6, 9, 10]
    assert measured_epochs(4, every=1) == [0, 1, 2, 3, 4]
    assert measured_epochs(4, every=10) == [0, 4]
    assert measured_epochs(0, every=2) == [0]


def test_log_points_are_rounded_deduplicated_with_zero_and_the_last():
    # 350^(i/4), i = 0..4: 1, 4.33, 18.7, 80.9, 350
    assert measured_epochs(350, log_points=5) == [0, 1, 4, 19, 81, 350]
    assert measured_epochs(3, log_points=10) == [0, 1, 2, 3]  # ten points, four epochs
    assert measured_epochs(7, log_points=1) == [0, 1, 7]
    assert measured_epochs(0, log_points=4) == [0]


def test_off_and_bad_configs():
    assert measured_epochs(10) == []
    for entry in (None, {}, {"every": 0, "log_points": 0, "per_class": 5}):
        assert not EpochMetricsConfig.from_spec(entry).enabled
    assert EpochMetricsConfig.from_spec({"log_points": 3}).enabled
    with pytest.raises(EpochMetricsError, match="not both"):
        EpochMetricsConfig(every=2, log_points=3)
    with pytest.raises(EpochMetricsError, match="every must be an integer ≥ 0, got -1"):
        EpochMetricsConfig(every=-1)
    with pytest.raises(EpochMetricsError, match="per_class must be a positive integer"):
        EpochMetricsConfig(every=1, per_class=0)
    with pytest.raises(EpochMetricsError, match="has no key evry"):
        EpochMetricsConfig.from_spec({"evry": 1})
    assert EPOCH_METRICS == LIGHT == ("nc1", "nc1_ratio", "cdnv", "cdnv_own", "ncc_accuracy",
                                      "nc4_mismatch")


def digits_model(seed=0):
    torch.manual_seed(seed)
    return models.build("mlp", (1, 8, 8), 10, depth=3, width=32)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def train_with(digits, config, recipe=RECIPE, checkpoints=()):
    """(log, recorder, {epoch: model copy}) of a short digits run with ``config``."""
    recorder = EpochMetrics(config, recipe.epochs, seed=0) if config else None
    copies = {}
    log = fit(digits_model(), digits, recipe, seed=0, progress=False, epoch_metrics=recorder,
              checkpoints=checkpoints,
              on_checkpoint=lambda epoch, model: copies.update({epoch: copy.deepcopy(model)}))
    return log, recorder, copies


def rows_of(recorder, epoch):
    table = recorder.table()
    return table[table["epoch"] == epoch].drop(columns="epoch").reset_index(drop=True)


def test_rows_at_a_measured_epoch_are_measure_itself(digits):
    """The recorded rows of epochs 0 and 2 equal measure(..., metrics=LIGHT) on the model of that
    epoch, bitwise, in the order train/test × layer × metric; epoch 1 is not measured."""
    _, recorder, copies = train_with(digits, EpochMetricsConfig(every=2), checkpoints=[0, 1, 2])
    assert recorder.measured == [0, 2, 3]
    for epoch in (0, 2):
        expected = measure(copies[epoch], Batches(digits.x_train, digits.y_train, 1024),
                           Batches(digits.x_test, digits.y_test, 1024), metrics=LIGHT)
        pd.testing.assert_frame_equal(rows_of(recorder, epoch), expected, check_exact=True)
    assert rows_of(recorder, 1).empty
    layers = copies[0].tapped_layers
    assert len(rows_of(recorder, 3)) == len(layers) * 2 * len(LIGHT)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_fused_log_is_bitwise_the_unfused_one_and_skips_evaluate(digits, monkeypatch, loss):
    recipe = Recipe(epochs=3, batch_size=64, lr=0.05, loss=loss)
    plain, _, _ = train_with(digits, None, recipe)
    calls = []
    real = train.tally
    monkeypatch.setattr(train, "tally", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused, recorder, _ = train_with(digits, EpochMetricsConfig(every=1), recipe)
    assert calls == []  # every epoch measured: the log's eval numbers came from measure's passes
    assert recorder.measured == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(pd.DataFrame(fused), pd.DataFrame(plain), check_exact=True)
    subsampled, _, _ = train_with(digits, EpochMetricsConfig(every=1, per_class=20), recipe)
    assert calls == []  # a subsample's rows are taken from the passes over the full splits
    pd.testing.assert_frame_equal(pd.DataFrame(subsampled), pd.DataFrame(plain),
                                  check_exact=True)


def test_on_logits_sees_the_first_reading_of_each_split():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(50, 4), torch.arange(50) % 3
    seen = []
    plain = measure(net, Batches(x, y, 16), Batches(x[:20], y[:20], 16), layers=["1"])
    hooked = measure(net, Batches(x, y, 16), Batches(x[:20], y[:20], 16), layers=["1"],
                     on_logits=lambda split, out, labels: seen.append((split, out, labels)))
    pd.testing.assert_frame_equal(plain, hooked, check_exact=True)
    assert [(s, len(o)) for s, o, _ in seen] == [("train", 16), ("train", 16), ("train", 16),
                                                 ("train", 2), ("test", 16), ("test", 4)]
    with torch.no_grad():
        assert torch.equal(torch.cat([o for s, o, _ in seen if s == "train"]), net(x))
    assert torch.equal(torch.cat([labels for s, _, labels in seen if s == "test"]), y[:20])


@pytest.mark.parametrize("keep_bytes", [0, 2**20])
def test_a_subset_is_measured_from_the_whole_batches(keep_bytes):
    """measure(subset=...) gives the metrics of those rows (as the rows measured alone, to
    float32's last bits: they are computed in other batches), whichever batches hold them,
    one holding none; the forward passes read every row, and on_logits sees them all."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    x, y = torch.randn(80, 6), torch.arange(80) % 3
    subset = {"train": torch.tensor([0, 1, 2, 5, 40, 41, 42, 43, 44, 45, 70, 74]),
              "test": torch.tensor([3, 4, 5, 17, 18, 19])}  # train batch 1 (16-31): no rows
    seen = []
    got = measure(net, Batches(x, y, 16), Batches(x[:20], y[:20], 16), layers=["0", "1"],
                  subset=subset, keep_bytes=keep_bytes,
                  on_logits=lambda split, out, labels: seen.append((split, len(out))))
    alone = measure(net, Batches(x[subset["train"]], y[subset["train"]], 16),
                    Batches(x[subset["test"]], y[subset["test"]], 16), layers=["0", "1"])
    pd.testing.assert_frame_equal(got.drop(columns="value"), alone.drop(columns="value"))
    np.testing.assert_allclose(got["value"], alone["value"], rtol=1e-5, atol=1e-7)
    assert seen == [("train", 16)] * 5 + [("test", 16), ("test", 4)]
    other = measure(net, Batches(x, y, 16), Batches(x[:20], y[:20], 16), layers=["0", "1"],
                    subset={"train": torch.arange(3, 80, 2)})
    assert not np.allclose(other["value"], got["value"])  # the subset does select


def test_a_bad_subset_is_refused_with_what_is_wrong():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(40, 6), torch.arange(40) % 3
    batches = Batches(x, y, 16)
    for subset, message in (({"val": [1]}, "no split 'val'"),
                            ({"train": [3, 1]}, "ascending order"),
                            ({"train": [-1, 2]}, "ascending order"),
                            ({"train": []}, "non-empty 1-D"),
                            ({"train": [0.5]}, "non-empty 1-D"),
                            ({"train": [1, 40]}, "subset row 40 of the train split, which has 40")):
        with pytest.raises(ValueError, match=message):
            measure(net, batches, layers=["1"], subset=subset)
    table = measure(net, batches, layers=["1"], subset={"train": np.array([0, 4, 5, 39])})
    assert table["value"].notna().all()  # a numpy array of rows is taken as it is


def test_a_nan_in_a_gathered_subset_names_the_batches_it_spans():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(64, 6), torch.arange(64) % 3
    x[20] = float("nan")
    with pytest.raises(NonFiniteActivations, match="train batch 0–2 "):
        measure(net, Batches(x, y, 16), layers=["1"],
                subset={"train": torch.tensor([1, 2, 3, 20, 21, 40, 41])})


def test_subsample_is_class_balanced_fixed_and_clamped():
    y = torch.cat([torch.full((n,), c) for c, n in enumerate((30, 12, 50))])[
        torch.randperm(92, generator=torch.Generator().manual_seed(1))]
    index, n = balanced_subsample(y, 10, torch.Generator().manual_seed(7))
    assert n == 10 and torch.bincount(y[index]).tolist() == [10, 10, 10]
    assert torch.equal(index, index.sort().values)
    again, _ = balanced_subsample(y, 10, torch.Generator().manual_seed(7))
    other, _ = balanced_subsample(y, 10, torch.Generator().manual_seed(8))
    assert torch.equal(index, again) and not torch.equal(index, other)
    index, n = balanced_subsample(y, 20, torch.Generator().manual_seed(7))
    assert n == 12 and torch.bincount(y[index]).tolist() == [12, 12, 12]


def test_the_recorder_measures_one_fixed_subsample_and_says_once_when_clamped(digits):
    smallest_test = int(torch.bincount(digits.y_test).min())  # 53 of digits' 540 test images
    messages = []
    recorder = EpochMetrics(EpochMetricsConfig(every=1, per_class=100), 2, seed=4,
                            log=messages.append)
    model = digits_model().eval()
    first = recorder.measure(model, digits)
    assert torch.equal(recorder.measure(model, digits), first)
    assert len(messages) == 1 and f"has {smallest_test} samples" in messages[0]
    assert "test split" in messages[0]  # train's smallest class holds 124: no clamp there
    subset = recorder._subset
    assert torch.bincount(digits.y_test[subset["test"]]).tolist() == [smallest_test] * 10
    assert torch.bincount(digits.y_train[subset["train"]]).tolist() == [100] * 10
    # The recorder's values are measure's, on the full splits' batches with the subset...
    full = (Batches(digits.x_train, digits.y_train, 1024), Batches(digits.x_test, digits.y_test,
                                                                   1024))
    expected = measure(model, *full, metrics=LIGHT, subset=subset)
    assert first.tolist() == values_of(expected, model)
    # ... and those of the subsample's rows measured alone, but for the last bits of the
    # float32 activations (the rows were computed in other batches)
    alone = measure(model, *(Batches(x[subset[s]], y[subset[s]], 1024) for s, (x, y) in
                             (("train", (digits.x_train, digits.y_train)),
                              ("test", (digits.x_test, digits.y_test)))), metrics=LIGHT)
    torch.testing.assert_close(first, torch.tensor(values_of(alone, model), dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)


def values_of(table: pd.DataFrame, model) -> list:
    """measure's rows as the recorder's nested list: layers × splits × LIGHT."""
    got = {(r.layer_index, r.split, r.metric): r.value for r in table.itertuples()}
    return [[[got[i, s, m] for m in LIGHT] for s in ("train", "test")]
            for i in range(len(model.tapped_layers))]


@pytest.mark.parametrize("per_class", [None, 5])
def test_non_finite_activations_record_nothing_and_do_not_stop_the_log(digits, per_class):
    """A model whose activations are NaN at a measured epoch: no ValueError, no rows, and the
    log (diverged) as without the measurement; also when the NaN row is not in the subsample,
    whose passes still read it."""
    bad = data.Splits(digits.name, digits.x_train, digits.y_train,
                      digits.x_test.clone().index_fill_(0, torch.tensor([3]), float("nan")),
                      digits.y_test, digits.num_classes)
    plain, _, _ = train_with(bad, None)
    log, recorder, _ = train_with(bad, EpochMetricsConfig(every=1, per_class=per_class))
    if per_class:
        assert 3 not in recorder._subset["test"]
    assert log[-1]["diverged"] and recorder.measured == [] and recorder.table().empty
    assert pd.DataFrame(log).equals(pd.DataFrame(plain))


def spec_for(tmp_path, **train_options):
    config = tiny_config()
    config["train"].update({"epochs": 3, "checkpoints": [], **train_options})
    return next(iter(experiment.expand_runs(config).values()))


def test_train_run_writes_the_rows_and_leaves_the_train_log_alone(tmp_path):
    off = runs.train_run(spec_for(tmp_path), tmp_path / "off", progress=False)
    header = (tmp_path / "off" / "epoch_metrics.csv").read_text()
    assert header.strip() == ",".join(TIDY_COLUMNS)
    spec = spec_for(tmp_path, epoch_metrics={"every": 2})
    runs.train_run(spec, tmp_path / "on", progress=False)
    logs = [(tmp_path / d / "train_log.csv").read_bytes() for d in ("off", "on")]
    assert logs[0] == logs[1]
    table = pd.read_csv(tmp_path / "on" / "epoch_metrics.csv")
    assert list(table.columns) == TIDY_COLUMNS
    assert sorted(set(table["epoch"])) == [0, 2, 3]
    assert set(table["metric"]) == set(LIGHT) and set(table["split"]) == {"train", "test"}
    assert (table["run"] == off["run"]).all() and (table["dataset"] == "digits").all()
    assert (table["arch"] == "mlp6").all() and (table["seed"] == 0).all()
    assert table["value"].notna().all()


def test_a_diverged_run_keeps_its_earlier_rows_and_writes_every_file(tmp_path):
    options = {"lr": 1e4, "epochs": 5}
    spec_off, spec_on = spec_for(tmp_path, **options), spec_for(
        tmp_path, **options, epoch_metrics={"every": 1})
    for spec in (spec_off, spec_on):
        spec["arch"]["batchnorm"] = False
    runs.train_run(spec_off, tmp_path / "off", progress=False)
    info = runs.train_run(spec_on, tmp_path / "on", progress=False)
    assert info["diverged"]
    logs = [pd.read_csv(tmp_path / d / "train_log.csv") for d in ("off", "on")]
    pd.testing.assert_frame_equal(logs[0], logs[1], check_exact=True)
    table = pd.read_csv(tmp_path / "on" / "epoch_metrics.csv")
    assert set(table["epoch"]) == set(range(info["final_epoch"]))  # not the diverged epoch
    assert table["value"].notna().any()


def test_resume_in_process_carries_the_rows(digits):
    config, recipe = EpochMetricsConfig(every=1, per_class=30), Recipe(epochs=4, batch_size=64,
                                                                       lr=0.05)
    _, straight, _ = train_with(digits, config, recipe)
    saved = {}
    first = EpochMetrics(config, recipe.epochs, seed=0)
    fit(digits_model(), digits, recipe, seed=0, progress=False, epoch_metrics=first,
        on_epoch_end=lambda state: saved.update(copy.deepcopy(state))
        if state["log"][-1]["epoch"] == 2 else None)
    resumed = EpochMetrics(config, recipe.epochs, seed=0)
    fit(digits_model(seed=9), digits, recipe, seed=0, progress=False, epoch_metrics=resumed,
        resume=saved)
    assert resumed.measured == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(resumed.table(), straight.table(), check_exact=True)


def test_pairwise_is_the_row_loop_bitwise():
    g = torch.Generator().manual_seed(0)
    for k, p, block in ((2, 1, 1 << 22), (10, 256, 1 << 22), (10, 256, 3000), (7, 33, 1),
                        (100, 40, 1 << 22)):
        rows = torch.randn(k, p, dtype=torch.float64, generator=g) * 1e3 + 5.0
        for op in (torch.mul, lambda a, b: (a - b) ** 2):
            loop = torch.stack([op(rows, r).sum(dim=1) for r in rows])
            assert torch.equal(pairwise(rows, op, block), loop), (k, p, block)


@pytest.mark.parametrize("subset", [LIGHT, ["nc3_pabs", "nc3_duality"],
                                    ["cdnv_own", "nc2_equinorm"], ["stable_rank", "tr_sigma_w"]])
def test_a_subset_of_metrics_has_the_values_of_all(digits, subset):
    """Metrics left out skip their work (the sketch, the own-means sums, NC2, NC3); the rest
    are bitwise those of a full measurement."""
    model = digits_model().eval()
    train_b = Batches(digits.x_train, digits.y_train, 500)
    test_b = Batches(digits.x_test, digits.y_test, 500)
    full = measure(model, train_b, test_b)
    part = measure(model, train_b, test_b, metrics=subset)
    expected = full[full["metric"].isin(subset)].reset_index(drop=True)
    assert not part.empty
    pd.testing.assert_frame_equal(part, expected, check_exact=True)


@pytest.mark.parametrize("keep_bytes", [0, 1 << 30, 300_000])  # 300 kB: one batch
def test_keeping_train_activations_gives_the_same_rows(digits, keep_bytes):
    """measure_rows(keep_bytes=...) reads train's kept activations instead of a second forward
    pass (and falls back to it where they do not fit): the same numbers on the CPU."""
    model = digits_model().eval()
    args = (model, Batches(digits.x_train, digits.y_train, 300),
            Batches(digits.x_test, digits.y_test, 300))
    logits = []
    rows = measure_rows(*args, keep_bytes=keep_bytes,
                        on_logits=lambda split, out, y: logits.append((split, out)))
    assert pd.DataFrame(rows, columns=COLUMNS).equals(measure(*args))
    with torch.no_grad():
        assert torch.equal(torch.cat([o for s, o in logits if s == "train"]),
                           model(digits.x_train))


def test_batch_labels_give_the_per_layer_values_bitwise():
    """measure makes a batch's labels once for all layers (metrics.labels): the same
    accumulators as from a label tensor per layer (and from the float64 features themselves),
    whatever the features' dtype."""
    g = torch.Generator().manual_seed(3)
    C, p = 5, 33
    y = torch.arange(40) % C
    for dtype in (torch.float32, torch.float16, torch.float64):
        h = (torch.randn(40, 3, 11, generator=g) * 7 + 2).to(dtype)
        means_a, means_b = ClassMeans(C), ClassMeans(C)
        means_a.update(h, y)
        means_b.update(h, labels(y, C, "cpu"))
        assert torch.equal(means_a.sums, means_b.sums) and torch.equal(means_a.counts,
                                                                        means_b.counts)
        geometry = means_a.compute()
        stats_a, stats_b = SplitStats(geometry), SplitStats(geometry)
        pred = torch.arange(40) % 3
        stats_a.update(h.to(torch.float64).reshape(40, p), y, pred)
        stats_b.update(h, labels(y, C, "cpu"), pred)
        for name in ("counts", "within_sq", "offsets", "proj_sq", "sketched"):
            assert torch.equal(getattr(stats_a, name), getattr(stats_b, name)), (dtype, name)
        assert (stats_a.ncc_correct, stats_a.mismatch) == (stats_b.ncc_correct, stats_b.mismatch)
        assert stats_a.compute() == stats_b.compute()


def test_cdnv_with_every_class_present_is_the_general_formula_bitwise():
    """With every class in the split, the CDNV takes the train means' distances computed once
    per layer (MeanGeometry.twice_distances): bitwise what indexing the present ones gives."""
    g = torch.Generator().manual_seed(4)
    C = 7
    means = ClassMeans(C, 0)
    y = torch.arange(70) % C
    means.update(torch.randn(70, 20, generator=g) * 1e3 + 5.0, y)
    stats = SplitStats(means.compute(), ["cdnv"])
    stats.update(torch.randn(70, 20, generator=g) * 1e3 + 5.0, y)
    assert stats._cdnv(everywhere=True) == stats._cdnv()
    assert stats.compute()["cdnv"] == stats._cdnv()


def test_measure_in_inference_mode_leaves_the_accumulators_usable_outside_it(digits):
    """measure runs in torch.inference_mode; its scratch memory is its own, so that the
    accumulators called directly afterwards (outside that mode) still work."""
    model = digits_model().eval()
    batches = Batches(digits.x_train, digits.y_train, 500)
    rows = measure_rows(model, batches, batches, metrics=LIGHT)
    means = ClassMeans(digits.num_classes)
    means.update(digits.x_train, digits.y_train)
    stats = SplitStats(means.compute())
    stats.update(digits.x_train, digits.y_train)
    assert stats.compute()["ncc_accuracy"] > 0
    assert measure_rows(model, batches, batches, metrics=LIGHT) == rows


def trained_and_measured(tmp_path, specs: dict, suffix: str) -> pd.DataFrame:
    """Two specs trained (into tmp_path/<name>) and their last checkpoint measured: the rows of
    their epoch metrics and measure jobs side by side, the second's values in value<suffix>."""
    tables = {}
    for name, spec in specs.items():
        runs.train_run(spec, tmp_path / name, progress=False)
        epochs = pd.read_csv(tmp_path / name / "epoch_metrics.csv")
        last = sorted((tmp_path / name / "checkpoints").glob("epoch*.pt"))[-1]
        measured, _ = runs.measure_checkpoints(spec, [last])
        tables[name] = pd.concat([epochs.assign(job="epochs"), measured.assign(job="measure")])
    first, second = tables.values()
    keys = ["job", "epoch", "layer", "split", "metric"]
    both = first.merge(second, on=keys, suffixes=("", suffix))
    assert len(both) == len(first) == len(second)
    return both


def test_the_configs_precision_reaches_the_spec_the_epoch_metrics_and_the_measure_job(tmp_path):
    """``measure.precision: float32`` in the config puts it in each run's spec (float64, the
    default, stays out: nothing reruns) and from there into the epoch metrics and the measure
    job: their numbers within metrics.PRECISIONS' 1e-5 of float64's, not bitwise the same (so
    it did reach them), the counts (NCC accuracy) equal, the training log untouched."""
    config = tiny_config()
    config["train"].update({"epochs": 3, "checkpoints": [], "epoch_metrics": {"every": 1}})
    spec = next(iter(experiment.expand_runs(config).values()))
    assert "measure" not in spec
    config["measure"] = {"precision": "float32"}
    fast = next(iter(experiment.expand_runs(config).values()))
    assert fast["measure"] == {"precision": "float32"}
    assert runs.measure_options(fast) == {"global_mean": "classes", "precision": "float32"}
    both = trained_and_measured(tmp_path, {"float64": spec, "float32": fast}, "_32")
    logs = [(tmp_path / name / "train_log.csv").read_bytes() for name in ("float64", "float32")]
    assert logs[0] == logs[1]
    close = (both["value"] - both["value_32"]).abs() <= 1e-5 * both["value"].abs() + 1e-9
    assert close.all(), both[~close]
    assert (both["value"] != both["value_32"]).any()
    ncc = both[both["metric"] == "ncc_accuracy"]
    assert (ncc["value"] == ncc["value_32"]).all()


def test_the_specs_global_mean_reaches_the_epoch_metrics_and_the_measure_job(tmp_path):
    """A spec with ``measure.global_mean: samples`` (lindegaard2023's convention) changes the
    numbers that depend on μ_G (NC1 and the NC2 of the measure job) on the unbalanced digits,
    and not those that do not (the CDNV, the NCC)."""
    spec = spec_for(tmp_path, epoch_metrics={"every": 1})
    weighted = {**spec, "measure": {"global_mean": "samples"}}
    both = trained_and_measured(tmp_path, {"classes": spec, "samples": weighted}, "_samples")
    same = (both["value"] - both["value_samples"]).abs() <= 1e-12 * both["value"].abs()
    by_metric = same.groupby(both["metric"]).all()
    assert by_metric[["cdnv", "ncc_accuracy", "tr_sigma_w", "nc3_pabs"]].all()
    assert not by_metric[["nc1", "nc2_equinorm", "tr_sigma_b"]].any()
