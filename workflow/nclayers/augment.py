"""Data augmentation of whole batches as tensor operations (galanti2022 §4 for CIFAR).

galanti2022 train CIFAR with random crops, random horizontal flips and random rotations by
15·k degrees, k uniform in {0, …, 23}. :class:`Augment` does the three on a batch
(N, C, H, W) with batched tensor operations on the batch's own device (no PIL, no per-sample
loop), so augmentation stays cheap next to a training step on CPU and on a GPU.

Randomness: every call draws its parameters (:func:`draw`) from the training loop's CPU
``torch.Generator`` on the CPU, a fixed number of values for a given batch size and options,
and only then moves them to the batch's device. So a generator state gives the same crops,
flips and angles on every device, a rerun on CPU is bitwise equal, and the generator stream
(and with it the shuffling of later epochs) does not depend on the device. The parameters
are applied by :func:`apply`, which the tests compare with slow per-sample references.

Order: rotate, then crop, then flip, as torchvision's ``RandomRotation`` → ``RandomCrop`` →
``RandomHorizontalFlip`` would. Rotating first keeps the rotation about the image's centre
(rotating after a crop would turn about a shifted point); flip last or first makes no
difference in distribution, as flip ∘ rot(θ) = rot(−θ) ∘ flip and the angles are symmetric.

Rotation samples with nearest-neighbour interpolation, zeros outside the image: it is
torchvision ``RandomRotation``'s default, it keeps pixel values (no blur, so the augmented
images have the statistics of the originals), and it makes multiples of 90° exactly
``torch.rot90``, which bilinear sampling would miss by rounding error in the sampling grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Pixels by which rotation's sampling points are moved to break exact ties (rotation_theta):
# well above float32's rounding error of a pixel coordinate, well below a visible shift.
TIE_BREAK = 1 / 256

_SHAPE_WORDS = {0: "scalars", 1: "vectors", 2: "matrices without a channel axis"}


def require_images(sample_shape: Sequence[int], dataset: str = "the input") -> None:
    """Raise ValueError unless one sample has shape (C, H, W), i.e. batches are (N, C, H, W).

    ``dataset`` names the data in the message, so a config check can call this before training
    with the dataset's name and input shape.
    """
    shape = tuple(sample_shape)
    if len(shape) != 3:
        what = _SHAPE_WORDS.get(len(shape), f"{len(shape)}-d tensors")
        raise ValueError(f"augmentation needs images (N, C, H, W); {dataset} holds {what} "
                         f"of shape {shape} per sample: turn the augmentation off for it")


@dataclass(frozen=True)
class Params:
    """The random parameters of one call, one entry per sample, on the CPU or x's device.

    ``angles``: rotation in degrees, counter-clockwise as displayed (row 0 at the top);
    ``offsets``: (top, left) of the crop window in the image zero-padded by ``padding`` on each
    side, each in {0, …, 2·padding}, so (padding, padding) is the unshifted image; ``flips``:
    True where the sample is flipped left-right. ``None`` where that operation is off.
    """

    angles: Tensor | None = None  # (N,) float64
    offsets: Tensor | None = None  # (N, 2) int64
    flips: Tensor | None = None  # (N,) bool
    padding: int = 0

    def to(self, device: torch.device | str) -> Params:
        """The same parameters on ``device``."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else to_device(t, device)
        return Params(move(self.angles), move(self.offsets), move(self.flips), self.padding)


def to_device(t: Tensor, device: torch.device | str) -> Tensor:
    """``t`` on ``device``. From the CPU to a GPU it goes through pinned memory without
    blocking: a plain copy from pageable memory makes the host wait until the GPU has finished
    all queued work (the previous training step), so the host could no longer queue ahead."""
    device = torch.device(device)
    if t.device.type == "cpu" and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass(frozen=True)
