"""The layers issue's rows: part 5's WaveNet and part 3's batch-norm MLP, one SGD step of 32 rows,
ours (`makemore_cpp.nn`) beside PyTorch eager running the lecture's own classes and JAX jitted over
a lax.scan, all three from the same parameters; part 2's MLP as an `nn.Sequential` against
`mm.MLP`; the 200,000-step WaveNet run. Rows of ours are skipped, with the reason, when
`makemore_cpp.nn` is not in this build."""

from __future__ import annotations

import os
import time

import makemore_cpp as mm

from .datasets import data, splits
from .jax_models import jax_layer_steps
from .layer_specs import bn_spec, wavenet_spec
from .mlp_workloads import ours_steps
from .timing import at_torch_threads, interleave, median, pin_threads, timed, try_import

# Parameter counts of the lecture's models at the lecture's 27 characters.
PARAMS = {"wavenet": 76_579, "bn": 12_097}

WHY_LAYERS = (
    "the core's layer kernels (makemore_cpp.nn), one C++ call per train(); PyTorch eager dispatches "
    "each op of each layer"
)


def cpus(args) -> int:
    """The CPUs the process had when the benchmark started (workloads pin it to fewer)."""
    return getattr(args, "cpus", None) or len(os.sched_getaffinity(0))


def nn_or_reason():
    """(makemore_cpp.nn, None), or (None, why it cannot be used)."""
    try:
        from makemore_cpp import nn
    except ImportError:
        return None, "makemore_cpp.nn is not in this build"
    return nn, None


def ours_model(nn, spec: list, vocab, block_size: int, seed: int = 42):
    """Our nn.Sequential for spec, its output layer's weight times 0.1 as the lecture's."""
    model = nn.Sequential(
        [getattr(nn, kind)(*args, **kw) for kind, args, kw in spec],
        vocab=vocab,
        block_size=block_size,
        seed=seed,
    )
    p = model.get_params()
    last = f"{len(spec) - 1}.weight"
    p[last] = p[last] * 0.1
    model.set_params(p)
    return model


def model_spec(which: str, V: int) -> tuple[list, int, str]:
    """(spec, context, the row's title)."""
    if which == "wavenet":
        return wavenet_spec(V), 8, "part 5's WaveNet training step (76,579 parameters), batch 32"
    return bn_spec(V), 3, "part 3's batch-norm MLP training step (12,097 parameters), batch 32"


