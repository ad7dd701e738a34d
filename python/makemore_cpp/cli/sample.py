"""``makemore-cpp sample`` and ``embeddings``: what a trained model's checkpoint gives."""

from __future__ import annotations

import os
import sys

from .. import _validate as v
from .. import checkpoint, plots, set_num_threads
from ..data import load_names, load_words, split_words
from ..experiments import mark_samples
from ..model import SAMPLE_NAME_BYTES
from .common import CLIError, option, output_file, printer, threads_to_use, words_digest
from .run import find_checkpoint


def run_sample(
    path: str | os.PathLike | None = None,
    n: int = 20,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    unique: bool = False,
    max_len: int = 100,
    names_only: bool = False,
    threads: int | None = None,
    quiet: bool = False,
) -> list[tuple[str, str]]:
    """``makemore-cpp sample``: draw ``n`` names from a checkpoint (a file, a run folder, or the
    newest run) and mark each as makemore.py does: ``in train``, ``in dev``, ``in test`` (found in
    that part of the data the model was trained on, recomputed from the recorded input file and
    split seed) or ``new``. ``unique`` drops repeats and draws on until ``n`` distinct names (or
    gives up after ``100 * n`` draws). Returns (name, mark) pairs."""
    say = printer(quiet)
    # The options, before the checkpoint is read.
    threads = threads_to_use(threads, say)
    n = option(n, "-n", 0)
    try:
        seed = v.seed(seed, "--seed")
        temperature = v.real(temperature, "--temperature", 0.0)
        top_k = None if top_k is None else v.integer(top_k, "--top-k", 1)
        max_len = v.integer(max_len, "--max-len", 1, (1 << 20) - 1)
        v.fits(SAMPLE_NAME_BYTES * n, f"-n {n:,} names", " at the least")
    except (TypeError, ValueError, MemoryError) as e:
        raise CLIError(str(e)) from None
    if not isinstance(prefix, str):
        raise CLIError(f"--prefix must be text, got {type(prefix).__name__} {prefix!r}")
    file = find_checkpoint(path)
    ck = checkpoint.load(file)
    model = ck.model
    if model.vocab is None:
        raise CLIError(f"{file} holds a model without a vocabulary: it cannot write names")
    if "." in prefix:
        raise CLIError(f"--prefix {prefix!r} contains '.', which ends a name")
    try:
        model.vocab.encode(prefix)
    except ValueError as e:
        raise CLIError(f"--prefix: {e}") from None
    if threads is not None:
        set_num_threads(threads)
    if unique:
        # Batches of new draws (name i depends only on the seed and i), doubling, until n distinct
        # names; it gives up after 100 * n draws, or when a batch as large as all the draws before
        # it brings no new name. Only the distinct names are kept.
        names: list[str] = []
        seen: set[str] = set()
        drawn, batch = 0, max(n, 16)
        while len(names) < n and drawn < 100 * max(n, 1):
            new = 0
            for name in model._names(drawn, batch, seed, temperature, top_k, prefix, max_len):
                if name not in seen and len(names) < n:
                    seen.add(name)
                    names.append(name)
                    new += 1
            drawn += batch
            if new == 0 and batch >= 64:  # (with doubling, a batch is as large as all before it)
                break
            batch = min(batch * 2, 100 * max(n, 1) - drawn) or 1
        if len(names) < n:
            say(f"note: only {len(names)} distinct names in {drawn:,} draws", file=sys.stderr)
    else:
        names = model.sample(n, seed, temperature, top_k, prefix, max_len)
    splits, why = _splits_of(ck.extra)
    marks = mark_samples(names, splits) if splits is not None else ["?"] * len(names)
    if names_only:
        for name in names:
            say(name)
        return list(zip(names, marks))
    where = (
        f"step {ck.state.step:,}"
        if ck.state is not None
        else (f"best, step {ck.extra['best']['step']:,}" if ck.extra.get("best") else "")
    )
    say(f"{file}{f' ({where})' if where else ''}: {model!r}")
    width = max((len(s) for s in names), default=0)
    for name, mark in zip(names, marks):
        say(f"  {name:<{width}}  {mark}")
    if splits is None:
        say(f"(cannot mark the names: {why})")
    else:
        counts = {m: marks.count(m) for m in ("in train", "in dev", "in test", "new")}
        say(f"{len(names)} names: " + ", ".join(f"{c} {m}" for m, c in counts.items()))
    return list(zip(names, marks))


def run_embeddings(
    path: str | os.PathLike | None = None, output: str | os.PathLike | None = None, *, quiet: bool = False
) -> str:
    """``makemore-cpp embeddings``: the lecture's scatter of the embedding table ``C`` of a
    checkpoint (a file, a run folder or the newest run), each character drawn on its point; for
    ``n_embd > 2`` the first two principal components (the plot says so). Writes ``output``
    (default ``embeddings.png`` beside the checkpoint) and returns its path."""
    say = printer(quiet)
    if output is not None:
        output = output_file(output, "plot")
    file = find_checkpoint(path)
    model = checkpoint.load(file).model
    if output is None:
        output = output_file(os.path.join(os.path.dirname(os.path.abspath(file)), "embeddings.png"), "plot")
    written = plots.embeddings_plot(model, output, title=None)
    how = (
        "its two columns"
        if model.n_embd == 2
        else f"PCA from {model.n_embd} dimensions"
        if model.n_embd > 2
        else "one dimension"
    )
    say(f"{file}: C is {model.vocab_size} x {model.n_embd}; plotted {how}; wrote {written}")
    return written


def _splits_of(extra: dict) -> tuple[dict[str, list[str]] | None, str]:
    """The train/dev/test words a checkpoint was trained on, recomputed from its recorded input file
    and split; (None, reason) when they cannot be."""
    if "split_seed" not in extra:
        return None, "the checkpoint does not record its training data"
    src = extra.get("input")
    if src is not None and not os.path.isfile(src):
        return None, f"its input file {src} is gone"
    words = load_names() if src is None else load_words(src)
    if extra.get("input_digest") and words_digest(words) != extra["input_digest"]:
        return None, f"{src or 'the bundled names'} changed since training"
    tr, dev, te = split_words(words, tuple(extra.get("split", (0.8, 0.1, 0.1))), seed=extra["split_seed"])
    return {"train": tr, "dev": dev, "test": te}, ""
