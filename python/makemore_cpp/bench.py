"""Benchmarks against PyTorch eager and JAX, side by side in one process.

    python -m makemore_cpp.bench               # every workload; a table of medians and ratios, and JSON
    python -m makemore_cpp.bench --quick       # a smoke test: tiny sizes, checks that everything runs
    python -m makemore_cpp.bench -w step -w eval --repeats 9

Each workload runs its implementations interleaved (A B C, C B A, ...) for several repeats and reports
medians, with the thread count pinned on every side: the process's CPU affinity, torch's and this
package's thread counts, and XLA's flags (set before jax is imported). Timings are for reading, not
for pass/fail: the machine may be shared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Callable

import numpy as np

import makemore_cpp as mm

if "jax" not in sys.modules:  # one XLA thread, unless the caller chose otherwise
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

LECTURE = dict(block_size=3, n_embd=10, n_hidden=200, batch_size=32)
LARGE = dict(block_size=8, n_embd=24, n_hidden=512, batch_size=512)


# ------------------------------------------------------------------------------------------------ helpers


def pin_threads(n: int) -> None:
    """Run on n CPUs: affinity, this package's pool and torch's."""
    cpus = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
    try:
        os.sched_setaffinity(0, set(cpus[:n]))
    except OSError:
        pass
    mm.set_num_threads(n)
    torch = _try_import("torch")
    if torch is not None:
        torch.set_num_threads(n)


def _try_import(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


SETTLE = 0.02  # seconds of quiet before each timed call


def interleave(
    impls: dict[str, Callable[[], float]], repeats: int, probes: list[float] | None = None
) -> dict[str, list[float]]:
    """Call each implementation in turn, `repeats` times round; each returns its own measure.
    Each call starts after SETTLE seconds of quiet: idle threads of the previous call's runtime
    (PyTorch's OpenMP workers, numpy's OpenBLAS) spin for a while after their work, on the cores
    the next call would use. Every other round goes in the reverse order (A B C, C B A, ...): the
    first call of a round finds the caches filled by the last one's data, so a fixed order would
    favour whichever comes second. With `probes`, each round starts with a measure of the time
    data takes between two cores (core_round_trip_ns), appended to it."""
    out: dict[str, list[float]] = {k: [] for k in impls}
    for fn in reversed(impls.values()):  # warm-up, last first: round 0's first call follows its own
        fn()
    for i in range(repeats):
        if probes is not None:
            probes.append(core_round_trip_ns())
        for name, fn in impls.items() if i % 2 == 0 else reversed(impls.items()):
            time.sleep(SETTLE)
            out[name].append(fn())
    return out


# On the shared host these benchmarks were written on, the time for a cache line to go from one
# core to the other and back is mostly either about 60-110 ns or about 320-370 ns (at times several
# µs), and it changes from one minute to the next; in the slow state a 2-thread step is no faster
# than a 1-thread one (benchmarks/NOTES.md). The 2-thread workloads record it before each round,
# and the report splits their 2-thread/1-thread ratios by it.
FAR_NS = 150.0


def core_round_trip_ns(rounds: int = 5000) -> float:
    """Mean ns for a value written on one CPU to be answered from another CPU of this process's
    set, over `rounds` round trips; nan with fewer than 2 CPUs."""
    from ._validate import integer

    ns = mm._core.core_round_trip_ns(integer(rounds, "rounds", 1, 10**8))
    return float("nan") if ns < 0 else ns


def at_one_thread(fn: Callable[[], float]) -> Callable[[], float]:
    """fn run with makemore_cpp on 1 thread: in a 2-thread workload, the 1-thread time is taken
    side by side with the 2-thread one, so that their ratio is not a ratio of two moments of a
    shared machine."""

    def run() -> float:
        before = mm.get_num_threads()
        mm.set_num_threads(1)
        try:
            return fn()
        finally:
            mm.set_num_threads(before)

    return run


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_words(quick: bool) -> tuple[list[str], str]:
    """The lecture's names (../shared/data/names.txt beside the project, when present), else the
    bundled names; a few thousand of them when quick."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(here, "..", "..", "..", "shared", "data", "names.txt"),
        os.path.join(os.getcwd(), "..", "shared", "data", "names.txt"),
    ]
    path = next((p for p in candidates if os.path.exists(p)), None)
    words = mm.load_words(path) if path else mm.load_names()
    return (words[:3000] if quick else words), ("../shared/data/names.txt" if path else "bundled names")