def layer_step_workload(which: str, args, with_jax: bool) -> dict:
    """One SGD step of `which` ("wavenet" or "bn"): ours, PyTorch eager with the lecture's classes
    and JAX over a lax.scan, from our model's parameters (the lecture's initialisation without it)."""
    pin_threads(1)
    nn, reason = nn_or_reason()
    have_torch = try_import("torch") is not None
    if nn is None and not have_torch:
        return {"skipped": f"{reason}, and torch is not installed"}
    vocab, X, Y, source = data(8 if which == "wavenet" else 3, args.quick)
    spec, T, title = model_spec(which, len(vocab))
    k = args.steps if args.steps else (10 if args.quick else 1000)
    impls, others, jax_names, count = {}, [], [], None
    if nn is not None:
        ours = ours_model(nn, spec, vocab, T)
        params = ours.get_params()
        run = ours_steps(ours, X, Y, 32)
        impls["makemore_cpp"] = lambda: timed(lambda: run(k)) / k
    if have_torch:
        from . import lecture_layers as L

        if nn is None:
            params = L.lecture_params(spec)
        tmodel = L.build(spec, params)
        count = L.num_params(tmodel)
        trun = L.lecture_steps(tmodel, X, Y, 32)
        tk = max(1, k // 5)
        impls["torch eager, the lecture's classes"] = lambda: timed(lambda: trun(tk)) / tk
        others = ["torch eager, the lecture's classes"]
    if with_jax and (nn is not None or have_torch):
        jrun = jax_layer_steps(spec, params, X, Y, 32)
        if jrun is not None:
            impls["jax jit over lax.scan"] = lambda: timed(lambda: jrun(k)) / k
            jax_names = ["jax jit over lax.scan"]
    res = interleave(impls, args.repeats)
    out = {
        "unit": "s/step",
        "threads": 1,
        "params": count,
        "data": source,
        "samples": res,
        "rows": [
            {"name": title, "ours": "makemore_cpp", "others": others, "jax": jax_names, "why": WHY_LAYERS}
        ],
    }
    if reason:
        out["ours_skipped"] = reason
    return out


def seqmlp_workload(args) -> dict:
    """The part-2 MLP as an nn.Sequential against mm.MLP, the same parameters, one thread."""
    nn, reason = nn_or_reason()
    if nn is None:
        return {"skipped": reason}
    pin_threads(1)
    vocab, X, Y, source = data(3, args.quick)
    V = len(vocab)
    mlp = mm.MLP(vocab, seed=1)
    seq = nn.Sequential(
        [nn.Embedding(V, 10), nn.Flatten(), nn.Linear(30, 200), nn.Tanh(), nn.Linear(200, V)],
        vocab=vocab,
        block_size=3,
        seed=1,
    )
    mp = mlp.get_params()
    seq.set_params(
        {
            "0.weight": mp["C"],
            "2.weight": mp["W1"],
            "2.bias": mp["b1"],
            "4.weight": mp["W2"],
            "4.bias": mp["b2"],
        }
    )
    k = args.steps if args.steps else (10 if args.quick else 2000)
    a, b = ours_steps(mlp, X, Y, 32), ours_steps(seq, X, Y, 32)
    impls = {
        "makemore_cpp, mm.MLP": lambda: timed(lambda: a(k)) / k,
        "makemore_cpp, nn.Sequential": lambda: timed(lambda: b(k)) / k,
    }
    res = interleave(impls, args.repeats)
    return {
        "unit": "s/step",
        "threads": 1,
        "data": source,
        "samples": res,
        "rows": [
            {
                "name": "part 2's MLP as an nn.Sequential, against mm.MLP (target: at most 1.15x)",
                "ours": "makemore_cpp, mm.MLP",
                "others": ["makemore_cpp, nn.Sequential"],
                "why": "the same layers on the general layer machinery",
            }
        ],
    }


def wavenet_run_workload(args) -> dict:
    """The lecture's 200,000-step WaveNet run, ours on 2 threads (1 with one CPU): `fit` with the
    `wavenet` preset when there is one, else the model and schedule built here."""
    nn, reason = nn_or_reason()
    if nn is None:
        return {"skipped": reason}
    from .datasets import bench_words

    threads = min(2, cpus(args))
    pin_threads(threads)
    steps = 2000 if args.quick else 200_000
    words, source = bench_words(False)
    t0 = time.perf_counter()
    if "wavenet" in mm.PRESETS:
        res = mm.fit(words, preset="wavenet", steps=steps, eval_every=0)
        losses, train_seconds, how = res.losses, res.history.seconds, 'fit(preset="wavenet")'
    else:
        sp, vocab, _ = splits(8, False)
        model = ours_model(nn, wavenet_spec(len(vocab)), vocab, 8)
        drop = steps * 3 // 4
        h = mm.train(model, *sp["train"], steps=steps, batch_size=32, lr=lambda s: 0.1 if s < drop else 0.01)
        losses = {name: model.loss(*sp[name]) for name in ("train", "dev")}
        train_seconds, how = h.seconds, "nn.Sequential + train (no wavenet preset in this build)"
    return {
        "unit": "s",
        "threads": threads,
        "steps": steps,
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "losses": losses,
        "how": how,
        "data": source,
    }


def wavenet_run_torch_workload(args) -> dict:
    """Opt-in (about 5 minutes): the lecture's WaveNet run in PyTorch eager with its own classes,
    at PyTorch's better thread count, chosen by a short interleaved probe of 1 and 2 threads."""
    import torch

    from . import lecture_layers as L

    steps = 2000 if args.quick else 200_000
    sp, vocab, source = splits(8, False)
    spec = wavenet_spec(len(vocab))
    params = L.lecture_params(spec)
    counts = (1, 2) if cpus(args) >= 2 else (1,)
    pin_threads(max(counts))
    runs = {n: L.lecture_steps(L.build(spec, params), *sp["train"], 32) for n in counts}
    impls = {n: at_torch_threads(n, lambda n=n: timed(lambda: runs[n](100)) / 100) for n in counts}
    probe = interleave(impls, 3)
    best = min(counts, key=lambda n: median(probe[n]))
    torch.set_num_threads(best)
    out = L.lecture_run(spec, params, sp, steps, drop_at=steps * 3 // 4)
    out.update(
        unit="s",
        threads=best,
        probe_s_per_step={str(n): v for n, v in probe.items()},
        data=source,
        label=f"torch eager, the lecture's classes, {best} thread{'s' if best > 1 else ''}",
    )
    return out


def diagnostics_workload(args) -> dict:
    """The cost of part 3's diagnostics while training: the same steps with and without
    ``diagnostics_every=1000`` (the update:data ratios at every step, the statistics every 1,000),
    for the lecture's MLP and part 5's WaveNet, one thread (target: under 5% more time)."""
    pin_threads(1)
    out: dict = {"unit": "s/step", "threads": 1, "samples": {}, "rows": []}
    for name, (model, T) in _diagnostics_models().items():
        vocab, X, Y, source = data(T, args.quick)
        k = (
            args.steps
            if args.steps
            else (200 if args.quick else (20_000 if name == "lecture MLP" else 3_000))
        )
        plain, diag = model(vocab), model(vocab)
        sp, sd = {}, {}

        def run(m, state, every, k=k, X=X, Y=Y):
            h = mm.train(
                m, X, Y, steps=k, batch_size=32, lr=0.1, state=state.get("s"), diagnostics_every=every
            )
            state["s"] = h.state

        impls = {
            f"{name}, plain": lambda run=run, plain=plain, sp=sp, k=k: (
                timed(lambda: run(plain, sp, None)) / k
            ),
            f"{name}, diagnostics_every=1000": lambda run=run, diag=diag, sd=sd, k=k: (
                timed(lambda: run(diag, sd, 1000)) / k
            ),
        }
        out["samples"].update(interleave(impls, args.repeats))
        out["data"] = source
        out["rows"].append(
            {
                "name": f"{name} training with diagnostics_every=1000 (target: under 5% more time)",
                "ours": f"{name}, plain",
                "others": [f"{name}, diagnostics_every=1000"],
                "why": "update statistics in the core's update pass, every step; a diagnose pass every 1,000",
            }
        )
    return out


def _diagnostics_models() -> dict:
    from ..fitting import build_model, resolve

    return {
        "lecture MLP": (lambda vocab: build_model(resolve("lecture"), vocab), 3),
        "WaveNet": (lambda vocab: build_model(resolve("wavenet"), vocab), 8),
    }
