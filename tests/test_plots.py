"""Figures (nclayers.plots, nclayers.feature_plots): the registries match the vocabulary, and
every figure, drawn on small synthetic tables, fits the report's page readably."""

from __future__ import annotations

import functools
import io
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from nclayers import feature_plots as fp
from nclayers import features as ft
from nclayers import plots, vocabulary

C = 10
# The report includes every figure at \linewidth (16 cm ≈ 6.3 in): a figure at most 9.5 in wide
# is scaled by ≥ 0.66, so the "paper" ticks of plots.STYLE (8.8 pt × 1.1) stay ≥ ~6.5 pt; and it
# has to fit on the page (24.7 cm of text height ≈ 9.7 in after scaling).
MAX_WIDTH, MAX_HEIGHT = 9.5, 12.0
LAYER_COUNTS = (7, 12)  # the default MLP (input + 6 hidden), and a deeper net
EPOCHS = (0, 10, 50, 100, 200, 400)


def layer_names(count: int) -> list[str]:
    return ["input", *(f"layer{i}" for i in range(1, count))]


# --- synthetic tidy tables -------------------------------------------------------------------

@functools.cache
def tidy_tables(layers: int, models: int = 2, seeds: int = 2, epochs=EPOCHS, width: int = 32,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(metrics, training, spectra) as ``aggregate`` writes them, with made-up values: every
    metric of METRIC_LABELS per layer, split and epoch, plus a derived row without a layer."""
    rng = np.random.default_rng(seed)
    names = layer_names(layers)
    metric_rows, training_rows, spectra_rows = [], [], []
    for m in range(models):
        arch = f"mlp{m + 6}"
        for s in range(seeds):
            run = f"digits-{arch}-seed{s}"
            ids = [run, "digits", arch, s]
            for epoch in range(max(epochs) + 1):
                progress = epoch / max(epochs)
                training_rows.append([*ids, epoch, 2.0 * (1 - progress) + 0.01 * rng.random(),
                                      2.1 * (1 - progress) + 0.1, 0.1 + 0.9 * progress,
                                      0.1 + 0.8 * progress])
            for epoch in epochs:
                for index, name in enumerate(names):
                    depth = index / (layers - 1)
                    for split in ("train", "test"):
                        for metric in vocabulary.METRIC_LABELS:
                            value = (1 - 0.8 * depth) * (1.0 + 0.1 * rng.random())
                            if metric in vocabulary.LOG_METRICS:
                                value = 10 ** (2 - 4 * depth * (epoch + 1) / max(epochs))
                            metric_rows.append([*ids, epoch, name, index, split, metric,
                                                value])
                    sigma = np.sort(rng.gamma(1.0, size=width))[::-1] * (1 + depth)
                    for k, value in enumerate(sigma):
                        spectra_rows.append([*ids, epoch, name, index, k, value,
                                             value / sigma.sum()])
            metric_rows.append([*ids, max(epochs), None, None, "train", "collapse_layer",
                                layers - 2.0])
    metrics = pd.DataFrame(metric_rows, columns=vocabulary.TIDY_COLUMNS)
    training = pd.DataFrame(training_rows, columns=[*vocabulary.RUN_COLUMNS, "epoch",
                                                    "eval_train_loss", "test_loss",
                                                    "train_acc", "test_acc"])
    spectra = pd.DataFrame(spectra_rows, columns=vocabulary.SPECTRA_COLUMNS)
    return metrics, training, spectra


@functools.cache
def feature_tables(layers: int, per_class: int = 6, units: int = 24, seed: int = 0
                   ) -> dict[str, pd.DataFrame]:
    """Real tables of :func:`nclayers.features.analyse_layers` on a small sample whose classes
    separate with depth (the last layers post-ReLU), and a UMAP table made by hand (the real
    one compiles numba for ~20 s)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), per_class)
    names = layer_names(layers)
    sample = {"labels": y, "pred": y, "index": np.arange(len(y)), "layers": names}
    umap = []
    for index, name in enumerate(names):
        depth = index / (layers - 1)
        x = 3 * depth * np.eye(C, units)[y] + rng.standard_normal((len(y), units))
        sample[name] = np.maximum(x, 0) if index else x
        angle = 2 * np.pi * y / C
        xy = 4 * depth * np.c_[np.cos(angle), np.sin(angle)] + rng.standard_normal((len(y), 2))
        umap.append(pd.DataFrame({"layer": name, "layer_index": index, "point": np.arange(len(y)),
                                  "label": y, "pred": y, "x": xy[:, 0], "y": xy[:, 1]}))
    tables = ft.analyse_layers(sample, seed=seed, umap=False)
    tables["umap"] = pd.concat(umap, ignore_index=True)[vocabulary.FEATURE_COLUMNS["umap"]]
    return tables


