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
    logits = lambda ctx: _forward_np(params, np.array([ctx]))[0]  # noqa: E731
    return _sample(logits, C.shape[0], T, n, seed, temperature, top_k, prefix, max_len, first)


def _sample(logits, V, T, n, seed, temperature, top_k, prefix, max_len, first) -> list[list[int]]:
    """Names first .. first + n - 1, each character drawn from logits(context) as the core does."""
    k = key(seed, SAMPLE)
    names = []
    for i in range(first, first + n):
        ctx, out = [0] * T, []
        for ch in prefix[:max_len]:
            out.append(int(ch))
            ctx = ctx[1:] + [int(ch)]
        while len(out) < max_len:
            lg = np.asarray(logits(ctx), dtype=np.float64)
            u = float((draw(k, [i * (1 << 20) + len(out)])[0] >> np.uint64(11))) * 2.0**-53
            if temperature == 0:
                ch = int(np.argmax(lg))
            else:
                thr = np.sort(lg)[::-1][top_k - 1] if top_k and top_k < V else -np.inf
                x = lg - lg.max()
                with np.errstate(invalid="ignore"):  # 1 / temperature may be inf: 0 * inf at the max
                    x = np.where(x == 0, 0.0, x * (1.0 / temperature))
                e = np.where(lg >= thr, np.exp(x), 0.0)
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

        def extra_repr(self) -> str:
            shapes = ", ".join(f"{k} {tuple(p.shape)}" for k, p in self.named_parameters())
            return f"block_size={self.block_size}, {shapes}, dtype={self.C.dtype}"

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


# ------------------------------------------------------------------------------------------------
# The lecture's layer classes (makemore_cpp.nn) in PyTorch, as the lecture wrote them, as modules
# whose state_dict keys are the package's parameter names ("{i}.weight", "{i}.running_mean", ...).


