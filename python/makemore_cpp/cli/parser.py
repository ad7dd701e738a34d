"""The argument parser of ``makemore-cpp`` and its subcommands."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from .._version import __version__
from ..presets import PRESETS
from .common import PROG, CLIError
from .run import CHECKPOINT, LOG, LOSS_PNG, LOSSES, RUNS, SUMMARY


def _comma(kind: Callable[[str], Any]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(t.strip()) for t in text.split(",") if t.strip()]
        except (ValueError, CLIError) as e:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r} ({e})") from None

    return parse


def _positive_int(text: str) -> int:
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--input", metavar="FILE", help="words, one per line (default: the bundled 29,910 names)"
    )
    p.add_argument(
        "--preset",
        default="lecture",
        choices=sorted(PRESETS),
        help="settings to start from (default: lecture); the options below override them",
    )


def _add_model(p: argparse.ArgumentParser, batch: bool = True) -> None:
    g = p.add_argument_group("model (default: the preset's)")
    g.add_argument("--block-size", type=_positive_int, help="characters of context (lecture: 3)")
    g.add_argument("--n-embd", type=_positive_int, help="embedding dimensions per character (lecture: 10)")
    g.add_argument(
        "--n-hidden", help="hidden-layer width (lecture: 200), or widths of several tanh layers as 256x256"
    )
    g.add_argument(
        "--init",
        choices=["lecture", "kaiming", "layers"],
        help="parameter initialisation: lecture or kaiming (an MLP), layers (the layer presets)",
    )
    g.add_argument(
        "--dtype", choices=["float32", "float64"], help="float type of the parameters (default float32)"
    )
    g.add_argument("--seed", type=int, help="seed of the initial parameters (lecture: 2147483647)")
    if batch:
        g.add_argument("--batch-size", type=_positive_int, help="examples per step (lecture: 32)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="threads for the core (default: every CPU); results do not depend on it",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``makemore-cpp`` and its subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=fmt,
        description=(
            "The makemore lectures' character-level MLP (part 2), trained and sampled by a C++ core.\n\n"
            "Start with:  makemore-cpp train       (the lecture's model on the bundled names, in seconds)"
        ),
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        formatter_class=fmt,
        help="train a model; checkpoint, JSON-lines log, loss plot, samples",
        description=(
            "Train the lecture's MLP (or a preset's, with any setting changed) and write into WORKDIR:\n"
            f"  {CHECKPOINT}  checkpoint (config, vocabulary, parameters, optimizer state, step)\n"
            f"  {LOG}  one JSON record per line: step, minibatch loss, lr, elapsed; dev loss at intervals\n"
            f"  {LOSS_PNG}   the loss curve (log scale, means over windows)\n"
            f"  {LOSSES}, {SUMMARY}  every step's loss; the final losses and samples\n"
            "With no options: the lecture's 200,000 steps on the bundled names, printing the\n"
            "train/dev/test losses and 20 samples."
        ),
    )
    _add_data(p)
    p.add_argument(
        "-o", "--workdir", metavar="WORKDIR", help=f"folder for the run's files (default: {RUNS}/<date-time>)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in WORKDIR (-o) from its checkpoint"
    )
    _add_model(p)
    g = p.add_argument_group("optimisation (default: the preset's)")
    g.add_argument(
        "--steps", type=_positive_int, help="total steps (lecture: 200000); with --resume, a new total"
    )
    g.add_argument(
        "--lr",
        help="learning rate or schedule: 0.1, 0.1@0:0.01@100000 (lecture), cosine:3e-3:warmup=1000:min=1e-5",
    )
    g.add_argument("--optimizer", choices=["sgd", "adamw"])
    g.add_argument("--momentum", type=float, help="SGD momentum")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--dropout", type=float, help="probability of zeroing a hidden unit while training")
    g.add_argument("--train-seed", type=int, help="seed of the minibatch draws (default 0)")
    g.add_argument("--split-seed", type=int, help="seed of the 80/10/10 shuffle (lecture: 42)")
    g.add_argument(
        "--eval-every",
        type=int,
        help="steps between dev-loss evaluations and checkpoints (lecture preset: 10000)",
    )
    g.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also save the best model by dev loss (best.npz) and report on it",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--log-every",
        type=_positive_int,
        help="steps between log records (default 100; a resumed run keeps its own)",
    )
    o.add_argument("--samples", type=int, default=20, help="names to draw at the end (default 20)")
    o.add_argument(
        "--diagnostics",
        type=_positive_int,
        metavar="N",
        help="every N steps part 3's statistics, and every step's update:data ratios, into the run "
        "folder (draw them with: makemore-cpp diagnose WORKDIR)",
    )
    o.add_argument("--no-plot", action="store_true", help=f"do not draw {LOSS_PNG}")
    o.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only when stderr is a terminal)",
    )
    _add_threads(p)

    p = sub.add_parser(
        "sample",
        formatter_class=fmt,
        help="draw names from a checkpoint, marked in train / in test / new",
        description=(
            "Draw names from a checkpoint and mark each as makemore.py does: 'in train', 'in dev' or\n"
            "'in test' if the data the model was trained on holds it (that part of the split), else 'new'."
        ),
    )
    p.add_argument(
        "checkpoint", nargs="?", help=f"a checkpoint file or run folder (default: the newest run in {RUNS}/)"
    )
    p.add_argument("-n", "--num", type=int, default=20, help="how many names (default 20)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the draws (default 0); name i depends only on (seed, i)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divide the logits by this (default 1; 0: always the most likely)",
    )
    p.add_argument("--top-k", type=_positive_int, help="draw only from the k most likely characters")
    p.add_argument("--prefix", default="", help="start every name with these characters")
    p.add_argument("--max-len", type=_positive_int, default=100, help="longest name (default 100)")
    p.add_argument("--unique", action="store_true", help="drop repeats (and draw on until -n distinct names)")
    p.add_argument("--names-only", action="store_true", help="print only the names, one per line")
    _add_threads(p)

    p = sub.add_parser(
        "lr-find",
        formatter_class=fmt,
        help="the lecture's learning-rate sweep: plot and suggestion",
        description=(
            "The lecture's learning-rate search: lre = linspace(-3, 0, 1000), lrs = 10**lre; one\n"
            "minibatch step at each rate in turn on a fresh model. Plots the loss against log10(lr)\n"
            "and suggests a rate, printing how it was chosen."
        ),
    )
    _add_data(p)
    p.add_argument("-o", "--output", default="lr_find.png", help="the plot (default lr_find.png)")
    p.add_argument(
        "--steps", type=_positive_int, default=1000, help="rates to try, one step each (default 1000)"
    )
    p.add_argument("--lr-min", type=float, default=1e-3, help="first rate (default 1e-3)")
    p.add_argument("--lr-max", type=float, default=1.0, help="last rate (default 1)")
    _add_model(p)
    _add_threads(p)

    p = sub.add_parser(
        "sweep",
        formatter_class=fmt,
        help="a grid of runs across processes; table and CSV sorted by dev loss",
        description=(
            "Train every combination of the comma-separated values (one run per combination, one\n"
            "process per CPU by default) and print train/dev loss, parameters and time, sorted by\n"
            "dev loss; the table is also written as CSV. The lecture's 'larger hidden layer / larger\n"
            "embedding' experiments:  makemore-cpp sweep --n-hidden 100,200,300 --n-embd 2,10"
        ),
    )
    _add_data(p)
    p.add_argument("--block-size", type=_comma(_positive_int), help="e.g. 3,4,5")
    p.add_argument("--n-embd", type=_comma(_positive_int), help="e.g. 2,10")
    p.add_argument("--n-hidden", type=_comma(str), help="e.g. 100,200,300 (a layer list as 256x256)")
    p.add_argument("--batch-size", type=_comma(_positive_int), help="e.g. 32,64")
    p.add_argument(
        "--lr",
        type=_comma(str),
        help="rates or schedules, e.g. 0.05,0.1 or 0.1@0:0.01@100000,0.2@0:0.02@100000",
    )
    p.add_argument("--steps", type=_positive_int, help="steps of every run (default: the preset's)")
    p.add_argument("--seed", type=int, help="seed of the initial parameters of every run")
    p.add_argument("-j", "--jobs", type=_positive_int, help="processes at once (default: one per CPU)")
    p.add_argument(
        "--threads-per-job", type=_positive_int, default=1, help="core threads in each process (default 1)"
    )
    p.add_argument("-o", "--output", default="sweep.csv", help="the CSV file (default sweep.csv)")

    p = sub.add_parser(
        "diagnose",
        formatter_class=fmt,
        help="part 3's four figures: activations, gradients, weights' gradients, update ratios",
        description=(
            "The lecture's part-3 figures of a run trained with --diagnostics N: the Tanh layers'\n"
            "activation and gradient distributions (mean, std, saturation), the 2-D weights' gradient\n"
            "distributions and grad:data ratios at the last record, and every step's update:data ratio\n"
            "against the line at -3. Given a checkpoint instead, the first three on a minibatch of its\n"
            "training data."
        ),
    )
    p.add_argument(
        "run", nargs="?", help=f"a run folder or a checkpoint file (default: the newest run in {RUNS}/)"
    )
    p.add_argument("-o", "--output", help="folder of the figures (default: the run's folder)")
    p.add_argument(
        "-i", "--input", metavar="FILE", help="the words a checkpoint was trained on (default: its own)"
    )
    p.add_argument(
        "--rows", type=_positive_int, default=32, help="rows of the minibatch for a checkpoint (default 32)"
    )

    p = sub.add_parser(
        "embeddings",
        formatter_class=fmt,
        help="plot the embedding table C, a character on each point",
        description=(
            "The lecture's figure of the embedding table C: one point per character, the character\n"
            "drawn on it. With n_embd > 2 the points are projected on C's first two principal\n"
            "components (the plot says so). Train a 2-D one with: makemore-cpp train --n-embd 2"
        ),
    )
    p.add_argument(
        "checkpoint", nargs="?", help=f"a checkpoint file or run folder (default: the newest run in {RUNS}/)"
    )
    p.add_argument("-o", "--output", help="the plot (default: embeddings.png beside the checkpoint)")

    p = sub.add_parser(
        "overfit",
        formatter_class=fmt,
        help="sanity check: memorise a few names' examples",
        description=(
            "The lecture's sanity check: train on the examples of the first few names only (five\n"
            "names give 32 examples), all of them at every step, and check that the loss falls to\n"
            "the lowest possible on them. That is not zero: the start of every name ('...') is\n"
            "followed by several different letters. Exit status 1 if it does not get there."
        ),
    )
    _add_data(p)
    p.add_argument(
        "--words",
        type=_positive_int,
        default=5,
        help="how many words from the start of the input (default 5)",
    )
    p.add_argument(
        "--max-steps",
        type=_positive_int,
        default=10_000,
        help="give up after this many steps (default 10000)",
    )
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1, the lecture's)")
    p.add_argument(
        "--tol", type=float, default=0.01, help="how close to the floor counts as memorised (default 0.01)"
    )
    _add_model(p, batch=False)
    _add_threads(p)

    sub.add_parser("bench", add_help=False, help="the benchmark suite (see: makemore-cpp bench --help)")
    return ap
