"""Part 3's diagnostics: how healthy a network's training is.

    stats = mm.diagnose(model, Xb, Yb)       # one training-mode pass, changing nothing
    stats["activations"]    # per Tanh layer: mean, std, the fraction saturated (|t| > 0.97), histogram
    stats["gradients"]      # per Tanh layer: the loss's gradient with respect to its output
    stats["params"]         # per trained parameter: data std, grad std, grad:data ratio
    hist = mm.train(model, X, Y, steps, diagnostics_every=1000)
    hist.diagnostics.update_ratio   # (steps, parameters): log10(std(update) / std(param)) at every step

The statistics are those of the lecture's notebook: ``t.mean()``, ``t.std()`` (unbiased) and
``(t.abs() > 0.97).float().mean()`` of each Tanh's output ``t``, the same of ``t.grad`` (its
``retain_grad()``), ``p.grad.std() / p.std()`` of each parameter, and
``((lr * p.grad).std() / p.data.std()).log10()`` after each update -- here with the optimizer's
actual update, so momentum and AdamW are measured as they act. The core computes the pass and its
statistics (cpp/diagnose.cpp; NumPy's statistics, cpp/stats.cpp), inside the training loop for
train()'s records, and the updates' spread at every step (cpp/train.h).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _files
from . import _validate as v
from .model import Model

__all__ = ["diagnose", "Diagnostics", "SATURATED", "BINS"]

SATURATED = 0.97  # the lecture's threshold: a Tanh output beyond it passes almost no gradient
BINS = 100  # histogram bins (torch.histogram's default)


def diagnose(model: Model, X: Any, Y: Any, *, dropout: float = 0.0, seed: int = 0, step: int = 0) -> dict:
    """One training-mode forward and backward pass of ``model`` over the rows (X, Y), changing
    nothing, and the lecture's statistics of it:

    ``"loss"``; ``"activations"``: for each Tanh layer in order, ``{"layer", "mean", "std",
    "saturated", "hist", "edges"}`` (``hist`` counts over :data:`BINS` fixed bins on [-1, 1]);
    ``"gradients"``: the same of the loss's gradient with respect to each Tanh's output (bins fitted
    to the data, their edges returned); ``"params"``: for each trained parameter name,
    ``{"shape", "data_std", "grad_std", "grad_data_ratio", "grad_mean"}``, with ``"hist"`` and
    ``"edges"`` of its gradient for a matrix. Layer indices are the positions in
    ``model.layers`` (for an MLP, the list it is: Embedding, Flatten, Linear, Tanh, ...).

    dropout, seed, step: apply the dropout masks of that training step (the activations are then
    those before dropout).
    """
    if not isinstance(model, Model):
        raise TypeError(f"model must be a makemore_cpp model, got {type(model).__name__}")
    X, Y = v.rows(model, X, Y)
    if len(X) < 2:
        raise ValueError(f"X must hold at least 2 rows for the statistics (std), got {len(X)}")
    model._check_batch(len(X), "X")
    dropout = v.real(dropout, "dropout", 0.0, 1.0, high_open=True)
    seed, step = v.seed(seed), v.integer(step, "step", 0, 2**62)
    with model._exclusive():
        raw = model._m.diagnose(X, Y, dropout, seed, step, BINS, SATURATED)
    return _record(raw, model.trained_names)[1]


def _record(raw: tuple, names: list[str]) -> tuple[int, dict]:
    """(step, the statistics' dict) of the core's record of a pass (cpp/diagnose.cpp, the same for
    diagnose() and for train()'s records)."""
    step, loss, acts, dacts, params = raw
    return step, {
        "loss": float(loss),
        "activations": [_layer_summary(a, True) for a in acts],
        "gradients": [_layer_summary(d, False) for d in dacts],
        "params": {name: _param_summary(p) for name, p in zip(names, params)},
    }


def _layer_summary(s: tuple, saturation: bool) -> dict:
    """Mean, std (unbiased) and histogram of a Tanh layer's outputs (fixed bins on [-1, 1], and the
    fraction saturated) or of their gradient (bins over its range)."""
    layer, n, mean, std, beyond, counts, edges = s
    out = {"layer": layer, "mean": mean, "std": std, "hist": counts, "edges": edges}
    if saturation:
        out["saturated"] = beyond / n
    return out


def _param_summary(s: tuple) -> dict:
    """Data and gradient spread of a parameter, and its gradient's histogram when it is a matrix
    (the lecture's figure shows the weights')."""
    shape, n, data_std, grad_mean, grad_std = s[:5]
    data_std = data_std if n > 1 else 0.0
    grad_std = grad_std if n > 1 else 0.0
    out = {
        "shape": shape,
        "data_std": data_std,
        "grad_std": grad_std,
        "grad_data_ratio": grad_std / data_std if data_std > 0 else float("inf"),
        "grad_mean": grad_mean,
    }
    if len(shape) == 2:
        out["hist"], out["edges"] = s[5], s[6]
    return out


@dataclass(repr=False)
class Diagnostics:
    """What ``train(..., diagnostics_every=N)`` recorded.

    every: N; records: ``(step, diagnose(...) of that step's minibatch)`` every N global steps,
    before the step's update; names: the trained parameters; steps: the global step of each row of
    update_ratio, ``log10(std(update) / std(param))`` after each step's update, one column per name
    (-inf where a parameter did not move).
    """

    every: int
    names: list[str]
    records: list[tuple[int, dict]] = field(default_factory=list)
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    update_ratio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def __repr__(self) -> str:
        at = [s for s, _ in self.records]
        where = f" (steps {at[0]:,}-{at[-1]:,})" if len(at) > 1 else (f" (step {at[0]:,})" if at else "")
        return (
            f"Diagnostics(every={self.every:,}, {len(self.records)} records{where}, update ratios of "
            f"{len(self.steps):,} steps x {len(self.names)} parameters)"
        )

    @staticmethod
    def ratios(stats: np.ndarray) -> np.ndarray:
        """The update:data ratios of the core's (steps, names, 2) update statistics (std of the
        update, std of the parameter after it): their log10, -inf where a parameter did not move."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log10(stats[:, :, 0] / stats[:, :, 1])
        ratio[np.isnan(ratio)] = -np.inf
        return ratio

    def until(self, step: int) -> "Diagnostics":
        """The records and update ratios of the steps before ``step`` (a run resumed from there)."""
        keep = self.steps < step
        return Diagnostics(
            every=self.every,
            names=list(self.names),
            records=[(s, r) for s, r in self.records if s < step],
            steps=self.steps[keep],
            update_ratio=self.update_ratio[keep] if len(self.update_ratio) else self.update_ratio,
        )

    def extend(self, other: "Diagnostics") -> None:
        """Append a later call's records and update ratios (a run trained in several calls)."""
        self.records += other.records
        if len(other.steps):
            self.steps = np.concatenate([self.steps, other.steps])
            ratio = other.update_ratio
            self.update_ratio = (
                np.concatenate([self.update_ratio, ratio]) if len(self.update_ratio) else ratio
            )

    def save(self, folder: str | os.PathLike, *, encoded: list[str] | None = None) -> dict[str, str]:
        """Write the records (``diagnostics.json``) and the update ratios (``update_ratio.npz``)
        into ``folder``, each atomically; returns their paths.

        encoded: for a caller that only appends records and saves again (a run's checkpoints): the
        JSON of the first records, reused, and extended in place with the rest's (each record is
        then encoded once, not at every save)."""
        folder = os.fspath(folder)
        paths = {
            "records": os.path.join(folder, "diagnostics.json"),
            "updates": os.path.join(folder, "update_ratio.npz"),
        }
        if encoded is None:
            encoded = []
        elif len(encoded) > len(self.records):
            raise ValueError(
                f"encoded holds {len(encoded)} records, more than the {len(self.records)} recorded: "
                "it belongs to another run"
            )
        # json.dumps, not json.dump: dump writes through the pure-Python encoder, 10x slower
        encoded.extend(json.dumps({"step": s, **r}) for s, r in self.records[len(encoded) :])
        head = json.dumps({"every": self.every, "names": self.names})
        text = head[:-1] + ', "records": [' + ", ".join(encoded) + "]}"  # json.dumps of the whole
        _files.atomic_write(paths["records"], lambda f: f.write(text))
        _files.atomic_write(
            paths["updates"],
            lambda f: np.savez(f, steps=self.steps, update_ratio=self.update_ratio),
            mode="wb",
        )
        return paths

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Diagnostics":
        """What :meth:`save` wrote into ``folder``; ``ValueError`` naming the file if it is absent or
        unreadable."""
        folder = os.fspath(folder)
        path = os.path.join(folder, "diagnostics.json")
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            out = cls(every=int(doc["every"]), names=list(doc["names"]))
            out.records = [(int(r.pop("step")), r) for r in doc["records"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: no diagnostics of a run ({type(e).__name__}: {e})") from None
        path = os.path.join(folder, "update_ratio.npz")
        try:
            with np.load(path, allow_pickle=False) as z:
                out.steps, out.update_ratio = z["steps"], z["update_ratio"]
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{path}: no update ratios of a run ({type(e).__name__}: {e})") from None
        return out
