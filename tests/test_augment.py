"""nclayers.augment: each operation against a slow per-sample reference, reproducibility, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nclayers.augment import (
    TIE_BREAK,
    Augment,
    Params,
    apply,
    crop,
    draw,
    flip,
    require_images,
    rotate,
)

GALANTI = Augment(crop=4, flip=True, rotate=15)


def images(n: int = 6, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def crop_reference(x: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """One sample at a time: slice the zero-padded image at the drawn offsets."""
    h, w = x.shape[-2:]
    out = []
    for xi, (top, left) in zip(x, offsets.tolist(), strict=True):
        padded = F.pad(xi, (padding,) * 4)
        out.append(padded[:, top:top + h, left:left + w])
    return torch.stack(out)


def rotate_reference(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """One pixel at a time: output pixel (x, y) about the centre takes the input's nearest
    pixel to (x cos θ − y sin θ, x sin θ + y cos θ) + TIE_BREAK · (1, 1), zero outside."""
    _, _, h, w = x.shape
    out = torch.zeros_like(x)
    for n, angle in enumerate(angles.tolist()):
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        for i in range(h):
            for j in range(w):
                u, v = j - (w - 1) / 2, i - (h - 1) / 2
                col = math.floor(u * c - v * s + (w - 1) / 2 + TIE_BREAK + 0.5)
                row = math.floor(u * s + v * c + (h - 1) / 2 + TIE_BREAK + 0.5)
                if 0 <= row < h and 0 <= col < w:
                    out[n, :, i, j] = x[n, :, row, col]
    return out


def test_inactive_returns_the_input_and_draws_nothing():
    x, g = images(), gen()
    state = g.get_state()
    for augment in (Augment(), Augment(rotate=360)):
        assert not augment.active
        assert augment(x, g) is x
    vectors = torch.randn(4, 784)  # an MLP's data: an inactive Augment lets it through
    assert Augment()(vectors, g) is vectors
    assert torch.equal(g.get_state(), state)
    assert Augment(crop=1).active and Augment(flip=True).active and Augment(rotate=90).active


def test_crop_matches_slicing_the_padded_image():
    x = images(n=32, h=7, w=9)
    params = draw(Augment(crop=3), len(x), gen())
    assert params.offsets.shape == (32, 2)
    assert params.offsets.min() >= 0 and params.offsets.max() <= 6
    assert torch.equal(apply(x, params), crop_reference(x, params.offsets, 3))


def test_crop_at_the_centre_offset_is_identity_and_shifts_move_content():
    x = images(n=2)
    assert torch.equal(crop(x, torch.full((2, 2), 2), 2), x)
    shifted = crop(x, torch.tensor([[2, 3], [1, 2]]), 2)  # one right of centre; one up
    assert torch.equal(shifted[0, :, :, :-1], x[0, :, :, 1:])
    assert torch.equal(shifted[0, :, :, -1], torch.zeros_like(x[0, :, :, -1]))
    assert torch.equal(shifted[1, :, 1:], x[1, :, :-1])
    assert torch.equal(shifted[1, :, 0], torch.zeros_like(x[1, :, 0]))


def test_flip_matches_per_sample_reference():
    x = images(n=32)
    params = draw(Augment(flip=True), len(x), gen())
    assert 0 < params.flips.sum() < 32
    expected = torch.stack([xi.flip(-1) if f else xi for xi, f in zip(x, params.flips,
                                                                      strict=True)])
    assert torch.equal(flip(x, params.flips), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_by_90_multiples_is_rot90_exactly(dtype):
    x = images(n=32, h=6, w=6).to(dtype)
    params = draw(Augment(rotate=90), len(x), gen())
    assert set(params.angles.tolist()) == {0.0, 90.0, 180.0, 270.0}
    expected = torch.stack([torch.rot90(xi, int(a) // 90, (-2, -1))
                            for xi, a in zip(x, params.angles, strict=True)])
    assert torch.equal(apply(x, params), expected)


def test_rotation_by_180_of_a_non_square_image_flips_both_axes():
    x = images(h=5, w=8)
    assert torch.equal(rotate(x, torch.full((len(x),), 180.0)), x.flip(-2, -1))


def test_rotation_by_0_is_identity():
    for h, w in ((8, 8), (5, 7)):
        x = images(h=h, w=w)
        assert torch.equal(rotate(x, torch.zeros(len(x), dtype=torch.float64)), x)


@pytest.mark.parametrize("shape", [(9, 9), (6, 10), (32, 32)])
def test_rotation_by_15_degree_steps_matches_per_pixel_reference(shape):
    x = images(n=24, c=2, h=shape[0], w=shape[1])
    angles = torch.arange(24, dtype=torch.float64) * 15  # every angle galanti2022 draws
    assert torch.equal(rotate(x, angles), rotate_reference(x, angles))


def test_galanti_angles_are_the_24_multiples_of_15():
    params = draw(Augment(rotate=15), 2000, gen())
    assert set(params.angles.tolist()) == {15.0 * k for k in range(24)}


def test_call_rotates_then_crops_then_flips():
    x = images(n=16, h=9, w=9)
    params = draw(GALANTI, len(x), gen(3))
    expected = []
    for n in range(len(x)):
        xi = rotate_reference(x[n:n + 1], params.angles[n:n + 1])
        xi = crop_reference(xi, params.offsets[n:n + 1], 4)[0]
        expected.append(xi.flip(-1) if params.flips[n] else xi)
    assert torch.equal(GALANTI(x, gen(3)), torch.stack(expected))


def test_same_generator_state_gives_bitwise_equal_output():
    x = images(n=16)
    g = gen(7)
    first = GALANTI(x, g)
    second = GALANTI(x, g)  # the stream moved on: another draw
    assert not torch.equal(first, second)
    g.manual_seed(7)
    assert torch.equal(GALANTI(x, g), first)
    assert torch.equal(GALANTI(x, g), second)


def test_different_seeds_differ():
    x = images(n=16)
    for augment in (Augment(crop=2), Augment(flip=True), Augment(rotate=15), GALANTI):
        assert not torch.equal(augment(x, gen(0)), augment(x, gen(1)))


def test_a_call_draws_a_fixed_number_of_values():
    """rotate → crop → flip: N angles, N × 2 offsets, N flips, whatever the batch holds."""
    g = gen(5)
    GALANTI(images(n=10), g)
    ref = gen(5)
    torch.randint(24, (10,), generator=ref)
    torch.randint(9, (10, 2), generator=ref)
    torch.randint(2, (10,), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())
    other = gen(5)
    GALANTI(images(n=10, seed=1) * 100, other)
    assert torch.equal(other.get_state(), ref.get_state())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.uint8])
def test_output_shape_and_dtype_equal_the_input(dtype):
    x = (images(n=5, h=7, w=11) * 50).abs().to(dtype)
    out = GALANTI(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    # Nearest sampling, zero padding and flips only move values or write zeros.
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0}


def test_an_empty_batch_stays_empty():
    x = torch.zeros(0, 3, 8, 8)
    assert GALANTI(x, gen()).shape == x.shape


@pytest.mark.parametrize("options, match", [
    ({"crop": -1}, "augment crop: the padding in pixels must be an integer >= 0"),
    ({"crop": 2.5}, "augment crop"),
    ({"crop": True}, "augment crop"),
    ({"rotate": 7}, "augment rotate: the step in degrees must be 0 .* a divisor of 360"),
    ({"rotate": -15}, "augment rotate"),
    ({"rotate": 720}, "augment rotate"),
    ({"rotate": 15.0}, "augment rotate"),
    ({"flip": "yes"}, "augment flip: must be true or false"),
])
def test_invalid_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        Augment(**options)


@pytest.mark.parametrize("shape, what", [((4, 784), "vectors"), ((4, 28, 28), "matrices"),
                                         ((2, 1, 3, 8, 8), "4-d tensors")])
def test_non_image_batch_raises(shape, what):
    with pytest.raises(ValueError, match=rf"augmentation needs images \(N, C, H, W\); .* {what}"):
        GALANTI(torch.zeros(shape), gen())


def test_require_images_names_the_dataset():
    require_images((3, 32, 32), "cifar10")
    with pytest.raises(ValueError, match=r"dataset 'digits' holds vectors of shape \(64,\)"):
        require_images((64,), "dataset 'digits'")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_on_the_cpu_and_matches_it():
    x = images(n=64, h=32, w=32)
    g_cpu, g_cuda = gen(11), gen(11)
    on_cpu = GALANTI(x, g_cpu)
    on_cuda = GALANTI(x.cuda(), g_cuda)
    assert on_cuda.is_cuda
    assert torch.equal(g_cpu.get_state(), g_cuda.get_state())
    assert torch.equal(on_cuda.cpu(), on_cpu)
    with pytest.raises(ValueError, match="pass a CPU torch.Generator"):
        GALANTI(x.cuda(), torch.Generator("cuda"))


def test_params_move_between_devices():
    params = draw(GALANTI, 4, gen())
    moved = params.to("cpu")
    assert isinstance(moved, Params) and moved.padding == 4
    assert torch.equal(moved.offsets, params.offsets)
