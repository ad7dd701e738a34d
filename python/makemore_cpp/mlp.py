"""The lecture's MLP (part 2): an embedding table C, tanh hidden layers, a linear output layer."""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from . import _core
from . import _validate as v
from .data import Vocab
from .model import Model, _check_memory, _vocab_of
from .nn import Embedding, Flatten, Linear, Tanh

__all__ = ["MLP"]

INITS = {"lecture": _core.RULE_LECTURE, "kaiming": _core.RULE_KAIMING}


class MLP(Model):
    """The character-level MLP of the makemore lectures (part 2; Bengio et al. 2003).

    ``logits = tanh(C[X].reshape(N, -1) @ W1 + b1) @ W2 + b2`` with the lecture's shapes:
    ``C (V, n_embd)``, ``W1 (block_size*n_embd, n_hidden)``, ``b1 (n_hidden,)``,
    ``W2 (n_hidden, V)``, ``b2 (V,)``. ``n_hidden`` may be a tuple of widths for several tanh
    layers (``W1, b1, W2, b2, W3, b3, ...``, the last pair the output layer). It is the layer list
    ``[Embedding, Flatten, Linear, Tanh, ..., Linear]`` (:attr:`layers`) with the lecture's names.

    vocab: a :class:`Vocab` (needed to sample text) or an int vocabulary size.
    init: ``"lecture"``, every parameter N(0, 1) as the lecture's ``torch.randn``; or
        ``"kaiming"``, the lecture's part 3: hidden weights times (5/3)/sqrt(fan_in), hidden biases
        times 0.01, the output weights times 0.01 and output biases 0.
    seed: the parameters are a function of (seed, shapes, init) alone.
    dtype: ``"float32"`` (fast) or ``"float64"``.
    """

    kind = "mlp"

    def __init__(
        self,
        vocab: Vocab | int,
        block_size: int = 3,
        n_embd: int = 10,
        n_hidden: int | Sequence[int] = 200,
        seed: int = 0,
        init: str = "lecture",
        dtype: str = "float32",
    ):
        V = len(vocab) if isinstance(vocab, Vocab) else v.integer(vocab, "vocab", 1, v.INT32_MAX)
        block_size = v.integer(block_size, "block_size", 1, 1 << 16)
        n_embd = v.integer(n_embd, "n_embd", 1, 1 << 20)
        widths = (
            [n_hidden]
            if isinstance(n_hidden, numbers.Integral) or not hasattr(n_hidden, "__iter__")
            else list(n_hidden)
        )
        if not 1 <= len(widths) <= _core.MAX_HIDDEN:
            raise ValueError(f"n_hidden must be a width or 1 to {_core.MAX_HIDDEN} widths, got {n_hidden!r}")
        self.n_hidden: tuple[int, ...] = tuple(v.integer(w, "n_hidden", 1, 1 << 20) for w in widths)
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
        self.init = init
        widths = (block_size * n_embd,) + self.n_hidden + (V,)
        numbers_ = V * n_embd + sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        _check_memory(numbers_ * (8 if v.dtype_name(dtype) == "float64" else 4))
        self.layers = _mlp_layers(V, block_size, n_embd, self.n_hidden)
        self._build(vocab, block_size, seed, dtype, True, INITS[init])

    # ---------------------------------------------------------------- description
    def config(self) -> dict:
        """The constructor's arguments (vocabulary as its characters), JSON-ready."""
        return {
            "kind": self.kind,
            "vocab": self.vocab.chars if self.vocab is not None else self.vocab_size,
            "block_size": self.block_size,
            "n_embd": self.n_embd,
            "n_hidden": list(self.n_hidden),
            "seed": self.seed,
            "init": self.init,
            "dtype": self.dtype,
        }

    def __repr__(self) -> str:
        hidden = self.n_hidden[0] if len(self.n_hidden) == 1 else self.n_hidden
        return (
            f"MLP(vocab={self.vocab_size}, block_size={self.block_size}, n_embd={self.n_embd}, "
            f"n_hidden={hidden}, dtype={self.dtype!r}, params={self.num_params:,})"
        )

    @classmethod
    def _kwargs(cls, config: dict) -> dict:
        T, E, hidden = config["block_size"], config["n_embd"], config["n_hidden"]
        vocab = _vocab_of(config)
        if not isinstance(hidden, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in [T, E, *hidden]
        ):
            raise TypeError(f"sizes must be integers: block_size {T!r}, n_embd {E!r}, n_hidden {hidden!r}")
        return {
            "vocab": vocab,
            "block_size": T,
            "n_embd": E,
            "n_hidden": tuple(hidden),
            "seed": config["seed"],
            "init": config["init"],
            "dtype": config["dtype"],
        }

    @classmethod
    def _specs(cls, kwargs: dict) -> list[tuple]:
        vocab = kwargs["vocab"]
        V = len(vocab) if isinstance(vocab, Vocab) else vocab
        layers = _mlp_layers(V, kwargs["block_size"], kwargs["n_embd"], kwargs["n_hidden"])
        return [layer._spec() for layer in layers]

    @classmethod
    def _naming(cls, kwargs: dict) -> tuple[bool, int]:
        if kwargs["init"] not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {kwargs['init']!r}")
        return True, INITS[kwargs["init"]]

    # ---------------------------------------------------------------- torch
    def to_torch(self):
        """The same model as a ``torch.nn.Module`` (parameters ``C, W1, b1, ...``), float64 or float32."""
        from .reference import TorchMLP

        return TorchMLP.from_params(self.get_params(), self.block_size)

    @classmethod
    def from_torch(
        cls, module_or_state_dict: Any, vocab: Vocab | int | None = None, dtype: str | None = None
    ) -> "MLP":
        """A model from a torch module or state dict with tensors named ``C, W1, b1, W2, b2, ...``
        (the lecture's notebook: ``{'C': C, 'W1': W1, ...}``). The vocabulary size is C's rows; the
        dtype is the tensors' (float64 stays float64, anything else becomes float32) unless given."""
        sd = (
            module_or_state_dict.state_dict()
            if hasattr(module_or_state_dict, "state_dict")
            else module_or_state_dict
        )
        if not isinstance(sd, Mapping) or "C" not in sd or "W1" not in sd:
            raise ValueError("expected a module or state dict with tensors 'C', 'W1', 'b1', 'W2', 'b2', ...")
        params = {k: v.to_numpy(t) for k, t in sd.items()}
        n_layers = sum(1 for k in params if k.startswith("W")) - 1
        C, W1 = params["C"], params["W1"]
        if C.ndim != 2 or W1.ndim != 2 or W1.shape[0] % C.shape[1]:
            raise ValueError(f"C {C.shape} and W1 {W1.shape} do not fit: W1 needs block_size * n_embd rows")
        hidden = [params[f"W{i}"].shape[1] for i in range(1, n_layers + 1)]
        if vocab is None:
            vocab = C.shape[0]
        if dtype is None:
            dtype = "float64" if all(a.dtype == np.float64 for a in params.values()) else "float32"
        model = cls(
            vocab, block_size=W1.shape[0] // C.shape[1], n_embd=C.shape[1], n_hidden=hidden, dtype=dtype
        )
        model.set_params(params)
        return model


def _mlp_layers(V: int, T: int, E: int, widths: Sequence[int]) -> list:
    """The MLP as the lecture's layers: Embedding, Flatten, (Linear, Tanh) per width, Linear."""
    layers: list = [Embedding(V, E), Flatten()]
    fan_in = T * E
    for w in widths:
        layers += [Linear(fan_in, w), Tanh()]
        fan_in = w
    return layers + [Linear(fan_in, V)]
