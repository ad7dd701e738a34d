"""The lecture's experiments on a model, as library functions: the learning-rate sweep
(:func:`lr_find`, :func:`suggest_lr`), the sanity check of memorising a few examples
(:func:`overfit`, :func:`loss_floor`), and makemore.py's marks of sampled names
(:func:`mark_samples`). ``makemore-cpp lr-find``, ``overfit`` and ``sample`` print what they find."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .mlp import MLP
from .training import train

__all__ = [
    "lr_find",
    "suggest_lr",
    "LRFindResult",
    "overfit",
    "OverfitResult",
    "loss_floor",
    "mark_samples",
]


@dataclass(repr=False)
class LRFindResult:
    """The sweep: log10 learning rates, rates, the minibatch loss at each step, its smoothed curve,
    the suggested rate and how it was chosen."""

    lre: np.ndarray
    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float
    how: str
    plot: str | None = None

    def __repr__(self) -> str:
        return (
            f"LRFindResult({len(self.losses):,} steps at lr {self.lrs[0]:.3g} to "
            f"{self.lrs[len(self.losses) - 1]:.3g}, suggested_lr={self.suggested_lr:g})"
        )


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average (the window shrinks at the ends)."""
    y = np.asarray(y, dtype=np.float64)
    window = max(1, min(window, len(y)))
    c = np.concatenate([[0.0], np.cumsum(y)])
    half = window // 2
    idx = np.arange(len(y))
    lo = np.maximum(0, idx - half)
    hi = np.minimum(len(y), idx - half + window)
    return (c[hi] - c[lo]) / (hi - lo)


def _nice(x: float) -> float:
    """The nearest (on a log scale) of 1, 2, 5 times a power of ten: 0.0847 -> 0.1, 0.17 -> 0.2."""
    e = math.floor(math.log10(x))
    candidates = [m * 10.0**k for k in (e - 1, e, e + 1) for m in (1, 2, 5)]
    return float(f"{min(candidates, key=lambda c: abs(math.log10(c / x))):.3g}")


def suggest_lr(
    lre: np.ndarray, losses: np.ndarray, window: int | None = None
) -> tuple[float, str, np.ndarray]:
    """A learning rate from a sweep, read as the lecture reads its plot ("the loss is lowest around
    10^-1, so 0.1"): smooth the minibatch losses (centred moving average over ``window`` steps,
    default 1/20 of the sweep), take the rate at the lowest point of the smoothed curve -- lower rates
    learn more slowly, higher ones make the loss climb again -- and round it to 1, 2 or 5 times a
    power of ten. Returns (lr, explanation, smoothed losses)."""
    lre = np.asarray(lre, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    n = int(np.argmax(~np.isfinite(losses))) if not np.isfinite(losses).all() else len(losses)
    if n < 2:
        raise ValueError("the sweep has fewer than two finite losses: cannot suggest a rate")
    window = window or max(5, n // 20)
    sm = _smooth(losses[:n], window)
    i = int(np.argmin(sm))
    at = float(10 ** lre[i])
    lr = _nice(at)
    how = (
        f"the lowest point of the minibatch loss smoothed over {window} steps ({sm[i]:.3f}) is at "
        f"lr {at:.3g} "
        f"(log10 {lre[i]:.2f}), rounded to {lr:g}; smaller rates learn more slowly and larger ones make the "
        f"loss climb again"
    )
    return lr, how, sm


def lr_find(
    model: MLP,
    X: Any,
    Y: Any,
    steps: int = 1000,
    lr_min: float = 1e-3,
    lr_max: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    **train_kw: Any,
) -> LRFindResult:
    """The lecture's sweep on ``model`` (trained in place): ``lre = linspace(log10(lr_min),
    log10(lr_max), steps)``, one minibatch step at each rate ``10**lre`` in turn, recording each
    step's loss. Stops early if the loss diverges. ``train_kw``: more of :func:`train`'s arguments,
    such as ``optimizer`` or ``options`` (a :class:`TrainOptions`, batch size and seed included)."""
    if not (0 < lr_min < lr_max):
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    lre = np.linspace(math.log10(lr_min), math.log10(lr_max), int(steps))
    lrs = 10**lre
    hist = train(
        model, X, Y, len(lrs), batch_size=batch_size, lr=lrs, seed=seed, on_divergence="stop", **train_kw
    )
    losses = np.asarray(hist.loss, dtype=np.float64)
    lr, how, sm = suggest_lr(lre[: len(losses)], losses)
    if hist.stopped:
        how += f" (the sweep stopped early: {hist.stopped})"
    return LRFindResult(lre=lre, lrs=lrs, losses=losses, smoothed=sm, suggested_lr=lr, how=how)


@dataclass
class OverfitResult:
    """The sanity check: the examples' count, the loss before and after, the lowest loss any model
    can reach on them (:func:`loss_floor`), the steps taken and whether the loss got within ``tol``
    of that floor."""

    rows: int
    initial_loss: float
    loss: float
    floor: float
    steps: int
    passed: bool
    tol: float
    losses: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


def loss_floor(X: Any, Y: Any) -> float:
    """The lowest mean cross-entropy any model can reach on (X, Y): rows that share a context but
    have different targets (the lecture's '...' followed by e, o, a, i, s) cannot all be predicted;
    the best is each context's empirical distribution of targets. 0 when every context is unique."""
    X = np.asarray(X)
    Y = np.asarray(Y)
    keys: dict[tuple, dict[int, int]] = {}
    for x, y in zip(map(tuple, X.tolist()), Y.tolist()):
        keys.setdefault(x, {}).setdefault(y, 0)
        keys[x][y] += 1
    total = 0.0
    for counts in keys.values():
        n = sum(counts.values())
        total -= sum(c * math.log(c / n) for c in counts.values())
    return total / len(Y) if len(Y) else 0.0


def overfit(
    model: MLP,
    X: Any,
    Y: Any,
    max_steps: int = 10_000,
    lr: float = 0.1,
    tol: float = 0.01,
    check_every: int = 100,
    **train_kw: Any,
) -> OverfitResult:
    """Train ``model`` on all of (X, Y) at every step (full batch), as the lecture does with its
    first five names, until the loss is within ``tol`` of :func:`loss_floor` or ``max_steps``."""
    X = np.ascontiguousarray(X, np.int32)
    Y = np.ascontiguousarray(Y, np.int32)
    n = len(X)
    floor = loss_floor(X, Y)
    initial = model.loss(X, Y)
    state, done, losses = None, 0, []
    loss = initial
    while done < max_steps and loss - floor > tol:
        k = min(check_every, max_steps - done)
        hist = train(
            model,
            X,
            Y,
            k,
            batch_size=n,
            lr=lr,
            batch_indices=np.tile(np.arange(n), (k, 1)),
            state=state,
            **train_kw,
        )
        state = hist.state
        losses.append(hist.loss)
        done += k
        loss = model.loss(X, Y)
    return OverfitResult(
        rows=n,
        initial_loss=initial,
        loss=loss,
        floor=floor,
        steps=done,
        passed=loss - floor <= tol,
        tol=tol,
        losses=np.concatenate(losses) if losses else np.zeros(0),
    )


def mark_samples(names: Iterable[str], splits: dict[str, Sequence[str]]) -> list[str]:
    """makemore.py's marks: ``"in train"`` if the name is one of the training words, else ``"in dev"``
    or ``"in test"`` if it is in that part, else ``"new"``. ``splits`` maps part names to words."""
    sets = [(part, set(words)) for part, words in splits.items()]
    out = []
    for name in names:
        out.append(next((f"in {part}" for part, s in sets if name in s), "new"))
    return out