# --- what the report gets --------------------------------------------------------------------

def saved_size(fig: Figure) -> tuple[float, float]:
    """Width and height in inches of the PDF that the workflow writes (as ``cli._save`` does:
    the page is the figure, no ``bbox_inches="tight"``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf", dpi=30)
    box = re.search(rb"/MediaBox \[\s*([\d.\s-]+)\]", buffer.getvalue()).group(1).split()
    x0, y0, x1, y1 = map(float, box)
    return (x1 - x0) / 72, (y1 - y0) / 72


def assert_readable(fig: Figure, what: str) -> None:
    width, height = fig.get_size_inches()
    assert width <= MAX_WIDTH and height <= MAX_HEIGHT, f"{what}: {width:.1f} × {height:.1f} in"
    width, height = saved_size(fig)
    assert width <= MAX_WIDTH and height <= MAX_HEIGHT, \
        f"{what} as saved: {width:.1f} × {height:.1f} in"
    # Saved without bbox_inches="tight", nothing may stick out of the page (a legend beside
    # the axes, a rotated tick label): the layout has to make room for everything.
    drawn = fig.get_tightbbox(fig._get_renderer())
    assert drawn.x0 >= -0.02 and drawn.y0 >= -0.02 and drawn.x1 <= width + 0.02 \
        and drawn.y1 <= height + 0.02, f"{what}: drawn beyond the page, {drawn} in"


# --- tests ---------------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def style():
    """The look the drawing steps set (the fonts decide the sizes), undone afterwards."""
    with matplotlib.rc_context():
        plots.use_style()
        yield


def test_registries_match_the_vocabulary():
    assert tuple(plots.FIGURES) == vocabulary.FIGURES
    assert tuple(fp.FEATURE_FIGURES) == vocabulary.FEATURE_FIGURES
    # each feature figure's caption in Snakemake's report (one job draws them all)
    captions = Path(__file__).parents[1] / "workflow" / "report" / "features"
    assert sorted(p.stem for p in captions.glob("*.rst")) == sorted(vocabulary.FEATURE_FIGURES)
    for name in vocabulary.FEATURE_FIGURES:
        assert name in (captions / f"{name}.rst").read_text(), name


def test_vocabulary_is_not_re_exported():
    for name in ("METRIC_LABELS", "LOG_METRICS", "by_model", "METHOD_LABELS", "model_label"):
        assert name not in vars(plots) and name not in vars(fp), name


def test_importing_the_figures_changes_no_global_state():
    """No backend chosen and no theme set on import: drawing steps call plots.use_style()."""
    code = ("import matplotlib as mpl\n"
            "before = mpl.rcParams.copy()  # the backend included, unresolved\n"
            "import nclayers.feature_plots, nclayers.plots\n"
            "assert mpl.rcParams.copy() == before\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figure_steps_import_neither_torch_nor_seaborn():
    """A figure job is a fresh process: torch (~1.6 s) and seaborn (~1.7 s, with scipy.stats)
    would cost more than the drawing."""
    code = ("import sys\n"
            "import nclayers.cli, nclayers.feature_plots, nclayers.plots\n"
            "print(' '.join(m for m in ('torch', 'seaborn', 'scipy.stats', 'nclayers.features')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert out.split() == []


def test_lines_draws_the_mean_and_a_band_of_one_sd():
    """As seaborn's lineplot(errorbar="sd"): the mean over the rows at each x, ± the sd with
    ddof 1, a line per hue level in order of appearance; one row per x: no band."""
    data = pd.DataFrame({"x": [0, 0, 1, 1, 0, 1], "y": [1.0, 3.0, 2.0, 6.0, 5.0, 7.0],
                         "hue": ["b", "b", "b", "b", "a", "a"]})
    fig = Figure()
    ax = fig.subplots()
    plots.lines(ax, data, "x", "y", "hue", marker="o")
    drawn = [line for line in ax.lines if len(line.get_xdata())]
    assert [list(line.get_ydata()) for line in drawn] == [[2.0, 4.0], [5.0, 7.0]]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.min(), 2.0 - np.sqrt(2)) and np.isclose(band.max(), 4.0 + np.sqrt(8))
    assert len(ax.collections) == 1  # hue "a" has one row per x
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["b", "a"]
    assert ax.get_legend().get_title().get_text() == "hue"
    colours = [line.get_color() for line in drawn]
    assert colours == list(plots.DEEP[:2])  # the look's colour cycle (use_style)


def test_lines_spreads_a_numeric_hue_over_the_colormap():
    data = pd.DataFrame({"x": [0, 1] * 7, "y": range(14), "epoch": np.repeat(range(7), 2) * 50})
    fig = Figure()
    ax = fig.subplots()
    plots.lines(ax, data, "x", "y", "epoch", palette="viridis")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "0" and labels[-1] == "300" and len(labels) <= 7  # > 6: round values
    ax = fig.subplots()
    plots.lines(ax, data, "x", "y", "epoch", palette="viridis", legend="full")
    assert len(ax.get_legend().get_texts()) == 7


def test_lines_keys_whole_epochs_and_tells_more_than_ten_models_apart():
    data = pd.DataFrame({"x": [0, 1] * 8, "y": range(16), "epoch": np.repeat(range(8), 2)})
    fig = Figure()
    ax = fig.subplots()
    plots.lines(ax, data, "x", "y", "epoch", palette="viridis")  # epochs 0..7: brief legend
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels and all(label.isdigit() for label in labels), labels
    many = pd.DataFrame({"x": [0, 1] * 12, "y": range(24), "model": np.repeat(range(12), 2)
                         .astype(str)})
    ax = fig.subplots()
    plots.lines(ax, many, "x", "y", "model")
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str)
               else line.get_color() for line in ax.lines if line.get_xdata().size}
    assert len(colours) == 12  # the 10 colours of the cycle would repeat


@pytest.mark.parametrize(("layers", "models"), [(7, 1), (7, 2), (12, 2)])
@pytest.mark.parametrize("name", vocabulary.FIGURES)
def test_every_figure_fits_the_page(name, layers, models):
    metrics, training, spectra = tidy_tables(layers)
    keep = {f"mlp{m + 6}" for m in range(models)}
    fig = plots.FIGURES[name](metrics[metrics["arch"].isin(keep)],
                              training[training["arch"].isin(keep)],
                              spectra[spectra["arch"].isin(keep)], collapse_eps=0.2)
    assert isinstance(fig, Figure)
    assert_readable(fig, f"{name}, {layers} layers, {models} model(s)")


@pytest.mark.parametrize("layers", LAYER_COUNTS)
@pytest.mark.parametrize("name", vocabulary.FEATURE_FIGURES)
def test_every_feature_figure_fits_the_page(name, layers):
    fig = fp.FEATURE_FIGURES[name](feature_tables(layers))
    assert isinstance(fig, Figure)
    assert_readable(fig, f"{name}, {layers} layers")


def test_panels_wrap_into_rows():
    tables = feature_tables(7)
    # 7 layers: rows of 4 and 3 layers, each a pair of panels; the 8th pair hidden.
    fig = fp.umap_by_cluster(tables["umap"], tables["assignments"], "ward")
    assert len(fig.axes) == 2 * 2 * 4
    assert sum(ax.get_visible() for ax in fig.axes) == 2 * 7
    assert fp.cluster_heatmaps(tables["assignments"], cols=2).axes[0].get_subplotspec(
        ).get_gridspec().get_geometry() == (4, 2)


def test_placeholder_states_the_reason():
    fig = plots.placeholder("every run diverged")
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in fig.texts] == ["every run diverged"]
    assert_readable(fig, "placeholder")


def test_a_figure_says_how_many_seeds_each_model_averages():
    """Selected runs that did not diverge, per model (a run id less its ``-s<seed>``)."""
    from nclayers.plots import seeds_note

    runs = pd.DataFrame({"run": ["a-s0", "a-s1", "b-s0", "b-s1", "c-s0"],
                         "selected": [True, True, True, True, False],
                         "diverged": [False, False, False, False, False]})
    assert seeds_note(runs) == "n = 2 seeds per model"
    runs.loc[1, "diverged"] = True
    assert seeds_note(runs) == "n = 1–2 seeds per model"
    assert seeds_note(runs.iloc[[0, 4]]) == "n = 1 seed per model: no spread to show"


def test_a_finished_figure_keeps_its_title_and_legend_within_its_width():
    """A narrow figure's long title wraps and its figure legend takes fewer columns, every key
    kept, so that nothing runs off the page's sides."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(3, 4), layout="constrained")
    fig.add_subplot().plot([0, 1])
    fig.suptitle("NCC mismatch per layer, CE (solid) against SVSL (dashed) (Ben-Shaul & Dekel "
                 "Fig. 2)")
    labels = [f"Layer{i}" for i in range(1, 9)]
    fig.legend(handles=[Line2D([], [], label=label) for label in labels],
               loc="outside lower center", ncol=8, fontsize="small")
    runs = pd.DataFrame({"run": ["a-s0", "a-s1"], "selected": True, "diverged": False})
    plots.finish(fig, runs)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    title, (legend,) = fig._suptitle, fig.legends
    for artist in (title, legend):
        box = artist.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    assert title.get_text().endswith("\n(n = 2 seeds per model)") and title.get_text().count(
        "\n") >= 2
    assert [t.get_text() for t in legend.texts] == labels and legend._ncols < 8
    assert legend.get_window_extent(renderer).y1 < fig.axes[0].get_window_extent(renderer).y0