def data(block_size: int, quick: bool):
    """The training split of bench_words, as (vocab, X, Y, source)."""
    words, source = bench_words(quick)
    vocab = mm.Vocab.from_words(words)
    tr, _, _ = mm.split_words(words)
    X, Y = mm.build_dataset(tr, vocab, block_size)
    return vocab, X, Y, source


# ---------------------------------------------------------------------------------------- torch and jax


def torch_params(model: mm.MLP, requires_grad: bool):
    torch = _try_import("torch")
    return [torch.tensor(a, requires_grad=requires_grad) for a in model.get_params().values()]


def torch_steps(model: mm.MLP, X: np.ndarray, Y: np.ndarray, batch_size: int, lr: float = 0.1):
    """The lecture's training loop, verbatim: returns run(k) doing k steps."""
    torch = _try_import("torch")
    import torch.nn.functional as F

    params = torch_params(model, True)
    C, W1, b1, W2, b2 = params
    Xt, Yt = torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)
    g = torch.Generator().manual_seed(2147483647)

    def run(k: int) -> None:
        for _ in range(k):
            ix = torch.randint(0, Xt.shape[0], (batch_size,), generator=g)
            emb = C[Xt[ix]]
            h = torch.tanh(emb.view(-1, W1.shape[0]) @ W1 + b1)
            logits = h @ W2 + b2
            loss = F.cross_entropy(logits, Yt[ix])
            for p in params:
                p.grad = None
            loss.backward()
            for p in params:
                p.data += -lr * p.grad

    return run


def torch_eval(model: mm.MLP, X: np.ndarray, Y: np.ndarray):
    torch = _try_import("torch")
    import torch.nn.functional as F

    C, W1, b1, W2, b2 = torch_params(model, False)
    Xt, Yt = torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)

    def run() -> float:
        with torch.no_grad():
            emb = C[Xt]
            h = torch.tanh(emb.view(emb.shape[0], -1) @ W1 + b1)
            return float(F.cross_entropy(h @ W2 + b2, Yt))

    return run


