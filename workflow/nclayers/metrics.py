"""Streaming neural-collapse statistics of one layer.

Two passes over the data, in the style of torchmetrics (``update`` per batch, ``compute`` at the
end), every running total in float64 and memory O(p·C); the per-batch arithmetic in float64
(the default: ~1e-14 of the dense reference) or float32 (:data:`PRECISIONS`):

1. :class:`ClassMeans` (train split): per-class sums and counts → class means, and from them a
   :class:`MeanGeometry`: the centred means M and an orthonormal basis U of range(M).
2. :class:`SplitStats` (train or test split, means always from train): within-class squared
   distances per class, the squared projections of the centred features on U, and nearest-class-
   mean (NCC) predictions. Tr(Σ_W Σ_B⁺) is exact in the subspace range(M) = range(Σ_B), so no
   p × p matrix is ever formed.

Definitions (docs/architecture.md, "Metric definitions"): Σ_W = 1/N Σ_i (h_i − μ_{y_i})
(h_i − μ_{y_i})ᵀ, Σ_B = 1/C Σ_c (μ_c − μ_G)(μ_c − μ_G)ᵀ with μ_G, by :data:`GLOBAL_MEANS`, the
unweighted mean of the class means ("classes", the default) or the mean of the train samples
("samples"); the two agree on balanced splits. :mod:`nclayers.metrics_dense` holds the slow
p × p reference that the tests hold this module to.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor

from nclayers.vocabulary import METRICS

# Eigenvalues of Σ_B below RANK_RTOL · λ_max count as zero in its pseudo-inverse. M always has a
# null direction (its columns, weighted as μ_G weights the means, sum to zero), whose singular
# value is round-off (~1e-16 relative); 1e-10 on eigenvalues (1e-5 on singular values of M)
# separates it from any real direction.
RANK_RTOL = 1e-10

# The global mean μ_G that centres the class means, by the papers' conventions, which differ only
# on unbalanced splits: "classes", the unweighted mean of the class means (rangamani2023 §3
# μ_G = 1/C Σ_c μ_c; Papyan et al.'s and Parker et al.'s code), and "samples", the mean of all
# train samples (lindegaard2023 §2.3.2 μ_G = 1/(NC) Σ_{i,c} h_{i,c}, and its code's
# count-weighted calc_global_mean). Σ_W, Σ_B (1/C) and Σ_T := Σ_W + Σ_B are the same in both.
# Either μ_G lies in the affine hull of the means, so range(M) (and NC3's PABS) is the same in
# both; Σ_B, NC1 and NC2 differ.
GLOBAL_MEANS = ("classes", "samples")

# The arithmetic of the per-batch work; the running totals are float64 in both.
# - "float64": each batch is converted to float64; the metrics equal the dense float64
#   reference to ~1e-14 relative (tests/test_metrics.py holds them to 1e-8).
# - "float32": each batch stays float32 (half the memory traffic, float32 matrix products, ~2x
#   faster on a GPU's or CPU's vector units) and every batch's partial sums are added into the
#   float64 totals. Against cancellation it works on deviations from reference points: pass 1
#   sums h − s_c about per-class shifts (ClassMeans._add_shifted), and pass 2 centres each row
#   on its class mean μ split into a float32 head and tail (μ ≈ head + tail to ~1e-14), so
#   that a row's rounding error is relative to its distance from the mean, not to its
#   magnitude: a collapsed layer far from the origin keeps its within-class variance. The
#   Nyström estimate's shift uses float32's ε (top_eigenvalue). The metrics then
#   equal the dense reference to ~1e-6 relative (tests/test_metrics.py holds them to 1e-5); the
#   NCC and NC4 counts can differ only for rows within ~1e-6 of a tie between two means.
#   Its squares and products hold deviations from the class means up to ~1e18 (float32's range
#   is 3e38); beyond, they overflow and the measurement reports non-finite values.
PRECISIONS = ("float64", "float32")

# The registry's metrics this module computes (vocabulary.METRICS): of the class means alone
# (they depend on the train split only), and of one pass over a split's samples.
MEAN_METRICS = tuple(name for name, m in METRICS.items() if m.source == "means")
SPLIT_METRICS = tuple(name for name, m in METRICS.items() if m.source == "split")
# Columns of the random sketch of Σ_W that gives its top eigenvalue (stable rank) in the same
# pass: oversampling well past 1 makes the single-pass Nyström estimate close to exact.
SKETCH_COLUMNS = 24


_WORKSPACE: dict[tuple[str, torch.device, torch.dtype, bool], Tensor] = {}


def _scratch(slot: str, shape: tuple[int, ...], device: torch.device,
             dtype: torch.dtype = torch.float64) -> Tensor:
    """A scratch tensor of ``shape``, reused across batches and layers: fresh batch-sized
    float64 blocks (131 MB per batch at p = 65,536) cost more in page faults than the
    arithmetic on them. Valid until the next call for the same slot. One per slot, device,
    dtype and inference mode (an inference tensor cannot be written to outside
    ``torch.inference_mode``, where :func:`nclayers.measurement.measure` runs)."""
    n = math.prod(shape)
    key = (slot, device, dtype, torch.is_inference_mode_enabled())
    store = _WORKSPACE.get(key)
    if store is None or store.numel() < n:
        store = _WORKSPACE[key] = torch.empty(n, dtype=dtype, device=device)
    return store[:n].view(shape)


def _gaussian(p: int, k: int, device: torch.device) -> Tensor:
    """The fixed (seeded) p × k Gaussian test matrix of the sketch; drawn on the CPU so that
    every device gets the same one."""
    if not k:  # no sketch: no generator to seed (a measurable share of a small layer's work)
        return torch.empty(p, 0, dtype=torch.float64, device=device)
    gen = torch.Generator().manual_seed(0)
    return torch.randn(p, k, dtype=torch.float64, generator=gen).to(device)


def _flat(h: Tensor, dtype: torch.dtype) -> Tensor:
    """``h`` flattened to (n, p) in ``dtype``, in scratch memory (our own: written in place)."""
    flat = h.reshape(h.shape[0], math.prod(h.shape[1:]))  # also for 0 rows
    return _scratch("flat", tuple(flat.shape), flat.device, dtype).copy_(flat)


def _partial(slot: str, like: Tensor, dtype: torch.dtype) -> Tensor:
    """A zeroed scratch tensor of ``like``'s shape in ``dtype``: one batch's partial sums in
    the float32 arithmetic, added into the float64 totals."""
    return _scratch(slot, tuple(like.shape), like.device, dtype).zero_()


# The most float64 elements of one block of :func:`pairwise` (32 MB).
PAIRWISE_BLOCK = 1 << 22


def pairwise(rows: Tensor, op, block: int = PAIRWISE_BLOCK) -> Tensor:
    """The k × k table T[i, j] = Σ_d op(rows[j], rows[i])_d of the rows (k × p) of ``rows``,
    as ``torch.stack([op(rows, r).sum(dim=1) for r in rows])`` computes it.

    On the CPU in blocks of rows broadcast against all rows (at most ``block`` elements, or one
    row): the same elementwise values, each reduced over d alone, so bitwise the same table
    (tests/test_epoch_metrics.py), in a few operations instead of 3k (C = 10: 0.1 ms less per
    call, much of a small layer's measurement). Elsewhere one row at a time: CUDA's reductions
    over the two shapes differ in the last bit.
    """
    if rows.device.type != "cpu":
        return torch.stack([op(rows, r).sum(dim=1) for r in rows])
    k, p = rows.shape
    step = max(1, block // max(k * p, 1))
    if step >= k:  # one block: the table itself (torch.cat of one block would copy it)
        return op(rows[None], rows[:, None]).sum(dim=2)
    return torch.cat([op(rows[None], rows[i:i + step, None]).sum(dim=2)
                      for i in range(0, k, step)])


def _check_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"NC metrics need at least two classes, got {num_classes}")


def _check_global_mean(global_mean: str) -> None:
    if global_mean not in GLOBAL_MEANS:
        raise ValueError(f"global_mean {global_mean!r}: expected one of {', '.join(GLOBAL_MEANS)}")


def overflow_hint(dtype: torch.dtype) -> str:
    """What else a non-finite statistic can mean in float32 arithmetic."""
    return ("" if dtype == torch.float64 else " (or, in float32 arithmetic, finite features "
            "beyond ~1e18 overflowed its products: use precision float64)")


def check_precision(precision: str) -> torch.dtype:
    """The dtype of the per-batch arithmetic that ``precision`` (:data:`PRECISIONS`) names."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return getattr(torch, precision)


class Labels(NamedTuple):
    """One batch's labels as the accumulators use them: ``y`` as int64 on the features'
    device, clamped into [0, C); ``counts``, their float64 class counts (length C); and
    ``span``, (min, max) of the labels as given, an int64 2-vector on that device.

    Nothing here reads a value back to the host: on an accelerator, a check per batch would
    make the host wait for it at every batch. Labels outside [0, C) are clamped so that the sums
    stay in bounds, and the accumulators refuse them in ``compute()`` from their running
    ``span`` (:func:`check_label_span`), which they read once per split.
    :func:`nclayers.measurement.measure` makes the labels once per batch for all its layers
    (:func:`labels`) instead of once per layer."""

    y: Tensor
    counts: Tensor
    span: Tensor


def labels(y: Tensor, num_classes: int, device: torch.device | str) -> Labels:
    """``y`` on ``device`` as :class:`Labels`, without reading anything back."""
    y = y.to(device, torch.long)
    span = (torch.stack([y.min(), y.max()]) if y.numel()
            else torch.zeros(2, dtype=torch.long, device=y.device))
    y = y.clamp(0, num_classes - 1)
    counts = torch.zeros(num_classes, dtype=torch.float64, device=y.device)
    counts.index_add_(0, y, torch.ones(len(y), dtype=torch.float64, device=y.device))
    return Labels(y, counts, span)


def _labels_for(y: Tensor | Labels, num_classes: int, device: torch.device) -> Labels:
    """``y`` as :class:`Labels` on ``device``: made here from a tensor, taken as given
    where they were made once for the batch (and on this device)."""
    if isinstance(y, Labels) and y.y.device == device and len(y.counts) == num_classes:
        return y
    return labels(y.y if isinstance(y, Labels) else y, num_classes, device)


def wider_span(span: Tensor | None, batch: Labels) -> Tensor:
    """The running (min, max) of the labels so far, ``batch``'s included."""
    if span is None:
        return batch.span
    return torch.stack([torch.minimum(span[0], batch.span[0]),
                        torch.maximum(span[1], batch.span[1])])


def check_label_span(span: Sequence[int], num_classes: int) -> None:
    """Refuse labels outside [0, C): ``span`` is (min, max) of a split's labels, as read (a NaN
    label, cast to int64, is its most negative value)."""
    low, high = int(span[0]), int(span[1])
    if low < 0 or high >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got range [{low}, {high}]")


class ClassMeans:
    """Pass 1: per-class feature sums and counts."""

    def __init__(self, num_classes: int, sketch_columns: int = SKETCH_COLUMNS,
                 global_mean: str = "classes", precision: str = "float64") -> None:
        """``sketch_columns = 0`` skips the stable rank's sketch (about 2/3 of the arithmetic
        at large p; ``stable_rank`` is then NaN). ``global_mean``: one of :data:`GLOBAL_MEANS`;
        ``precision``: the per-batch arithmetic, one of :data:`PRECISIONS` (its
        :class:`SplitStats` follow the geometry's)."""
        _check_classes(num_classes)
        _check_global_mean(global_mean)
        self.dtype = check_precision(precision)
        self.precision = precision
        self.num_classes = num_classes
        self.global_mean = global_mean
        self.sketch_columns = sketch_columns
        self.sums: Tensor | None = None
        self.counts = torch.zeros(num_classes, dtype=torch.float64)
        self.shape: tuple[int, ...] = ()  # one sample's shape, e.g. (channels, H, W)
        # Sketch of the scatter Σ_i (h_i − s)(h_i − s)ᵀ Ω about a fixed shift s (the first
        # batch's mean, against cancellation), from which compute() gets a basis for pass 2's
        # estimate of λ_max(Σ_W): one power step for free. In float32 the shifts are per
        # class (C × p, :meth:`_add_shifted`) and ``sums`` are of h − s_c.
        self.shift: Tensor | None = None
        self.shifted: Tensor | None = None  # float32: which classes' shifts are set
        self.omega: Tensor | None = None
        self.omega_batch: Tensor | None = None  # float32: omega rounded
        self.scatter_sketch: Tensor | None = None
        self.span: Tensor | None = None  # (min, max) of the labels: Labels.span

    def update(self, h: Tensor, y: Tensor | Labels) -> None:
        """Add a batch: features ``h`` (n, …) and their labels (a tensor, or the batch's
        :class:`Labels`). Reads nothing back to the host."""
        self.shape = tuple(h.shape[1:])
        h = _flat(h, self.dtype)
        batch = _labels_for(y, self.num_classes, h.device)
        y, counts = batch.y, batch.counts
        self.span = wider_span(self.span, batch)
        if self.sums is None:
            p = h.shape[1]
            self.sums = torch.zeros(self.num_classes, p, dtype=torch.float64, device=h.device)
            self.counts = self.counts.to(h.device)
            self.omega = _gaussian(p, min(p, self.sketch_columns), h.device)
            self.scatter_sketch = torch.zeros_like(self.omega)
            if self.dtype == torch.float64:
                if self.omega.shape[1]:  # the shift serves the sketch alone
                    self.shift = h.mean(dim=0) if len(h) else torch.zeros_like(self.sums[0])
            else:
                self.omega_batch = self.omega.to(self.dtype)
                self.shift = torch.zeros(self.num_classes, p, dtype=self.dtype, device=h.device)
                self.shifted = torch.zeros(self.num_classes, dtype=torch.bool, device=h.device)
        if self.dtype == torch.float64:
            self.sums.index_add_(0, y, h)
            if self.omega.shape[1]:  # without a sketch, no pass over h for it
                shifted = h.sub_(self.shift)  # in place: h is our own buffer
                self.scatter_sketch += shifted.T @ (shifted @ self.omega)
        else:
            self._add_shifted(h, y, counts)
        self.counts += counts

    def _add_shifted(self, h: Tensor, y: Tensor, counts: Tensor) -> None:
        """float32: the batch's sums and scatter about per-class shifts s_c, each class's mean
        in the first batch that holds it (set on the device: no read back), so that their
        rounding is relative to the within-class spread. A global shift would leave the
        within-class scatter to cancel out of the between-class one, where a collapsed layer
        has ~1e-6 of it: a float32 product's round-off."""
        part = _partial("sums", self.sums, self.dtype).index_add_(0, y, h)
        present = counts > 0
        fresh = present & ~self.shifted
        batch_means = part / counts.clamp(min=1).to(self.dtype)[:, None]
        self.shift = torch.where(fresh[:, None], batch_means, self.shift)
        self.shifted |= present
        rows = _scratch("means", tuple(h.shape), h.device, self.dtype)
        shifted = h.sub_(torch.index_select(self.shift, 0, y, out=rows))  # in place: our buffer
        self.sums += part.zero_().index_add_(0, y, shifted)
        if self.omega.shape[1]:
            self.scatter_sketch += shifted.T @ (shifted @ self.omega_batch)

    def total(self) -> Tensor:
        """A number on the features' device that is finite while every feature so far was: a
        NaN or ±inf anywhere reaches the class sums and their total (O(C·p), against O(n·p)
        per batch; ~10x faster than ``isfinite().all()``). The measurement tests it after
        each batch on the device, to name the batch that brought one. In float32 the scatter
        sketch is added in: its products overflow first (at deviations of ~1e18)."""
        if self.dtype == torch.float64:
            return self.sums.sum()
        return self.sums.sum() + self.scatter_sketch.sum()

    def finite(self) -> bool:
        """Whether every feature so far was finite (a read of :meth:`total`)."""
        return self.sums is None or math.isfinite(float(self.total()))

    def compute(self) -> MeanGeometry:
        if self.sums is None:
            raise ValueError("ClassMeans.compute() called before any update()")
        check_label_span(self.span.tolist(), self.num_classes)
        counts = self.counts.tolist()  # one read instead of a tensor test per check
        present = [c for c, count in enumerate(counts) if count > 0]
        if not present:
            raise ValueError("the train split yielded no samples: every batch had zero rows")
        if len(present) == 1:
            raise ValueError(f"NC metrics need at least two classes, but the train split holds "
                             f"samples of class {present[0]} only")
        if not self.finite():
            raise ValueError("non-finite features (NaN or inf) in the train split: the model "
                             f"diverged or the inputs hold NaN{overflow_hint(self.dtype)}")
        empty = [c for c, count in enumerate(counts) if count == 0]
        if empty:
            raise ValueError(f"classes {empty} have no training samples; class means need all "
                             f"{self.num_classes} classes in the train split")
        if self.dtype == torch.float64:  # sums of h; the sketch's shift s is one vector
            means = self.sums / self.counts[:, None]
            d = means - self.shift if self.shift is not None else None
        else:  # sums of h − s_c (_add_shifted): d_c = μ_c − s_c
            d = self.sums / self.counts[:, None]
            means = d + self.shift
        weights = self.counts if self.global_mean == "samples" else None
        if not self.omega.shape[1]:  # no sketch: nothing to orthonormalise
            return MeanGeometry.from_means(means, self.shape, sketch=self.omega, weights=weights,
                                           precision=self.precision)
        # N Σ_W Ω = Σ_i (h_i − s)(h_i − s)ᵀΩ − Σ_c n_c (μ_c − s)(μ_c − s)ᵀΩ, and the same
        # with s_c for s (float32): Σ_{i∈c} (h_i − s_c) = n_c d_c
        omega = self.omega if self.dtype == torch.float64 else self.omega_batch.double()
        within = self.scatter_sketch - d.T @ (self.counts[:, None] * (d @ omega))
        # Directions where the sketch is round-off (Σ_W of lower rank than the sketch) are
        # replaced by the fixed Gaussian ones, so that the basis does not depend on rounding.
        q, r = torch.linalg.qr(within)
        diag = r.diagonal().abs()
        # Round-off is judged against the sketch of the whole scatter, Σ_W's upper bound.
        # float32's round-off is ~1e-7 of the within-class scatter (its shifts are per class).
        floor = 1e-9 if self.dtype == torch.float64 else 1e-5
        kept = diag > floor * float(torch.linalg.matrix_norm(self.scatter_sketch))
        basis = torch.linalg.qr(torch.cat([q[:, kept], self.omega[:, ~kept]], dim=1)).Q
        return MeanGeometry.from_means(means, self.shape, sketch=basis, weights=weights,
                                       precision=self.precision)


@dataclass(frozen=True)
class MeanGeometry:
    """Everything derived from the train class means μ_c (C × p)."""

    means: Tensor  # (C, p)
    centred: Tensor  # (C, p): rows μ_c − μ_G, i.e. Mᵀ
    basis: Tensor  # (p, r): orthonormal basis of range(M), r = rank(Σ_B) ≤ C − 1
    inv_sq_singular: Tensor  # (r,): 1/s_k² for the kept singular values s_k of M
    sketch: Tensor  # (p, k): orthonormal test matrix for the top eigenvalue of Σ_W
    gram: Tensor  # (C, C): m_a·m_b of the centred means
    shape: tuple[int, ...] = ()  # one sample's feature shape before flattening
    precision: str = "float64"  # the per-batch arithmetic of pass 2 (:data:`PRECISIONS`)

    @classmethod
    def from_means(cls, means: Tensor, shape: tuple[int, ...] = (),
                   sketch: Tensor | None = None, weights: Tensor | None = None,
                   precision: str = "float64") -> MeanGeometry:
        """``sketch``: a basis approximating Σ_W's top eigenvectors (from pass 1); a seeded
        Gaussian matrix without one. ``weights``: the class counts, for μ_G the mean of the
        samples; None, the unweighted mean of the class means (:data:`GLOBAL_MEANS`).
        ``precision``: pass 2's per-batch arithmetic (:data:`PRECISIONS`); the geometry
        itself is float64 either way."""
        _check_classes(means.shape[0])
        check_precision(precision)
        if weights is None:
            centred = means - means.mean(dim=0, keepdim=True)
        else:
            weights = weights.to(means)
            centred = means - (weights @ means / weights.sum())[None, :]
        # Thin SVD of M (p × C): O(p·C²), the only decomposition the streaming path needs.
        u, s, _ = torch.linalg.svd(centred.T, full_matrices=False)
        top = float(s.max())
        keep = s**2 > RANK_RTOL * top**2 if top > 0 else s < 0  # none
        keep = keep.nonzero().flatten()  # the same columns, one nonzero for both selections
        p = means.shape[1]
        if sketch is None:
            sketch = _gaussian(p, min(p, SKETCH_COLUMNS), means.device)
        # Row by row, elementwise: equal means give bitwise-equal entries (NCC ties stay ties).
        gram = pairwise(centred, torch.mul)
        return cls(means, centred, u.index_select(1, keep), 1.0 / s[keep] ** 2, sketch, gram,
                   shape or (p,), precision)

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of pass 2's per-batch arithmetic."""
        return getattr(torch, self.precision)

    @cached_property
    def batch_side(self) -> BatchSide:
        """What pass 2's batches meet, in their dtype: the geometry itself in float64, rounded
        copies in float32 (the means as a head and a tail)."""
        if self.dtype == torch.float64:
            return BatchSide(self.means, None, self.basis, self.sketch, self.centred, self.gram)
        head = self.means.float()
        return BatchSide(head, (self.means - head).float(), self.basis.float(),
                         self.sketch.float(), self.centred.float(), self.gram.float())

    # Of the class means alone, so the same for every split: computed once, on first use.
    @cached_property
    def tr_sigma_b(self) -> float:
        """Tr Σ_B = 1/C Σ_c ‖μ_c − μ_G‖²."""
        return float((self.centred**2).sum(dim=1).mean())

    @cached_property
    def twice_distances(self) -> Tensor:
        """(C, C): 2‖μ_c − μ_c'‖², row by row (exact for close means), for the CDNV."""
        return 2.0 * pairwise(self.means, _squared_difference)

    def nearest_mean(self, centred: Tensor, y: Tensor) -> Tensor:
        """Index of the nearest class mean (Euclidean) for each row h_i, given the rows
        ``centred`` = h_i − μ_{y_i} (no batch-sized temporaries)."""
        # ‖h − μ_c‖² = ‖h − μ_G‖² − 2 (h − μ_G)·m_c + ‖m_c‖² with m_c = μ_c − μ_G, and
        # (h − μ_G)·m_c = (h − μ_y)·m_c + m_y·m_c; the first term does not change the argmin.
        # Working from the small centred rows avoids cancellation under a large offset.
        side = self.batch_side
        dist = side.gram.diagonal() - 2.0 * (centred @ side.centred.T + side.gram[y])
        return dist.argmin(dim=1)

    def mean_metrics(self) -> dict[str, float]:
        C = self.num_classes
        norms = self.centred.norm(dim=1)
        unit = self.centred / norms[:, None]
        cos = unit @ unit.T
        off = cos[~torch.eye(C, dtype=torch.bool, device=cos.device)]
        return {
            "tr_sigma_b": float((norms**2).mean()),
            "nc2_equinorm": float(norms.std(correction=0) / norms.mean()),
            "nc2_equiangle": float(off.std(correction=0)),
            # rangamani2023 §5.1: the standard deviation of the cosines relative to their mean;
            # undefined (NaN) where the mean cosine is 0 up to round-off.
            "nc2_equiangle_ratio": equiangle_ratio(float(off.std(correction=0)),
                                                   float(off.mean())),
            "nc2_maxangle": float((off + 1.0 / (C - 1)).abs().mean()),
            "nc2_angle_shift": float((off + 1.0 / (C - 1)).mean()),
        }


class BatchSide(NamedTuple):
    """A :class:`MeanGeometry`'s tensors as pass 2's batches use them, in their dtype."""

    means: Tensor  # (C, p); in float32 the head of μ: the float32 nearest to it
    tail: Tensor | None  # (C, p), float32 only: μ − head, rounded
    basis: Tensor
    sketch: Tensor
    centred: Tensor
    gram: Tensor


def _squared_difference(a: Tensor, b: Tensor) -> Tensor:
    return (a - b) ** 2


_OFF_DIAGONAL: dict[tuple[int, torch.device], Tensor] = {}


def _off_diagonal(k: int, device: torch.device) -> Tensor:
    """The flat indices of a k × k table's off-diagonal entries in row-major order, the
    elements and order of ``table[~torch.eye(k, dtype=bool)]`` (kept: the same for every
    layer, and no mask to resolve each time)."""
    index = _OFF_DIAGONAL.get((k, device))
    if index is None:
        with torch.inference_mode(False):  # a normal tensor: usable in and out of that mode
            mask = ~torch.eye(k, dtype=torch.bool, device=device)
            index = _OFF_DIAGONAL[k, device] = mask.flatten().nonzero().flatten()
    return index


def equiangle_ratio(std: float, mean: float) -> float:
    """std / |mean| of the off-diagonal cosines, NaN where |mean| ≤ 1e-9 (far above the round-off of
    cosines, which lie in [−1, 1])."""
    return std / abs(mean) if abs(mean) > 1e-9 else float("nan")


class SplitStats:
    """Pass 2 over one split: centred statistics given the train :class:`MeanGeometry`."""

    def __init__(self, geometry: MeanGeometry, metrics: Collection[str] | None = None) -> None:
        """``metrics``: those of :data:`SPLIT_METRICS` that :meth:`compute` returns (default
        all); leaving out ``cdnv_own`` also skips its per-class sums, a pass over each batch."""
        self.geometry = geometry
        self.wanted = set(SPLIT_METRICS if metrics is None else metrics)
        C, dev = geometry.num_classes, geometry.means.device
        self.counts = torch.zeros(C, dtype=torch.float64, device=dev)
        self.within_sq = torch.zeros(C, dtype=torch.float64, device=dev)  # Σ_{i∈c} ‖h_i − μ_c‖²
        # Σ_{i∈c} (h_i − μ_c): the split's own class means, μ_c + this / n_c (for cdnv_own).
        self.offsets = torch.zeros_like(geometry.means) if "cdnv_own" in self.wanted else None
        self.proj_sq = torch.zeros(geometry.basis.shape[1], dtype=torch.float64, device=dev)
        self.sketched = torch.zeros_like(geometry.sketch)  # Σ_i c_i c_iᵀ Ω, c_i centred
        # Counted on the device, read by compute(): no read back per batch.
        self.ncc_correct = torch.zeros((), dtype=torch.long, device=dev)
        self.mismatch = torch.zeros((), dtype=torch.long, device=dev)
        self.span: Tensor | None = None  # (min, max) of the labels: Labels.span

    def update(self, h: Tensor, y: Tensor | Labels, net_pred: Tensor | None = None) -> None:
        """Add a batch: features ``h`` (n, …), their labels (a tensor, or the batch's
        :class:`Labels`) and, for NC4, the network's predictions. Reads nothing back to the
        host."""
        g, side = self.geometry, self.geometry.batch_side
        h = _flat(h, g.dtype)
        batch = _labels_for(y, g.num_classes, h.device)
        y, counts = batch.y, batch.counts
        self.span = wider_span(self.span, batch)
        rows = _scratch("means", tuple(h.shape), h.device, g.dtype)
        centred = h.sub_(torch.index_select(side.means, 0, y, out=rows))  # in place: h is scratch
        if side.tail is not None:  # float32: the mean's tail, after its head cancelled
            centred.sub_(torch.index_select(side.tail, 0, y, out=rows))
        self.within_sq.index_add_(0, y, (torch.linalg.vector_norm(centred, dim=1) ** 2).double())
        if self.offsets is None:
            pass
        elif side.tail is None:
            self.offsets.index_add_(0, y, centred)
        else:
            self.offsets += _partial("offsets", self.offsets, g.dtype).index_add_(0, y, centred)
        self.counts += counts
        self.proj_sq += ((centred @ side.basis) ** 2).sum(dim=0)
        if g.sketch.shape[1]:  # no stable rank wanted: no sketch
            self.sketched += centred.T @ (centred @ side.sketch)
        ncc = g.nearest_mean(centred, y)
        self.ncc_correct += (ncc == y).sum()
        if net_pred is not None:
            self.mismatch += (ncc != net_pred.to(centred.device)).sum()

    def total(self) -> Tensor:
        """A number on the features' device that is finite while every feature so far was: a
        NaN or ±inf in a row makes its class's squared distance to the train mean non-finite,
        so a sum of C numbers tells (:meth:`ClassMeans.total`); in float32 the sketch too, whose
        products overflow first."""
        if self.geometry.dtype == torch.float64:
            return self.within_sq.sum()
        return self.within_sq.sum() + self.sketched.sum()

    def finite(self) -> bool:
        """Whether every feature so far was finite (a read of :meth:`total`)."""
        return math.isfinite(float(self.total()))

    def compute(self) -> dict[str, float]:
        g = self.geometry
        counts = self.counts.tolist()
        n = float(sum(counts))  # whole numbers below 2⁵³: exact in any order
        if n == 0:
            raise ValueError("SplitStats.compute() called before any update()")
        check_label_span(self.span.tolist(), g.num_classes)
        within = float(self.within_sq.sum())  # finite() as well as Tr Σ_W, in one read
        if not math.isfinite(within) or (g.dtype != torch.float64 and not self.finite()):
            raise ValueError("non-finite features (NaN or inf): the model diverged or the "
                             f"inputs hold NaN{overflow_hint(g.dtype)}")
        tr_w = within / n
        tr_b = g.tr_sigma_b
        sketch = g.batch_side.sketch.double()  # float64: the sketch itself
        everywhere = all(counts)  # every class present in this split
        formulas = {  # each computed only if wanted (the CDNVs loop over the classes)
            # Tr(Σ_W Σ_B⁺)/C with Σ_B⁺ = C·U diag(1/s²) Uᵀ: the C's cancel.
            "nc1": lambda: float((self.proj_sq * g.inv_sq_singular).sum()) / n
            if g.basis.shape[1] else float("nan"),  # Σ_B = 0: no class separation to compare to
            "nc1_ratio": lambda: tr_w / (tr_w + tr_b) if tr_w + tr_b > 0 else float("nan"),
            "tr_sigma_w": lambda: tr_w,
            "tr_sigma_t": lambda: tr_w + tr_b,
            "cdnv": lambda: self._cdnv(everywhere=everywhere),
            "cdnv_own": lambda: self._cdnv(own_means=True),
            # ‖H‖_F² / ‖H‖_2² of the within-class-centred features H = Tr Σ_W / λ_max(Σ_W),
            # with the test matrix the batches met (in float32, the rounded one).
            "stable_rank": lambda: tr_w * n / top_eigenvalue(self.sketched, sketch, g.dtype)
            if tr_w > 0 and g.sketch.shape[1] else float("nan"),
            "ncc_accuracy": lambda: int(self.ncc_correct) / n,
            "nc4_mismatch": lambda: int(self.mismatch) / n,
        }
        return {name: formula() for name, formula in formulas.items() if name in self.wanted}

    def _cdnv(self, own_means: bool = False, everywhere: bool = False) -> float:
        """avg over c ≠ c' of (Var_c + Var_c') / (2‖μ_c − μ_c'‖²), over classes present here;
        the train split's class means, or with ``own_means`` this split's own (galanti2022 §3.1
        on test data): μ'_c = μ_c + d_c with d_c the mean offset, Var'_c = Var_c − ‖d_c‖².
        ``everywhere``: every class is present, so the train means' distances serve as they
        are (the geometry's, computed once for both splits: the same numbers)."""
        if everywhere and not own_means:
            var = self.within_sq / self.counts
            ratio = (var[:, None] + var[None, :]) / self.geometry.twice_distances
            return float(ratio.take(_off_diagonal(len(var), ratio.device)).mean())
        present = self.counts > 0
        counts = self.counts[present]
        var = self.within_sq[present] / counts
        means = self.geometry.means[present]
        if own_means:
            offset = self.offsets[present] / counts[:, None]
            var = (var - (offset**2).sum(dim=1)).clamp_min(0.0)
            means = means + offset
        k = var.numel()
        if k < 2:
            return float("nan")
        # Row by row rather than the Gram trick: exact for close means.
        dist_sq = pairwise(means, lambda a, b: (a - b) ** 2)
        if own_means:  # μ_c + d_c carries round-off: coinciding own means are equal, as exactly
            scale = float(means.abs().max()) + float(var.sqrt().max())
            dist_sq = torch.where(dist_sq <= (1e-10 * scale) ** 2, 0.0, dist_sq)
        ratio = (var[:, None] + var[None, :]) / (2.0 * dist_sq)
        off = ~torch.eye(k, dtype=torch.bool, device=ratio.device)
        return float(ratio[off].mean())


def top_eigenvalue(sketched: Tensor, omega: Tensor, arithmetic: torch.dtype = torch.float64
                   ) -> float:
    """Largest eigenvalue of a PSD matrix A from its sketch Y = A Ω alone (single-pass Nyström
    approximation, Tropp et al. 2017, Alg. 3): Â = Y (ΩᵀY)⁺ Yᵀ ⪯ A, exact when rank A ≤ k.
    ``arithmetic``: the dtype Y was summed in, whose round-off the shift must exceed (where A
    is rank-deficient, Y's round-off in its null directions would otherwise be inverted)."""
    eps = torch.finfo(arithmetic).eps
    shift = eps * math.sqrt(sketched.shape[0]) * float(torch.linalg.matrix_norm(sketched))
    y = sketched + shift * omega  # a small shift keeps ΩᵀY positive definite
    core = omega.T @ y
    chol, info = torch.linalg.cholesky_ex((core + core.T) / 2)
    if int(info) != 0:  # round-off left ΩᵀY indefinite: Rayleigh-Ritz, also a lower bound
        q, r = torch.linalg.qr(omega)  # QᵀAQ = Qᵀ(AΩ)R⁻¹
        ritz = torch.linalg.solve_triangular(r, q.T @ sketched, upper=True, left=False)
        return max(float(torch.linalg.eigvalsh((ritz + ritz.T) / 2)[-1]), 0.0)
    f = torch.linalg.solve_triangular(chol, y.T, upper=False).T  # Y L⁻ᵀ, so that Â = F Fᵀ
    return max(float(torch.linalg.svdvals(f)[0]) ** 2 - shift, 0.0)
