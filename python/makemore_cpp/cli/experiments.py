"""``makemore-cpp lr-find`` and ``overfit``: the lecture's learning-rate sweep and sanity check on
a fresh model of a preset."""

from __future__ import annotations

import os
from typing import Any

from .. import _validate as v
from .. import plots, set_num_threads
from ..data import Vocab, build_dataset, split_words
from ..experiments import LRFindResult, OverfitResult, lr_find, overfit
from ..fitting import build_model, resolve, train_options
from .common import (
    PROG,
    CLIError,
    describe_input,
    load_input,
    model_overrides,
    option,
    output_file,
    printer,
    threads_to_use,
)
from .train import _built, _check


def run_lr_find(
    output: str | os.PathLike = "lr_find.png",
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    steps: int = 1000,
    lr_min: float = 1e-3,
    lr_max: float = 1.0,
    threads: int | None = None,
    plot: bool = True,
    quiet: bool = False,
    **overrides: Any,
) -> LRFindResult:
    """``makemore-cpp lr-find``: the lecture's learning-rate sweep on a fresh model of the preset
    (with overrides such as ``n_hidden``, ``batch_size``), on the training split of ``input``; writes
    the plot of loss against log10(lr) to ``output`` and prints the suggested rate and why."""
    say = printer(quiet)
    # Every option, before any work.
    threads = threads_to_use(threads, say)
    steps = option(steps, "--steps", 2)
    try:
        lr_min = v.real(lr_min, "--lr-min", 0.0, low_open=True)
        lr_max = v.real(lr_max, "--lr-max", 0.0, low_open=True)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    if not lr_min < lr_max:
        raise CLIError(f"--lr-min must be below --lr-max, got {lr_min:g} and {lr_max:g}")
    if plot:
        output = output_file(output, "plot")
    cfg = _config(preset, overrides, steps)
    words, input_path = load_input(input)
    vocab = Vocab.from_words(words)
    _check(cfg, len(vocab))
    tr, _, _ = split_words(words, cfg["split"], seed=cfg["split_seed"])
    X, Y = build_dataset(tr, vocab, cfg["block_size"])
    if len(X) == 0:
        raise CLIError("the training split is empty: give more words")
    model = _built(lambda: build_model(cfg, vocab))
    if threads is not None:
        set_num_threads(threads)
    say(
        f"{PROG} lr-find: {model!r} on {describe_input(input_path, words)} (training split); "
        f"one step of batch {cfg['batch_size']} at each of {steps:,} rates from {lr_min:g} to {lr_max:g}"
    )
    res = lr_find(model, X, Y, steps=steps, lr_min=lr_min, lr_max=lr_max, options=train_options(cfg))
    if plot:
        res.plot = plots.lr_find_plot(
            res.lre,
            res.losses,
            output,
            suggested_lr=res.suggested_lr,
            smoothed=res.smoothed,
            title=f"Learning-rate sweep ({model.num_params:,}-parameter model, "
            f"batch {cfg['batch_size']}, one step per rate)",
        )
    say(f"suggested learning rate: {res.suggested_lr:.3g}")
    say(f"  how: {res.how}")
    if res.plot:
        say(f"wrote {res.plot}")
    return res


def run_overfit(
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    words: int = 5,
    max_steps: int = 10_000,
    lr: float = 0.1,
    tol: float = 0.01,
    threads: int | None = None,
    quiet: bool = False,
    **overrides: Any,
) -> OverfitResult:
    """``makemore-cpp overfit``: the lecture's sanity check. Build the examples of the first
    ``words`` words (the lecture's five names give 32), train the preset's model on all of them at
    every step, and report whether the loss came within ``tol`` of the lowest loss possible on
    them (which is above zero where one context has several next characters)."""
    say = printer(quiet)
    # Every option, before any work.
    threads = threads_to_use(threads, say)
    words = option(words, "--words", 1)
    max_steps = option(max_steps, "--max-steps", 1)
    try:
        lr = v.real(lr, "--lr", 0.0)
        tol = v.real(tol, "--tol", 0.0)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    cfg = _config(preset, overrides, max_steps)
    all_words, input_path = load_input(input)
    few = all_words[:words]
    vocab = Vocab.from_words(all_words)
    X, Y = build_dataset(few, vocab, cfg["block_size"])
    _check(dict(cfg, batch_size=max(1, len(X))), len(vocab))
    model = _built(lambda: build_model(cfg, vocab))
    if threads is not None:
        set_num_threads(threads)
    say(
        f"{PROG} overfit: {model!r} on the first {len(few)} words of "
        f"{describe_input(input_path, all_words)} "
        f"({', '.join(few[:8])}{', ...' if len(few) > 8 else ''}): {len(X)} examples, every step on "
        f"all of them, lr {lr:g}"
    )
    res = overfit(model, X, Y, max_steps=max_steps, lr=lr, tol=tol)
    say(f"loss {res.initial_loss:.4f} -> {res.loss:.4f} after {res.steps:,} steps")
    say(
        f"lowest possible on these examples: {res.floor:.4f} "
        + (
            "(every context is followed by one character)"
            if res.floor == 0
            else "(some contexts, such as the start of every word, are followed by several characters)"
        )
    )
    if res.passed:
        say(f"PASS: the model memorised the batch (loss within {tol:g} of the floor)")
    else:
        say(
            f"FAIL: the loss is {res.loss - res.floor:.4f} above the floor after {res.steps:,} steps "
            f"(tolerance {tol:g}); try more --max-steps or another --lr"
        )
    return res


def _config(preset: str, overrides: dict, steps: int) -> dict:
    """The preset's settings with the options given, checked (a usage error names the option)."""
    try:
        cfg = resolve(preset, **model_overrides(overrides))
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None
    cfg["steps"] = steps
    cfg["lr"] = 0.1  # (the command gives its own rates)
    _check(cfg)
    return cfg
