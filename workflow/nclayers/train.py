"""The training loop: one readable function, resumable, deterministic on CPU for a given seed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from nclayers.augment import Augment
from nclayers.data import Splits, batches
from nclayers.measurement import NonFiniteActivations
from nclayers.taps import tap

if TYPE_CHECKING:
    from nclayers.epoch_metrics import EpochMetrics

LOSSES = ("mse", "ce", "svsl")
SCHEDULES = ("constant", "onecycle", "multistep", "linear")
OPTIMIZERS = ("sgd", "adamw")
MSE_REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines how a run is trained: SGD with momentum and weight decay, or
    AdamW (decoupled weight decay; ``momentum`` is then its β1), as fine-tuning a pretrained
    transformer needs."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    loss: str = "mse"
    mse_scale: float = 1.0  # MSE targets are mse_scale · one-hot
    # "mean": over samples and classes, torch.nn.MSELoss()'s default and the papers' (see
    # mse_loss); "sum": summed over the classes, averaged over the samples (C times the gradient)
    mse_reduction: str = "mean"
    svsl_alpha: float = 1e-5  # benshaul2022 Table 2 (MNIST, F-MNIST, STL10)
    # First hidden tapped layer the SVSL term acts on: its position (1-based) among the hidden
    # tapped layers, or its name (e.g. "layer3", "avgpool").
    svsl_gamma: int | str = 1
    schedule: str = "constant"
    # onecycle: torch's OneCycleLR's pct_start, div_factor and final_div_factor (its defaults)
    onecycle_pct: float = 0.3
    onecycle_div: float = 25.0
    onecycle_final_div: float = 1e4
    milestones: Sequence[int] = field(default_factory=list)  # multistep: epochs of lr × gamma
    lr_decay: float = 0.1  # multistep: the gamma of each milestone
    warmup_epochs: int = 0  # multistep: linear warm-up from lr/warmup_steps
    optimizer: str = "sgd"
    amp: bool = False  # bf16 autocast of the training forward pass, CUDA only
    # Train-split augmentation (nclayers.augment.Augment's options: crop, flip, rotate), drawn
    # from the run's generator; empty = none, which draws nothing.
    augment: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.mse_reduction not in MSE_REDUCTIONS:
            raise ValueError(f"unknown mse_reduction {self.mse_reduction!r}; "
                             f"known: {', '.join(MSE_REDUCTIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; "
                             f"known: {', '.join(OPTIMIZERS)}")


def make_optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    """The recipe's optimiser over the trainable parameters; parameters with requires_grad
    False (fixed ETF layers) are neither updated nor decayed."""
    return _optimizer(recipe, [p for p in model.parameters() if p.requires_grad])


def _optimizer(recipe: Recipe, params: Iterable) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, betas=(recipe.momentum, 0.999),
                                 weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay)


class _OptionsChecked(Exception):
    """Raised by :func:`check_optimizer`'s parameter list when the constructor reads it."""


