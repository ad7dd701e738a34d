"""The lecture's layer classes (makemore part 3 and part 5), run by the C++ core.

    from makemore_cpp import nn
    model = nn.Sequential([
        nn.Embedding(27, 24),
        nn.FlattenConsecutive(2), nn.Linear(48, 128, bias=False), nn.BatchNorm1d(128), nn.Tanh(),
        nn.FlattenConsecutive(2), nn.Linear(256, 128, bias=False), nn.BatchNorm1d(128), nn.Tanh(),
        nn.FlattenConsecutive(2), nn.Linear(256, 128, bias=False), nn.BatchNorm1d(128), nn.Tanh(),
        nn.Linear(128, 27),
    ], vocab=vocab, block_size=8, seed=42)

Each class takes the lecture's constructor arguments and has its semantics: ``Linear`` holds a
weight of shape (fan_in, fan_out) applied as ``x @ weight``, initialised N(0, 1)/sqrt(fan_in), and a
bias of zeros; ``BatchNorm1d`` normalises with the batch's mean and ``torch.var``'s unbiased variance
over dim 0 (2-D input) or dims (0, 1) (3-D input) in training, and with its running statistics,
moved by ``momentum`` at every training step, in evaluation; ``FlattenConsecutive(n)`` turns (B, T, C)
into (B, T/n, C*n), dropping the middle dimension when it is 1. The layers hold no numbers
themselves: the model's parameters live in the core, named ``"{i}.weight"``, ``"{i}.bias"``,
``"{i}.gamma"``, ``"{i}.beta"``, ``"{i}.running_mean"``, ``"{i}.running_var"`` (``i`` the layer's
index in the list), as ``torch.nn.Sequential`` names them.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from . import _core

__all__ = [
    "Layer",
    "Embedding",
    "Flatten",
    "FlattenConsecutive",
    "Linear",
    "BatchNorm1d",
    "Tanh",
    "layer_from_config",
]


def _size(value: Any, name: str, cls: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{cls}: {name} must be an integer, got {type(value).__name__} {value!r}")
    if not 1 <= int(value) <= 1 << 24:
        raise ValueError(f"{cls}: {name} must be between 1 and 2**24, got {value}")
    return int(value)


def _real(value: Any, name: str, cls: str, low: float, high: float, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls}: {name} must be a number, got {type(value).__name__} {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < low or x > high or (low_open and x == low):
        raise ValueError(
            f"{cls}: {name} must be {'>' if low_open else '>='} {low} and <= {high}, got {value}"
        )
    return x


class Layer:
    """A layer of a :class:`Sequential`: its arguments only (the core holds the numbers)."""

    kind: int = -1

    def _spec(self) -> tuple:
        """The core's description: (kind, a, b, bias, eps, momentum)."""
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor's arguments, JSON-ready, with the class name under ``"type"``."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.config().items())))


class Embedding(Layer):
    """``Embedding(num_embeddings, embedding_dim)``: the table C; ``out = weight[X]``, N(0, 1) at first."""

    kind = _core.LAYER_EMBEDDING

    def __init__(self, num_embeddings: int, embedding_dim: int):
        self.num_embeddings = _size(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _size(embedding_dim, "embedding_dim", "Embedding")

    def _spec(self) -> tuple:
        return (self.kind, self.num_embeddings, self.embedding_dim, False, 0.0, 0.0)

    def config(self) -> dict:
        return {
            "type": "Embedding",
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
        }

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class Flatten(Layer):
    """``Flatten()``: (B, T, C) -> (B, T*C), the lecture's ``x.view(x.shape[0], -1)``."""

    kind = _core.LAYER_FLATTEN

    def _spec(self) -> tuple:
        return (self.kind, 0, 0, False, 0.0, 0.0)

    def config(self) -> dict:
        return {"type": "Flatten"}

    def __repr__(self) -> str:
        return "Flatten()"


class FlattenConsecutive(Layer):
    """``FlattenConsecutive(n)``: (B, T, C) -> (B, T/n, C*n), squeezed to (B, C*n) when T/n is 1."""

    kind = _core.LAYER_FLATTEN_CONSECUTIVE

    def __init__(self, n: int):
        self.n = _size(n, "n", "FlattenConsecutive")

    def _spec(self) -> tuple:
        return (self.kind, self.n, 0, False, 0.0, 0.0)

    def config(self) -> dict:
        return {"type": "FlattenConsecutive", "n": self.n}

    def __repr__(self) -> str:
        return f"FlattenConsecutive({self.n})"


class Linear(Layer):
    """``Linear(fan_in, fan_out, bias=True)``: ``x @ weight + bias``, weight (fan_in, fan_out)
    N(0, 1)/sqrt(fan_in) at first, bias zeros."""

    kind = _core.LAYER_LINEAR

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True):
        self.fan_in = _size(fan_in, "fan_in", "Linear")
        self.fan_out = _size(fan_out, "fan_out", "Linear")
        if not isinstance(bias, bool):
            raise TypeError(f"Linear: bias must be True or False, got {bias!r}")
        self.bias = bias

    def _spec(self) -> tuple:
        return (self.kind, self.fan_in, self.fan_out, self.bias, 0.0, 0.0)

    def config(self) -> dict:
        return {"type": "Linear", "fan_in": self.fan_in, "fan_out": self.fan_out, "bias": self.bias}

    def __repr__(self) -> str:
        return f"Linear({self.fan_in}, {self.fan_out}{'' if self.bias else ', bias=False'})"


class BatchNorm1d(Layer):
    """``BatchNorm1d(dim, eps=1e-5, momentum=0.1)``: the lecture's batch normalisation (gamma ones,
    beta zeros; running_mean zeros and running_var ones, moved by momentum at each training step)."""

    kind = _core.LAYER_BATCHNORM

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1):
        self.dim = _size(dim, "dim", "BatchNorm1d")
        self.eps = _real(eps, "eps", "BatchNorm1d", 0.0, math.inf, True)
        self.momentum = _real(momentum, "momentum", "BatchNorm1d", 0.0, 1.0, False)

    def _spec(self) -> tuple:
        return (self.kind, self.dim, 0, False, self.eps, self.momentum)

    def config(self) -> dict:
        return {"type": "BatchNorm1d", "dim": self.dim, "eps": self.eps, "momentum": self.momentum}

    def __repr__(self) -> str:
        extra = "" if self.eps == 1e-5 else f", eps={self.eps:g}"
        extra += "" if self.momentum == 0.1 else f", momentum={self.momentum:g}"
        return f"BatchNorm1d({self.dim}{extra})"


class Tanh(Layer):
    """``Tanh()``."""

    kind = _core.LAYER_TANH

    def _spec(self) -> tuple:
        return (self.kind, 0, 0, False, 0.0, 0.0)

    def config(self) -> dict:
        return {"type": "Tanh"}

    def __repr__(self) -> str:
        return "Tanh()"


_CLASSES = {c.__name__: c for c in (Embedding, Flatten, FlattenConsecutive, Linear, BatchNorm1d, Tanh)}


def layer_from_config(cfg: dict) -> Layer:
    """The layer a :meth:`Layer.config` describes."""
    if not isinstance(cfg, dict) or cfg.get("type") not in _CLASSES:
        raise ValueError(f"not a layer description: {cfg!r}")
    args = {k: v for k, v in cfg.items() if k != "type"}
    return _CLASSES[cfg["type"]](**args)
