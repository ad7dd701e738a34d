"""The benchmark's data: the lecture's names and split."""

from __future__ import annotations

import os

import makemore_cpp as mm


def names_path() -> str | None:
    """The lecture's names: shared/data/names.txt in the nearest folder above the project root (its
    ../shared; a worktree's is further up) or above the working directory; None without one."""
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))  # the project root
    for start in (os.path.dirname(here), os.path.abspath(os.getcwd())):
        d = start
        while True:
            p = os.path.join(d, "shared", "data", "names.txt")
            if os.path.exists(p):
                return p
            if os.path.dirname(d) == d:
                break
            d = os.path.dirname(d)
    return None


def bench_words(quick: bool) -> tuple[list[str], str]:
    """The lecture's names (names_path) when present, else the bundled names; a few thousand of
    them when quick. Returns (words, where they came from)."""
    path = names_path()
    words = mm.load_words(path) if path else mm.load_names()
    return (words[:3000] if quick else words), (os.path.relpath(path) if path else "bundled names")


def data(block_size: int, quick: bool):
    """The training split of bench_words, as (vocab, X, Y, source)."""
    words, source = bench_words(quick)
    vocab = mm.Vocab.from_words(words)
    tr, _, _ = mm.split_words(words)
    X, Y = mm.build_dataset(tr, vocab, block_size)
    return vocab, X, Y, source


def splits(block_size: int, quick: bool):
    """The lecture's split of bench_words as {"train": (X, Y), "dev": (X, Y)}, with (vocab, source)."""
    words, source = bench_words(quick)
    vocab = mm.Vocab.from_words(words)
    tr, dev, _ = mm.split_words(words)
    return (
        {
            "train": mm.build_dataset(tr, vocab, block_size),
            "dev": mm.build_dataset(dev, vocab, block_size),
        },
        vocab,
        source,
    )
