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
import errno
import json
import os
import stat
import tempfile
import zipfile
from typing import IO, Any, Callable, Iterator

import numpy as np

from ._signals import interrupts_deferred
from ._version import __version__

FORMAT = "makemore_cpp.checkpoint"
VERSION = 1
PARAM = "param/"  # the prefix of the parameters' arrays


def check_writable(path: str | os.PathLike, what: str = "file", make_folder: bool = False) -> str:
    """The path :func:`atomic_write` would write, checked without writing anything: its folder
    exists and is a folder (or, with ``make_folder``, can be made: the nearest part that exists is
    a folder), and whatever is at the path now is a regular file (not a symbolic link, a folder, a
    device, a pipe or a socket, which a rename would replace). Errors name ``path`` as given.
    Returns it as a str."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path or path.endswith(os.sep) or os.path.basename(path) in (".", ".."):
        raise os_error(errno.EISDIR, f"cannot write the {what} {path!r}: it names a folder, not a file")
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (or a file where a folder should be)
        st = None
    except OSError as e:
        raise _naming(e, f"cannot write the {what} {path}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise os_error(
            errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EEXIST,
            f"refusing to write the {what} {path}: it is {_kind(st.st_mode)} (only a regular file is "
            "replaced)",
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        check_folder(folder, f"the {what} {path}", make_folder)
    return path


def check_folder(folder: str | os.PathLike, what: str, make: bool = True) -> str:
    """That ``folder`` is a folder, or (with ``make``) can be made: the nearest part of it that
    exists is a folder. Nothing is made. ``what`` names what the folder is for, in errors."""
    folder = os.fspath(folder)
    if isinstance(folder, bytes):
        folder = os.fsdecode(folder)
    if not folder:
        raise os_error(errno.ENOENT, f"cannot write {what}: the folder's path is empty")
    if os.path.isdir(folder):
        return folder
    if not make:
        raise os_error(errno.ENOENT, f"cannot write {what}: its folder {folder} does not exist")
    part = os.path.abspath(folder)
    while not os.path.lexists(part):
        up = os.path.dirname(part)
        if up == part:
            break
        part = up
    if not os.path.isdir(part):
        kind = "a file" if os.path.isfile(part) else _kind(os.lstat(part).st_mode)
        raise os_error(
            errno.ENOTDIR, f"cannot make the folder {folder} for {what}: {part} is {kind}, not a folder"
        )
    return folder


def os_error(code: int, message: str) -> OSError:
    """The OSError subclass of ``code`` (FileNotFoundError, IsADirectoryError, ...) whose text is
    ``message`` alone."""
    e = type(OSError(code, ""))(message)
    e.errno = code
    e.names_the_path = True  # type: ignore[attr-defined]
    return e


def _naming(e: OSError, message: str) -> OSError:
    """``e`` as the same kind of OSError, saying ``message`` (which names the path given, not a
    temporary file) and why."""
    why = e.strerror or str(e)
    if e.errno is None:
        out = OSError(f"{message}: {why}")
        out.names_the_path = True  # type: ignore[attr-defined]
        return out
    return os_error(e.errno, f"{message}: {why}")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISFIFO, "a pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO], None], mode: str = "w", what: str = "file"
) -> None:
    """Call ``write`` on a temporary file in the folder of ``path``, flush it to disk, then rename it
    over ``path``: an error, a full disk or Ctrl-C midway leaves the previous file whole and no
    temporary file behind. Only a regular file is replaced (:func:`check_writable`: a symbolic
    link, a folder or a device at ``path`` is refused, before anything is written); an ``OSError``
    names ``path`` as given, never the temporary file."""
    path = check_writable(path, what)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        with interrupts_deferred():  # the temporary file exists only where the code below removes it
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it an ordinary file's mode
        check_writable(path, what)  # what is at the path may have changed meanwhile
        with interrupts_deferred():
            os.replace(tmp, path)
            tmp = None
    except BaseException as e:
        if tmp is not None:
            with interrupts_deferred(merge=isinstance(e, KeyboardInterrupt)):
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        if isinstance(e, OSError) and not getattr(e, "names_the_path", False):
            raise _naming(e, f"cannot write the {what} {path}") from None
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
    atomic_write(path, lambda f: np.savez(f, **arrays), mode="wb", what="checkpoint")


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the arrays of a checkpoint. ``ValueError`` naming the file if it is missing,
    truncated, corrupt, not a makemore_cpp checkpoint, or from a newer version."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such checkpoint file")
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # a folder; a pipe or a device would block or read without end
        raise ValueError(f"{path}: not a checkpoint file: it is {_kind(mode)}")
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
