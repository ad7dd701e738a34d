"""``makemore-cpp sweep``: a grid of runs across processes, a table and a CSV file sorted by dev
loss; the runs that fail are listed with their reasons, and the finished ones are kept."""

from __future__ import annotations

import collections
import csv
import itertools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .. import set_num_threads
from .._files import atomic_write
from .._signals import interrupts_deferred
from ..data import Vocab, split_words
from ..fitting import check_config, fit, resolve
from .common import (
    PROG,
    CLIError,
    as_options,
    describe_input,
    hidden_text,
    load_input,
    model_overrides,
    option,
    output_file,
    parse_hidden,
    printer,
    threads_to_use,
)

SWEEP_KEYS = ("block_size", "n_embd", "n_hidden", "batch_size", "lr")
COLUMNS = list(SWEEP_KEYS) + ["steps", "params", "train_loss", "dev_loss", "seconds", "error"]
_SWEEP_WORDS: list[str] | None = None


def _sweep_init(input_path: str | None, threads: int) -> None:
    global _SWEEP_WORDS
    set_num_threads(threads)
    _SWEEP_WORDS, _ = load_input(input_path)


def _sweep_one(job: tuple[int, str, dict]) -> dict:
    """One run of the grid; a run that fails gives its reason, in one line, instead of its losses."""
    i, preset, settings = job
    try:
        res = fit(_SWEEP_WORDS, preset, **settings)
    except Exception as e:  # noqa: BLE001 - a failed run is reported, and the others go on
        return {"index": i, "error": _one_line(e)}
    return {
        "index": i,
        "params": res.model.num_params,
        "train_loss": res.losses.get("train", float("nan")),
        "dev_loss": res.losses.get("dev", float("nan")),
        "seconds": res.seconds,
        "steps_per_second": res.history.steps_per_second,
    }


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text[:500]}"


