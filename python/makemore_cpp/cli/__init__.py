"""The command line, ``makemore-cpp <command>`` (or ``python -m makemore_cpp <command>``), and the
same commands as Python functions.

    makemore-cpp train                      # the lecture's model on the bundled names, in seconds
    makemore-cpp sample runs/<time> -n 20   # names marked in train / in dev / in test / new
    makemore-cpp lr-find                    # the lecture's learning-rate sweep and a suggestion
    makemore-cpp sweep --n-hidden 100,200,300 --n-embd 2,10 --steps 50000
    makemore-cpp embeddings runs/<time>     # the scatter of the embedding table C
    makemore-cpp overfit                    # memorise 32 examples: the sanity check
    makemore-cpp diagnose runs/<time>       # part 3's four figures (train with --diagnostics N)
    makemore-cpp bench --quick              # the benchmark suite

In Python: :func:`run_train`, :func:`run_sample`, :func:`run_lr_find`, :func:`run_sweep`,
:func:`run_embeddings`, :func:`run_overfit`, :func:`run_diagnose` take the options as keyword
arguments, print what the command prints (unless ``quiet=True``) and return what they computed.
The pieces without files are in :mod:`makemore_cpp.experiments`: :func:`lr_find`,
:func:`suggest_lr`, :func:`overfit`, :func:`loss_floor` and :func:`mark_samples`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .._signals import first_interrupt_only
from ..experiments import LRFindResult, OverfitResult, loss_floor, lr_find, mark_samples, overfit, suggest_lr
from ..training import DivergenceError
from .common import PROG, CLIError, parse_hidden
from .diagnose import run_diagnose
from .experiments import run_lr_find, run_overfit
from .parser import build_parser
from .run import find_checkpoint
from .sample import run_embeddings, run_sample
from .sweep import SWEEP_KEYS, run_sweep
from .train import TrainResult, run_train

__all__ = [
    "main",
    "console",
    "CLIError",
    "run_train",
    "TrainResult",
    "run_sample",
    "run_lr_find",
    "LRFindResult",
    "lr_find",
    "suggest_lr",
    "run_sweep",
    "run_embeddings",
    "run_overfit",
    "run_diagnose",
    "overfit",
    "OverfitResult",
    "loss_floor",
    "mark_samples",
    "find_checkpoint",
    "run_bench",
    "parse_hidden",
    "build_parser",
]


def console() -> None:
    """The ``makemore-cpp`` program (and ``python -m makemore_cpp``): :func:`main` on the command
    line's arguments, then exit with its status. After a Ctrl-C, SIGINT stays ignored until the
    process has exited (no traceback from a second one during the interpreter's shutdown)."""
    sys.exit(main(exiting=True))


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """``makemore-cpp <command> [options]``; returns the exit status: 0, 1 (a failure of the work:
    a sweep's run failed, overfit did not get there, a file could not be written), 2 (a usage
    error, reported before anything is written) or 130 (Ctrl-C). While a command runs, the first
    Ctrl-C stops it and later ones are ignored while it stops (it ends promptly all the same).
    ``exiting``: the process exits after this (see :func:`console`)."""
    with first_interrupt_only(leave_ignored=exiting):
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # its own parser, with all of its options
        try:
            return run_bench(argv[1:])
        except CLIError as e:
            print(f"{PROG} bench: error: {e}", file=sys.stderr)
            return 2
    ap = build_parser()
    if not argv:
        ap.print_help()
        return 0
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, ImportError, MemoryError, OSError, DivergenceError) as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, (CLIError, ValueError, TypeError)) else 1


def run_bench(argv: Sequence[str] | None = None) -> int:
    """``makemore-cpp bench``: the benchmark suite, :func:`makemore_cpp.bench.main` (all its options)."""
    try:
        from .. import bench
    except ImportError as e:
        raise CLIError(f"the benchmark suite is not available in this installation ({e})") from None
    return int(bench.main(list(argv or [])) or 0)


# Each command's options, as its function takes them; the exit status.


def _train(args: argparse.Namespace) -> int:
    run_train(
        args.workdir,
        args.input,
        args.preset,
        resume=args.resume,
        threads=args.threads,
        log_every=args.log_every,
        samples=args.samples,
        plot=not args.no_plot,
        progress=args.progress,
        diagnostics=args.diagnostics,
        block_size=args.block_size,
        n_embd=args.n_embd,
        n_hidden=args.n_hidden,
        init=args.init,
        dtype=args.dtype,
        seed=args.seed,
        batch_size=args.batch_size,
        steps=args.steps,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        train_seed=args.train_seed,
        split_seed=args.split_seed,
        eval_every=args.eval_every,
        keep_best=args.keep_best,
    )
    return 0


def _sample(args: argparse.Namespace) -> int:
    run_sample(
        args.checkpoint,
        args.num,
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
        prefix=args.prefix,
        unique=args.unique,
        max_len=args.max_len,
        names_only=args.names_only,
        threads=args.threads,
    )
    return 0


def _lr_find(args: argparse.Namespace) -> int:
    run_lr_find(
        args.output,
        args.input,
        args.preset,
        steps=args.steps,
        lr_min=args.lr_min,
        lr_max=args.lr_max,
        threads=args.threads,
        block_size=args.block_size,
        n_embd=args.n_embd,
        n_hidden=args.n_hidden,
        init=args.init,
        dtype=args.dtype,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    return 0


def _sweep(args: argparse.Namespace) -> int:
    rows = run_sweep(
        {k: getattr(args, k) for k in SWEEP_KEYS if getattr(args, k)},
        args.input,
        args.preset,
        output=args.output,
        jobs=args.jobs,
        threads_per_job=args.threads_per_job,
        steps=args.steps,
        seed=args.seed,
    )
    return 1 if any(r["error"] for r in rows) else 0


def _diagnose(args: argparse.Namespace) -> int:
    run_diagnose(args.run, args.output, input=args.input, rows=args.rows)
    return 0


def _embeddings(args: argparse.Namespace) -> int:
    run_embeddings(args.checkpoint, args.output)
    return 0


def _overfit(args: argparse.Namespace) -> int:
    res = run_overfit(
        args.input,
        args.preset,
        words=args.words,
        max_steps=args.max_steps,
        lr=args.lr,
        tol=args.tol,
        threads=args.threads,
        block_size=args.block_size,
        n_embd=args.n_embd,
        n_hidden=args.n_hidden,
        init=args.init,
        dtype=args.dtype,
        seed=args.seed,
    )
    return 0 if res.passed else 1


COMMANDS = {
    "train": _train,
    "sample": _sample,
    "lr-find": _lr_find,
    "sweep": _sweep,
    "embeddings": _embeddings,
    "overfit": _overfit,
    "diagnose": _diagnose,
}
