"""Words, vocabulary, split and examples: the lecture's, exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest

import makemore_cpp as mm


def lecture_build_dataset(words, stoi, block_size):
    """The lecture's build_dataset, verbatim but for torch.tensor."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return np.array(X).reshape(-1, block_size), np.array(Y)


def test_bundled_names():
    words = mm.load_names()
    assert len(words) == 29910
    assert len(set(words)) == len(words)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)
    assert words[:3] == ["emma", "liam", "olivia"]  # most common first
    assert len(mm.Vocab.from_words(words)) == 27


def test_vocab_is_the_lectures():
    words = ["emma", "olivia", "ava"]
    vocab = mm.Vocab.from_words(words)
    chars = sorted(set("".join(words)))
    assert vocab.stoi == {".": 0, **{s: i + 1 for i, s in enumerate(chars)}}
    assert vocab.itos == {i: s for s, i in vocab.stoi.items()}
    assert len(vocab) == len(chars) + 1
    assert vocab.decode(vocab.encode("olivia")) == "olivia"
    assert vocab.decode([0]) == "."
    with pytest.raises(ValueError, match="'z'.*position 2"):
        vocab.encode("emz")
    with pytest.raises(ValueError, match="reserved"):
        mm.Vocab.from_words(["a.b"])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.decode([99])


def test_split_is_random_seed_42_shuffle():
    words = [f"w{i}" for i in range(1001)]
    tr, dev, te = mm.split_words(words)
    expected = list(words)
    random.seed(42)
    random.shuffle(expected)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    assert (tr, dev, te) == (expected[:n1], expected[n1:n2], expected[n2:])
    assert words == [f"w{i}" for i in range(1001)]  # the input is not shuffled in place
    a, b = mm.split_words(words, (0.5, 0.5), seed=None)
    assert a + b == words and len(a) == 500
    with pytest.raises(ValueError, match="sum to 1"):
        mm.split_words(words, (0.5, 0.4))


@pytest.mark.parametrize("block_size", [1, 3, 8])
def test_build_dataset_is_the_lectures(block_size):
    words = mm.load_names()[:500] + ["a", "zz"]
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, block_size)
    eX, eY = lecture_build_dataset(words, vocab.stoi, block_size)
    assert X.dtype == np.int32 and Y.dtype == np.int32 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, eX)
    np.testing.assert_array_equal(Y, eY)
    X0, Y0 = mm.build_dataset([], vocab, block_size)
    assert X0.shape == (0, block_size) and Y0.shape == (0,)


@pytest.mark.parametrize("seed", range(6))
def test_build_dataset_random_words_are_the_lectures(seed):
    """Fresh random words over characters of 1 to 4 bytes in UTF-8, empty words among them, and
    vocabularies in no particular order: the same examples as the lecture's loop."""
    rng = random.Random(seed)
    alphabet = "abz.\u00e9\u4e2d\U0001f600"  # '.' in a word encodes as 0, as in the lecture
    words = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7))) for _ in range(rng.randint(1, 60))
    ]
    chars = sorted(set("".join(words)) - {"."} | {"q"})
    rng.shuffle(chars)
    vocab = mm.Vocab(chars)
    block_size = rng.randint(1, 6)
    X, Y = mm.build_dataset(words, vocab, block_size)
    eX, eY = lecture_build_dataset(words, vocab.stoi, block_size)
    np.testing.assert_array_equal(X, eX)
    np.testing.assert_array_equal(Y, eY)


def test_build_dataset_names_the_first_unknown_character():
    vocab = mm.Vocab("ab")
    for words, message in (
        (["ab", "ba", "abc", "x"], "'c' at position 2 of 'abc'"),
        (["a", "\U0001f600"], "at position 0 of"),
        (["a", "\ud800b"], "at position 0 of"),
    ):  # a lone surrogate: encoded word by word
        with pytest.raises(ValueError, match=message):
            mm.build_dataset(words, vocab, 3)
    with pytest.raises(TypeError):
        mm.build_dataset(["ab", 5], vocab, 3)


def test_build_dataset_uses_a_vocab_subclass_encode():
    class Folded(mm.Vocab):
        def encode(self, s):
            return super().encode(s.replace("b", "a"))

    vocab = Folded("ab")
    X, Y = mm.build_dataset(["ab", "b"], vocab, 2)
    assert Y.tolist() == [1, 1, 0, 1, 0]


def test_lecture_split_sizes(lecture_words):
    assert len(lecture_words) == 32033
    vocab = mm.Vocab.from_words(lecture_words)
    sizes = [len(mm.build_dataset(part, vocab, 3)[0]) for part in mm.split_words(lecture_words)]
    assert sizes == [182625, 22655, 22866]
