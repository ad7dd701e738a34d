"""makemore_cpp: the makemore lectures' character-level MLP, trained and sampled from Python,
computed by a C++ core.

    import makemore_cpp as mm
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    tr, dev, te = mm.split_words(words)
    X, Y = mm.build_dataset(tr, vocab, block_size=3)
    model = mm.MLP(vocab, block_size=3, n_embd=10, n_hidden=200)
    hist = mm.train(model, X, Y, steps=200_000, lr=lambda s: 0.1 if s < 100_000 else 0.01)
    print(model.loss(*mm.build_dataset(dev, vocab)), model.sample(10))
"""

from __future__ import annotations

import os

from . import _core, checkpoint, nn
from ._version import __version__
from .data import Vocab, build_dataset, load_names, load_words, split_words
from .diagnostics import diagnose
from .fitting import FitResult, fit
from .mlp import MLP
from .model import Model
from .presets import PRESETS
from .schedules import cosine, parse_schedule, step_decay
from .training import DivergenceError, History, TrainingInterrupted, TrainOptions, TrainState, train

__all__ = [
    "__version__",
    "load_names",
    "load_words",
    "Vocab",
    "split_words",
    "build_dataset",
    "MLP",
    "Model",
    "nn",
    "load",
    "train",
    "diagnose",
    "TrainOptions",
    "History",
    "TrainState",
    "DivergenceError",
    "TrainingInterrupted",
    "fit",
    "FitResult",
    "PRESETS",
    "parse_schedule",
    "step_decay",
    "cosine",
    "set_num_threads",
    "get_num_threads",
    "get_isa",
    "set_isa",
]


def load(path: str | os.PathLike) -> Model:
    """The model of any checkpoint of this package: ``model.save``'s, or a training run's
    ``model.npz`` or ``best.npz`` (whose training state is checked too). ``ValueError`` naming the
    file if it is missing, truncated, corrupt or inconsistent."""
    return checkpoint.load(path).model


def set_num_threads(n: int) -> None:
    """Threads the core may use (default: the CPUs this process may run on). Results do not depend
    on it: every sum is taken in the same order at any thread count."""
    from ._validate import integer

    _core.set_num_threads(integer(n, "n", 1, 1024))


def get_num_threads() -> int:
    """Threads the core may use."""
    return _core.get_num_threads()


def get_isa() -> str:
    """The instruction set the kernels run on: 'avx512', 'avx2' or 'generic'."""
    return _core.isa()


def set_isa(name: str) -> None:
    """Run the kernels on another instruction set ('avx512', 'avx2' or 'generic'), for testing and
    comparison; ValueError if this CPU lacks it. The environment variable MAKEMORE_CPP_ISA does the
    same at import."""
    _core.set_isa(name)


def _isa_from_environment() -> None:
    name = os.environ.get("MAKEMORE_CPP_ISA")
    if name:
        try:
            _core.set_isa(name)
        except ValueError as e:
            raise ImportError(f"MAKEMORE_CPP_ISA={name!r}: {e}") from None


_isa_from_environment()
