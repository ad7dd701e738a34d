"""``makemore-cpp sweep``: a grid of runs across processes, a table and a CSV file sorted by dev
loss."""

from __future__ import annotations

import csv
import itertools
import math
import os
import signal
import sys
import time
from typing import Any, Iterable, Sequence

from .. import set_num_threads
from .._files import atomic_write
from ..fitting import fit, resolve
from ..schedules import parse_schedule
from .common import (
    PROG,
    CLIError,
    describe_input,
    hidden_text,
    load_input,
    model_overrides,
    parse_hidden,
    printer,
)

SWEEP_KEYS = ("block_size", "n_embd", "n_hidden", "batch_size", "lr")
_SWEEP_WORDS: list[str] | None = None


def _sweep_init(input_path: str | None, threads: int) -> None:
    global _SWEEP_WORDS
    set_num_threads(threads)
    _SWEEP_WORDS, _ = load_input(input_path)


def _sweep_worker_init(input_path: str | None, threads: int) -> None:
    # Ctrl-C is the parent's to handle: it terminates the pool. A worker that raised
    # KeyboardInterrupt itself would only be replaced by a new one. (Only in pool workers: an
    # ignored SIGINT would be inherited by every process the caller starts.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _sweep_init(input_path, threads)


def _sweep_one(job: tuple[int, str, dict]) -> dict:
    i, preset, settings = job
    res = fit(_SWEEP_WORDS, preset, **settings)
    return {
        "index": i,
        "params": res.model.num_params,
        "train_loss": res.losses.get("train", float("nan")),
        "dev_loss": res.losses.get("dev", float("nan")),
        "seconds": res.seconds,
        "steps_per_second": res.history.steps_per_second,
    }


def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_sweep(
    grid: dict[str, Sequence[Any]] | None = None,
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    output: str | os.PathLike = "sweep.csv",
    jobs: int | None = None,
    threads_per_job: int = 1,
    quiet: bool = False,
    **overrides: Any,
) -> list[dict]:
    """``makemore-cpp sweep``: train one model for every combination of ``grid`` (lists of values
    for ``block_size``, ``n_embd``, ``n_hidden``, ``batch_size``, ``lr``; the preset's value where a
    key is absent), ``jobs`` at a time in separate processes (default: one per CPU, each on
    ``threads_per_job`` threads). ``overrides`` (e.g. ``steps``) apply to every run. Prints the
    table sorted by dev loss, writes it as CSV to ``output`` and returns its rows (sorted).

    The worker processes are started with multiprocessing's "spawn" method (the core's thread pool
    does not survive a fork), so a script calling this with ``jobs > 1`` needs the usual
    ``if __name__ == "__main__":`` guard."""
    import multiprocessing as mp  # here: its import costs every other command's start

    say = printer(quiet)
    grid = {k: list(val) for k, val in (grid or {}).items() if val}
    unknown = set(grid) - set(SWEEP_KEYS)
    if unknown:
        raise CLIError(f"cannot sweep over {sorted(unknown)}; sweepable: {', '.join(SWEEP_KEYS)}")
    if "n_hidden" in grid:
        grid["n_hidden"] = [parse_hidden(h) for h in grid["n_hidden"]]
    if "lr" in grid:
        grid["lr"] = [str(x) for x in grid["lr"]]
    fixed = model_overrides(overrides)
    base = resolve(preset, **fixed)  # checks the names of the settings
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    for c in combos:  # fail here, not in a worker
        cfg = dict(base, **c)
        parse_schedule(cfg["lr"], cfg["steps"])
        for k in ("block_size", "n_embd", "batch_size"):
            if not isinstance(cfg[k], int) or cfg[k] < 1:
                raise CLIError(f"{k} must be a positive integer, got {cfg[k]!r}")
    settings = [dict(fixed, **c, eval_every=0) for c in combos]
    words, input_path = load_input(input)  # checks the file before starting workers
    jobs = min(jobs or _default_jobs(), len(combos)) or 1
    say(
        f"{PROG} sweep: {len(combos)} run(s) of the {preset!r} preset, {base['steps']:,} steps each, on "
        f"{describe_input(input_path, words)}; {jobs} process(es) of {threads_per_job} thread(s)"
    )
    t0 = time.perf_counter()
    results: list[dict] = []
    work = [(i, preset, s) for i, s in enumerate(settings)]
    if jobs == 1:
        _sweep_init(input_path, threads_per_job)
        it: Iterable[dict] = map(_sweep_one, work)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(
            jobs, initializer=_sweep_worker_init, initargs=(input_path, threads_per_job)
        )
        it = pool.imap_unordered(_sweep_one, work)
    try:
        for r in it:
            c = combos[r["index"]]
            row = {
                k: (hidden_text(c[k]) if k == "n_hidden" else c[k])
                if k in c
                else (hidden_text(base[k]) if k == "n_hidden" else base[k])
                for k in SWEEP_KEYS
            }
            row.update(
                steps=base["steps"],
                params=r["params"],
                train_loss=r["train_loss"],
                dev_loss=r["dev_loss"],
                seconds=r["seconds"],
            )
            results.append(row)
            say(
                f"  [{len(results)}/{len(combos)}] "
                + " ".join(f"{k}={row[k]}" for k in keys)
                + f"  dev {row['dev_loss']:.4f}  ({row['seconds']:.1f} s)",
                file=sys.stderr,
            )
    except BaseException:  # Ctrl-C or a failed run: stop the workers now, do not wait for the queue
        if pool is not None:
            pool.terminate()
            pool.join()
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    results.sort(key=lambda r: (math.isnan(r["dev_loss"]), r["dev_loss"]))
    cols = list(SWEEP_KEYS) + ["steps", "params", "train_loss", "dev_loss", "seconds"]
    output = os.fspath(output)
    if os.path.dirname(os.path.abspath(output)):
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in results:
            w.writerow(
                {
                    k: (
                        f"{r[k]:.6f}"
                        if k in ("train_loss", "dev_loss")
                        else f"{r[k]:.3f}"
                        if k == "seconds"
                        else r[k]
                    )
                    for k in cols
                }
            )

    atomic_write(output, write)
    header = ["block", "embd", "hidden", "batch", "lr", "params", "train", "dev", "seconds"]
    say(
        f"\n{'':>3} "
        + " ".join(f"{h:>8}" for h in header[:4])
        + f" {'lr':>20} "
        + " ".join(f"{h:>8}" for h in header[5:])
    )
    for rank, r in enumerate(results, 1):
        say(
            f"{rank:>3} {r['block_size']:>8} {r['n_embd']:>8} {r['n_hidden']:>8} "
            f"{r['batch_size']:>8} {str(r['lr']):>20} "
            f"{r['params']:>8,} {r['train_loss']:>8.4f} {r['dev_loss']:>8.4f} {r['seconds']:>8.1f}"
        )
    say(f"sorted by dev loss; {time.perf_counter() - t0:.1f} s in all; wrote {output}")
    return results
