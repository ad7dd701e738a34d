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
from typing import Any, Sequence

from . import _core
from . import _validate as v
from .data import Vocab
from .model import Model, _check_memory, _vocab_of

__all__ = [
    "Layer",
    "Embedding",
    "Flatten",
    "FlattenConsecutive",
    "Linear",
    "BatchNorm1d",
    "Tanh",
    "Sequential",
    "layer_from_config",
]


def _size(value: Any, name: str, cls: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{cls}: {name} must be an integer, got {type(value).__name__} {value!r}")
    if not 1 <= int(value) <= v.INT32_MAX:
        raise ValueError(f"{cls}: {name} must be between 1 and 2**31 - 1, got {value}")
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

    def numbers(self) -> int:
        """How many numbers its parameters (running statistics included) hold."""
        return 0

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

    def numbers(self) -> int:
        return self.num_embeddings * self.embedding_dim

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

    def numbers(self) -> int:
        return self.fan_in * self.fan_out + (self.fan_out if self.bias else 0)

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

    def numbers(self) -> int:
        return 4 * self.dim

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


class Sequential(Model):
    """``Sequential(layers, *, vocab, block_size, seed=0, dtype="float32")``: the lecture's layers in
    order, computed by the core. The first is an ``Embedding`` of the vocabulary; the last gives
    (batch, vocabulary) logits.

    Parameters are named ``"{i}.{name}"`` as ``torch.nn.Sequential`` names them (:meth:`get_params`,
    BatchNorm1d's running statistics included; :meth:`loss_and_grad` gives the gradients of the
    trained ones). Training mode (:meth:`loss_and_grad`, :func:`makemore_cpp.train`, which moves
    the running statistics at every step) uses the batch's statistics; evaluation mode
    (:meth:`loss`, :meth:`logits`, :meth:`sample`) the running ones. Initialisation is the
    lecture's classes' from ``seed``: ``Embedding`` N(0, 1), ``Linear`` N(0, 1)/sqrt(fan_in) and a
    zero bias, ``BatchNorm1d`` gamma 1, beta 0, running_mean 0, running_var 1.

    vocab: a :class:`makemore_cpp.Vocab` (needed to sample text) or an int vocabulary size.
    dtype: ``"float32"`` (fast) or ``"float64"``.
    """

    kind = "sequential"

    def __init__(
        self,
        layers: Sequence[Layer],
        *,
        vocab: Vocab | int,
        block_size: int,
        seed: int = 0,
        dtype: str = "float32",
    ):
        if isinstance(layers, Layer) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a list of makemore_cpp.nn layers, got {type(layers).__name__}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a makemore_cpp.nn layer, got {type(layer).__name__}")
        if not layers:
            raise ValueError(
                "layers is empty: a model needs an Embedding and a last layer of vocabulary width"
            )
        self.layers = list(layers)
        _check_memory(
            sum(layer.numbers() for layer in self.layers) * (8 if v.dtype_name(dtype) == "float64" else 4)
        )
        self._build(vocab, block_size, seed, dtype, False, _core.RULE_LAYERS)

    def _check_batch(self, rows: int, name: str) -> None:
        """BatchNorm1d in training mode needs two values or more per channel."""
        t = self.block_size
        for i, layer in enumerate(self.layers):
            if isinstance(layer, FlattenConsecutive):
                t //= layer.n
            elif isinstance(layer, Flatten):
                t = 1
            elif isinstance(layer, BatchNorm1d) and rows * t < 2:
                raise ValueError(
                    f"layer {i} (BatchNorm1d) in training mode needs 2 values or more per channel, but "
                    f"{rows} row(s) of {name} give it {rows * t}: torch.var of one value is nan"
                )

    def config(self) -> dict:
        """The constructor's arguments (vocabulary as its characters, layers as their configs), JSON-ready."""
        return {
            "kind": self.kind,
            "layers": [layer.config() for layer in self.layers],
            "vocab": self.vocab.chars if self.vocab is not None else self.vocab_size,
            "block_size": self.block_size,
            "seed": self.seed,
            "dtype": self.dtype,
        }

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return (
            f"Sequential(vocab={self.vocab_size}, block_size={self.block_size}, dtype={self.dtype!r}, "
            f"params={self.num_params:,}, plan={self.plan!r}){inner}"
        )

    @classmethod
    def _kwargs(cls, config: dict) -> dict:
        layers = config["layers"]
        if not isinstance(layers, list):
            raise TypeError(f"layers must be a list, got {layers!r}")
        return {
            "layers": [layer_from_config(c) for c in layers],
            "vocab": _vocab_of(config),
            "block_size": config["block_size"],
            "seed": config["seed"],
            "dtype": config["dtype"],
        }

    @classmethod
    def _specs(cls, kwargs: dict) -> list[tuple]:
        return [layer._spec() for layer in kwargs["layers"]]

    @classmethod
    def _naming(cls, kwargs: dict) -> tuple[bool, int]:
        return False, _core.RULE_LAYERS

    def to_torch(self):
        """The same model as a ``torch.nn.Sequential`` of the lecture's classes (written as
        ``torch.nn.Module`` subclasses, ``makemore_cpp.reference``), with these parameters and
        running statistics, in this model's dtype; ``.train()`` and ``.eval()`` switch batch
        normalisation as the lecture's ``layer.training`` does."""
        from .reference import torch_layers

        return torch_layers(self.layers, self.get_params())
