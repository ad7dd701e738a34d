"""Argument checks at the package's boundary: every public function validates here, once, before
anything reaches the C++ core or changes a model. Messages name the argument, what was expected and
what was given. One check is left to the core: the range of int32 ids that loss() and logits() send
as they are (``core_checks``), which the core checks in the pass that reads them; the package then
names an id it reports here."""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import numpy as np

INT32_MAX = 2**31 - 1


def integer(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """An int (not a bool, not a float) within [low, high]."""
    if type(value) is not int:  # a plain int skips the ABC checks (a bool's type is bool)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def real(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number within the given bounds."""
    if type(value) is not float:  # a plain float skips the ABC checks
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def seed(value: Any, name: str = "seed") -> int:
    return integer(value, name, 0, 2**64 - 1)


def to_numpy(a: Any) -> np.ndarray:
    """NumPy view of an array-like, including a torch tensor."""
    if hasattr(a, "detach") and hasattr(a, "cpu") and hasattr(a, "numpy"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def index_array(
    a: Any, name: str, shape: tuple, high: int, what: str, core_checks: bool = False
) -> np.ndarray:
    """Integer indices of any integer dtype, order or strides, checked against 0 <= a < high, as a
    C-contiguous int32 array (a copy only when ``a`` is not one already).

    ``shape`` holds the expected dimensions, None for any length. ``what`` names ``high``.
    ``core_checks``: the range of an array that goes to the core as it is (C-contiguous int32) is
    left to the core, which checks it in the pass that reads it (a pass over the ids less); the
    caller then names an id out of range by calling again without it.
    """
    try:
        arr = to_numpy(a)
    except (ValueError, TypeError) as e:  # ragged nested lists, for one
        raise ValueError(
            f"{name} must be an array of integers, got {type(a).__name__} that NumPy cannot convert ({e})"
        ) from None
    # kind 'i' or 'u' only: NumPy counts timedelta64 as an integer type, and bool converts silently.
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype == np.float64):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    want = (
        "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    )
    if arr.ndim != len(shape) or any(s is not None and arr.shape[i] != s for i, s in enumerate(shape)):
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if core_checks and arr.dtype == np.dtype(np.int32) and arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    if not (arr.dtype == np.dtype(np.int32) and arr.flags.c_contiguous and arr.flags.aligned):
        fits(4.0 * arr.size, f"{name} of shape {arr.shape}", " as the core's int32 copy")
    # One pass over the ids: read as unsigned, a negative id is larger than any valid one.
    if (
        arr.size
        and (arr.view(arr.dtype.str.replace("i", "u")) if arr.dtype.kind == "i" else arr).max() >= high
    ):
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= high:
            bad = lo if lo < 0 else hi
            where = np.unravel_index(int(np.argmax(arr == bad)), arr.shape)
            raise IndexError(
                f"{name}[{', '.join(map(str, where))}] = {int(bad)} is out of range: "
                f"expected 0 <= {name} < {high} ({what})"
            )
    return core_array(arr, np.int32)


def core_array(a: Any, dtype: Any) -> np.ndarray:
    """``a`` as a C-contiguous, aligned array of ``dtype`` for the core, copied only if it is not one
    already. (np.ascontiguousarray keeps an unaligned view unaligned: reading int32 or float through
    it in C++ is undefined behaviour, which the sanitizer job catches.)"""
    return np.require(a, dtype, ["C_CONTIGUOUS", "ALIGNED"])


def contexts(model: Any, X: Any, xname: str = "X", core_checks: bool = False) -> np.ndarray:
    """Contexts X (N, block_size) for ``model``, as int32."""
    return index_array(
        X, xname, (None, model.block_size), model.vocab_size, "the vocabulary size", core_checks
    )


def rows(
    model: Any, X: Any, Y: Any, xname: str = "X", yname: str = "Y", core_checks: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Contexts X (N, block_size) and targets Y (N,) for ``model``, as int32."""
    X = contexts(model, X, xname, core_checks)
    try:
        if Y is None:
            raise TypeError(
                f"{yname} must be an array of integers (the targets, shape ({len(X)},)), got None"
            )
        Y = index_array(Y, yname, (None,), model.vocab_size, "the vocabulary size", core_checks)
        if len(Y) != len(X):
            raise ValueError(f"{xname} and {yname} differ in length: {len(X)} rows and {len(Y)} targets")
    except (TypeError, ValueError, IndexError):
        if core_checks:  # an id of X out of range is named first, as when X is checked here
            contexts(model, X, xname)
        raise
    return X, Y


def dtype_name(dtype: Any) -> str:
    if dtype is None:  # np.dtype(None) is float64: not a choice to make silently
        raise ValueError("dtype must be 'float32' or 'float64', got None")
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


def machine_memory() -> int:
    """Bytes of memory this machine has (its physical memory)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def size_text(nbytes: float) -> str:
    """1.5 GiB, 58.2 TiB, ..."""
    for unit, scale in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 2**10:.1f} KiB"


def fits(nbytes: float, what: str, detail: str = "") -> None:
    """Refuse, before anything is allocated, what needs more than this machine's memory:
    ``MemoryError: <what> needs <size><detail>; this machine has <size>``. ``what`` names the
    argument and its value."""
    total = machine_memory()
    if nbytes > total:
        raise MemoryError(f"{what} needs {size_text(nbytes)}{detail}; this machine has {size_text(total)}")