def check_optimizer(recipe: Recipe) -> None:
    """Torch's own checks of the recipe's optimiser options (its ValueError names the bad
    one, e.g. AdamW's β1 = momentum = 1), without building the optimiser: a constructor checks
    its options and then reads its parameters, whose first group imports ``torch._dynamo``
    (1.3 s of every ``snakemake`` start, which checks the config); the parameter list given
    here stops the construction where it is read."""
    def stop() -> Iterator[Tensor]:
        raise _OptionsChecked
        yield  # a generator: raises when the constructor reads it, not when made

    try:
        _optimizer(recipe, stop())
    except _OptionsChecked:
        return


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimiser ``step`` (0-based) as a multiple of ``recipe.lr``."""
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "onecycle":
        # torch's OneCycleLR (cos annealing; pct_start, div_factor, final_div_factor from the
        # recipe) as a pure function of the step, so that resuming needs nothing but the step.
        up = float(recipe.onecycle_pct * total) - 1
        lo, hi = 1 / recipe.onecycle_div, 1.0
        end = lo / recipe.onecycle_final_div
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
    if recipe.schedule == "linear":  # Hugging Face's default: to 0 at the last step, no warm-up
        return max(0.0, (total - step) / total)
    return 1.0


def mse_loss(out: Tensor, y: Tensor, scale: float, reduction: str = "mean") -> Tensor:
    """MSE on scaled one-hot targets: ``"mean"`` over samples and classes, as
    ``torch.nn.MSELoss()`` (the papers' code: Rangamani et al., Lindegaard), or ``"sum"`` over
    the classes and the mean over the samples, C times larger (C the number of classes)."""
    target = F.one_hot(y, out.shape[1]).to(out.dtype) * scale
    if reduction == "sum":
        return F.mse_loss(out, target, reduction="sum") / len(y)
    return F.mse_loss(out, target)


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
            return mse_loss(out, y, self.recipe.mse_scale, self.recipe.mse_reduction)
        return F.cross_entropy(out, y)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        with tap(self.model, self.layers, detach=False) if self.layers else nullcontext({}) as a:
            out = self.model(x)
            loss = self.eval_loss(out.float(), y)
            if self.layers:
                feats = [a[n].float() for n in self.layers]
                loss = loss + self.recipe.svsl_alpha * svsl_term(feats, y, self.num_classes)
        return loss


class Tally:
    """(mean loss, accuracy) of a model's outputs on a split, added up batch by batch: the one
    sum behind both :func:`evaluate` and the log rows that a measurement's passes give, so that
    the two agree bitwise.

    The sums stay on the outputs' device and are read once, by :meth:`result` and
    :meth:`mcc`: reading them batch by batch would make the host wait for the GPU at every
    batch. The loss is summed in float64, the arithmetic of Python floats, so the numbers are
    those of a sum on the host."""

    def __init__(self, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.loss_fn = loss_fn
        self.count = 0
        self.loss: Tensor | None = None  # Σ batch mean loss × batch size, float64
        self.correct: Tensor | None = None
        self.confusion: Tensor | None = None  # C × C counts, true class × predicted

    def add(self, out: Tensor, y: Tensor) -> None:
        loss = self.loss_fn(out, y).detach().double() * len(y)
        pred = out.argmax(dim=1)
        correct = (pred == y).sum()
        c = out.shape[1]
        # index_add_ rather than bincount, which reads the largest value back to size its output
        cells = y.long() * c + pred  # int64: uint8 labels (cross_entropy takes them) would wrap
        counts = torch.zeros(c * c, dtype=torch.long, device=y.device)
        counts = counts.index_add_(0, cells, torch.ones_like(cells)).reshape(c, c)
        if self.loss is None:
            self.loss, self.correct, self.confusion = loss, correct, counts
        else:
            self.loss, self.correct = self.loss + loss, self.correct + correct
            self.confusion = self.confusion + counts
        self.count += len(y)

    def result(self) -> tuple[float, float]:
        if self.loss is None:
            raise ValueError("Tally.result() before any add(): the split had no batches")
        return float(self.loss) / self.count, int(self.correct) / self.count

    def mcc(self) -> float:
        """Matthews correlation of the predictions (Gorodkin's multi-class form, as
        scikit-learn's ``matthews_corrcoef``): benshaul2022's CoLA score; 0 where a
        marginal is constant (scikit-learn's convention)."""
        return matthews(self.confusion.cpu().to(torch.float64))


def matthews(confusion: Tensor) -> float:
    """Matthews correlation from a C × C confusion matrix (rows true, columns predicted)."""
    t, p = confusion.sum(dim=1), confusion.sum(dim=0)
    s, c = confusion.sum(), confusion.trace()
    cov_yp, cov_yy, cov_pp = c * s - t @ p, s * s - t @ t, s * s - p @ p
    denominator = float(cov_yy * cov_pp)
    return float(cov_yp) / math.sqrt(denominator) if denominator > 0 else 0.0


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, loss_fn, batch_size: int = 1024):
    """(mean loss, accuracy) of ``model`` in eval mode."""
    return tally(model, x, y, loss_fn, batch_size).result()


@torch.no_grad()
def tally(model: nn.Module, x: Tensor, y: Tensor, loss_fn, batch_size: int = 1024) -> Tally:
    """The :class:`Tally` of ``model``'s outputs on (x, y), in eval mode."""
    model.eval()
    counts = Tally(loss_fn)
    for xb, yb in batches(x, y, batch_size):
        counts.add(model(xb), yb)
    return counts


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
    epoch_metrics: EpochMetrics | None = None,
) -> list[dict]:
    """Train ``model`` on ``data``; return the per-epoch log (epoch 0 = initialisation).

    ``on_checkpoint(epoch, model)`` is called at each epoch in ``checkpoints`` (0 is before any
    step). ``on_epoch_end(state)`` receives the full training state after every epoch; passing
    that state back as ``resume`` continues bitwise as if never interrupted. A non-finite loss
    stops training; the log's last row then has ``diverged = True``.

    ``epoch_metrics`` (a :class:`nclayers.epoch_metrics.EpochMetrics`) measures every tapped
    layer at the end of each of its epochs (0 included) and keeps the values; they are part of
    the state (``state["epoch_metrics"]``), so a resumed run records what an uninterrupted one
    does. On the full splits the measurement's passes also give the log row's eval loss and
    accuracy (bitwise those of :func:`evaluate`), saving its two passes. Measuring changes
    nothing in the training (eval mode, generators of its own); a diverged model records
    nothing.
    """
    checkpoints = set(checkpoints)
    objective = Objective(recipe, model, data.num_classes)
    augment = Augment(**recipe.augment)  # inactive: returns the batch itself
    # Convolutions on CUDA run fastest on channels-last (NHWC) tensors; the CPU path is left
    # as it is, so that its numbers stay what they were.
    channels_last = data.x_train.is_cuda and data.x_train.dim() == 4
    if channels_last:
        model.to(memory_format=torch.channels_last)
    steps_per_epoch = _steps_per_epoch(recipe, data)
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(recipe, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(recipe, step, steps_per_epoch))
    autocast = torch.autocast("cuda", torch.bfloat16) if recipe.amp and data.x_train.is_cuda \
        else nullcontext()
    if resume is None:
        log = [_epoch_row(model, data, objective, 0, float("nan"), epoch_metrics)]
        if 0 in checkpoints:
            on_checkpoint(0, model)
    else:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        generator.set_state(resume["generator"])
        if "global_rng" in resume:  # a state saved before it was kept has none
            set_global_rng(resume["global_rng"])
        log = list(resume["log"])
        if epoch_metrics is not None:
            epoch_metrics.load_state_dict(resume["epoch_metrics"])
    bar = tqdm(range(log[-1]["epoch"] + 1, recipe.epochs + 1), desc="epochs",
               disable=not progress, mininterval=2,
               initial=log[-1]["epoch"], total=recipe.epochs)
    for epoch in bar:
        model.train()
        # The loss summed on the device in float64 (the same arithmetic as Python floats, so
        # bitwise the same numbers), read once per epoch: reading it every step would make the
        # host wait for the GPU at each one.
        total, seen = torch.zeros((), dtype=torch.float64, device=data.x_train.device), 0
        for x, y in batches(data.x_train, data.y_train, recipe.batch_size, generator):
            x = augment(x, generator)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss = objective(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach().double() * len(y)
            seen += len(y)
        row = _epoch_row(model, data, objective, epoch, float(total) / seen, epoch_metrics)
        log.append(row)
        bar.set_postfix(refresh=False, loss=f"{row['train_loss']:.4f}",
                        train=f"{row['train_acc']:.3f}", test=f"{row['test_acc']:.3f}")
        if row["diverged"]:
            break
        if epoch in checkpoints:
            on_checkpoint(epoch, model)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                 "global_rng": global_rng(data.x_train.device), "log": log}
        if epoch_metrics is not None:
            state["epoch_metrics"] = epoch_metrics.state_dict()
        on_epoch_end(state)
    return log


def global_rng(device: torch.device) -> dict:
    """The state of torch's global generators, which dropout draws from (the run's own
    generator draws the batches and augmentations): part of a resumable state, so that a model
    with dropout resumes bitwise."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng(state: dict) -> None:
    """Restore :func:`global_rng`'s state."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _epoch_row(model, data: Splits, objective: Objective, epoch: int, train_loss: float,
               recorder: EpochMetrics | None) -> dict:
    """The log row of ``epoch``, measuring the layers too where ``recorder`` is due. A model
    that diverged (non-finite training loss, activations or eval loss) records nothing."""
    diverged = epoch > 0 and not math.isfinite(train_loss)
    if recorder is None or not recorder.due(epoch) or diverged:
        return _log_row(model, data, objective, epoch, train_loss)
    tallies = {"train": Tally(objective.eval_loss), "test": Tally(objective.eval_loss)}
    try:  # the measurement's passes read the full splits: they give the row its evaluation
        values = recorder.measure(model, data, lambda split, out, y: tallies[split].add(out, y))
    except NonFiniteActivations:  # the row's own evaluation then says diverged
        return _log_row(model, data, objective, epoch, train_loss)
    row = _log_row(model, data, objective, epoch, train_loss,
                   (tallies["train"], tallies["test"]))
    if not row["diverged"]:
        recorder.record(epoch, values)
    return row