def jax_steps(model: mm.MLP, X: np.ndarray, Y: np.ndarray, batch_size: int, lr: float = 0.1):
    """JAX: (jit per step, jit over a lax.scan of k steps) as run(k) functions; None without jax."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    params = tuple(jnp.asarray(a) for a in model.get_params().values())
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    N = X.shape[0]

    def loss_fn(p, xb, yb):
        C, W1, b1, W2, b2 = p
        h = jnp.tanh(C[xb].reshape(xb.shape[0], -1) @ W1 + b1)
        logp = jax.nn.log_softmax(h @ W2 + b2)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(p, key):
        key, sub = jax.random.split(key)
        ix = jax.random.randint(sub, (batch_size,), 0, N)
        loss, grads = jax.value_and_grad(loss_fn)(p, Xj[ix], Yj[ix])
        return tuple(a - lr * b for a, b in zip(p, grads)), key, loss

    step_jit = jax.jit(step)
    state = {"p": params, "key": jax.random.PRNGKey(0)}

    def per_step(k: int) -> None:
        p, key = state["p"], state["key"]
        for _ in range(k):
            p, key, loss = step_jit(p, key)
        loss.block_until_ready()
        state["p"], state["key"] = p, key

    scans: dict[int, Callable] = {}

    def scanned(k: int) -> None:
        if k not in scans:

            def body(carry, _):
                p, key, loss = step(*carry)
                return (p, key), loss

            scans[k] = jax.jit(lambda p, key: jax.lax.scan(body, (p, key), None, length=k))
        (p, key), losses = scans[k](state["p"], state["key"])
        losses.block_until_ready()
        state["p"], state["key"] = p, key

    return per_step, scanned


# ------------------------------------------------------------------------------------------------ workloads


def ours_steps(model: mm.MLP, X, Y, batch_size: int, lr: float = 0.1):
    state = {}

    def run(k: int) -> None:
        h = mm.train(model, X, Y, steps=k, batch_size=batch_size, lr=lr, state=state.get("s"))
        state["s"] = h.state

    return run


def step_workload(cfg: dict, threads: int, args, with_jax: bool) -> dict:
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
    if _try_import("torch") is not None:
        tk = max(1, k // 10)
        t = torch_steps(model, X, Y, B)
        impls["torch eager"] = lambda: timed(lambda: t(tk)) / tk
    if with_jax:
        j = jax_steps(model, X, Y, B)
        if j is not None:
            per, scan = j
            jk = max(1, k // 4)
            impls["jax jit"] = lambda: timed(lambda: per(jk)) / jk
            impls["jax lax.scan"] = lambda: timed(lambda: scan(k)) / k
    probes: list[float] = []
    res = interleave(impls, args.repeats, probes if threads > 1 else None)
    out = {"unit": "s/step", "threads": threads, "data": source, "samples": res}
    if threads > 1:
        out["round_trip_ns"] = probes
    return out


def eval_workload(threads: int, args) -> dict:
    pin_threads(threads)
    vocab, X, Y, source = data(3, args.quick)
    model = mm.MLP(vocab, seed=1)
    # loss() computes each distinct context once (5,438 of the 182,625 training rows at block size
    # 3); "every row" is the core computing all rows, as PyTorch does, to time the kernels.
    # A call of loss() takes a few milliseconds: each sample times `reps` calls in a row (as a step
    # workload times many steps), so that waking the threads after the quiet pause is not the measure.
    reps = 1 if args.quick else 10

    def ours() -> None:
        for _ in range(reps):
            model.loss(X, Y)

    impls = {"makemore_cpp": lambda: timed(ours) / reps}
    if threads > 1:
        impls["makemore_cpp, 1 thread"] = at_one_thread(lambda: timed(ours) / reps)
    impls["makemore_cpp, every row"] = lambda: timed(lambda: model._m.evaluate(X, Y, False, False))
    if threads > 1:
        impls["every row, 1 thread"] = at_one_thread(
            lambda: timed(lambda: model._m.evaluate(X, Y, False, False))
        )
    if _try_import("torch") is not None:
        t = torch_eval(model, X, Y)
        impls["torch eager"] = lambda: timed(t)
    probes: list[float] = []
    res = interleave(impls, args.repeats, probes if threads > 1 else None)
    extra = {"round_trip_ns": probes} if threads > 1 else {}
    return {
        **extra,
        "unit": "s/pass",
        "threads": threads,
        "rows": int(len(X)),
        "distinct_contexts": int(len(np.unique(X, axis=0))),
        "data": source,
        "samples": res,
    }


def sample_workload(threads: int, args) -> dict:
    pin_threads(threads)
    vocab, X, Y, source = data(3, args.quick)
    model = mm.MLP(vocab, seed=1, init="kaiming")
    mm.train(model, X, Y, steps=2000 if args.quick else 20000, lr=0.1)
    n_ours = 2000 if args.quick else 200_000
    n_torch = 5 if args.quick else 100
    impls = {"makemore_cpp": lambda: timed(lambda: model.sample(n_ours, seed=1)) / n_ours}
    if _try_import("torch") is not None:
        from . import reference

        params = model.get_params()
        impls["torch lecture loop"] = lambda: (
            timed(lambda: reference.lecture_sample(params, n_torch)) / n_torch
        )
    res = interleave(impls, args.repeats)
    return {"unit": "s/name", "threads": threads, "data": source, "samples": res}


def run_workload(args) -> dict:
    """The lecture's 200,000-step run end to end (fit: split, build, train, evaluate), one thread."""
    pin_threads(1)
    words, path = bench_words(False)
    steps = 2000 if args.quick else 200_000
    t0 = time.perf_counter()
    res = mm.fit(words, preset="lecture", steps=steps, eval_every=0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "unit": "s",
        "threads": 1,
        "steps": steps,
        "seconds": seconds,
        "train_seconds": res.history.seconds,
        "losses": res.losses,
        "peak_rss_mib": peak,
        "data": path,
    }


