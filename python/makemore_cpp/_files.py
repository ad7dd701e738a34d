"""Files written whole or not at all, and the checkpoint file.

A checkpoint is one ``.npz`` file (readable by ``numpy.load``): ``__meta__`` (uint8, UTF-8 JSON:
format, version, package version, the model's config, the training state's settings and counters,
extra), the parameters ``param/C``, ``param/W1``, ... and, when the optimizer keeps moments,
``m/C``, ``v/C``, ... Each object gives its own part: a model its ``config()`` and
``get_params()``, a training state its ``meta()`` and ``moments()``; each restores itself from what
:func:`read_checkpoint` returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from typing import IO, Any, Callable, Iterator

import numpy as np

from ._version import __version__

FORMAT = "makemore_cpp.checkpoint"
VERSION = 1
PARAM = "param/"  # the prefix of the parameters' arrays


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], mode: str = "w") -> None:
    """Call ``write`` on a temporary file in the folder of ``path``, flush it to disk, then rename it
    over ``path``: an error, a full disk or Ctrl-C midway leaves the previous file whole and no
    temporary file behind."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it an ordinary file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_checkpoint(
    path: str | os.PathLike, model: Any, state: Any = None, extra: dict | None = None
) -> None:
    """Write ``model``, a training ``state`` (or None) and JSON-ready ``extra`` to ``path`` atomically."""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "package_version": __version__,
        "config": model.config(),
        "state": state.meta() if state is not None else None,
        "extra": extra or {},
    }
    arrays = {f"{PARAM}{k}": a for k, a in model.get_params().items()}
    if state is not None:
        arrays.update(state.moments())
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(os.fspath(path), lambda f: np.savez(f, **arrays), mode="wb")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays of a checkpoint. ``ValueError`` naming the file if it is missing,
    truncated, corrupt, not a makemore_cpp checkpoint, or from a newer version."""
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
    return meta, arrays


@contextlib.contextmanager
def restoring(path: str | os.PathLike) -> Iterator[None]:
    """Objects are rebuilt from a checkpoint's header and arrays inside this: what they refuse is
    reported as the file's inconsistency, ``ValueError: <path>: checkpoint is inconsistent (...)``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise ValueError(f"{os.fspath(path)}: checkpoint is inconsistent ({type(e).__name__}: {e})") from None
    except MemoryError as e:
        raise MemoryError(f"{os.fspath(path)}: {e}") from None
