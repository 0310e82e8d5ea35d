"""The training loop: one readable function, resumable, deterministic on CPU for a given seed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from nclayers.data import Splits, batches
from nclayers.taps import tap

LOSSES = ("mse", "ce", "svsl")
SCHEDULES = ("constant", "onecycle", "multistep")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines how a run is trained (SGD with momentum and weight decay)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    loss: str = "mse"
    mse_scale: float = 1.0  # MSE targets are mse_scale · one-hot
    svsl_alpha: float = 1e-5  # benshaul2022 Table 2 (MNIST, F-MNIST, STL10)
    # First hidden tapped layer the SVSL term acts on: its position (1-based) among the hidden
    # tapped layers, or its name (e.g. "layer3", "avgpool").
    svsl_gamma: int | str = 1
    schedule: str = "constant"
    milestones: Sequence[int] = field(default_factory=list)  # multistep: epochs of lr × gamma
    lr_decay: float = 0.1  # multistep: the gamma of each milestone
    warmup_epochs: int = 0  # multistep: linear warm-up from lr/warmup_steps
    amp: bool = False  # bf16 autocast of the training forward pass, CUDA only

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimiser ``step`` (0-based) as a multiple of ``recipe.lr``."""
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "onecycle":
        # torch's OneCycleLR (cos annealing, pct_start 0.3, div 25, final div 1e4) as a pure
        # function of the step, so that resuming needs nothing but the step count.
        up = float(0.3 * total) - 1
        lo, hi, end = 1 / 25, 1.0, 1 / 25 / 1e4
        if step <= up:
            pct, start, stop = step / up, lo, hi
        else:
            pct, start, stop = (step - up) / (total - 1 - up), hi, end
        return stop + (start - stop) / 2 * (math.cos(math.pi * pct) + 1)
    if recipe.schedule == "multistep":
        warmup = recipe.warmup_epochs * steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup
        epoch = step // steps_per_epoch
        return recipe.lr_decay ** sum(epoch >= m for m in recipe.milestones)
    return 1.0


def mse_loss(out: Tensor, y: Tensor, scale: float) -> Tensor:
    """MSE on scaled one-hot targets, summed over classes and averaged over samples."""
    target = F.one_hot(y, out.shape[1]).to(out.dtype) * scale
    return F.mse_loss(out, target, reduction="sum") / len(y)


def svsl_term(features: Sequence[Tensor], y: Tensor, num_classes: int) -> Tensor:
    """benshaul2022 eq. 5 without α, averaged over the batch: for sample i of class c,
    Σ_j ‖g_j(x_i) − μ_{c,B}^j‖² / (C (k+1−γ) n_c), with μ_{c,B} the batch's class mean."""
    counts = torch.bincount(y, minlength=num_classes).to(features[0].dtype)
    total = features[0].new_zeros(())
    for g in features:
        g = g.flatten(1)
        sums = torch.zeros(num_classes, g.shape[1], dtype=g.dtype, device=g.device)
        means = sums.index_add(0, y, g) / counts.clamp(min=1)[:, None]
        total = total + (((g - means[y]) ** 2).sum(dim=1) / counts[y]).sum()
    return total / (num_classes * len(features) * len(y))


def svsl_position(gamma: int | str, hidden: list[str]) -> int:
    """The 1-based position among the ``hidden`` tapped layers that ``svsl_gamma`` names."""
    if isinstance(gamma, str):
        if gamma not in hidden:
            raise ValueError(f"svsl_gamma {gamma!r} is not a hidden tapped layer of the model; "
                             f"its hidden tapped layers: {', '.join(hidden)}")
        return hidden.index(gamma) + 1
    if not 1 <= gamma <= len(hidden):
        raise ValueError(f"svsl_gamma must lie in 1..{len(hidden)} (the model's hidden "
                         f"tapped layers) or name one of them, got {gamma}")
    return gamma


