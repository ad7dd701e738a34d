"""PyTorch's side of the lecture's MLP (part 2): the lecture's loops, and PyTorch as a competent
user writes it where the lecture's loop is not what such a user would run (evaluation, sampling).

Every function takes the parameters of an `mm.MLP` (or the lecture's own initialisation), so that
both sides compute the same thing."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

import makemore_cpp as mm


def params(model: mm.MLP, requires_grad: bool):
    """The model's C, W1, b1, W2, b2 as float32 torch tensors."""
    import torch

    return [torch.tensor(a, requires_grad=requires_grad) for a in model.get_params().values()]


def lecture_steps(model: mm.MLP, X: np.ndarray, Y: np.ndarray, batch_size: int, lr: float = 0.1):
    """The lecture's training loop, verbatim: returns run(k) doing k steps."""
    import torch
    import torch.nn.functional as F

    ps = params(model, True)
    C, W1, b1, W2, b2 = ps
    Xt, Yt = torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)
    g = torch.Generator().manual_seed(2147483647)

    def run(k: int) -> None:
        for _ in range(k):
            ix = torch.randint(0, Xt.shape[0], (batch_size,), generator=g)
            emb = C[Xt[ix]]
            h = torch.tanh(emb.view(-1, W1.shape[0]) @ W1 + b1)
            logits = h @ W2 + b2
            loss = F.cross_entropy(logits, Yt[ix])
            for p in ps:
                p.grad = None
            loss.backward()
            for p in ps:
                p.data += -lr * p.grad

    return run


def every_row_loss(model: mm.MLP, X: np.ndarray, Y: np.ndarray) -> Callable[[], float]:
    """The lecture's evaluation: the network over every row, no gradient."""
    import torch
    import torch.nn.functional as F

    C, W1, b1, W2, b2 = params(model, False)
    Xt, Yt = torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)

    def run() -> float:
        with torch.no_grad():
            emb = C[Xt]
            h = torch.tanh(emb.view(emb.shape[0], -1) @ W1 + b1)
            return float(F.cross_entropy(h @ W2 + b2, Yt))

    return run


