"""The cluster × class table of a clustering (lindegaard2023 Fig. 4.3.2): numpy and pandas
only, so that the figure step (:mod:`nclayers.feature_plots`) does not import torch with
:mod:`nclayers.features`, which clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_CLUSTER = 3  # clusters of fewer points are "excluded" (§4.3.2)


def cluster_class_matrix(ids: np.ndarray, labels: np.ndarray,
                         num_classes: int | None = None) -> pd.DataFrame:
    """Row-normalised cluster × class shares of the clusters of ≥ 3 points (Fig. 4.3.2), rows
    sorted by induced (majority) class, then by size, largest first; columns are the classes,
    plus ``cluster``, ``induced`` and ``size``."""
    ids, labels = np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    width = max(int(labels.max()) + 1, num_classes or 0)
    counts = np.zeros((int(ids.max()) + 1, width), dtype=np.int64)
    np.add.at(counts, (ids, labels), 1)
    sizes = counts.sum(axis=1)
    rows = np.flatnonzero(sizes >= MIN_CLUSTER)
    induced = counts[rows].argmax(axis=1)
    order = np.lexsort((-sizes[rows], induced))  # last key first: class, then size
    rows, induced = rows[order], induced[order]
    table = pd.DataFrame(counts[rows] / sizes[rows, None], columns=list(range(width)))
    table.insert(0, "size", sizes[rows])
    table.insert(0, "induced", induced)
    table.insert(0, "cluster", rows)
    return table
