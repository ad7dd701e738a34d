"""``makemore-cpp diagnose``: part 3's four figures of a run (or of a checkpoint)."""

from __future__ import annotations

import os

import numpy as np

from .. import checkpoint, plots
from ..data import Vocab, build_dataset, load_names, load_words, split_words
from ..diagnostics import Diagnostics, diagnose
from .common import CLIError, option, output_file, output_folder, printer
from .run import find_checkpoint

FIGURES = ("diag_activations.png", "diag_gradients.png", "diag_weights.png", "diag_updates.png")


def run_diagnose(
    path: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    *,
    input: str | os.PathLike | None = None,
    rows: int = 32,
    quiet: bool = False,
) -> dict[str, str]:
    """``makemore-cpp diagnose``: the lecture's part-3 figures. For a run folder trained with
    ``--diagnostics N``: its last record's activation, gradient and weight-gradient distributions,
    and the update:data ratios of every step. For a checkpoint (or a run without diagnostics): the
    first three from :func:`makemore_cpp.diagnose` on ``rows`` rows of the training split it was
    trained on (``input`` for another file of words). Writes the figures into ``output`` (default:
    the run's folder) and returns their paths, and prints each Tanh layer's saturation and each
    weight's grad:data ratio."""
    say = printer(quiet)
    rows = option(rows, "--rows", 2)
    run = os.fspath(path) if path is not None else os.path.dirname(find_checkpoint(None))
    folder = run if os.path.isdir(run) else os.path.dirname(os.path.abspath(run))
    output = os.fspath(output) if output is not None else folder
    output_folder(output, "the figures")
    for name in FIGURES:
        output_file(os.path.join(output, name), "figure")
    diag = None
    if os.path.isdir(run) and os.path.exists(os.path.join(run, "diagnostics.json")):
        diag = Diagnostics.load(run)
        if not diag.records:
            raise CLIError(f"{run} holds no diagnostics records yet (train on past step {diag.every})")
        step, stats = diag.records[-1]
        where = f"{run}, step {step:,} (records every {diag.every:,} steps)"
    else:
        file = find_checkpoint(run)
        ck = checkpoint.load(file)
        stats, where = _checkpoint_stats(ck, input, rows), f"{file}, {rows} rows of its training split"
    os.makedirs(output, exist_ok=True)
    paths = dict(zip(("activations", "gradients", "weights"), (os.path.join(output, f) for f in FIGURES)))
    plots.activations_plot(stats, paths["activations"], title=f"activation distribution ({where})")
    plots.gradients_plot(stats, paths["gradients"], title=f"gradient distribution ({where})")
    plots.weights_plot(stats, paths["weights"], title=f"weights gradient distribution ({where})")
    if diag is not None and len(diag.steps):
        paths["updates"] = plots.update_ratio_plot(diag, os.path.join(output, FIGURES[3]))
    for a in stats["activations"]:
        say(
            f"layer {a['layer']:>2} (Tanh): mean {a['mean']:+.2f}, std {a['std']:.2f}, "
            f"saturated {a['saturated']:.2%}"
        )
    for name, p in stats["params"].items():
        if len(p["shape"]) == 2:
            say(f"weight {name:>12} {tuple(p['shape'])!s:>12}: grad:data ratio {p['grad_data_ratio']:.3e}")
    if diag is None:
        say("(no update:data ratios: train with --diagnostics N to record them)")
    say("wrote " + ", ".join(paths.values()))
    return paths


def _checkpoint_stats(ck: checkpoint.Checkpoint, input: str | os.PathLike | None, rows: int) -> dict:
    """diagnose() on the first ``rows`` rows of the training split a checkpoint was trained on."""
    extra = ck.extra
    src = os.fspath(input) if input is not None else extra.get("input")
    if src is not None and not os.path.isfile(src):
        raise CLIError(f"the words file {src} does not exist: give the training data with -i FILE")
    words = load_names() if src is None else load_words(src)
    model = ck.model
    vocab = model.vocab if model.vocab is not None else Vocab.from_words(words)
    tr, _, _ = split_words(
        words, tuple(extra.get("split", (0.8, 0.1, 0.1))), seed=extra.get("split_seed", 42)
    )
    X, Y = build_dataset(tr, vocab, model.block_size)
    if len(X) < 2:
        raise CLIError("the training split holds fewer than 2 examples")
    ix = np.random.default_rng(0).choice(len(X), size=min(rows, len(X)), replace=False)
    return diagnose(model, X[ix], Y[ix])
