"""What the commands share: the usage error, printing, the input words, the settings as text."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Sequence

import numpy as np

from ..data import load_names, load_words

PROG = "makemore-cpp"


class CLIError(Exception):
    """A usage error: reported as ``makemore-cpp <command>: error: <message>`` with exit status 2."""


def printer(quiet: bool) -> Callable[..., None]:
    """``print``, flushed at once; or nothing, when ``quiet``."""
    if quiet:
        return lambda *a, **k: None
    return lambda *a, **k: print(*a, **k, flush=True)


def load_input(path: str | os.PathLike | None) -> tuple[list[str], str | None]:
    """The words of ``path`` (absolute path returned), or the bundled names (None)."""
    if path is None:
        return load_names(), None
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise CLIError(f"input file {path} does not exist")
    words = load_words(path)
    if not words:
        raise CLIError(f"input file {path} holds no words")
    return words, path


def describe_input(path: str | None, words: Sequence[str]) -> str:
    return f"{len(words):,} words from {path}" if path else f"{len(words):,} names (bundled)"


def words_digest(words: Sequence[str]) -> str:
    """A run records this of its words, to refuse a resume on words that changed."""
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:16]


def parse_hidden(text: str | int | Sequence[int]) -> int | tuple[int, ...]:
    """``"200"`` -> 200; ``"256x256"`` -> (256, 256): hidden-layer widths, layers separated by 'x'."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    if not isinstance(text, str):
        return tuple(int(t) for t in text)
    try:
        widths = [int(t) for t in text.lower().split("x")]
    except ValueError:
        raise CLIError(
            f"--n-hidden: expected a width such as 200, or widths of several layers such as "
            f"256x256, got {text!r}"
        ) from None
    return widths[0] if len(widths) == 1 else tuple(widths)


def hidden_text(h: Any) -> str:
    return "x".join(str(w) for w in h) if isinstance(h, (list, tuple)) else str(h)


def model_overrides(overrides: dict) -> dict:
    """The settings given (None: the preset's), hidden widths parsed."""
    out = {k: val for k, val in overrides.items() if val is not None}
    if "n_hidden" in out:
        out["n_hidden"] = parse_hidden(out["n_hidden"])
    return out


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: jsonable(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(val) for val in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
