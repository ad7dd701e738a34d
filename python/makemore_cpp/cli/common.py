"""What the commands share: the usage error, printing, the input words, the settings as text."""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np

from .. import _core
from .. import _validate as v
from .._files import check_folder, check_writable
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
    if not os.path.exists(path):
        raise CLIError(f"input file {path} does not exist")
    if not os.path.isfile(path):
        raise CLIError(
            f"input {path} is {'a folder' if os.path.isdir(path) else 'not a regular file'}: give a "
            "file of words (a run reads it again to resume and to mark its samples)"
        )
    try:
        words = load_words(path)
    except OSError as e:
        raise CLIError(f"cannot read the input file {path}: {e.strerror or e}") from None
    except MemoryError as e:  # (refused before it was read)
        raise CLIError(f"input file {e}") from None
    if not words:
        raise CLIError(f"input file {path} holds no words")
    return words, path


def option(value: Any, name: str, low: int | None = None, high: int | None = None) -> int | None:
    """An integer option (None: not given), as the command line names it: ``--eval-every must be
    >= 0, got -5``."""
    if value is None:
        return None
    try:
        return v.integer(value, name, low, high)
    except (TypeError, ValueError) as e:
        raise CLIError(str(e)) from None


def threads_to_use(threads: Any, say: Callable[..., None]) -> int | None:
    """``--threads``, checked (not yet applied: a command sets it once every option is checked);
    above the CPUs this process may run on, capped with a note."""
    n = option(threads, "--threads", 1)
    if n is None:
        return None
    cpus = _core.default_threads()
    if n > cpus:
        say(
            f"{PROG}: note: --threads {n}: this process may run on {cpus} CPU(s); using {cpus} "
            "(more threads than CPUs only slow the core down)",
            file=sys.stderr,
        )
        n = cpus
    return n


def output_file(path: str | os.PathLike, what: str) -> str:
    """An output file's path, checked before any work: a regular file or nothing there now, in a
    folder that exists or can be made (nothing is made here)."""
    try:
        return check_writable(path, what, make_folder=True)
    except OSError as e:
        raise CLIError(str(e)) from None


def output_folder(path: str | os.PathLike, what: str) -> str:
    """A folder to write into, checked before any work: a folder, or one that can be made."""
    try:
        return check_folder(path, what)
    except OSError as e:
        raise CLIError(str(e)) from None


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


# The settings the commands take as options, by their names in PRESETS.
OPTIONS = {
    "block_size", "n_embd", "n_hidden", "init", "dtype", "seed", "batch_size", "steps", "optimizer",
    "momentum", "weight_decay", "dropout", "train_seed", "split_seed", "eval_every", "keep_best",
}  # fmt: skip


def as_options(message: str) -> str:
    """A message about a setting, naming it as the command line does: ``eval_every must be ...``
    -> ``--eval-every must be ...``; one about the schedule is prefixed ``--lr:``."""
    key = message.split(" ", 1)[0]
    if key in OPTIONS:
        return "--" + key.replace("_", "-") + message[len(key) :]
    if message.startswith("cannot read the learning-rate schedule"):
        return "--lr: " + message
    return message
