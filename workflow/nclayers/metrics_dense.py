"""Dense p × p reference for the NC metrics: slow, obvious, and what the streaming path must equal.

Materialises Σ_W and Σ_B as p × p float64 matrices and uses a pseudo-inverse, exactly as the
definitions in docs/architecture.md read. Use it for small p only (tests, the benchmarks' naive
baseline).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from nclayers.metrics import RANK_RTOL


def dense_metrics(
    h_train: np.ndarray,
    y_train: np.ndarray,
    h: np.ndarray,
    y: np.ndarray,
    net_pred: np.ndarray,
    num_classes: int,
    global_mean: str = "classes",
) -> dict[str, float]:
    """All metrics of one split (features ``h``, labels ``y``), class means from the train split;
    μ_G the mean of the class means (``global_mean="classes"``) or of the train samples
    (``"samples"``)."""
    h_train = h_train.reshape(len(h_train), -1).astype(np.float64)
    h = h.reshape(len(h), -1).astype(np.float64)
    C = num_classes
    means = np.stack([h_train[y_train == c].mean(axis=0) for c in range(C)])
    mu_g = means.mean(axis=0) if global_mean == "classes" else h_train.mean(axis=0)
    M = (means - mu_g).T  # p × C

    centred = h - means[y]
    sigma_w = centred.T @ centred / len(h)
    sigma_b = M @ M.T / C
    sigma_b_pinv = np.linalg.pinv(sigma_b, rtol=RANK_RTOL, hermitian=True)
    tr_w, tr_b = np.trace(sigma_w), np.trace(sigma_b)

    ncc = cdist(h, means, "sqeuclidean").argmin(axis=1)

    present = [c for c in range(C) if np.any(y == c)]
    var = {c: np.mean(np.sum((h[y == c] - means[c]) ** 2, axis=1)) for c in present}
    cdnv = np.mean([
        (var[a] + var[b]) / (2 * np.sum((means[a] - means[b]) ** 2))
        for a in present for b in present if a != b
    ])
    own = {c: h[y == c].mean(axis=0) for c in present}  # this split's own class means
    own_var = {c: np.mean(np.sum((h[y == c] - own[c]) ** 2, axis=1)) for c in present}
    cdnv_own = np.mean([
        (own_var[a] + own_var[b]) / (2 * np.sum((own[a] - own[b]) ** 2))
        for a in present for b in present if a != b
    ])

    norms = np.linalg.norm(M, axis=0)
    cos = np.array([[M[:, a] @ M[:, b] / (norms[a] * norms[b]) for b in range(C)]
                    for a in range(C)])
    off = cos[~np.eye(C, dtype=bool)]
    return {
        # NaN when Σ_B = 0 (all class means equal), as in the streaming path.
        "nc1": float(np.trace(sigma_w @ sigma_b_pinv) / C) if np.any(sigma_b) else float("nan"),
        "nc1_ratio": float(tr_w / (tr_w + tr_b)),
        "tr_sigma_w": float(tr_w),
        "tr_sigma_b": float(tr_b),
        "tr_sigma_t": float(tr_w + tr_b),
        "cdnv": float(cdnv),
        "cdnv_own": float(cdnv_own),
        "nc2_equinorm": float(norms.std() / norms.mean()),
        "nc2_equiangle": float(off.std()),
        "nc2_equiangle_ratio": float(off.std() / abs(off.mean()))
        if abs(off.mean()) > 1e-9 else float("nan"),
        "nc2_maxangle": float(np.mean(np.abs(off + 1 / (C - 1)))),
        "nc2_angle_shift": float(np.mean(off + 1 / (C - 1))),
        # ‖H‖_F²/‖H‖_2² of the within-class-centred features, exactly.
        "stable_rank": float(tr_w / np.linalg.eigvalsh(sigma_w)[-1]) if tr_w > 0
        else float("nan"),
        "ncc_accuracy": float(np.mean(ncc == y)),
        "nc4_mismatch": float(np.mean(ncc != net_pred)),
    }
