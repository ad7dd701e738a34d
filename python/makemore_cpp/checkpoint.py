"""Checkpoints: a model and, for a training run, its :class:`TrainState` and the caller's JSON-ready
``extra``, in one ``.npz`` file (readable by ``numpy.load``; the layout is in ``_files.py``).
Written atomically: a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import _files
from ._files import FORMAT, VERSION
from .model import Model
from .training import TrainState

__all__ = ["save", "load", "Checkpoint", "FORMAT", "VERSION"]


@dataclass
class Checkpoint:
    model: Model
    state: TrainState | None = None  # when the file holds a training run's
    extra: dict = field(default_factory=dict)


def save(
    path: str | os.PathLike, model: Model, state: TrainState | None = None, extra: dict | None = None
) -> None:
    """Write ``model`` (and a training ``state``, and JSON-ready ``extra``) to ``path`` atomically."""
    _files.write_checkpoint(path, model, state, extra)


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint. ``ValueError`` naming the file if it is missing, truncated, corrupt, not a
    makemore_cpp checkpoint, from a newer version, or inconsistent."""
    meta, arrays = _files.read_checkpoint(path)
    with _files.restoring(path):
        model = Model.restore(meta["config"], arrays)
        state = None if meta.get("state") is None else TrainState.restore(model, meta["state"], arrays)
    return Checkpoint(model=model, state=state, extra=meta.get("extra") or {})
