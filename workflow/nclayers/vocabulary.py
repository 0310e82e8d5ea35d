"""The shared vocabulary of the steps: the columns of the tidy tables, the labels of the
metrics, and the names of the figures and tables each step writes.

It imports nothing (no torch, no plotting library), so that the Snakefile, the analysis and the
presentation modules can all read it without pulling each other in. The registries that map
these names to functions (``plots.FIGURES``, ``feature_plots.FEATURE_FIGURES``) are checked
against them by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- tidy tables ------------------------------------------------------------------------------

# Where the datasets read from files live when the config gives no data.root (relative to the
# working directory).
DEFAULT_ROOT = "data"
IMPLICIT_GROUP = "main"  # the one group of a config without `groups:`
DEFAULT_SELECT = ["lr", "weight_decay"]  # the papers select the best lr (and wd) per model

RUN_COLUMNS = ["run", "dataset", "arch", "seed"]  # identify a run in every tidy table
TIDY_COLUMNS = [*RUN_COLUMNS, "epoch", "layer", "layer_index", "split", "metric", "value"]
SPECTRA_COLUMNS = [*RUN_COLUMNS, "epoch", "layer", "layer_index", "k", "sigma", "share"]
TIDY_ORDER = ["run", "epoch", "split", "layer_index", "metric"]  # the sort of metrics.csv

# The thresholds of the derived per-run quantities and the papers' claims, where a caller gives
# none; the workflow passes the config's (the schema's defaults, which a test holds to these).
COLLAPSE_EPS = 0.2  # report.collapse_eps: a layer has collapsed when its NC1 is below this
NCC_THRESHOLD = 0.99  # measure.ncc_threshold: effective depth, first layer with NCC acc. >= this
INTERPOLATION_THRESHOLD = 0.995  # measure.interpolation_threshold: on train accuracy


@dataclass(frozen=True)
class Thresholds:
    """The three thresholds, as one value from the config to the derived rows and the papers'
    claims: ``report.collapse_eps``, ``measure.ncc_threshold``,
    ``measure.interpolation_threshold``."""

    collapse_eps: float = COLLAPSE_EPS
    ncc: float = NCC_THRESHOLD
    interpolation: float = INTERPOLATION_THRESHOLD

    @classmethod
    def from_config(cls, config: dict) -> Thresholds:
        return cls(float(config["report"]["collapse_eps"]),
                   float(config["measure"]["ncc_threshold"]),
                   float(config["measure"]["interpolation_threshold"]))

    def args(self) -> str:
        """The command-line options of the steps that read them."""
        return (f"--collapse-eps {self.collapse_eps} --ncc-threshold {self.ncc}"
                f" --interpolation-threshold {self.interpolation}")


DEFAULT_THRESHOLDS = Thresholds()

# The feature analysis's tables (one CSV each per run and epoch, run columns and epoch first).
FEATURE_COLUMNS = {
    "clusters": ["layer", "layer_index", "method", "points", "clusters", "small_clusters",
                 "avg_points", "accuracy", "excluded"],
    "retention": ["method", "layer_from", "layer_to", "index_from", "index_to", "retention"],
    "assignments": ["layer", "layer_index", "method", "point", "label", "cluster", "induced"],
    "umap": ["layer", "layer_index", "point", "label", "pred", "x", "y"],
    "pca": ["layer", "layer_index", "units", "component", "eigenvalue", "share", "cumulative",
            "l1", "dim", "random_l1", "random_dim"],
    "pca_summary": ["layer", "layer_index", "units", "components", "total_variance",
                    "n_components_99"],
    "sparsity": ["layer", "layer_index", "unit_rank", "unit", "zero_share", "mean", "std"],
}
FEATURE_TABLES = tuple(FEATURE_COLUMNS)

# --- labels -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """A per-layer metric of the registry :data:`METRICS`."""

    label: str  # its axis label in figures and tables
    source: str  # what computes it: "split", one pass over a split's samples
    # (metrics.SplitStats); "means", the train class means alone (metrics.MeanGeometry);
    # "weights", the weight that reads the layer (measurement: NC3)
    log: bool = False  # drawn on a log axis
    light: bool = False  # also measured every epoch of train.epoch_metrics (one pass)


# The metric registry: every per-layer metric of the tidy tables, in the order the figures
# show them. Its definition is in docs/architecture.md; metrics.py computes it (the split and
# mean ones by these names), metrics_dense.py is its dense reference.
METRICS = {
    "nc1": Metric(r"NC1 $\mathrm{Tr}(\Sigma_W\Sigma_B^+)/C$", "split", log=True, light=True),
    "nc1_ratio": Metric(r"NC1 ratio $\mathrm{Tr}\,\Sigma_W / \mathrm{Tr}\,\Sigma_T$", "split",
                        light=True),
    "cdnv": Metric("CDNV", "split", log=True, light=True),
    "cdnv_own": Metric("CDNV (the split's own means)", "split", log=True, light=True),
    "nc2_equinorm": Metric("NC2 equinorm", "means"),
    "nc2_equiangle": Metric("NC2 equiangle", "means"),
    "nc2_equiangle_ratio": Metric("NC2 equiangle / |mean cos|", "means"),
    "nc2_maxangle": Metric("NC2 max-angle", "means"),
    "ncc_accuracy": Metric("NCC accuracy", "split", light=True),
    "nc4_mismatch": Metric("NC4 mismatch", "split", light=True),
    "tr_sigma_w": Metric(r"$\mathrm{Tr}\,\Sigma_W$", "split", log=True),
    "tr_sigma_b": Metric(r"$\mathrm{Tr}\,\Sigma_B$", "means", log=True),
    "tr_sigma_t": Metric(r"$\mathrm{Tr}\,\Sigma_T$", "split", log=True),
    "nc2_angle_shift": Metric("NC2 angle shift", "means"),
    "nc3_pabs": Metric("NC3 PABS alignment", "weights"),
    "nc3_duality": Metric("NC3 self-duality", "weights"),
    "stable_rank": Metric("stable rank (within-class)", "split", log=True),
}
METRIC_LABELS = {name: m.label for name, m in METRICS.items()}
LOG_METRICS = {name for name, m in METRICS.items() if m.log}
# The light metrics measured during training, at the epochs of train.epoch_metrics (one pass
# over each split plus the class means; no sketch, no NC3), in epoch_metrics.csv.
EPOCH_METRICS = tuple(name for name, m in METRICS.items() if m.light)
METHOD_LABELS = {"cosine": "cosine, complete, 0.7", "ward": "euclidean, ward, 0.5"}


def model_label(dataset: str, arch: str, *more: str) -> str:
    """How a trained model (dataset × architecture, then its group and compared values where
    the figure shows several) is named in figures and tables."""
    return " / ".join([dataset, arch, *more])


def axis_columns(table) -> list[str]:
    """The axis columns of an aggregated table: those after ``group`` (sweeps.with_design
    appends the group, then one column per axis)."""
    columns = list(table.columns)
    return columns[columns.index("group") + 1:] if "group" in columns else []


def model_keys(table) -> list[str]:
    """The columns that tell the models of ``table`` apart: dataset and architecture, the group
    where there are several, and every axis whose value differs among its rows."""
    varying = [c for c in axis_columns(table) if table[c].nunique(dropna=True) > 1]
    group = ["group"] if "group" in table.columns and table["group"].nunique() > 1 else []
    return ["dataset", "arch", *group, *varying]


def shown_value(value) -> str:
    """An axis value as a label shows it: 5 rather than 5.0 (a CSV's integers with gaps
    come back as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def model_labels(table) -> list[str]:
    """:func:`model_label` of each row of ``table``; an axis that is not one of the row's
    model (empty) is left out."""
    keys = model_keys(table)
    labels = []
    for row in table[keys].itertuples(index=False):
        parts = [str(v) if k in ("dataset", "arch", "group") else f"{k}={shown_value(v)}"
                 for k, v in zip(keys, row, strict=True)
                 if k in ("dataset", "arch", "group") or v == v and v is not None]
        labels.append(model_label(*parts))
    return labels


def by_model(table):
    """``[(model label, rows)]`` for each model of a tidy table (:func:`model_keys`), in
    order."""
    if table.empty:
        return []
    labelled = table.assign(_model=model_labels(table))
    return [(label, part.drop(columns="_model"))
            for label, part in labelled.groupby("_model", sort=False)]


# --- what the steps write ---------------------------------------------------------------------

# The aggregate step's tables (tables/<name>.csv), a job each, and the per-run files each reads
# (runs/<run>/<file>.csv): regenerating one leaves the others, and what does not read it, alone.
AGGREGATE_READS = {"metrics": ("metrics", "train_log"), "training": ("train_log",),
                   "spectra": ("spectra",), "epoch_metrics": ("epoch_metrics",)}
AGGREGATE_TABLES = tuple(AGGREGATE_READS)
FIGURES = ("training_curves", "nc1_by_layer", "nc1_ratio_by_layer", "ncc_accuracy_by_layer",
           "nc_metrics_final", "weight_spectra")
# The aggregated tables each figure reads; its job waits for those alone.
FIGURE_TABLES = {"training_curves": ("training",), "nc1_by_layer": ("metrics",),
                 "nc1_ratio_by_layer": ("metrics",), "ncc_accuracy_by_layer": ("metrics",),
                 "nc_metrics_final": ("metrics",), "weight_spectra": ("spectra",)}
# How the Ward clustering scales each layer (nclayers.features, features.ward_scaling).
WARD_SCALINGS = ("mean_norm", "l2", "raw")
FEATURE_FIGURES = ("umap_class", "umap_cosine", "umap_ward", "clusters_cosine",
                   "clusters_ward", "pca_spectrum", "pca_l1", "neuron_sparsity")

# The papers a report can hold a section for (report.papers): each paper's figures
# (figures/<paper>/<name>.pdf) and tables (tables/<paper>/<name>.csv and .tex; "claims" in
# each). The functions are nclayers.papers.<paper>.FIGURES and .TABLES.
PAPER_FIGURES = {
    "rangamani2023": ("fig2_traces", "fig3_nc2", "fig4_pabs", "fig5_ncc", "fig6_ranks",
                      "fig7_etf", "fig8_no_collapse"),
    "parker2023": tuple(f"{metric}_{activation}"
                        for activation in ("relu", "tanh", "leaky_relu")
                        for metric in ("nc1", "equinorm", "maxangle", "nc4")),
    "lindegaard2023": ("fig4_1_nc_by_layer", "fig4_1_1_nc1_traces", "fig4_1_2_nc2_by_layer",
                       "fig4_1_3_nc3_by_layer", "fig_b0_accuracy_nc2", "fig_b0_nc3_nc4",
                       "fig4_2_1_collapse_vs_accuracy", "fig4_3_feature_shape"),
    "synthesis": ("q1_collapse_by_recipe", "q2_depths", "q2_depths_through_training",
                  "q3_etf_collapse", "q4_retention"),
    "galanti2022": ("fig1_mlp_depth", "fig2_convnet400_depth", "fig6_convnet100_depth",
                    "fig3_mlp_noise", "fig4_convnet_noise", "fig5_resnet18"),
    "benshaul2022": ("fig1_accuracy", "fig2_ncc_mismatch"),
}
# What each paper figure reads besides tables/runs.csv (which every one reads): aggregated
# tables (tables/<name>.csv, AGGREGATE_TABLES and "design") and the feature analysis's tables
# ("clusters", "retention", "pca_summary"). Its job waits for these alone, and the figure
# step hands it these alone: reading another fails (nclayers.papers.Tables.only), so a
# rebuilt table redraws only the figures that read it.


def _reads(paper: str, reads: tuple[str, ...], **more: tuple[str, ...]) -> dict:
    """``reads`` for each of the paper's figures, ``reads + more[figure]`` for those named."""
    return {name: reads + more.get(name, ()) for name in PAPER_FIGURES[paper]}


PAPER_FIGURE_READS = {
    "rangamani2023": _reads("rangamani2023", ("metrics", "design"), fig6_ranks=("spectra",)),
    "parker2023": _reads("parker2023", ("metrics", "design")),
    "lindegaard2023": {
        "fig4_1_nc_by_layer": ("metrics",),
        "fig4_1_1_nc1_traces": ("metrics", "design"),
        "fig4_1_2_nc2_by_layer": ("metrics", "design"),
        "fig4_1_3_nc3_by_layer": ("metrics", "design", "spectra"),
        "fig_b0_accuracy_nc2": ("metrics", "training"),
        "fig_b0_nc3_nc4": ("metrics", "spectra"),
        "fig4_2_1_collapse_vs_accuracy": ("metrics",),
        "fig4_3_feature_shape": ("metrics", "pca_summary", "clusters", "retention"),
    },
    "synthesis": _reads("synthesis", ("metrics", "design"),
                        q2_depths_through_training=("epoch_metrics",),
                        q4_retention=("retention",)),
    "galanti2022": _reads("galanti2022", ("epoch_metrics", "metrics", "training", "design")),
    "benshaul2022": _reads("benshaul2022", ("epoch_metrics", "training", "design")),
}
# The papers whose figures or claims read the feature analysis (Tables.features); the jobs of
# the others do not wait for it (a test holds the modules to this list).
FEATURE_PAPERS = ("lindegaard2023", "synthesis")
# What each paper's figures and tables read of the experiment's design, checked before any job
# (nclayers.preflight.check_papers): a group it finds by name (that group or its family G_…),
# and an axis, each with the outputs that need it. A paper module reads its groups from here.
PAPER_GROUPS = {
    "galanti2022": {
        "mlp_depth": ("fig1_mlp_depth", "claims", "effective_depth"),
        "convnet400_depth": ("fig2_convnet400_depth", "claims", "effective_depth"),
        "convnet100_depth": ("fig6_convnet100_depth", "claims", "effective_depth"),
        "mlp_noise": ("fig3_mlp_noise", "claims", "effective_depth"),
        "convnet_noise": ("fig4_convnet_noise", "claims", "effective_depth"),
        "resnet18": ("fig5_resnet18", "claims"),
    },
    "lindegaard2023": {
        "sweep": ("fig4_1_nc_by_layer", "fig4_1_1_nc1_traces", "fig4_1_2_nc2_by_layer",
                  "fig4_1_3_nc3_by_layer", "fig_b0_accuracy_nc2", "fig_b0_nc3_nc4", "claims"),
        "grid": ("fig4_2_1_collapse_vs_accuracy", "claims"),
        "features": ("fig4_3_feature_shape", "claims"),
    },
}
def in_family(group: str, name: str) -> bool:
    """Whether ``group`` is ``name`` or one of its family ``name_…`` (a preset may split a
    paper's experiment, e.g. ``resnet18_plain`` beside ``resnet18``)."""
    return group == name or group.startswith(name + "_")


PAPER_AXES = {
    "rangamani2023": {"etf_layers": ("fig7_etf", "claims")},
    "parker2023": {"activation": ("every figure", "claims")},
    "benshaul2022": {"loss": ("every figure", "table1_accuracy", "table2_svsl", "claims")},
    "synthesis": {"etf_layers": ("q3_etf_collapse", "etf", "claims")},
}
PAPER_TABLES = {
    "rangamani2023": ("claims",),
    "parker2023": ("claims",),
    "lindegaard2023": ("claims",),
    "synthesis": ("claims", "depths", "etf", "retention"),
    "galanti2022": ("claims", "effective_depth"),
    "benshaul2022": ("table1_accuracy", "table2_svsl", "claims"),
}


# The config's `measure` options that change a run's numbers (measurement.measure's keywords),
# with their defaults: in a run's spec only where not the default, so that a new option reruns
# nothing (experiment.spec_for; runs.measure_options reads them back).
MEASURE_DEFAULTS = {"global_mean": "classes", "precision": "float64"}
