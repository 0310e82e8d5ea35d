"""The cost of data augmentation (nclayers.augment) in training, on CIFAR-sized inputs.

Trains the CIFAR ResNet18 (``models.build("resnet18", (3, 32, 32), 10)``) on random 3×32×32
data with 10 classes, SGD, batch 128, shuffled by the loop's generator and reading the loss
each step as nclayers.train.fit does (``--no-item``: not), once plainly and once with
galanti2022's augmentation (``Augment(crop=4, flip=True, rotate=15)`` by default) applied to
every batch from the same generator. Repeats alternate
the two so that drift of the machine hits both; reports the median time per epoch of each and
the median of the per-repeat ratios. Then times the augmentation alone per batch, each
operation on its own, and for comparison the usual per-sample way (torchvision.transforms.v2
functionals in a Python loop over the batch, the same operations).

    python benchmarks/bench_augment.py [--n 512] [--epochs 1] [--repeat 3] [--device cpu]

One CPU thread by default (``--threads``), as the workflow trains: with two threads on a busy
2-core machine every parallel region waits for the descheduled thread, and a 1 ms operation
took 30 ms.

Prints Markdown tables for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from nclayers import models
from nclayers.augment import Augment, draw
from nclayers.data import batches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_epochs(model: torch.nn.Module, x: Tensor, y: Tensor, args, augment: Augment | None,
                 seed: int) -> float:
    """Seconds per epoch of SGD over (x, y), augmenting each batch when ``augment`` is given."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    total = 0.0
    sync(x.device)
    start = time.perf_counter()
    for _ in range(args.epochs):
        for xb, yb in batches(x, y, args.batch_size, generator):
            if augment is not None:
                xb = augment(xb, generator)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if args.item:
                total += loss.item()  # as nclayers.train.fit does: a host sync per step
    sync(x.device)
    return (time.perf_counter() - start) / args.epochs


def fresh_model(device: torch.device, width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build("resnet18", (3, 32, 32), 10, width=width).to(device)


def compare_training(x: Tensor, y: Tensor, augment: Augment, args) -> float:
    """Median time per epoch with and without augmentation, alternating, and their ratio;
    returns the median seconds of a plain training step."""
    # Warm-up (allocator, cuDNN autotuning, first-call costs) on a few batches, untimed.
    warm = max(2 * args.batch_size, 1)
    train_epochs(fresh_model(x.device, args.width), x[:warm], y[:warm], args, augment, seed=0)
    plain, augmented, ratios = [], [], []
    for r in range(args.repeat):
        t_plain = train_epochs(fresh_model(x.device, args.width), x, y, args, None, seed=r)
        t_aug = train_epochs(fresh_model(x.device, args.width), x, y, args, augment, seed=r)
        plain.append(t_plain)
        augmented.append(t_aug)
        ratios.append(t_aug / t_plain)
    steps = -(-len(x) // args.batch_size)
    print("| device | samples | steps/epoch | without (s/epoch) | with (s/epoch) | "
          "ratio with/without (median) | ratio range |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {x.device} | {len(x)} | {steps} | {statistics.median(plain):.3f} | "
          f"{statistics.median(augmented):.3f} | {statistics.median(ratios):.3f} | "
          f"{min(ratios):.3f}-{max(ratios):.3f} |\n", flush=True)
    return statistics.median(plain) / steps


def per_sample_torchvision(x: Tensor, augment: Augment, generator: torch.Generator) -> Tensor:
    """The usual way, for comparison: the same drawn parameters applied sample by sample with
    torchvision.transforms.v2 functionals (rotate nearest, pad + crop, flip)."""
    params = draw(augment, len(x), generator)
    h, w = x.shape[-2:]
    out = []
    for i, xi in enumerate(x):
        if params.angles is not None:
            xi = TF.rotate(xi, float(params.angles[i]), InterpolationMode.NEAREST)
        if params.offsets is not None:
            top, left = params.offsets[i].tolist()
            xi = TF.crop(TF.pad(xi, [augment.crop]), top, left, h, w)
        if params.flips is not None and params.flips[i]:
            xi = TF.horizontal_flip(xi)
        out.append(xi)
    return torch.stack(out)


def time_per_batch(fn: Callable[[Tensor, torch.Generator], Tensor], x: Tensor,
                   repeat: int) -> float:
    """Median milliseconds of ``fn(x, generator)`` over ``repeat`` calls, after one warm-up."""
    generator = torch.Generator().manual_seed(0)
    fn(x, generator)
    times = []
    for _ in range(repeat):
        sync(x.device)
        start = time.perf_counter()
        fn(x, generator)
        sync(x.device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def compare_augmentation(x: Tensor, augment: Augment, args) -> float:
    """Milliseconds per batch of the augmentation alone, per operation and all together;
    returns those of all together."""
    batch = x[:args.batch_size]
    cases = [("crop", Augment(crop=augment.crop)), ("flip", Augment(flip=True)),
             ("rotate", Augment(rotate=augment.rotate)), ("all three", augment)]
    print(f"| augmentation of a batch of {len(batch)} on {x.device} | batched (ms) | "
          f"per-sample torchvision (ms) | speed-up |")
    print("|---|---|---|---|")
    for name, case in cases:
        if not case.active:
            continue
        batched = time_per_batch(case, batch, args.aug_repeat)
        looped = time_per_batch(lambda xb, g, a=case: per_sample_torchvision(xb, a, g), batch,
                                max(args.aug_repeat // 10, 3))
        print(f"| {name} ({case}) | {batched:.2f} | {looped:.2f} | {looped / batched:.0f}x |",
              flush=True)
    return batched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512, help="training samples")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=64, help="ResNet18 width (64: standard)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default); 1 as the workflow's "
                             "rules train, and steadier on a shared machine")
    parser.add_argument("--crop", type=int, default=4)
    parser.add_argument("--rotate", type=int, default=15)
    parser.add_argument("--no-item", dest="item", action="store_false",
                        help="don't read the loss each step (nclayers.train.fit does, which on "
                             "a GPU waits for each step; without it the host queues ahead)")
    parser.add_argument("--aug-repeat", type=int, default=50,
                        help="calls per augmentation timing (median)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    augment = Augment(crop=args.crop, flip=True, rotate=args.rotate)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (args.n,), generator=generator).to(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {torch.get_num_threads()} CPU threads, "
          f"ResNet18 width {args.width}, batch {args.batch_size}, {args.epochs} epoch(s) per "
          f"run, median of {args.repeat}, loss read each step: {args.item}; {augment}\n")
    step = compare_training(x, y, augment, args)
    alone = compare_augmentation(x, augment, args)
    share = alone / (1000 * step)
    print(f"\nThe augmentation alone takes {alone:.2f} ms per batch, {share:.2%} of a plain "
          f"training step ({1000 * step:.1f} ms).")


if __name__ == "__main__":
    main()
