"""The training loop: one readable function, deterministic on CPU for a given seed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from nclayers.data import Splits, batches


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    loss: str = "mse"


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    # MSE on one-hot targets, summed over classes and averaged over samples.
    "mse": lambda out, y: F.mse_loss(out, F.one_hot(y, out.shape[1]).to(out.dtype),
                                     reduction="sum") / len(y),
    "ce": F.cross_entropy,
}


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
    progress: bool = True,
) -> list[dict]:
    """Train ``model`` on ``data`` with SGD; return the per-epoch log (epoch 0 = initialisation).

    ``on_checkpoint(epoch, model)`` is called at each epoch in ``checkpoints`` (0 is before any
    step). A non-finite loss stops training; the log's last row then has ``diverged = True``.
    """
    if recipe.loss not in LOSSES:
        raise ValueError(f"unknown loss {recipe.loss!r}; known: {', '.join(LOSSES)}")
    loss_fn = LOSSES[recipe.loss]
    checkpoints = set(checkpoints)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    log = [_log_row(model, data, loss_fn, epoch=0, train_loss=float("nan"))]
    if 0 in checkpoints:
        on_checkpoint(0, model)
    bar = tqdm(range(1, recipe.epochs + 1), desc="epochs", disable=not progress, mininterval=2)
    for epoch in bar:
        model.train()
        total, seen = 0.0, 0
        for x, y in batches(data.x_train, data.y_train, recipe.batch_size, generator):
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(y), seen + len(y)
        row = _log_row(model, data, loss_fn, epoch, train_loss=total / seen)
        log.append(row)
        bar.set_postfix(refresh=False, loss=f"{row['train_loss']:.4f}",
                        train=f"{row['train_acc']:.3f}",
                        test=f"{row['test_acc']:.3f}")
        if row["diverged"]:
            break
        if epoch in checkpoints:
            on_checkpoint(epoch, model)
    return log


def _log_row(model, data: Splits, loss_fn, epoch: int, train_loss: float) -> dict:
    eval_loss, train_acc = evaluate(model, data.x_train, data.y_train, loss_fn)
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test, loss_fn)
    losses = (eval_loss, test_loss, train_loss) if epoch > 0 else (eval_loss, test_loss)
    diverged = not all(map(math.isfinite, losses))
    return {"epoch": epoch, "train_loss": train_loss, "eval_train_loss": eval_loss,
            "test_loss": test_loss, "train_acc": train_acc, "test_acc": test_acc,
            "diverged": diverged}
