"""The shared vocabulary of the steps: the columns of the tidy tables, the labels of the
metrics, and the names of the figures and tables each step writes.

It imports nothing (no torch, no plotting library), so that the Snakefile, the analysis and the
presentation modules can all read it without pulling each other in. The registries that map
these names to functions (``plots.FIGURES``, ``feature_plots.FEATURE_FIGURES``) are checked
against them by the tests.
"""

from __future__ import annotations

# --- tidy tables ------------------------------------------------------------------------------

RUN_COLUMNS = ["run", "dataset", "arch", "seed"]  # identify a run in every tidy table
TIDY_COLUMNS = [*RUN_COLUMNS, "epoch", "layer", "layer_index", "split", "metric", "value"]
SPECTRA_COLUMNS = [*RUN_COLUMNS, "epoch", "layer", "layer_index", "k", "sigma", "share"]
TIDY_ORDER = ["run", "epoch", "split", "layer_index", "metric"]  # the sort of metrics.csv

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

METRIC_LABELS = {
    "nc1": r"NC1 $\mathrm{Tr}(\Sigma_W\Sigma_B^+)/C$",
    "nc1_ratio": r"NC1 ratio $\mathrm{Tr}\,\Sigma_W / \mathrm{Tr}\,\Sigma_T$",
    "cdnv": "CDNV",
    "cdnv_own": "CDNV (the split's own means)",
    "nc2_equinorm": "NC2 equinorm",
    "nc2_equiangle": "NC2 equiangle",
    "nc2_equiangle_ratio": "NC2 equiangle / |mean cos|",
    "nc2_maxangle": "NC2 max-angle",
    "ncc_accuracy": "NCC accuracy",
    "nc4_mismatch": "NC4 mismatch",
    "tr_sigma_w": r"$\mathrm{Tr}\,\Sigma_W$",
    "tr_sigma_b": r"$\mathrm{Tr}\,\Sigma_B$",
    "tr_sigma_t": r"$\mathrm{Tr}\,\Sigma_T$",
    "nc2_angle_shift": "NC2 angle shift",
    "nc3_pabs": "NC3 PABS alignment",
    "nc3_duality": "NC3 self-duality",
    "stable_rank": "stable rank (within-class)",
}
LOG_METRICS = {"nc1", "cdnv", "cdnv_own", "tr_sigma_w", "tr_sigma_b", "tr_sigma_t", "stable_rank"}
METHOD_LABELS = {"cosine": "cosine, complete, 0.7", "ward": "euclidean, ward, 0.5"}


def model_label(dataset: str, arch: str) -> str:
    """How a trained model (dataset × architecture) is named in figures and tables."""
    return f"{dataset} / {arch}"


def by_model(table):
    """``[(model label, rows)]`` for each dataset × architecture in a tidy table, in order."""
    return [(model_label(d, a), part) for (d, a), part in table.groupby(["dataset", "arch"])]


# --- what the steps write ---------------------------------------------------------------------

FIGURES = ("training_curves", "nc1_by_layer", "nc1_ratio_by_layer", "ncc_accuracy_by_layer",
           "nc_metrics_final", "weight_spectra")
FEATURE_FIGURES = ("umap_class", "umap_cosine", "umap_ward", "clusters_cosine",
                   "clusters_ward", "pca_spectrum", "pca_l1", "neuron_sparsity")