class Augment:
    """Random crop, horizontal flip and rotation of a batch (N, C, H, W); see the module doc.

    ``crop``: zero padding in pixels on each side, then a random window of the input's size
    (torchvision's ``RandomCrop(size, padding=crop)``); 0 = none. ``flip``: flip left-right
    with probability 1/2. ``rotate``: the step s in degrees, which must divide 360; the angle is
    s·k with k uniform in {0, …, 360/s − 1}; 0 (and 360, whose only angle is 0) = none.
    galanti2022's CIFAR augmentation is ``Augment(crop=4, flip=True, rotate=15)`` (the padding
    is not given there; 4 is the usual one for CIFAR).
    """

    crop: int = 0
    flip: bool = False
    rotate: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 0:
            raise ValueError(f"augment crop: the padding in pixels must be an integer >= 0 "
                             f"(0 = no crop, 4 is usual for 32 px images), got {self.crop!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"augment flip: must be true or false, got {self.flip!r}")
        if (isinstance(self.rotate, bool) or not isinstance(self.rotate, int)
                or not 0 <= self.rotate <= 360 or (self.rotate and 360 % self.rotate)):
            raise ValueError(f"augment rotate: the step in degrees must be 0 (no rotation) or "
                             f"a divisor of 360 (e.g. 15, 90), got {self.rotate!r}")

    @property
    def rotates(self) -> bool:
        """Whether some angle is not 0 (a step of 360 only ever draws 0)."""
        return 0 < self.rotate < 360

    @property
    def active(self) -> bool:
        """Whether a call can change a batch; an inactive Augment returns it as it is."""
        return self.crop > 0 or self.flip or self.rotates

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """``x`` augmented, same shape, dtype and device; randomness from ``generator``.

        An inactive Augment returns ``x`` itself, whatever its shape, so a training loop can
        always call it (on vectors too); an active one needs images."""
        if not self.active:
            return x
        require_images(x.shape[1:], f"the batch of shape {tuple(x.shape)}")
        return apply(x, draw(self, len(x), generator))


def draw(augment: Augment, n: int, generator: torch.Generator) -> Params:
    """The random parameters of a batch of ``n``, drawn on the CPU from ``generator``.

    Always the same number of values for a given (n, options), in the order angles, offsets,
    flips, so the generator's stream is reproducible and the same on every device.
    """
    if generator.device.type != "cpu":
        raise ValueError(f"augmentation draws on the CPU so that every device gets the same "
                         f"parameters: pass a CPU torch.Generator, got one on {generator.device}")
    angles = offsets = flips = None
    if augment.rotates:
        k = torch.randint(360 // augment.rotate, (n,), generator=generator)
        angles = (k * augment.rotate).double()
    if augment.crop:
        offsets = torch.randint(2 * augment.crop + 1, (n, 2), generator=generator)
    if augment.flip:
        flips = torch.randint(2, (n,), generator=generator).bool()
    return Params(angles, offsets, flips, augment.crop)


def apply(x: Tensor, params: Params) -> Tensor:
    """Rotate, crop and flip ``x`` (N, C, H, W) by ``params`` (on the CPU or x's device), in
    that order (see the module doc); an operation whose parameters are ``None`` is skipped.
    Each operation moves only what it needs to x's device (the rotation its matrices, which it
    computes where the angles are), without blocking (:func:`to_device`)."""
    if params.angles is not None:
        x = rotate(x, params.angles)
    if params.offsets is not None:
        x = crop(x, params.offsets, params.padding)
    if params.flips is not None:
        x = flip(x, params.flips)
    return x


def rotation_theta(angles: Tensor, height: int, width: int) -> Tensor:
    """The (N, 2, 3) matrices of ``F.affine_grid`` that rotate by ``angles`` (degrees).

    affine_grid maps each output pixel's normalised coordinates to the input's. In pixel units
    about the centre (x right, y down; with align_corners=False, normalised x is x·2/W) the
    output pixel (x, y) samples the input at (x cos θ − y sin θ, x sin θ + y cos θ), which turns
    the image by θ counter-clockwise as displayed (90° is ``torch.rot90(x, 1, (-2, -1))``).
    Converting in and out of normalised units scales the off-diagonal entries by the aspect
    ratio, so that non-square images turn without shearing. Computed in float64.

    The sampling point is moved by :data:`TIE_BREAK` pixels right and down. Some points fall
    exactly halfway between two pixels (on a 32 px image at 45°, the diagonal lands on
    column 15.5), where the nearest pixel would be decided by the rounding error of the grid
    and so could differ between CPU and CUDA; the shift makes such ties go to the pixel right
    (below) on every device, and is far too small to change any other pick.
    """
    rad = torch.deg2rad(angles.double())
    cos, sin = torch.cos(rad), torch.sin(rad)
    shift_x = torch.full_like(cos, 2 * TIE_BREAK / width)  # pixels → normalised units
    shift_y = torch.full_like(cos, 2 * TIE_BREAK / height)
    # With y down, a counter-clockwise turn by θ maps input (x, y) to (x c + y s, −x s + y c);
    # its inverse, input = (x c − y s, x s + y c), is what the grid needs.
    return torch.stack([
        torch.stack([cos, -sin * height / width, shift_x], dim=1),
        torch.stack([sin * width / height, cos, shift_y], dim=1),
    ], dim=1)


def rotate(x: Tensor, angles: Tensor) -> Tensor:
    """Each image of ``x`` turned by its angle (degrees) about its centre, nearest-neighbour
    sampled with zeros outside (see the module doc for why nearest).

    The sampling runs in float32 (float64 for float64 input) and is cast back, so integer and
    half-precision batches work too; nearest sampling copies values, so the cast is exact.
    """
    n, c, h, w = x.shape
    if x.numel() == 0:  # affine_grid refuses an empty size; there is nothing to turn
        return x
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    theta = to_device(rotation_theta(angles, h, w).to(work), x.device)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(x.to(work), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return out.to(x.dtype)


def crop(x: Tensor, offsets: Tensor, padding: int) -> Tensor:
    """Windows of x's size cut from ``x`` zero-padded by ``padding`` on each side, sample i's
    at (top, left) = ``offsets[i]``: one ``torch.gather`` of each sample's window through a
    per-sample grid of flat indices into the padded image (shared by the channels); 2-3x
    faster on CPU than advanced indexing with four broadcast index tensors."""
    n, c, h, w = x.shape
    offsets = to_device(offsets, x.device)
    padded = F.pad(x, (padding, padding, padding, padding)).flatten(2)  # (N, C, Hp·Wp)
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (N, W)
    flat = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]  # (N, H, W)
    return padded.gather(2, flat.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)


def flip(x: Tensor, flips: Tensor) -> Tensor:
    """Images of ``x`` flipped left-right where ``flips`` (N,) is True, the others as they are."""
    return torch.where(to_device(flips, x.device)[:, None, None, None], x.flip(-1), x)
