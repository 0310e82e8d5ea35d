"""Galanti & Galanti (2022) (nclayers.papers.galanti2022): the claims on small hand-built tidy
tables (depth, noise and ResNet experiments where every claim holds, and ones where they fail),
the effective-depth table, and every figure on such tables and on tables without its group."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import assert_on_page, bands_at
from matplotlib.figure import Figure

from nclayers.papers import CLAIM_COLUMNS, Tables
from nclayers.papers import galanti2022 as gl
from nclayers.vocabulary import (
    PAPER_FIGURE_READS,
    PAPER_FIGURES,
    PAPER_GROUPS,
    PAPER_TABLES,
    Thresholds,
)

LAST = 10  # the last epoch of every synthetic run
CURVE_EPOCHS = (0, 1, 3, LAST)
START = {"cdnv": 2.0, "cdnv_own": 2.0, "ncc_accuracy": 0.3}  # every layer at initialisation


def run_tables(group: str, arch: str, depth: int, ncc: list[float], cdnv: list[float],
               train_acc: float = 1.0, test_acc: float = 0.9, dataset: str = "digits",
               noise: float | None = None, stem: bool = False, seed: int = 0
               ) -> dict[str, list[dict]]:
    """One run's rows: ``ncc`` and ``cdnv`` are its hidden layers' final train values (test:
    NCC 0.05 lower, CDNV doubled, ``cdnv_own`` (train: = CDNV) × 1.5), reached linearly from
    START over the curve's epochs."""
    tag = f"-noise{noise:g}" if noise is not None else ""
    run = f"{group}-{dataset}-{arch}-d{depth}{tag}-s{seed}"
    axes = {"group": group, "depth": depth, "label_noise": noise}
    layers = ["input", *(["stem"] if stem else []), *(f"layer{k}" for k in range(1, depth + 1))]
    final = {"ncc_accuracy": [0.5, *([0.6] if stem else []), *ncc],
             "cdnv": [3.0, *([2.5] if stem else []), *cdnv]}
    final["cdnv_own"] = final["cdnv"]
    test = {"ncc_accuracy": lambda v: v - 0.05, "cdnv": lambda v: 2 * v,
            "cdnv_own": lambda v: 1.5 * v}

    def rows(epochs) -> list[dict]:
        out = []
        for epoch in epochs:
            share = epoch / LAST
            for index, layer in enumerate(layers):
                for metric, values in final.items():
                    value = START[metric] + share * (values[index] - START[metric])
                    for split in ("train", "test"):
                        shown = value if split == "train" else test[metric](value)
                        out.append({"run": run, "dataset": dataset, "arch": arch, "seed": seed,
                                    "epoch": epoch, "layer": layer, "layer_index": index,
                                    "split": split, "metric": metric, "value": shown, **axes})
        return out

    training = [{"run": run, "epoch": e, "train_acc": train_acc * (0.5 + 0.5 * e / LAST),
                 "test_acc": test_acc, **axes} for e in range(LAST + 1)]
    design = {"run": run, "group": group, "seed": seed, "dataset": dataset, "arch": arch,
              "selected_axes": None, "compared_axes": "label_noise" if tag else "depth",
              "dataset.label_noise": noise or 0.0}
    return {"metrics": rows((0, LAST)), "epoch_metrics": rows(CURVE_EPOCHS),
            "training": training, "design": [design],
            "runs": [{"run": run, "dataset": dataset, "arch": arch, "seed": seed, **axes,
                      "diverged": False, "final_train_acc": train_acc,
                      "final_test_acc": test_acc, "selected": True}]}


def make_tables(*runs: dict[str, list[dict]]) -> Tables:
    def frame(name: str) -> pd.DataFrame:
        rows = [row for run in runs for row in run[name]]
        table = pd.DataFrame(rows)
        front = ["run", "group", "dataset", "arch", "seed", "depth", "label_noise"]
        if name == "runs":  # as sweeps.run_records orders them: group, then the axes
            return table[[*front, *[c for c in table.columns if c not in front]]]
        return table
    return Tables(metrics=frame("metrics"), training=frame("training"),
                  spectra=pd.DataFrame(), epoch_metrics=frame("epoch_metrics"),
                  runs=frame("runs"), design=frame("design"),
                  thresholds=Thresholds(ncc=0.99, interpolation=0.99))