def _log_row(model, data: Splits, objective: Objective, epoch: int, train_loss: float,
             evals: tuple[Tally, Tally] | None = None) -> dict:
    """``evals``: the tallies of train and test where a measurement's passes gave them, else
    two passes of :func:`tally`."""
    model.eval()  # as tally leaves it, whichever gave the numbers
    if evals is None:
        evals = (tally(model, data.x_train, data.y_train, objective.eval_loss),
                 tally(model, data.x_test, data.y_test, objective.eval_loss))
    (eval_loss, train_acc), (test_loss, test_acc) = (t.result() for t in evals)
    losses = (eval_loss, test_loss, train_loss) if epoch > 0 else (eval_loss, test_loss)
    diverged = not all(map(math.isfinite, losses))
    return {"epoch": epoch, "train_loss": train_loss, "eval_train_loss": eval_loss,
            "test_loss": test_loss, "train_acc": train_acc, "test_acc": test_acc,
            "test_mcc": evals[1].mcc(), "lr": recipe_lr(objective.recipe, epoch, data),
            "diverged": diverged}


def _steps_per_epoch(recipe: Recipe, data: Splits) -> int:
    return -(-len(data.y_train) // recipe.batch_size)  # the last batch may be short


def recipe_lr(recipe: Recipe, epoch: int, data: Splits) -> float:
    """The learning rate used in the last step of ``epoch`` (the initial one for epoch 0)."""
    steps_per_epoch = _steps_per_epoch(recipe, data)
    return recipe.lr * lr_factor(recipe, max(epoch * steps_per_epoch - 1, 0), steps_per_epoch)