class Objective:
    """The training loss of a recipe; SVSL taps the model's hidden layers during its forward."""

    def __init__(self, recipe: Recipe, model: nn.Module, num_classes: int) -> None:
        self.recipe, self.model, self.num_classes = recipe, model, num_classes
        self.layers: list[str] = []
        if recipe.loss == "svsl":
            hidden = [n for n in getattr(model, "tapped_layers", []) if n != "input"]
            self.layers = hidden[svsl_position(recipe.svsl_gamma, hidden) - 1:]

    def eval_loss(self, out: Tensor, y: Tensor) -> Tensor:
        """The loss without intermediate terms, for logging on whole splits."""
        if self.recipe.loss == "mse":
            return mse_loss(out, y, self.recipe.mse_scale)
        return F.cross_entropy(out, y)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        with tap(self.model, self.layers, detach=False) if self.layers else nullcontext({}) as a:
            out = self.model(x)
            loss = self.eval_loss(out.float(), y)
            if self.layers:
                feats = [a[n].float() for n in self.layers]
                loss = loss + self.recipe.svsl_alpha * svsl_term(feats, y, self.num_classes)
        return loss


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, loss_fn, batch_size: int = 1024):
    """(mean loss, accuracy) of ``model`` in eval mode."""
    model.eval()
    loss, correct = 0.0, 0
    for xb, yb in batches(x, y, batch_size):
        out = model(xb)
        loss += float(loss_fn(out, yb)) * len(yb)
        correct += int((out.argmax(dim=1) == yb).sum())
    return loss / len(y), correct / len(y)


def fit(
    model: nn.Module,
    data: Splits,
    recipe: Recipe,
    *,
    seed: int,
    checkpoints: Iterable[int] = (),
    on_checkpoint: Callable[[int, nn.Module], None] = lambda epoch, model: None,
    resume: dict | None = None,
    on_epoch_end: Callable[[dict], None] = lambda state: None,
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` on ``data``; return the per-epoch log (epoch 0 = initialisation).

    ``on_checkpoint(epoch, model)`` is called at each epoch in ``checkpoints`` (0 is before any
    step). ``on_epoch_end(state)`` receives the full training state after every epoch; passing
    that state back as ``resume`` continues bitwise as if never interrupted. A non-finite loss
    stops training; the log's last row then has ``diverged = True``.
    """
    checkpoints = set(checkpoints)
    objective = Objective(recipe, model, data.num_classes)
    steps_per_epoch = _steps_per_epoch(recipe, data)
    generator = torch.Generator().manual_seed(seed)
    # Parameters with requires_grad False (fixed ETF layers) are neither updated nor decayed.
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=recipe.lr,
                                momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(recipe, step, steps_per_epoch))
    autocast = torch.autocast("cuda", torch.bfloat16) if recipe.amp and data.x_train.is_cuda \
        else nullcontext()
    if resume is None:
        log = [_log_row(model, data, objective, epoch=0, train_loss=float("nan"))]
        if 0 in checkpoints:
            on_checkpoint(0, model)
    else:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        log = list(resume["log"])
    bar = tqdm(range(log[-1]["epoch"] + 1, recipe.epochs + 1), desc="epochs",
               disable=not progress, mininterval=2,
               initial=log[-1]["epoch"], total=recipe.epochs)
    for epoch in bar:
        model.train()
        total, seen = 0.0, 0
        for x, y in batches(data.x_train, data.y_train, recipe.batch_size, generator):
            with autocast:
                loss = objective(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
        row = _log_row(model, data, objective, epoch, train_loss=total / seen)
        log.append(row)
        bar.set_postfix(refresh=False, loss=f"{row['train_loss']:.4f}",
                        train=f"{row['train_acc']:.3f}", test=f"{row['test_acc']:.3f}")
        if row["diverged"]:
            break
        if epoch in checkpoints:
            on_checkpoint(epoch, model)
        on_epoch_end({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                      "log": log})
    return log


def _log_row(model, data: Splits, objective: Objective, epoch: int, train_loss: float) -> dict:
    eval_loss, train_acc = evaluate(model, data.x_train, data.y_train, objective.eval_loss)
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test, objective.eval_loss)
    losses = (eval_loss, test_loss, train_loss) if epoch > 0 else (eval_loss, test_loss)
    diverged = not all(map(math.isfinite, losses))
    return {"epoch": epoch, "train_loss": train_loss, "eval_train_loss": eval_loss,
            "test_loss": test_loss, "train_acc": train_acc, "test_acc": test_acc,
            "lr": recipe_lr(objective.recipe, epoch, data), "diverged": diverged}


def _steps_per_epoch(recipe: Recipe, data: Splits) -> int:
    return -(-len(data.y_train) // recipe.batch_size)  # the last batch may be short


def recipe_lr(recipe: Recipe, epoch: int, data: Splits) -> float:
    """The learning rate used in the last step of ``epoch`` (the initial one for epoch 0)."""
    steps_per_epoch = _steps_per_epoch(recipe, data)
    return recipe.lr * lr_factor(recipe, max(epoch * steps_per_epoch - 1, 0), steps_per_epoch)