def test_log_spaced_checkpoints_get_colours_apart():
    """Epochs 0 and 10 of 0 … 400 read alike on a linear viridis; on log(1 + epoch) they do
    not (issue 29, the report's Figs. 2-3)."""
    from matplotlib.colors import to_rgb

    data = pd.DataFrame({"x": [0, 1] * 6, "y": range(12),
                         "epoch": np.repeat([0, 10, 50, 100, 200, 400], 2)})

    def gap(log_hue: bool) -> float:
        ax = Figure().subplots()
        plots.lines(ax, data, "x", "y", "epoch", palette="viridis", log_hue=log_hue)
        first, second = (np.array(to_rgb(line.get_color())) for line in ax.lines[:2])
        return float(np.abs(first - second).sum())

    assert gap(False) < 0.15 < 0.5 < gap(True)


def test_feature_figures_read_apart_where_the_report_ran_together():
    """The default report's feature figures: integer cluster rows, the PCA's k in the legend
    (not labels overprinting each other), wrong points in a colour no class has, drawn on top,
    and the nonzero activations on a linear axis from 0 (no spikes of a band below zero)."""
    tables = feature_tables(7)
    heat = fp.cluster_heatmaps(tables["assignments"], "cosine")
    for ax in heat.axes[:-1]:  # the last: the colour bar
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[1] <= t <= ax.get_ylim()[0]]
        assert all(float(t).is_integer() for t in ticks), ticks
    pca = fp.pca_spectrum(tables["pca"])
    labels = [t.get_text() for t in pca.legends[0].texts]
    assert any(": k = " in label for label in labels) and not pca.axes[1].texts
    umap = fp.umap_by_cluster(tables["umap"], tables["assignments"], "cosine")
    assert fp.WRONG not in fp._palette(C) and fp.RIGHT not in fp._palette(C)
    panels = [ax for ax in umap.axes if ax.get_visible() and ax.collections]
    seen = 0
    for ax in panels:  # black only in the error panels
        wrong = [tuple(c[:3]) == (0.0, 0.0, 0.0) for c in ax.collections[0].get_facecolors()]
        assert wrong == sorted(wrong)  # every wrong point after every other
        seen += sum(wrong)
    assert seen > 0  # the input layer's clusters mislabel some points
    sparsity = fp.neuron_sparsity(tables["sparsity"])
    assert all(ax.get_yscale() == "linear" for ax in sparsity.axes)
