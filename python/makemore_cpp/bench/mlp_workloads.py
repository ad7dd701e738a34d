"""The lecture's MLP (part 2): training step, loss(), sampling and the 200,000-step run, each beside
PyTorch (the lecture's loop and, where a competent user writes something else, that) and JAX.

Each workload returns {label: result}. A result holds every sample of every implementation
("samples", seconds per `unit`) and its "rows": what the report compares, each row one of ours
against the best of `others` (several when PyTorch is timed at 1 and at 2 threads), with JAX
beside it where measured, and `why`: the algorithmic choice and kernels that make the difference.
"""

from __future__ import annotations

import resource
import time
from typing import Callable

import numpy as np

import makemore_cpp as mm

from . import torch_mlp
from .datasets import bench_words, data, splits
from .jax_models import jax_mlp_steps
from .timing import at_one_thread, at_torch_threads, interleave, per_call, pin_threads, timed, try_import

LECTURE = dict(block_size=3, n_embd=10, n_hidden=200, batch_size=32)
LARGE = dict(block_size=8, n_embd=24, n_hidden=512, batch_size=512)

WHY_STEP = (
    "first layer from per-position tables; each distinct context of the batch once; SGD update "
    "inside the backward pass; one C++ call per train(); PyTorch eager dispatches each op of each step"
)
WHY_LARGE = (
    "per-position tables: the first layer in ~T*V*E*H multiply-adds, not B*T*E*H; each distinct "
    "context once; on 2 threads, column blocks"
)
WHY_EVAL = (
    "both number the contexts through a table of V^T entries (PyTorch: bincount) and compute each "
    "distinct context once; ours numbers and marks in one pass, first layer from per-position "
    "tables, each row's log-sum-exp and target logit gathered in one pass (PyTorch: several ops)"
)
WHY_EVAL_LECTURE = "the lecture computes every row; ours each distinct context once, per-position tables"
WHY_EVAL_EVERY_ROW = "the same rows on both sides; ours: first layer from per-position tables, fused kernels"
WHY_SAMPLE = (
    "names advancing together on both sides; ours runs the network once per context reached (every "
    "name's first context is the same, early contexts repeat: 1,798 rows for the 6,966 characters of "
    "1,000 names), per-position tables, vector exp, then a lookup and a vectorised count of running "
    "sums <= the draw"
)
WHY_SAMPLE_LECTURE = "the lecture draws one name, one character at a time (~10 PyTorch ops a character)"


def ours_steps(model, X, Y, batch_size: int, lr: float = 0.1) -> Callable[[int], None]:
    """run(k): k training steps of `mm.train`, continuing the same run across calls."""
    state = {}

    def run(k: int) -> None:
        h = mm.train(model, X, Y, steps=k, batch_size=batch_size, lr=lr, state=state.get("s"))
        state["s"] = h.state

    return run


def torch_at_threads(name: str, make: Callable[[], Callable[[], float]], threads: int) -> dict:
    """PyTorch's implementation `name` on 1 thread, and with 2 CPUs also on 2 (each its own state),
    interleaved with the others: the report compares against the better."""
    if threads == 1:
        return {name: make()}
    return {f"{name}, {n} thread{'s' if n > 1 else ''}": at_torch_threads(n, make()) for n in (1, 2)}


def measure(impls: dict, args, threads: int) -> tuple[dict, dict]:
    """Interleaved samples, and the cores' round trips when on 2 threads."""
    probes: list[float] = []
    res = interleave(impls, args.repeats, probes if threads > 1 else None)
    return res, ({"round_trip_ns": probes} if threads > 1 else {})