def _sweep_worker(conn: Any, input_path: str | None, threads: int) -> None:
    """A worker process: runs the jobs the parent sends on its own pipe and sends back each result.
    Ctrl-C is the parent's to handle (it kills the workers); a worker whose parent is gone ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # (blocked while it was started)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    try:
        _sweep_init(input_path, threads)
        failed = None
    except Exception as e:  # noqa: BLE001 - every job then reports it
        failed = _one_line(e)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send({"index": job[0], "error": failed} if failed else _sweep_one(job))


def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class _Worker:
    process: Any
    conn: Any
    job: tuple | None = None


class _Pool:
    """Worker processes, each with a pipe of its own: no queue or lock is shared between them, so
    a worker killed at any moment (by Ctrl-C, or by the kernel for memory) cannot leave the others,
    or the parent, waiting for good. A worker that dies fails its run and is replaced."""

    def __init__(self, jobs: int, input_path: str | None, threads: int):
        import multiprocessing as mp  # here: its import costs every other command's start

        self.ctx = mp.get_context("spawn")  # the core's thread pool does not survive a fork
        # multiprocessing starts its resource tracker with the first process, and then unblocks
        # SIGINT in the calling thread whatever was blocked before (_start): start it first.
        try:
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()
        except (ImportError, AttributeError):  # pragma: no cover - no tracker on this platform
            pass
        self.jobs, self.input_path, self.threads = jobs, input_path, threads
        self.workers: list[_Worker] = []

    def _start(self) -> _Worker:
        parent_end, child_end = self.ctx.Pipe()
        p = self.ctx.Process(
            target=_sweep_worker, args=(child_end, self.input_path, self.threads), daemon=True
        )
        # The new process starts with SIGINT blocked, until it ignores it: a Ctrl-C meanwhile
        # (to the whole process group) would otherwise stop it with a traceback as it starts.
        with interrupts_deferred():
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                p.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            child_end.close()
            w = _Worker(p, parent_end)
            self.workers.append(w)
        return w

    def run(self, work: Iterable[tuple]) -> Iterable[dict]:
        """The results of the jobs, as they finish."""
        from multiprocessing.connection import wait

        pending = collections.deque(work)
        for _ in range(min(self.jobs, len(pending))):
            self._give(self._start(), pending)
        while any(w.job is not None for w in self.workers):
            busy = [w for w in self.workers if w.job is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for w in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                result = None
                try:
                    if w.conn.poll():
                        result = w.conn.recv()
                except (EOFError, OSError):
                    pass
                if result is None:  # the process died in the middle of the run
                    w.process.join(1)
                    yield {"index": w.job[0], "error": _death(w.process.exitcode)}
                    self._retire(w)
                    if pending:
                        self._give(self._start(), pending)
                    continue
                yield result
                self._give(w, pending)

    def _give(self, w: _Worker, pending: collections.deque) -> None:
        with interrupts_deferred():  # a job is either sent and recorded as the worker's, or neither
            w.job = pending.popleft() if pending else None
            try:
                w.conn.send(w.job)
            except (BrokenPipeError, OSError):
                pass  # the worker is gone: its sentinel says so next
        if w.job is None:
            self._retire(w)

    def _retire(self, w: _Worker) -> None:
        w.job = None
        w.conn.close()
        w.process.join(5)
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        self.workers.remove(w)

    def kill(self) -> None:
        """Stop every worker at once (SIGKILL: they hold no file and no lock of the parent's)."""
        for w in self.workers:
            if w.process.is_alive():
                w.process.kill()
        for w in self.workers:
            w.process.join(5)
            w.conn.close()
        self.workers = []


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = " (perhaps out of memory)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{why}"
    return f"the worker process ended with exit status {code} before finishing the run"


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
    table sorted by dev loss, writes it as CSV to ``output`` and returns its rows: the finished
    runs sorted by dev loss, then the failed ones, whose ``error`` says why in one line (a finished
    run's is None).

    Every combination's settings are checked before any run starts. A run that fails (it diverges,
    runs out of memory, its process is killed) does not stop the others. Ctrl-C stops the workers
    at once and writes the table of the runs finished so far.

    The worker processes are started with multiprocessing's "spawn" method (the core's thread pool
    does not survive a fork), so a script calling this with ``jobs > 1`` needs the usual
    ``if __name__ == "__main__":`` guard."""
    say = printer(quiet)
    # Every option and every combination is checked before any run starts.
    if grid is not None and not isinstance(grid, dict):
        raise CLIError(f"grid must be a dict of setting -> list of values, got {type(grid).__name__}")
    grid = {k: val for k, val in (grid or {}).items() if val is not None}
    unknown = set(grid) - set(SWEEP_KEYS)
    if unknown:
        raise CLIError(f"cannot sweep over {sorted(unknown)}; sweepable: {', '.join(SWEEP_KEYS)}")
    for k, val in grid.items():
        if isinstance(val, (str, bytes)) or not isinstance(val, Iterable):
            raise CLIError(f"--{k.replace('_', '-')}: expected a list of values, got {val!r}")
        grid[k] = list(val)
        if not grid[k]:
            raise CLIError(f"--{k.replace('_', '-')}: expected at least one value, got none")
    if "n_hidden" in grid:
        grid["n_hidden"] = [parse_hidden(h) for h in grid["n_hidden"]]
    if "lr" in grid:
        grid["lr"] = [str(x) for x in grid["lr"]]
    jobs = option(jobs, "--jobs", 1)
    threads_per_job = threads_to_use(threads_per_job, say) or 1
    output = output_file(output, "CSV table")
    fixed = model_overrides(overrides)
    try:
        base = resolve(preset, **fixed)  # checks the names of the settings
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    words, input_path = load_input(input)  # checks the file before starting workers
    vocab = Vocab.from_words(words)
    for c in combos:  # fail here, not in a worker
        _check(dict(base, **c), len(vocab), c)
    if not split_words(words, base["split"], seed=base["split_seed"])[0]:
        raise CLIError(f"the training split of {describe_input(input_path, words)} is empty: give more words")
    settings = [dict(fixed, **c, eval_every=0) for c in combos]
    jobs = min(jobs or _default_jobs(), len(combos)) or 1
    say(
        f"{PROG} sweep: {len(combos)} run(s) of the {preset!r} preset, {base['steps']:,} steps each, on "
        f"{describe_input(input_path, words)}; {jobs} process(es) of {threads_per_job} thread(s)"
    )
    t0 = time.perf_counter()
    results: list[dict] = []
    work = [(i, preset, s) for i, s in enumerate(settings)]

    def row_of(r: dict) -> dict:
        c = combos[r["index"]]
        row = {
            k: (hidden_text(c[k]) if k == "n_hidden" else c[k])
            if k in c
            else (hidden_text(base[k]) if k == "n_hidden" else base[k])
            for k in SWEEP_KEYS
        }
        row.update(steps=base["steps"], params=None, train_loss=None, dev_loss=None, seconds=None, error=None)
        if r.get("error"):
            row["error"] = r["error"]
        else:
            row.update(
                params=r["params"], train_loss=r["train_loss"], dev_loss=r["dev_loss"], seconds=r["seconds"]
            )
        return row

    pool = None
    try:
        if jobs == 1:
            _sweep_init(input_path, threads_per_job)
            it: Iterable[dict] = map(_sweep_one, work)
        else:
            pool = _Pool(jobs, input_path, threads_per_job)
            it = pool.run(work)
        for r in it:
            with interrupts_deferred():
                row = row_of(r)
                results.append(row)
            what = " ".join(f"{k}={row[k]}" for k in keys)
            say(
                f"  [{len(results)}/{len(combos)}] {what}  "
                + (
                    f"FAILED: {row['error']}"
                    if row["error"]
                    else f"dev {row['dev_loss']:.4f}  ({row['seconds']:.1f} s)"
                ),
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        with interrupts_deferred(merge=True):  # stop the workers, keep what finished
            if pool is not None:
                pool.kill()
            if results:
                _write(output, results)
                say(
                    f"\ninterrupted: wrote the {len(results)} run(s) finished so far to {output}",
                    file=sys.stderr,
                )
        raise
    except BaseException:
        with interrupts_deferred(merge=True):
            if pool is not None:
                pool.kill()
        raise
    results = _sorted(results)
    _write(output, results)
    header = ["block", "embd", "hidden", "batch", "lr", "params", "train", "dev", "seconds"]
    done = [r for r in results if not r["error"]]
    failed = [r for r in results if r["error"]]
    if done:
        say(
            f"\n{'':>3} "
            + " ".join(f"{h:>8}" for h in header[:4])
            + f" {'lr':>20} "
            + " ".join(f"{h:>8}" for h in header[5:])
        )
    for rank, r in enumerate(done, 1):
        say(
            f"{rank:>3} {r['block_size']:>8} {r['n_embd']:>8} {r['n_hidden']:>8} "
            f"{r['batch_size']:>8} {str(r['lr']):>20} "
            f"{r['params']:>8,} {r['train_loss']:>8.4f} {r['dev_loss']:>8.4f} {r['seconds']:>8.1f}"
        )
    if failed:
        say(f"\n{len(failed)} run(s) failed:")
        for r in failed:
            say("  " + " ".join(f"{k}={r[k]}" for k in keys) + f": {r['error']}")
    say(
        f"{'sorted by dev loss; ' if done else ''}{len(done)} of {len(results)} run(s) finished; "
        f"{time.perf_counter() - t0:.1f} s in all; wrote {output}"
    )
    return results


def _check(cfg: dict, vocab_size: int, combo: dict) -> None:
    """A combination's settings, checked as ``train`` checks them; a refusal names the combination."""
    try:
        check_config(cfg, vocab_size)
    except (MemoryError, TypeError, ValueError) as e:
        what = " ".join(f"{k}={hidden_text(val) if k == 'n_hidden' else val}" for k, val in combo.items())
        raise CLIError(f"{what + ': ' if what else ''}{as_options(str(e))}") from None


def _sorted(rows: list[dict]) -> list[dict]:
    """Finished runs by dev loss (NaN last), then failed runs in the grid's order."""
    done = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    done.sort(key=lambda r: (math.isnan(r["dev_loss"]), r["dev_loss"]))
    return done + failed


def _write(output: str, rows: list[dict]) -> None:
    rows = _sorted(rows)
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)

    def cell(r: dict, k: str) -> Any:
        val = r[k]
        if val is None:
            return ""
        if k in ("train_loss", "dev_loss"):
            return f"{val:.6f}"
        if k == "seconds":
            return f"{val:.3f}"
        return val

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: cell(r, k) for k in COLUMNS})

    atomic_write(output, write, what="CSV table")