@lru_cache(maxsize=None)
def _layer_modules():
    torch = _torch()

    class Embedding(torch.nn.Module):
        def __init__(self, num_embeddings, embedding_dim):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(num_embeddings, embedding_dim))

        def forward(self, IX):
            return self.weight[IX]

        def extra_repr(self):
            return f"{self.weight.shape[0]}, {self.weight.shape[1]}"

    class Flatten(torch.nn.Module):
        def forward(self, x):
            return x.view(x.shape[0], -1)

    class FlattenConsecutive(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def extra_repr(self):
            return str(self.n)

        def forward(self, x):
            B, T, C = x.shape
            x = x.view(B, T // self.n, C * self.n)
            if x.shape[1] == 1:
                x = x.squeeze(1)
            return x

    class Linear(torch.nn.Module):
        def __init__(self, fan_in, fan_out, bias=True):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(fan_in, fan_out))
            self.bias = torch.nn.Parameter(torch.zeros(fan_out)) if bias else None

        def extra_repr(self):
            fan_in, fan_out = self.weight.shape
            return f"{fan_in}, {fan_out}" + ("" if self.bias is not None else ", bias=False")

        def forward(self, x):
            out = x @ self.weight
            if self.bias is not None:
                out = out + self.bias
            return out

    class BatchNorm1d(torch.nn.Module):
        def __init__(self, dim, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.gamma = torch.nn.Parameter(torch.ones(dim))
            self.beta = torch.nn.Parameter(torch.zeros(dim))
            self.register_buffer("running_mean", torch.zeros(dim))
            self.register_buffer("running_var", torch.ones(dim))

        def extra_repr(self):
            return f"{self.gamma.shape[0]}, eps={self.eps:g}, momentum={self.momentum:g}"

        def forward(self, x):
            if self.training:
                dim = 0 if x.ndim == 2 else (0, 1)
                xmean = x.mean(dim, keepdim=True)
                xvar = x.var(dim, keepdim=True)  # unbiased, as the lecture's
            else:
                xmean, xvar = self.running_mean, self.running_var
            xhat = (x - xmean) / torch.sqrt(xvar + self.eps)
            out = self.gamma * xhat + self.beta
            if self.training:
                with torch.no_grad():
                    m = self.momentum
                    self.running_mean.copy_((1 - m) * self.running_mean + m * xmean.reshape(-1))
                    self.running_var.copy_((1 - m) * self.running_var + m * xvar.reshape(-1))
            return out

    class Tanh(torch.nn.Module):
        def forward(self, x):
            return torch.tanh(x)

    return {c.__name__: c for c in (Embedding, Flatten, FlattenConsecutive, Linear, BatchNorm1d, Tanh)}


def torch_layers(layers: Sequence[Any], params: Mapping[str, Any] | None = None, dtype=None):
    """A ``torch.nn.Sequential`` of the lecture's classes for ``layers`` (makemore_cpp.nn layers or
    their ``config()`` dicts), holding ``params`` (keys ``"{i}.weight"``, ...) when given; float64
    unless ``dtype`` says otherwise (or the params are float32 and dtype is None)."""
    torch = _torch()
    mods = _layer_modules()
    seq = []
    for layer in layers:
        cfg = dict(layer if isinstance(layer, Mapping) else layer.config())
        seq.append(mods[cfg.pop("type")](**cfg))
    model = torch.nn.Sequential(*seq)
    if params is not None:
        if dtype is None:
            first = np.asarray(next(iter(params.values())))
            dtype = torch.float32 if first.dtype == np.float32 else torch.float64
        model = model.to(dtype)
        state = {k: torch.as_tensor(np.asarray(a)).to(dtype) for k, a in params.items()}
        model.load_state_dict(state, strict=True)
    else:
        model = model.to(dtype or torch.float64)
    return model


def _trained(model) -> list:
    return [(k, p) for k, p in model.named_parameters()]


def layers_loss_and_grad(layers, params, X, Y, masks=None) -> tuple[float, dict[str, np.ndarray]]:
    """Training mode: the mean cross-entropy and the gradient of every trained parameter, float64.
    ``masks``: dropout masks after each Tanh, in order, each (rows, width)."""
    torch = _torch()
    m = torch_layers(layers, params, torch.float64)
    m.train()
    mask_fn = None if masks is None else (lambda k, rows, width: masks[k])
    loss = torch.nn.functional.cross_entropy(
        _layers_forward(m, X, mask_fn), torch.as_tensor(np.asarray(Y)).long()
    )
    loss.backward()
    return float(loss.detach()), {k: p.grad.numpy().copy() for k, p in _trained(m)}


def _layers_forward(model, X, mask_fn=None):
    """The forward pass; with mask_fn(k, rows, width), the output of the k-th Tanh times its mask."""
    torch = _torch()
    x = torch.as_tensor(np.asarray(X)).long()
    k = 0
    tanh = _layer_modules()["Tanh"]
    for layer in model:
        x = layer(x)
        if mask_fn is not None and isinstance(layer, tanh):
            mask = mask_fn(k, int(np.prod(x.shape[:-1])), x.shape[-1])
            x = x * torch.as_tensor(np.asarray(mask), dtype=x.dtype).reshape(x.shape)
            k += 1
    return x


def layers_logits(layers, params, X) -> np.ndarray:
    """Evaluation mode (running statistics): the logits, float64."""
    torch = _torch()
    m = torch_layers(layers, params, torch.float64)
    m.eval()
    with torch.no_grad():
        return _layers_forward(m, X).numpy()


def layers_loss(layers, params, X, Y) -> float:
    """Evaluation mode: the mean cross-entropy, float64."""
    torch = _torch()
    lg = torch.as_tensor(layers_logits(layers, params, X))
    return float(torch.nn.functional.cross_entropy(lg, torch.as_tensor(np.asarray(Y)).long()))


def layers_init_params(layers, vocab_size: int, block_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The core's initial parameters of a layer list (float64): its table in layer order (weight,
    bias; gamma, beta, running_mean, running_var), parameter q's normal draws from counters
    q * 2^40 + 2e and + 2e + 1 (Box-Muller), scaled as the lecture's classes; constants draw nothing."""
    k = key(seed, INIT)
    out: dict[str, np.ndarray] = {}
    q = 0

    def normal(shape, scale):
        nonlocal q
        n = int(np.prod(shape))
        e = np.arange(n, dtype=np.uint64)
        base = np.uint64(q << 40)
        d1, d2 = draw(k, base + 2 * e), draw(k, base + 2 * e + np.uint64(1))
        u1 = ((d1 >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
        u2 = (d2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2) * scale).reshape(shape)

    for i, layer in enumerate(layers):
        cfg = layer if isinstance(layer, Mapping) else layer.config()
        kind = cfg["type"]
        if kind == "Embedding":
            out[f"{i}.weight"] = normal((cfg["num_embeddings"], cfg["embedding_dim"]), 1.0)
            q += 1
        elif kind == "Linear":
            out[f"{i}.weight"] = normal((cfg["fan_in"], cfg["fan_out"]), 1.0 / np.sqrt(cfg["fan_in"]))
            q += 1
            if cfg.get("bias", True):
                out[f"{i}.bias"] = np.zeros(cfg["fan_out"])
                q += 1
        elif kind == "BatchNorm1d":
            d = cfg["dim"]
            out[f"{i}.gamma"], out[f"{i}.beta"] = np.ones(d), np.zeros(d)
            out[f"{i}.running_mean"], out[f"{i}.running_var"] = np.zeros(d), np.ones(d)
            q += 4
    return out


def layers_train_replay(
    layers,
    params,
    X,
    Y,
    lr,
    batch_indices=None,
    *,
    steps=None,
    batch_size=32,
    seed=0,
    step0=0,
    optimizer="sgd",
    momentum=0.0,
    nesterov=False,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    dropout=0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The lecture's training loop with torch.optim in float64 over a layer list, on the rows
    ``batch_indices`` (steps, B) or those the core draws for ``seed`` (and its dropout masks, one
    per Tanh). Returns the minibatch losses and the final parameters, running statistics included."""
    torch = _torch()
    X = np.asarray(X)
    Yt = torch.as_tensor(np.asarray(Y)).long()
    if batch_indices is None:
        batch_indices = _draw_batches(seed, steps, batch_size, len(X), step0)
    batch_indices = np.asarray(batch_indices)
    steps, batch_size = batch_indices.shape
    lrs = np.full(steps, float(lr)) if np.isscalar(lr) else np.asarray(lr, dtype=np.float64)
    m = torch_layers(layers, params, torch.float64)
    m.train()
    trained = [p for _, p in _trained(m)]
    if optimizer == "sgd":
        opt = torch.optim.SGD(
            trained,
            lr=float(lrs[0]) if steps else 0.1,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
    else:
        opt = torch.optim.AdamW(
            trained, lr=float(lrs[0]) if steps else 1e-3, betas=betas, eps=eps, weight_decay=weight_decay
        )
    n_tanh = sum(isinstance(layer, _layer_modules()["Tanh"]) for layer in m)
    losses = np.empty(steps)
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = float(lrs[s])
        ix = batch_indices[s]
        mask_fn = None
        if dropout > 0:  # the core's masks: a Tanh's rows are the batch's rows times its positions
            step = step0 + s

            def mask_fn(k, rows, width, step=step):
                return _dropout_rows(seed, step, k, n_tanh, rows, width, dropout)

        loss_t = torch.nn.functional.cross_entropy(_layers_forward(m, X[ix], mask_fn), Yt[ix])
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        losses[s] = float(loss_t.detach())
    return losses, {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}


def _dropout_rows(seed, step, layer, n_layers, rows, width, p) -> np.ndarray:
    """The core's dropout mask of Tanh `layer` of `n_layers` at a step: (rows, width) of 0 or 1/(1-p)."""
    k = key(seed, DROPOUT)
    thr = np.uint64(int(round(p * 2**24)))
    c0 = ((step * n_layers + layer) * rows + np.arange(rows, dtype=np.uint64)[:, None]) * np.uint64(width)
    with np.errstate(over="ignore"):
        u = draw(k, c0 + np.arange(width, dtype=np.uint64)[None, :])
    return np.where((u >> np.uint64(40)) >= thr, 1.0 / (1.0 - p), 0.0)


def layers_sample(
    layers,
    params,
    block_size: int,
    n: int,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: Sequence[int] = (),
    max_len: int = 100,
    first: int = 0,
) -> list[list[int]]:
    """The core's sampler over a layer list in evaluation mode (float64 torch), one name and one
    character at a time, with the core's draws: each name's ids (without the final 0)."""
    torch = _torch()
    m = torch_layers(layers, params, torch.float64)
    m.eval()
    V = np.asarray(next(a for k, a in params.items() if k.endswith(".weight"))).shape[0]

    def logits(ctx):
        with torch.no_grad():
            return _layers_forward(m, np.array([ctx]))[0].numpy()

    return _sample(logits, V, block_size, n, seed, temperature, top_k, prefix, max_len, first)
