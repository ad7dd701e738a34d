"""Checkpoints: one ``.npz`` file (readable by ``numpy.load``) holding a JSON header, the
parameters and, for a training run, the optimizer's moments and step counter.

Layout: ``__meta__`` (uint8, UTF-8 JSON: format, version, model config, training state, extra),
``param/C``, ``param/W1``, ... and ``m/C``, ``v/C``, ... when the optimizer keeps moments.
Written to a temporary file in the same folder, flushed, then renamed over the target, so a crash
mid-save leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import Vocab
from .model import MLP

__all__ = ["save", "load", "Checkpoint", "FORMAT", "VERSION"]

FORMAT = "makemore_cpp.checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    model: MLP
    state: Any = None  # a TrainState, when the file holds one
    extra: dict = field(default_factory=dict)


def save(path: str | os.PathLike, model: MLP, state: Any = None, extra: dict | None = None) -> None:
    """Write ``model`` (and a training ``state``, and JSON-ready ``extra``) to ``path`` atomically."""
    from . import __version__

    path = os.fspath(path)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "package_version": __version__,
        "config": model.config(),
        "state": state.meta() if state is not None else None,
        "extra": extra or {},
    }
    arrays = {f"param/{k}": a for k, a in model.get_params().items()}
    if state is not None:
        arrays.update(state.moments())
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a checkpoint gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint. ``ValueError`` naming the file if it is missing, truncated, corrupt, not a
    makemore_cpp checkpoint, or from a newer version."""
    from .training import TrainState

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"PK\x03\x04":  # an .npz is a zip file; np.load would read a .npy as one array
            raise ValueError(f"not a zip (.npz) file (it starts with {magic!r})")
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise ValueError("no __meta__ header: not a makemore_cpp checkpoint")
            meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except ValueError as e:
        raise ValueError(f"{path}: cannot read checkpoint: {e}") from None
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        KeyError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        NotImplementedError,
        RuntimeError,
    ) as e:  # zipfile's: a corrupt method, flag, version or "encrypted" bit
        raise ValueError(
            f"{path}: not a makemore_cpp checkpoint, or truncated or corrupt ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not a makemore_cpp checkpoint (format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    if meta.get("version") != VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {meta.get('version')!r}; this makemore_cpp reads "
            f"version {VERSION}"
        )
    try:
        cfg = meta["config"]
        vocab = Vocab(cfg["vocab"]) if isinstance(cfg["vocab"], list) else cfg["vocab"]
        _check_shapes(cfg, len(vocab) if isinstance(vocab, Vocab) else vocab, arrays)
        model = MLP(
            vocab,
            block_size=cfg["block_size"],
            n_embd=cfg["n_embd"],
            n_hidden=tuple(cfg["n_hidden"]),
            seed=cfg["seed"],
            init=cfg["init"],
            dtype=cfg["dtype"],
        )
        model.set_params({k: arrays[f"param/{k}"] for k in model.param_names})
        state = None
        if meta.get("state") is not None:
            state = TrainState.restore(
                model, meta["state"], {k: a for k, a in arrays.items() if not k.startswith("param/")}
            )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ValueError(f"{path}: checkpoint is inconsistent ({type(e).__name__}: {e})") from None
    except MemoryError as e:
        raise MemoryError(f"{path}: {e}") from None
    return Checkpoint(model=model, state=state, extra=meta.get("extra") or {})


def _check_shapes(cfg: dict, V: object, arrays: dict) -> None:
    """The parameters the header describes are the arrays the file holds (checked before a model of
    the header's sizes is allocated, so a corrupt header cannot ask for any amount of memory)."""
    T, E, hidden = cfg["block_size"], cfg["n_embd"], cfg["n_hidden"]
    if not isinstance(hidden, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in [V, T, E, *hidden]
    ):
        raise TypeError(
            f"sizes must be integers: vocab {V!r}, block_size {T!r}, n_embd {E!r}, n_hidden {hidden!r}"
        )
    widths = [T * E] + hidden + [V]
    want = {"C": (V, E)}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        want[f"W{i}"], want[f"b{i}"] = (a, b), (b,)
    have = {k[len("param/") :]: tuple(a.shape) for k, a in arrays.items() if k.startswith("param/")}
    if have != want:
        raise ValueError(f"the header describes parameters {want}, the file holds {have}")