def step_workload(cfg: dict, threads: int, args, with_jax: bool, why: str) -> dict:
    pin_threads(threads)
    vocab, X, Y, source = data(cfg["block_size"], args.quick)
    model = mm.MLP(
        vocab, block_size=cfg["block_size"], n_embd=cfg["n_embd"], n_hidden=cfg["n_hidden"], seed=1
    )
    k = args.steps if args.steps else (10 if args.quick else (2000 if cfg["batch_size"] <= 64 else 100))
    B = cfg["batch_size"]
    impls: dict[str, Callable[[], float]] = {}
    ours = ours_steps(model.copy(), X, Y, B)
    impls["makemore_cpp"] = lambda: timed(lambda: ours(k)) / k
    if threads > 1:
        ours1 = ours_steps(model.copy(), X, Y, B)
        impls["makemore_cpp, 1 thread"] = at_one_thread(lambda: timed(lambda: ours1(k)) / k)
    torch_names: list[str] = []
    if try_import("torch") is not None:
        tk = max(1, k // 10)

        def make():
            t = torch_mlp.lecture_steps(model, X, Y, B)
            return lambda: timed(lambda: t(tk)) / tk

        t_impls = torch_at_threads("torch eager", make, threads)
        impls.update(t_impls)
        torch_names = list(t_impls)
    jax_names: list[str] = []
    if with_jax:
        j = jax_mlp_steps(model, X, Y, B)
        if j is not None:
            per, scan = j
            jk = max(1, k // 4)
            impls["jax jit"] = lambda: timed(lambda: per(jk)) / jk
            impls["jax lax.scan"] = lambda: timed(lambda: scan(k)) / k
            jax_names = ["jax jit", "jax lax.scan"]
    res, extra = measure(impls, args, threads)
    row = {
        "name": f"training step, batch {B}",
        "ours": "makemore_cpp",
        "others": torch_names,
        "jax": jax_names,
        "why": why,
    }
    return {**extra, "unit": "s/step", "threads": threads, "data": source, "samples": res, "rows": [row]}


def eval_workload(threads: int, args) -> dict:
    pin_threads(threads)
    vocab, X, Y, source = data(3, args.quick)
    model = mm.MLP(vocab, seed=1)
    # A call of loss() takes a few milliseconds: each sample times `reps` calls in a row.
    reps = 1 if args.quick else 10
    impls = {"makemore_cpp": per_call(lambda: model.loss(X, Y), reps)}
    if threads > 1:
        impls["makemore_cpp, 1 thread"] = at_one_thread(per_call(lambda: model.loss(X, Y), reps))
    # The core over every row (no distinct-context step); it still uses the per-position tables.
    impls["makemore_cpp, every row"] = lambda: timed(lambda: model._m.evaluate(X, Y, False, False))
    if threads > 1:
        impls["every row, 1 thread"] = at_one_thread(
            lambda: timed(lambda: model._m.evaluate(X, Y, False, False))
        )
    distinct, lecture = [], []
    if try_import("torch") is not None:

        def timer(make_fn):
            def make():
                f = make_fn(model, X, Y)
                return lambda: timed(f)

            return make

        d = torch_at_threads("torch, distinct contexts", timer(torch_mlp.distinct_loss), threads)
        e = torch_at_threads("torch, the lecture's every-row pass", timer(torch_mlp.every_row_loss), threads)
        impls.update(d)
        impls.update(e)
        distinct, lecture = list(d), list(e)
    res, extra = measure(impls, args, threads)
    rows = [
        {
            "name": "loss() over the training split",
            "ours": "makemore_cpp",
            "others": distinct,
            "why": WHY_EVAL,
        },
        {
            "name": "loss(), against the lecture's every-row pass",
            "ours": "makemore_cpp",
            "others": lecture,
            "lecture": True,
            "why": WHY_EVAL_LECTURE,
        },
        {
            "name": "every row, ours without the distinct-context step",
            "ours": "makemore_cpp, every row",
            "others": lecture,
            "lecture": True,
            "why": WHY_EVAL_EVERY_ROW,
        },
    ]
    return {
        **extra,
        "unit": "s/pass",
        "threads": threads,
        "rows_in_split": int(len(X)),
        "distinct_contexts": int(len(np.unique(X, axis=0))),
        "data": source,
        "samples": res,
        "rows": rows,
    }


def sample_sizes(quick: bool) -> tuple[int, ...]:
    return (20, 1000, 5000) if quick else (20, 1000, 200_000)


def sample_workloads(args) -> dict:
    """sample(n) at each size beside PyTorch's batched sampler (both ways of drawing), and per
    name against the lecture's one-name loop. One thread."""
    pin_threads(1)
    vocab, X, Y, source = data(3, args.quick)
    model = mm.MLP(vocab, seed=1, init="kaiming")
    mm.train(model, X, Y, steps=2000 if args.quick else 20000, lr=0.1)
    have_torch = try_import("torch") is not None
    out = {}
    for n in sample_sizes(args.quick):
        impls = {"makemore_cpp": per_call(lambda n=n: model.sample(n, seed=1), {20: 50, 1000: 5}.get(n, 1))}
        others = []
        if have_torch:
            for draw in torch_mlp.DRAWS:
                name = f"torch batched, {draw}"
                f = torch_mlp.batched_sampler(model, draw)
                impls[name] = per_call(lambda f=f, n=n: f(n), {20: 5}.get(n, 1))
                others.append(name)
        res = interleave(impls, args.repeats)
        out[f"sampling {n:,} names, 1 thread"] = {
            "unit": "s/call",
            "threads": 1,
            "names": n,
            "data": source,
            "samples": res,
            "rows": [
                {
                    "name": f"sample({n:,})" + (", one call" if n <= 20 else ""),
                    "ours": "makemore_cpp",
                    "others": others,
                    "why": WHY_SAMPLE,
                }
            ],
        }
    n_ours = sample_sizes(args.quick)[-1]
    n_torch = 5 if args.quick else 100
    impls = {"makemore_cpp": lambda: timed(lambda: model.sample(n_ours, seed=1)) / n_ours}
    lecture = []
    if have_torch:
        from .. import reference

        params = model.get_params()
        impls["torch, the lecture's one-name loop"] = lambda: (
            timed(lambda: reference.lecture_sample(params, n_torch)) / n_torch
        )
        lecture = ["torch, the lecture's one-name loop"]
    res = interleave(impls, args.repeats)
    out["sampling, 1 thread"] = {
        "unit": "s/name",
        "threads": 1,
        "names": n_ours,
        "data": source,
        "samples": res,
        "rows": [
            {
                "name": f"sampling per name (ours: {n_ours:,} a call)",
                "ours": "makemore_cpp",
                "others": lecture,
                "lecture": True,
                "why": WHY_SAMPLE_LECTURE,
            }
        ],
    }
    return out


def run_workload(args) -> dict:
    """The lecture's 200,000-step run end to end, one thread: ours through fit (split, build, train,
    evaluate), then the lecture's loop in PyTorch eager on the same split."""
    pin_threads(1)
    words, path = bench_words(False)
    steps = 2000 if args.quick else 200_000
    t0 = time.perf_counter()
    res = mm.fit(words, preset="lecture", steps=steps, eval_every=0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "unit": "s",
        "threads": 1,
        "steps": steps,
        "seconds": seconds,
        "train_seconds": res.history.seconds,
        "losses": res.losses,
        "peak_rss_mib": peak,
        "data": path,
        "why": "the training step above, with no Python between steps",
    }
    if try_import("torch") is not None:
        sp, vocab, _ = splits(3, False)
        (Xtr, Ytr), (Xdev, Ydev) = sp["train"], sp["dev"]
        out["torch"] = torch_mlp.lecture_run(Xtr, Ytr, Xdev, Ydev, steps, len(vocab))
        out["torch"]["label"] = "torch eager, the lecture's loop"
    return out
