"""The reference: the same model in PyTorch (float64 by default), and NumPy twins of the core's
random draws, initialisation and sampling.

This is the one torch implementation the tests and benchmarks compare against. torch is imported
only when a torch function is called. Parameters are dicts of arrays keyed ``C, W1, b1, ..., W{L+1},
b{L+1}`` in the lecture's shapes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "mix64",
    "key",
    "draw",
    "below",
    "batch_indices",
    "dropout_masks",
    "init_params",
    "sample",
    "TorchMLP",  # noqa: F822 (made on first use: see __getattr__)
    "loss_and_grad",
    "loss",
    "logits",
    "train_replay",
    "lecture_sample",
]

# ------------------------------------------------------------------------------------------------
# Random draws: the NumPy twin of cpp/rng.h.

GOLDEN = 0x9E3779B97F4A7C15
BATCH, DROPOUT, SAMPLE, INIT = 1, 2, 3, 4
_M64 = (1 << 64) - 1


def mix64(z: Any) -> np.ndarray:
    """SplitMix64's output function on uint64 (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def key(seed: int, stream: int) -> int:
    return int(mix64((int(mix64(seed & _M64)) + stream) & _M64))


def draw(k: int, counters: Any) -> np.ndarray:
    """draw(key, c) = mix64(key + c * GOLDEN) for an array of counters."""
    c = np.asarray(counters, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix64(np.uint64(k) + c * np.uint64(GOLDEN))


def below(u: np.ndarray, n: int) -> np.ndarray:
    """(u * n) >> 64 for uint64 u and n < 2^32, in two 32-bit halves."""
    u = np.asarray(u, dtype=np.uint64)
    n64 = np.uint64(n)
    hi, lo = u >> np.uint64(32), u & np.uint64(0xFFFFFFFF)
    return ((hi * n64 + ((lo * n64) >> np.uint64(32))) >> np.uint64(32)).astype(np.int64)


def batch_indices(seed: int, steps: int, batch_size: int, n_rows: int, step0: int = 0) -> np.ndarray:
    """The rows the core draws for steps step0 .. step0+steps-1: (steps, batch_size) int64."""
    s = np.arange(step0, step0 + steps, dtype=np.uint64)[:, None]
    i = np.arange(batch_size, dtype=np.uint64)[None, :]
    return below(draw(key(seed, BATCH), s * np.uint64(batch_size) + i), n_rows)


_draw_batches = batch_indices  # train_replay's argument of the same name shadows it


def dropout_masks(seed: int, step: int, widths: Sequence[int], batch_size: int, p: float) -> list[np.ndarray]:
    """The core's dropout masks of one step: one (batch_size, H_l) array of 0 or 1/(1-p) per layer."""
    k = key(seed, DROPOUT)
    thr = np.uint64(int(round(p * 2**24)))
    L = len(widths)
    out = []
    for layer, H in enumerate(widths):
        c0 = ((step * L + layer) * batch_size + np.arange(batch_size, dtype=np.uint64)[:, None]) * np.uint64(
            H
        )
        with np.errstate(over="ignore"):
            u = draw(k, c0 + np.arange(H, dtype=np.uint64)[None, :])
        out.append(np.where((u >> np.uint64(40)) >= thr, 1.0 / (1.0 - p), 0.0))
    return out


def init_params(
    vocab_size: int,
    block_size: int,
    n_embd: int,
    n_hidden: int | Sequence[int],
    seed: int = 0,
    init: str = "lecture",
) -> dict[str, np.ndarray]:
    """The core's initial parameters (float64): Box-Muller over the INIT stream, element e of
    parameter q from counters q * 2^40 + 2e and + 2e + 1, scaled as MLP's docstring says."""
    widths = [n_hidden] if np.isscalar(n_hidden) else list(n_hidden)
    dims = [block_size * n_embd] + widths + [vocab_size]
    shapes = [(vocab_size, n_embd)]
    for a, b in zip(dims[:-1], dims[1:]):
        shapes += [(a, b), (b,)]
    names = ["C"] + [f"{p}{i}" for i in range(1, len(widths) + 2) for p in ("W", "b")]
    k = key(seed, INIT)
    out = {}
    for q, (name, shape) in enumerate(zip(names, shapes)):
        n = int(np.prod(shape))
        e = np.arange(n, dtype=np.uint64)
        base = np.uint64(q << 40)
        d1, d2 = draw(k, base + 2 * e), draw(k, base + 2 * e + np.uint64(1))
        u1 = ((d1 >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
        u2 = (d2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)
        scale = 1.0
        if init == "kaiming" and q > 0:
            layer, is_w = (q - 1) // 2, (q - 1) % 2 == 0
            out_layer = layer == len(widths)
            scale = (
                (0.01 if out_layer else (5 / 3) / np.sqrt(shape[0])) if is_w else (0.0 if out_layer else 0.01)
            )
        out[name] = (z * scale).reshape(shape)
    return out


def _forward_np(params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    C = params["C"]
    n_layers = sum(1 for k in params if k.startswith("W")) - 1
    h = C[X].reshape(len(X), -1)
    for i in range(1, n_layers + 1):
        h = np.tanh(h @ params[f"W{i}"] + params[f"b{i}"])
    return h @ params[f"W{n_layers + 1}"] + params[f"b{n_layers + 1}"]


def sample(
    params: Mapping[str, Any],
    n: int,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: Sequence[int] = (),
    max_len: int = 100,
    first: int = 0,
) -> list[list[int]]:
    """The core's sampler in float64 NumPy, one name and one character at a time, with the same
    draws: returns each name's ids (without the final 0)."""
    params = {k: np.asarray(a, dtype=np.float64) for k, a in params.items()}
    C, W1 = params["C"], params["W1"]
    T = W1.shape[0] // C.shape[1]
    V = C.shape[0]
    k = key(seed, SAMPLE)
    names = []
    for i in range(first, first + n):
        ctx, out = [0] * T, []
        for ch in prefix[:max_len]:
            out.append(int(ch))
            ctx = ctx[1:] + [int(ch)]
        while len(out) < max_len:
            lg = _forward_np(params, np.array([ctx]))[0]
            u = float((draw(k, [i * (1 << 20) + len(out)])[0] >> np.uint64(11))) * 2.0**-53
            if temperature == 0:
                ch = int(np.argmax(lg))
            else:
                thr = np.sort(lg)[::-1][top_k - 1] if top_k and top_k < V else -np.inf
                e = np.where(lg >= thr, np.exp((lg - lg.max()) * (1.0 / temperature)), 0.0)
                cum = np.cumsum(e)
                ch = int(np.searchsorted(cum, u * cum[-1], side="right"))
                ch = min(ch, int(np.nonzero(e)[0][-1]))
            if ch == 0:
                break
            out.append(ch)
            ctx = ctx[1:] + [ch]
        names.append(out)
    return names


# ------------------------------------------------------------------------------------------------
# The model in PyTorch.


def _torch():
    import torch

    return torch


@lru_cache(maxsize=None)
def _module_class():
    torch = _torch()

    class TorchMLP(torch.nn.Module):
        """The lecture's MLP as an ``nn.Module`` with parameters ``C, W1, b1, ..., W{L+1}, b{L+1}``."""

        def __init__(self, params: Mapping[str, Any], dtype=torch.float64):
            super().__init__()
            self.n_layers = sum(1 for k in params if k.startswith("W")) - 1
            names = ["C"] + [f"{p}{i}" for i in range(1, self.n_layers + 2) for p in ("W", "b")]
            for name in names:
                a = params[name]
                t = a.detach().clone() if torch.is_tensor(a) else torch.tensor(np.asarray(a))
                self.register_parameter(name, torch.nn.Parameter(t.to(dtype)))
            self.block_size = self.W1.shape[0] // self.C.shape[1]

        @classmethod
        def from_params(cls, params: Mapping[str, Any], block_size: int | None = None, dtype=None):
            if dtype is None:
                first = next(iter(params.values()))
                dtype = torch.float32 if np.asarray(first).dtype == np.float32 else torch.float64
            return cls(params, dtype=dtype)

        def forward(self, X, masks: Sequence[Any] | None = None):
            X = torch.as_tensor(np.asarray(X), dtype=torch.long)
            h = self.C[X].view(X.shape[0], -1)
            for i in range(1, self.n_layers + 1):
                h = torch.tanh(h @ getattr(self, f"W{i}") + getattr(self, f"b{i}"))
                if masks is not None:
                    h = h * torch.as_tensor(np.asarray(masks[i - 1]), dtype=h.dtype)
            out = self.n_layers + 1
            return h @ getattr(self, f"W{out}") + getattr(self, f"b{out}")

        def params(self) -> dict[str, np.ndarray]:
            return {k: p.detach().cpu().numpy().copy() for k, p in self.named_parameters()}

    return TorchMLP


def __getattr__(name: str):
    if name == "TorchMLP":
        return _module_class()
    raise AttributeError(name)


def loss_and_grad(
    params: Mapping[str, Any], X: Any, Y: Any, masks: Sequence[Any] | None = None
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy and its gradient by autograd, in float64."""
    torch = _torch()
    m = _module_class()(params)
    loss = torch.nn.functional.cross_entropy(m(X, masks), torch.as_tensor(np.asarray(Y), dtype=torch.long))
    loss.backward()
    return float(loss.detach()), {k: p.grad.numpy().copy() for k, p in m.named_parameters()}


def loss(params: Mapping[str, Any], X: Any, Y: Any) -> float:
    torch = _torch()
    with torch.no_grad():
        m = _module_class()(params)
        return float(
            torch.nn.functional.cross_entropy(m(X), torch.as_tensor(np.asarray(Y), dtype=torch.long))
        )


def logits(params: Mapping[str, Any], X: Any) -> np.ndarray:
    torch = _torch()
    with torch.no_grad():
        return _module_class()(params)(X).numpy()


def train_replay(
    params: Mapping[str, Any],
    X: Any,
    Y: Any,
    lr: Any,
    batch_indices: Any = None,
    *,
    steps: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    step0: int = 0,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    nesterov: bool = False,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The training loop with torch.optim in float64, on the rows ``batch_indices`` (steps, B) or,
    without them, on the rows the core draws for ``seed`` (and the same dropout masks).

    Returns the minibatch losses and the final parameters."""
    torch = _torch()
    X = np.asarray(X)
    Y = torch.as_tensor(np.asarray(Y), dtype=torch.long)
    if batch_indices is None:
        batch_indices = _draw_batches(seed, steps, batch_size, len(X), step0)
    batch_indices = np.asarray(batch_indices)
    steps, batch_size = batch_indices.shape
    lrs = np.full(steps, float(lr)) if np.isscalar(lr) else np.asarray(lr, dtype=np.float64)
    m = _module_class()(params)
    widths = [getattr(m, f"W{i}").shape[1] for i in range(1, m.n_layers + 1)]
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            m.parameters(),
            lr=lrs[0] if steps else 0.1,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
    else:
        opt = torch.optim.AdamW(
            m.parameters(), lr=lrs[0] if steps else 1e-3, betas=betas, eps=eps, weight_decay=weight_decay
        )
    losses = np.empty(steps)
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = float(lrs[s])
        ix = batch_indices[s]
        masks = dropout_masks(seed, step0 + s, widths, batch_size, dropout) if dropout > 0 else None
        loss_t = torch.nn.functional.cross_entropy(m(X[ix], masks), Y[ix])
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        losses[s] = float(loss_t.detach())
    return losses, m.params()


def lecture_sample(params: Mapping[str, Any], n: int, seed: int = 2147483647 + 10) -> list[str]:
    """The lecture's sampling loop as the notebook runs it: one name and one character at a time,
    ``torch.multinomial`` on the softmax, with the trained tensors (``requires_grad=True``, no
    ``torch.no_grad``). Returns id lists. Used by the benchmarks."""
    torch = _torch()
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    P = {k: torch.tensor(np.asarray(a), requires_grad=True) for k, a in params.items()}
    C, W1, b1, W2, b2 = P["C"], P["W1"], P["b1"], P["W2"], P["b2"]
    block_size = W1.shape[0] // C.shape[1]
    out = []
    for _ in range(n):
        name, context = [], [0] * block_size
        while True:
            emb = C[torch.tensor([context])]
            h = torch.tanh(emb.view(1, -1) @ W1 + b1)
            logits = h @ W2 + b2
            probs = F.softmax(logits, dim=1)
            ix = torch.multinomial(probs, num_samples=1, generator=g).item()
            context = context[1:] + [ix]
            if ix == 0:
                break
            name.append(ix)
        out.append(name)
    return out