def distinct_loss(model: mm.MLP, X: np.ndarray, Y: np.ndarray) -> Callable[[], float]:
    """The same loss as a competent user computes it: each row's context numbered as one integer
    (its ids as digits in base V), the distinct numbers found, the network over the distinct
    contexts only, each row's log-probability gathered back. Every step runs in each call, as
    `loss()` numbers the contexts in each call.

    While the numbers fit a table of a few entries per row (the lecture's: 19,683 for 182,625
    rows), the distinct ones are found by `torch.bincount` and numbered through that table, in
    time linear in the rows; else by `torch.unique(..., return_inverse=True)`, which sorts every
    row (the whole loss then took 1.3-2.2x as long on the lecture's split, benchmarks/NOTES.md).
    The ids stay in the int32 that `build_dataset` gives while the numbers fit (torch.unique sorts
    int32 about twice as fast as int64). Under `inference_mode`, bias adds fused (`addmm`), the
    rows' log-probabilities gathered from the flat (contexts x V) array."""
    import torch
    import torch.nn.functional as F

    C, W1, b1, W2, b2 = params(model, False)
    V, T = C.shape[0], X.shape[1]
    wide = V**T >= 2**31
    table = V**T <= max(4 * len(X), 1 << 16)
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    Xt = Xt.long() if wide else Xt.int()
    Yt = torch.from_numpy(np.ascontiguousarray(Y)).long()
    place = [V ** (T - 1 - t) for t in range(T)]

    def run() -> float:
        with torch.inference_mode():
            key = Xt[:, 0]
            for t in range(1, T):
                key = key * V + Xt[:, t]
            if table:
                key = key.long()
                u = torch.bincount(key, minlength=V**T).nonzero().squeeze(1)
                number = torch.empty(V**T, dtype=torch.long)
                number[u] = torch.arange(len(u))
                inv = number[key]
            else:
                u, inv = torch.unique(key, return_inverse=True)
            ctx = torch.stack([(u // p) % V for p in place], 1)
            h = torch.addmm(b1, C[ctx].view(len(u), -1), W1).tanh_()
            logp = F.log_softmax(torch.addmm(b2, h, W2), dim=1)
            return float(-logp.view(-1)[inv * V + Yt].mean())

    return run


# How a batched sampler draws each character from the softmax: torch.multinomial, which users
# write, or inverse transform sampling (running sums, one uniform, searchsorted), which is faster
# on CPU. The benchmark times both and compares against the better.
DRAWS = ("multinomial", "searchsorted")


def batched_sampler(
    model: mm.MLP, draw: str, max_len: int = 100, seed: int = 2147483647
) -> Callable[[int], object]:
    """sample(n): n names advancing together, one batched forward pass a character under
    `torch.inference_mode()` over the names still being drawn, until each draws '.' or holds max_len
    characters. Returns the (n, max_len) tensor of ids (0 after each name's end): turning them into
    strings is left out of PyTorch's time (ours includes it)."""
    import torch
    import torch.nn.functional as F

    if draw not in DRAWS:
        raise ValueError(f"draw must be one of {DRAWS}, got {draw!r}")
    C, W1, b1, W2, b2 = params(model, False)
    V, T = C.shape[0], W1.shape[0] // C.shape[1]
    g = torch.Generator().manual_seed(seed)
    id_dtype = torch.uint8 if V <= 256 else torch.int32

    def sample(n: int):
        with torch.inference_mode():
            out = torch.zeros((n, max_len), dtype=id_dtype)
            rows = torch.arange(n)
            ctx = torch.zeros((n, T), dtype=torch.long)
            for t in range(max_len):
                h = torch.addmm(b1, C[ctx].view(len(rows), -1), W1).tanh_()
                probs = F.softmax(torch.addmm(b2, h, W2), dim=1)
                if draw == "multinomial":
                    ix = torch.multinomial(probs, num_samples=1, generator=g).squeeze(1)
                else:
                    cdf = probs.cumsum_(1)
                    u = torch.rand((len(rows), 1), generator=g).mul_(cdf[:, -1:])
                    ix = torch.searchsorted(cdf, u, right=True).squeeze_(1).clamp_(max=V - 1)
                out[rows, t] = ix.to(id_dtype)
                keep = ix != 0
                rows, ix = rows[keep], ix[keep]
                if rows.numel() == 0:
                    break
                ctx = torch.cat([ctx[keep, 1:], ix[:, None]], 1)
        return out

    return sample


def lecture_run(
    Xtr: np.ndarray, Ytr: np.ndarray, Xdev: np.ndarray, Ydev: np.ndarray, steps: int, vocab_size: int
) -> dict:
    """The lecture's part-2 run in PyTorch eager, as the notebook writes it: its initialisation
    (torch.randn from a generator seeded 2147483647), `steps` SGD steps of 32 rows at 0.1, 0.01
    from half-way (the lecture: 200,000 steps, 0.01 from 100,000), then the loss on train and dev.
    The minibatch rows come from a seeded generator (the lecture uses torch's global one)."""
    import torch
    import torch.nn.functional as F

    T = Xtr.shape[1]
    t_start = time.perf_counter()
    Xt, Yt = torch.tensor(Xtr, dtype=torch.long), torch.tensor(Ytr, dtype=torch.long)
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((vocab_size, 10), generator=g)
    W1 = torch.randn((T * 10, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, vocab_size), generator=g)
    b2 = torch.randn(vocab_size, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    gb = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for i in range(steps):
        ix = torch.randint(0, Xt.shape[0], (32,), generator=gb)
        emb = C[Xt[ix]]
        h = torch.tanh(emb.view(-1, T * 10) @ W1 + b1)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Yt[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < steps // 2 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
    train_seconds = time.perf_counter() - t0
    losses = {}
    with torch.no_grad():
        for name, (X, Y) in (("train", (Xt, Yt)), ("dev", (Xdev, Ydev))):
            X, Y = torch.as_tensor(X, dtype=torch.long), torch.as_tensor(Y, dtype=torch.long)
            h = torch.tanh(C[X].view(-1, T * 10) @ W1 + b1)
            losses[name] = float(F.cross_entropy(h @ W2 + b2, Y))
    return {
        "seconds": time.perf_counter() - t_start,
        "train_seconds": train_seconds,
        "steps": steps,
        "losses": losses,
    }


def recipe_run(
    model: mm.MLP,
    data: dict,
    *,
    budget: float,
    batch_size: int,
    lr: float,
    warmup: int,
    betas: tuple[float, float],
    weight_decay: float,
    dropout: float,
    eval_every: int,
    threads: tuple[int, ...] = (1, 2),
    seed: int = 0,
) -> dict:
    """An MLP recipe of this package (tanh layers, inverted dropout after each, AdamW, linear
    warm-up then cosine decay to 0) in PyTorch eager as a competent user writes it, trained for
    ``budget`` seconds of wall time: from ``model``'s initial parameters, batched (the minibatch's
    rows by one index tensor), at whichever of ``threads`` a short interleaved probe finds faster
    (the probe, as a user would run it once beforehand, is outside the budget). The step count the
    cosine spans is the budget's: the probe's time a step and a dev evaluation give how many steps
    fit, with 5% kept for the evaluations' variation. ``data``: ``{"train": (X, Y), "dev": ...,
    "test": ...}`` from ``build_dataset``. Returns the dev curve (``eval_step``, ``eval_loss``,
    ``eval_seconds`` from the start of the budget), the losses on each part and the settings."""
    import math

    import torch
    import torch.nn.functional as F

    from .timing import interleave, median

    init = [torch.tensor(a) for a in model.get_params().values()]
    tensors = {
        name: (torch.as_tensor(X, dtype=torch.long), torch.as_tensor(Y, dtype=torch.long))
        for name, (X, Y) in data.items()
    }
    Xtr, Ytr = tensors["train"]

    def forward(ps, X, train: bool):
        C, rest = ps[0], ps[1:]
        x = C[X].view(X.shape[0], -1)
        for W, b in zip(rest[0:-2:2], rest[1:-2:2]):
            x = torch.tanh(torch.addmm(b, x, W))
            if train and dropout > 0:
                x = F.dropout(x, dropout, training=True)
        return torch.addmm(rest[-1], x, rest[-2])

    def evaluate(ps, name: str) -> float:
        X, Y = tensors[name]
        with torch.no_grad():
            return float(F.cross_entropy(forward(ps, X, False), Y))

    def setup(total: int):
        ps = [p.clone().requires_grad_(True) for p in init]
        opt = torch.optim.AdamW(ps, lr=lr, betas=betas, eps=1e-8, weight_decay=weight_decay)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        gen = torch.Generator().manual_seed(seed)

        def run(k: int) -> None:
            for _ in range(k):
                ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=gen)
                loss = F.cross_entropy(forward(ps, Xtr[ix], True), Ytr[ix])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()

        return ps, run

    def probe_at(n: int):
        def go() -> float:
            torch.set_num_threads(n)
            _, run = setup(10_000)
            run(10)  # warm-up
            t = time.perf_counter()
            run(50)
            return (time.perf_counter() - t) / 50

        return go

    probe = interleave({n: probe_at(n) for n in threads}, 3)
    best = min(threads, key=lambda n: median(probe[n]))
    torch.set_num_threads(best)
    step_s = median(probe[best])
    t_start = time.perf_counter()
    evaluate(init, "dev")
    eval_s = time.perf_counter() - t_start
    steps = int(0.95 * (budget - eval_s) / (step_s + eval_s / eval_every))
    steps = max(eval_every, steps // eval_every * eval_every)
    ps, run = setup(steps)
    curve: dict = {"eval_step": [], "eval_loss": [], "eval_seconds": []}
    t0 = time.perf_counter()
    for done in range(0, steps, eval_every):
        run(eval_every)
        curve["eval_step"].append(done + eval_every)
        curve["eval_loss"].append(evaluate(ps, "dev"))
        curve["eval_seconds"].append(time.perf_counter() - t_start)
    train_seconds = time.perf_counter() - t0
    losses = {name: evaluate(ps, name) for name in tensors}
    return {
        **curve,
        "steps": steps,
        "threads": best,
        "probe_s_per_step": {str(n): v for n, v in probe.items()},
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - t_start,
        "losses": losses,
    }