def empty_tables() -> Tables:
    empty = pd.DataFrame()
    return Tables(metrics=empty, training=empty, spectra=empty, epoch_metrics=empty,
                  runs=pd.DataFrame(columns=["run", "group", "selected"]))


# Depth experiments. GOOD: MLP-2 fits without collapse (last layer NCC 0.9), MLP-4 is the
# minimal NCC depth, MLP-8 is NCC separable from layer 4 on, the last layer's CDNV falls with the
# depth. BAD: the deep net separates only at layer 7, no shallow net fits without collapse, and
# the deep net's last layer has a larger CDNV than the shallow one's.
def good_depths(group: str = "mlp_depth", arch: str = "mlp", stem: bool = False) -> list[dict]:
    return [
        run_tables(group, arch, 2, [0.7, 0.9], [1.0, 0.5], stem=stem),
        run_tables(group, arch, 4, [0.8, 0.9, 0.97, 0.995], [1.0, 0.5, 0.2, 0.1], stem=stem),
        run_tables(group, arch, 8, [0.8, 0.9, 0.97, 0.992, 1.0, 1.0, 1.0, 1.0],
                   [1.0, 0.5, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02], stem=stem),
    ]


def bad_depths() -> list[dict]:
    return [
        run_tables("mlp_depth", "mlp", 2, [0.8, 0.995], [1.0, 0.01], train_acc=1.0),
        run_tables("mlp_depth", "mlp", 8, [0.8, 0.9, 0.95, 0.96, 0.97, 0.98, 0.995, 0.999],
                   [1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04]),
    ]


def noise_runs(cdnv4: list[float], ncc4: list[float], effective: list[int | None],
               group: str = "mlp_noise", train_acc: float = 1.0,
               test_acc: tuple[float, ...] = (0.9, 0.85, 0.8, 0.7)) -> list[dict]:
    """MLP-10 runs at 0, 25, 50, 75 % noise, layer 4's CDNV and NCC given, NCC separable from
    layer ``effective`` on (None: never), the network's test accuracy ``test_acc``."""
    runs = []
    for noise, c4, n4, eff, test in zip((0.0, 0.25, 0.5, 0.75), cdnv4, ncc4, effective, test_acc,
                                        strict=True):
        ncc = [n4 if k == 4 else (1.0 if eff is not None and k >= eff else 0.9)
               for k in range(1, 11)]
        cdnv = [c4 if k == 4 else 1.0 / k for k in range(1, 11)]
        runs.append(run_tables(group, "mlp", 10, ncc, cdnv, train_acc=train_acc,
                               test_acc=test, dataset="digits_noisy", noise=noise))
    return runs


def resnet_runs(good: bool = True, test_acc: float = 0.96) -> list[dict]:
    ncc = [0.8, 0.95, 1.0, 1.0] if good else [0.8, 0.9, 0.95, 0.97]
    cdnv = [1.0, 0.5, 0.1, 0.05]
    return [run_tables("resnet18", "resnet18", 4, ncc, cdnv, test_acc=test_acc, dataset=d)
            for d in ("cifar10", "mnist")]


