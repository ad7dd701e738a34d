"""The benchmark's data: the lecture's names and split."""

from __future__ import annotations

import os

import makemore_cpp as mm


def bench_words(quick: bool) -> tuple[list[str], str]:
    """The lecture's names (../shared/data/names.txt beside the project, when present), else the
    bundled names; a few thousand of them when quick."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(here, "..", "..", "..", "..", "shared", "data", "names.txt"),
        os.path.join(os.getcwd(), "..", "shared", "data", "names.txt"),
    ]
    path = next((p for p in candidates if os.path.exists(p)), None)
    words = mm.load_words(path) if path else mm.load_names()
    return (words[:3000] if quick else words), ("../shared/data/names.txt" if path else "bundled names")


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