# ------------------------------------------------------------------------------------------------ report


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def report(results: dict) -> str:
    lines = ["", f"{'workload':<34} {'implementation':<24} {'median':>11} {'vs makemore_cpp':>16}", "-" * 88]
    for name, r in results.items():
        if name == "run":
            lines.append(
                f"{'lecture run, ' + format(r['steps'], ',') + ' steps':<34} {'makemore_cpp':<24} "
                f"{fmt_time(r['seconds']):>11} {'':>16}  dev {r['losses'].get('dev', float('nan')):.4f}, "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB"
            )
            continue
        meds = {k: median(v) for k, v in r["samples"].items()}
        ours = meds["makemore_cpp"]
        for impl, m in meds.items():
            ratio = "" if impl == "makemore_cpp" else f"{m / ours:.1f}x slower"
            shown = fmt_time(m) if r["unit"] != "s/name" else f"{1 / m:,.0f} /s"
            lines.append(f"{name:<34} {impl:<24} {shown:>11} {ratio:>16}")
        if "makemore_cpp, every row" in meds and "torch eager" in meds:
            lines.append(
                f"{name:<34} {'(torch eager / every row)':<24} {'':>11} "
                f"{meds['torch eager'] / meds['makemore_cpp, every row']:>15.1f}x"
            )
    # 2 threads against 1: measured side by side in the 2-thread workload (its "1 thread" line).
    for b, label, impl, one in [
        ("eval, 2 threads", "eval", "makemore_cpp", "makemore_cpp, 1 thread"),
        ("eval, 2 threads", "eval, every row", "makemore_cpp, every row", "every row, 1 thread"),
        ("large step, 2 threads", "large step", "makemore_cpp", "makemore_cpp, 1 thread"),
        ("lecture step, 2 threads", "lecture step", "makemore_cpp", "makemore_cpp, 1 thread"),
    ]:
        if b in results and impl in results[b]["samples"] and one in results[b]["samples"]:
            s = median(results[b]["samples"][one]) / median(results[b]["samples"][impl])
            lines.append(
                f"{label}: makemore_cpp on 2 threads is {s:.2f}x its 1-thread speed (side by side)"
                + split_by_cores(results[b], impl, one)
            )
    return "\n".join(lines)


def split_by_cores(r: dict, impl: str, one: str) -> str:
    """The rounds' 2-thread/1-thread ratios, by the cores' round trip measured before each round."""
    probes = r.get("round_trip_ns")
    if not probes:
        return ""
    parts = []
    for label, far in (("cores close", False), ("cores far", True)):
        ratios = [
            a / b
            for a, b, ns in zip(r["samples"][one], r["samples"][impl], probes)
            if ns == ns and (ns >= FAR_NS) == far
        ]
        if ratios:
            parts.append(f"{label}: {median(ratios):.2f}x in {len(ratios)}")
    ns = [x for x in probes if x == x]
    trip = f"round trip {min(ns):.0f}-{max(ns):.0f} ns" if ns else "round trip not measured"
    return f"; {trip}; " + ", ".join(parts) if parts else f"; {trip}"


WORKLOADS = ["step", "step2", "eval", "eval2", "sample", "large", "large2", "run"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="makemore-cpp bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: check that it runs")
    ap.add_argument(
        "-w",
        "--workload",
        action="append",
        choices=WORKLOADS,
        help="run only these (repeatable); default all: " + ", ".join(WORKLOADS),
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="interleaved rounds per workload (default 7, quick 2)"
    )
    ap.add_argument("--steps", type=int, default=None, help="steps per timed call of a training workload")
    ap.add_argument("--no-jax", action="store_true", help="leave JAX out even if it is installed")
    ap.add_argument("--json", default="bench.json", help="where to write the results (default bench.json)")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    chosen = args.workload or WORKLOADS
    have = os.sched_getaffinity(0)
    results: dict[str, dict] = {}
    for w in chosen:
        two = w.endswith("2")
        if two and len(have) < 2:
            print(f"skipping {w}: only one CPU available", file=sys.stderr)
            continue
        threads = 2 if two else 1
        label = {
            "step": "lecture step",
            "eval": "eval",
            "large": "large step",
            "sample": "sampling",
            "run": "run",
        }[w.rstrip("2")]
        label = label if w == "run" else f"{label}, {threads} thread{'s' if threads > 1 else ''}"
        print(f"running {label} ...", file=sys.stderr, flush=True)
        if w.startswith("step"):
            results[label] = step_workload(LECTURE, threads, args, with_jax=not args.no_jax and threads == 1)
        elif w.startswith("large"):
            results[label] = step_workload(LARGE, threads, args, with_jax=False)
        elif w.startswith("eval"):
            results[label] = eval_workload(threads, args)
        elif w == "sample":
            results[label] = sample_workload(threads, args)
        elif w == "run":
            results[label] = run_workload(args)
    try:
        os.sched_setaffinity(0, have)
    except OSError:
        pass
    torch = _try_import("torch")
    jax = None if args.no_jax else _try_import("jax")
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpus": len(have),
        "isa": mm.get_isa(),
        "python": platform.python_version(),
        "torch": getattr(torch, "__version__", None),
        "jax": getattr(jax, "__version__", None),
        "command": " ".join(["python -m makemore_cpp.bench"] + (argv if argv is not None else sys.argv[1:])),
        "quick": args.quick,
    }
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    print(report(results))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