def claim_rows(claims: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return claims[claims["claim"].str.startswith(prefix)]


def test_hidden_numbers_are_the_papers_layers_and_skip_input_stem_and_head():
    assert [gl.hidden_number(n) for n in ("input", "stem", "layer1", "layer12", "avgpool",
                                          "layer1.0", "classifier")] == [
        None, None, 1, 12, None, None, None]


def test_depth_claims_hold_where_deep_networks_collapse_from_the_minimal_depth():
    claims = gl.claims(make_tables(*good_depths()))
    assert list(claims.columns) == CLAIM_COLUMNS
    mlp = claim_rows(claims, "MLP-d-100")
    assert mlp["holds"].tolist() == [True] * 5
    assert "d* = 4" in mlp.iloc[0]["measured"] and "layers 5-8" in mlp.iloc[0]["measured"]
    assert "d=8: 4 (paper 4)" in mlp.iloc[1]["measured"]
    assert "d* = 4, paper 4" in mlp.iloc[2]["measured"] and "d=8: 4" in mlp.iloc[2]["measured"]
    assert "d=2: train 1.000, last layer NCC 0.900" in mlp.iloc[3]["measured"]
    assert "d=2: 0.5, d=4: 0.1, d=8: 0.02" in mlp.iloc[4]["measured"]
    assert mlp["where"].tolist() == ["§4.2, Fig. 1"] * 4 + ["§1.1, Fig. 1"]
    assert all("paper" in text for text in mlp["claim"])  # the paper's value beside ours


def test_depth_claims_fail_where_the_deep_network_separates_late():
    mlp = claim_rows(gl.claims(make_tables(*bad_depths())), "MLP-d-100")
    assert mlp["holds"].tolist() == [False] * 5
    assert "d* = 2" in mlp.iloc[0]["measured"] and "d=8: 7 (paper 4)" in mlp.iloc[1]["measured"]
    assert "d* = 2, paper 4; effective depth d=8: 7" in mlp.iloc[2]["measured"]
    assert "every fitting network is NCC separable" in mlp.iloc[3]["measured"]
    assert "d=2: 0.01, d=8: 0.04" in mlp.iloc[4]["measured"]


def test_the_effective_depth_is_the_papers_number_not_about_it():
    # the deep network separates at layer 5: one off the paper's 4 is not "effectively of
    # depth 4"; though d* = 4 here, 5 is not "exactly the minimal depth" either
    runs = [run_tables("mlp_depth", "mlp", 4, [0.8, 0.9, 0.97, 0.995], [1.0, 0.5, 0.2, 0.1]),
            run_tables("mlp_depth", "mlp", 8, [0.8, 0.9, 0.97, 0.98, 0.995, 1.0, 1.0, 1.0],
                       [1.0, 0.5, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02])]
    mlp = claim_rows(gl.claims(make_tables(*runs)), "MLP-d-100")
    assert mlp.iloc[1]["holds"] is False and "d=8: 5 (paper 4)" in mlp.iloc[1]["measured"]
    assert mlp.iloc[2]["holds"] is False


def test_the_papers_depth_claim_cannot_tell_without_a_deeper_network_or_a_stated_number():
    shallow = [run_tables("convnet400_depth", "convnet", d, [0.995] * d, [0.1] * d, stem=True)
               for d in (1, 3)]
    conv = claim_rows(gl.claims(make_tables(*shallow)), "ConvNet-d-400")
    assert conv.iloc[1]["holds"] is None
    assert "no network deeper than 5 trained (depths 1, 3)" in conv.iloc[1]["measured"]
    fig6 = claim_rows(gl.claims(make_tables(*good_depths("convnet100_depth", "convnet",
                                                                stem=True))), "ConvNet-d-100")
    assert fig6.iloc[1]["holds"] is None
    assert "states no effective depth" in fig6.iloc[1]["measured"]
    assert fig6.iloc[2]["holds"] is True  # d* = 4 and the d=8 net's effective depth is 4


def test_the_convnet_stem_is_not_a_hidden_layer():
    t = make_tables(*good_depths("convnet400_depth", "convnet", stem=True))
    conv = gl.group_models(t, "convnet400_depth")
    assert [m.key["depth"] for m in conv] == [2, 4, 8]
    assert [gl.effective_depth(t, m) for m in conv][1:] == [4, 4]


def test_noise_claims_hold_with_the_papers_numbers():
    t = make_tables(*noise_runs([0.28, 0.6, 1.2, 1.5], [1.0, 0.95, 0.9, 0.8], [4, 6, 9, None]))
    noise = claim_rows(gl.claims(t), "MLP-10-500")
    assert noise["holds"].tolist() == [True] * 6
    assert "0 %: 0.28 (paper ≈ 0.28)" in noise.iloc[1]["measured"]
    # layer 4's NCC (1, .95, .9, .8) lies 0.1 from the test accuracy (.9, .85, .8, .7) on
    # average, the network's train accuracy (1) 0.1875
    assert "layer NCC 0.100, train 0.188" in noise.iloc[4]["measured"]
    assert "75 %: none" in noise.iloc[5]["measured"]


def test_noise_claims_fail_where_noise_does_not_weaken_the_collapse():
    t = make_tables(*noise_runs([0.05, 0.04, 0.5, 0.6], [1.0, 1.0, 1.0, 1.0], [4, 4, 4, 4],
                                train_acc=0.9, test_acc=(0.9, 0.88, 0.86, 0.84)))
    noise = claim_rows(gl.claims(t), "MLP-10-500")
    assert noise["holds"].tolist() == [False] * 6
    assert "layer NCC 0.130, train 0.030" in noise.iloc[4]["measured"]


def test_resnet_claims_hold_and_fail():
    good = claim_rows(gl.claims(make_tables(*resnet_runs())), "ResNet-18")
    assert good["holds"].tolist() == [True, True]
    assert "stages 3, 4" in good.iloc[1]["measured"]
    bad = claim_rows(gl.claims(make_tables(*resnet_runs(good=False))), "ResNet-18")
    assert bad["holds"].tolist()[0] is False
    assert bad.iloc[1]["holds"] is None and "no collapsed stage" in bad.iloc[1]["measured"]
    # collapsed stages (NCC test 0.95) far from the network's test accuracy: not redundant
    far = claim_rows(gl.claims(make_tables(*resnet_runs(test_acc=0.6))), "ResNet-18")
    assert far["holds"].tolist() == [True, False] and "gap 0.35" in far.iloc[1]["measured"]


def test_claims_without_the_groups_cannot_tell():
    claims = gl.claims(empty_tables())
    assert len(claims) == 3 * 5 + 2 * 6 + 2
    assert claims["holds"].isna().all() and claims["measured"].str.len().gt(0).all()


def test_effective_depth_table_has_a_row_per_network_of_the_depth_and_noise_groups():
    t = make_tables(*good_depths(),
                    *noise_runs([0.28, 0.6, 1.2, 1.5], [1.0, 0.95, 0.9, 0.8], [4, 6, 9, None]))
    table = gl.effective_depth_table(t)
    assert len(table) == 3 + 4
    depth = table[table["figure"] == "Fig. 1"]
    assert depth["effective depth"].tolist() == ["none", "4", "4"]
    noise = table[table["figure"] == "Fig. 3"]
    assert noise["label noise"].tolist() == ["0 %", "25 %", "50 %", "75 %"]
    assert noise["effective depth"].tolist() == ["4", "6", "9", "none"]


def test_the_label_noise_is_the_designs_recipe_field():
    t = make_tables(*noise_runs([0.28, 0.6, 1.2, 1.5], [1.0, 0.95, 0.9, 0.8], [4, 6, 9, None]))
    t = replace(t, runs=t.runs.drop(columns="label_noise"))  # not an axis of runs.csv
    found = gl.group_models(t, "mlp_noise")
    assert [m.key["label_noise"] for m in found] == [0.0, 0.25, 0.5, 0.75]


def test_seeds_are_averaged_into_one_model():
    runs = [run_tables("mlp_depth", "mlp", 2, [0.8, 0.98], [1.0, 0.4], seed=s) for s in (0, 1)]
    t = make_tables(*runs)
    (model,) = gl.group_models(t, "mlp_depth")
    assert len(model.runs) == 2 and gl.at(t, model) == pytest.approx(0.98)


@pytest.mark.parametrize("name", PAPER_FIGURES["galanti2022"])
def test_every_figure_draws_on_its_group_and_says_what_is_missing_without_it(name):
    t = make_tables(*good_depths(), *good_depths("convnet400_depth", "convnet", stem=True),
                    *good_depths("convnet100_depth", "convnet", stem=True),
                    *noise_runs([0.28, 0.6, 1.2, 1.5], [1.0, 0.95, 0.9, 0.8], [4, 6, 9, None]),
                    *noise_runs([0.28, 0.6, 1.2, 1.5], [1.0, 0.95, 0.9, 0.8], [4, 6, 9, None],
                                group="convnet_noise"),
                    *resnet_runs())
    fig = gl.FIGURES[name](t.only(PAPER_FIGURE_READS["galanti2022"][name], name))
    assert isinstance(fig, Figure) and len(fig.axes) > 4
    width, height = fig.get_size_inches()
    assert width <= 11.0 and height <= 11.0
    assert_on_page(fig, name)
    fig.savefig(io.BytesIO(), format="pdf")
    empty = gl.FIGURES[name](empty_tables())
    assert "needs the group" in empty.texts[0].get_text()


def test_registry_matches_the_vocabulary():
    assert tuple(gl.FIGURES) == PAPER_FIGURES["galanti2022"]
    assert tuple(gl.TABLES) == PAPER_TABLES["galanti2022"]
    experiments = gl.EXPERIMENTS  # each figure's group: the contract's
    assert {e.group for e in experiments.values()} == set(PAPER_GROUPS["galanti2022"])
    assert all(name in PAPER_GROUPS["galanti2022"][e.group] for name, e in experiments.items())
    assert [e.figure for e in experiments.values()] == [1, 2, 6, 3, 4, 5]
    assert [e.kind for e in experiments.values()] == ["depth"] * 3 + ["noise"] * 2 + ["resnet"]


def test_the_test_cdnv_is_the_test_splits_own_and_missing_is_said():
    t = make_tables(*good_depths(),
                    *noise_runs([0.28, 0.6, 1.2, 1.5], [1.0, 0.95, 0.9, 0.8], [4, 6, 9, None]))
    rows = {ax.get_ylabel(): ax for ax in gl.FIGURES["fig1_mlp_depth"](t).axes}
    # at epoch 0 every layer is at START: test cdnv 2 × 2 = 4, cdnv_own 1.5 × 2 = 3
    assert rows["CDNV (test)"].lines[0].get_ydata()[0] == pytest.approx(3.0)
    assert rows["CDNV (train)"].lines[0].get_ydata()[0] == pytest.approx(2.0)
    # tables from before cdnv_own was measured every epoch: the test CDNV panels say so
    old = replace(t, epoch_metrics=t.epoch_metrics[t.epoch_metrics["metric"] != "cdnv_own"])
    for name in ("fig1_mlp_depth", "fig3_mlp_noise"):
        texts = [text.get_text() for ax in gl.FIGURES[name](old).axes if ax.get_visible()
                 for text in ax.texts]
        assert any(text.startswith("not measured\n(cdnv_own, test") for text in texts), name


def _bands(ax) -> list[tuple[float, float]]:
    """(low, high) at the last epoch of each ± sd band of ``ax``."""
    return bands_at(ax, LAST)


def test_seed_means_are_drawn_in_a_band_of_one_sd_and_one_seed_has_none():
    # two seeds of MLP-2 (and of the clean MLP-4 of the noise group) differing in the final
    # train CDNV of every layer and in the train accuracy
    seeds = {0: ([1.0, 0.4, 0.3, 0.2], 1.0), 1: ([0.8, 0.6, 0.2, 0.1], 0.9)}
    runs = {s: [run_tables("mlp_depth", "mlp", 2, [0.8, 0.98], cdnv[:2], train_acc=acc, seed=s),
                run_tables("mlp_noise", "mlp", 4, [0.9] * 4, cdnv, train_acc=acc, seed=s,
                           dataset="digits_noisy", noise=0.0)] for s, (cdnv, acc) in seeds.items()}
    cdnv = pd.DataFrame([c for c, _ in seeds.values()])  # seed × (layer - 1)
    mean, sd = cdnv.mean(), cdnv.std()  # ddof 1, as the figures'
    two = make_tables(*runs[0], *runs[1])
    depth = {ax.get_ylabel(): ax for ax in gl.FIGURES["fig1_mlp_depth"](two).axes}
    panel = depth["CDNV (train)"]  # a line per layer, each in its band
    assert [line.get_ydata()[-1] for line in panel.lines] == pytest.approx(mean[:2].tolist())
    assert _bands(panel) == [pytest.approx((mean[k] - sd[k], mean[k] + sd[k])) for k in (0, 1)]
    acc_sd = np.std([1.0, 0.9], ddof=1)  # the network's train accuracy, 0.95 at the end
    assert _bands(depth["train accuracy"]) == [pytest.approx((0.95 - acc_sd, 0.95 + acc_sd))]
    noise = {ax.get_title(): ax for ax in gl.FIGURES["fig3_mlp_noise"](two).axes}
    assert _bands(noise["layer 4, train"]) == [pytest.approx((mean[3] - sd[3], mean[3] + sd[3]))]
    one = make_tables(*runs[0])  # sd NaN: mean lines only
    for name in ("fig1_mlp_depth", "fig3_mlp_noise"):
        axes = [ax for ax in gl.FIGURES[name](one).axes if ax.lines]
        assert axes and not any(_bands(ax) for ax in axes), name
