"""Timing rules shared by every workload: thread pinning, interleaved rounds, per-call times."""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import makemore_cpp as mm

SETTLE = 0.02  # seconds of quiet before each timed call

# On the shared host these benchmarks were written on, the time for a cache line to go from one
# core to the other and back is mostly either about 60-110 ns or about 320-370 ns (at times several
# µs), and it changes from one minute to the next; in the slow state a 2-thread step is no faster
# than a 1-thread one (benchmarks/NOTES.md). The 2-thread workloads record it before each round,
# and the report splits their 2-thread/1-thread ratios by it.
FAR_NS = 150.0


def try_import(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


def pin_threads(n: int) -> None:
    """Run on n CPUs: affinity, this package's pool and torch's."""
    cpus = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
    try:
        os.sched_setaffinity(0, set(cpus[:n]))
    except OSError:
        pass
    mm.set_num_threads(n)
    torch = try_import("torch")
    if torch is not None:
        torch.set_num_threads(n)


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


def core_round_trip_ns(rounds: int = 5000) -> float:
    """Mean ns for a value written on one CPU to be answered from another CPU of this process's
    set, over `rounds` round trips; nan with fewer than 2 CPUs."""
    from .._validate import integer

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


def at_torch_threads(n: int, fn: Callable[[], float]) -> Callable[[], float]:
    """fn run with torch on n threads (then back to the count before)."""
    import torch

    def run() -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)

    return run


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def per_call(fn: Callable[[], object], reps: int) -> Callable[[], float]:
    """A measure: the mean seconds of `reps` calls of fn in a row. A call of a few milliseconds
    after the quiet pause would time the CPUs waking up, not the call."""

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    return run


def median(xs: list[float]) -> float:
    return statistics.median(xs)
