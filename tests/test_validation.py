"""Validation at the boundary: every public function refuses bad arguments before anything reaches
the core, with the documented exception (TypeError, ValueError, IndexError, MemoryError) and a
message naming the argument, what was expected and what was given; and a refused call leaves the
model's parameters exactly as they were."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import _validate
from makemore_cpp import reference as ref

V, T, E, H = 27, 3, 4, 16
N = 50


def make_model(dtype: str = "float32", **kw) -> mm.MLP:
    return mm.MLP(
        kw.pop("vocab", V),
        block_size=kw.pop("block_size", T),
        n_embd=E,
        n_hidden=kw.pop("n_hidden", H),
        seed=1,
        dtype=dtype,
        **kw,
    )


def data(n: int = N, block_size: int = T, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (n, block_size)).astype(np.int64), rng.integers(0, V, n).astype(np.int64)


def snapshot(model: mm.MLP) -> dict[str, bytes]:
    return {k: a.tobytes() for k, a in model.get_params().items()}


X0, Y0 = data()
BIG = 2**32 + 5  # beyond int32: must not wrap around to a valid id


def idx(x):
    """Build X with one entry replaced (for the index cases)."""
    X = X0.copy()
    X[7, 2] = x
    return X


# (id, call(model), exception type, regular expressions the message must match)
BAD_CALLS = [
    # ---- rows: dtypes, shapes, ranges
    ("X float", lambda m: m.loss(X0.astype(float), Y0), TypeError, [r"\bX\b", "integers", "float64"]),
    ("X bool", lambda m: m.loss(X0 > 5, Y0), TypeError, [r"\bX\b", "integers", "bool"]),
    (
        "X timedelta",
        lambda m: m.loss(X0.astype("m8[s]"), Y0),
        TypeError,
        [r"\bX\b", "integers", "timedelta64"],
    ),
    ("X complex", lambda m: m.loss(X0.astype(complex), Y0), TypeError, [r"\bX\b", "complex"]),
    ("X str", lambda m: m.loss("abc", Y0), TypeError, [r"\bX\b", "integers"]),
    ("X None", lambda m: m.loss(None, Y0), TypeError, [r"\bX\b", "object"]),
    ("X object", lambda m: m.loss(X0.astype(object), Y0), TypeError, [r"\bX\b", "object"]),
    ("X python ints beyond int64", lambda m: m.loss([[2**70, 0, 0]], [0]), TypeError, [r"\bX\b"]),
    ("X ragged", lambda m: m.loss([[1, 2, 3], [1, 2]], [1, 2]), ValueError, [r"\bX\b", "list"]),
    ("X 1-d", lambda m: m.loss(X0[:, 0], Y0), ValueError, [r"\bX\b", r"\(N, 3\)", r"\(50,\)"]),
    ("X wrong width", lambda m: m.loss(data(N, 4)[0], Y0), ValueError, [r"\bX\b", r"\(N, 3\)", r"\(50, 4\)"]),
    ("X 3-d", lambda m: m.loss(X0[:, :, None], Y0), ValueError, [r"\bX\b", r"\(N, 3\)", r"\(50, 3, 1\)"]),
    ("X = V", lambda m: m.loss(idx(V), Y0), IndexError, [r"X\[7, 2\] = 27", "0 <= X < 27", "vocabulary"]),
    ("X negative", lambda m: m.loss(idx(-1), Y0), IndexError, [r"X\[7, 2\] = -1", "0 <= X < 27"]),
    ("X beyond int32", lambda m: m.loss(idx(BIG), Y0), IndexError, [rf"X\[7, 2\] = {BIG}\b"]),
    ("X -2**31", lambda m: m.loss(idx(-(2**31)), Y0), IndexError, [rf"= {-(2**31)}\b"]),
    (
        "X uint64 2**63",
        lambda m: m.loss(np.where(idx(-1) < 0, np.uint64(2**63), X0.astype(np.uint64)), Y0),
        IndexError,
        [rf"X\[7, 2\] = {2**63}\b", "0 <= X < 27"],
    ),
    ("X int8 negative", lambda m: m.loss(idx(-5).astype(np.int8), Y0), IndexError, [r"= -5\b"]),
    ("X big-endian negative", lambda m: m.loss(idx(-3).astype(">i2"), Y0), IndexError, [r"X\[7, 2\] = -3\b"]),
    (
        "Y int64 negative",
        lambda m: m.loss(X0, np.where(np.arange(N) == 5, -7, Y0).astype(np.int64)),
        IndexError,
        [r"Y\[5\] = -7\b"],
    ),
    (
        "Y beyond int32",
        lambda m: m.loss(X0, np.where(np.arange(N) == 3, BIG, Y0)),
        IndexError,
        [rf"Y\[3\] = {BIG}", "0 <= Y < 27"],
    ),
    ("Y 2-d", lambda m: m.loss(X0, Y0[:, None]), ValueError, [r"\bY\b", r"\(N,\)", r"\(50, 1\)"]),
    ("Y float", lambda m: m.loss(X0, Y0 + 0.0), TypeError, [r"\bY\b", "float64"]),
    (
        "X and Y lengths",
        lambda m: m.loss(X0, Y0[:-1]),
        ValueError,
        [r"\bX\b", r"\bY\b", "50 rows", "49 targets"],
    ),
    ("X and Y empty", lambda m: m.loss(X0[:0], Y0[:0]), ValueError, ["empty"]),
    ("loss_and_grad X = V", lambda m: m.loss_and_grad(idx(V), Y0), IndexError, [r"X\[7, 2\] = 27"]),
    ("loss_and_grad empty", lambda m: m.loss_and_grad(X0[:0], Y0[:0]), ValueError, ["empty"]),
    ("logits X beyond int32", lambda m: m.logits(idx(BIG)), IndexError, [rf"X\[7, 2\] = {BIG}"]),
    ("logits X float", lambda m: m.logits(X0 * 1.0), TypeError, [r"\bX\b", "float64"]),
    # ---- sampling
    (
        "temperature nan",
        lambda m: m.sample_ids(3, temperature=float("nan")),
        ValueError,
        ["temperature", "finite", "nan"],
    ),
    (
        "temperature inf",
        lambda m: m.sample_ids(3, temperature=float("inf")),
        ValueError,
        ["temperature", "finite", "inf"],
    ),
    (
        "temperature < 0",
        lambda m: m.sample_ids(3, temperature=-0.5),
        ValueError,
        ["temperature", ">= 0", "-0.5"],
    ),
    (
        "temperature str",
        lambda m: m.sample_ids(3, temperature="1"),
        TypeError,
        ["temperature", "number", "'1'"],
    ),
    ("temperature complex", lambda m: m.sample_ids(3, temperature=1j), TypeError, ["temperature", "1j"]),
    ("n negative", lambda m: m.sample_ids(-1), ValueError, [r"\bn\b", ">= 0", "-1"]),
    ("n float", lambda m: m.sample_ids(2.0), TypeError, [r"\bn\b", "integer", "2.0"]),
    ("n bool", lambda m: m.sample_ids(True), TypeError, [r"\bn\b", "integer", "True"]),
    ("top_k 0", lambda m: m.sample_ids(3, top_k=0), ValueError, ["top_k", ">= 1", "0"]),
    ("top_k float", lambda m: m.sample_ids(3, top_k=2.5), TypeError, ["top_k", "integer", "2.5"]),
    ("max_len 0", lambda m: m.sample_ids(3, max_len=0), ValueError, ["max_len", ">= 1", "0"]),
    (
        "max_len 2**20",
        lambda m: m.sample_ids(3, max_len=2**20),
        ValueError,
        ["max_len", "<= 1048575", "1048576"],
    ),
    ("seed negative", lambda m: m.sample_ids(3, seed=-1), ValueError, ["seed", ">= 0", "-1"]),
    ("seed 2**64", lambda m: m.sample_ids(3, seed=2**64), ValueError, ["seed", str(2**64 - 1), str(2**64)]),
    ("seed float", lambda m: m.sample_ids(3, seed=1.0), TypeError, ["seed", "integer", "1.0"]),
    ("prefix floats", lambda m: m.sample_ids(3, prefix=[1.5]), TypeError, ["prefix", "integers", "float64"]),
    (
        "prefix str to sample_ids",
        lambda m: m.sample_ids(3, prefix="ab"),
        TypeError,
        ["prefix", "str", "'ab'"],
    ),
    (
        "prefix beyond int32",
        lambda m: m.sample_ids(3, prefix=[1, BIG]),
        IndexError,
        [rf"prefix\[1\] = {BIG}"],
    ),
    ("prefix holds 0", lambda m: m.sample_ids(3, prefix=[1, 0]), ValueError, ["prefix", "0"]),
    (
        "prefix longer than max_len",
        lambda m: m.sample_ids(3, prefix=[1, 2, 3], max_len=2),
        ValueError,
        ["prefix", "3 characters", "max_len = 2"],
    ),
    ("sample without a Vocab", lambda m: m.sample(3), ValueError, ["Vocab", "sample_ids"]),
    # ---- training
    ("steps negative", lambda m: mm.train(m, X0, Y0, -1), ValueError, ["steps", ">= 0", "-1"]),
    ("steps float", lambda m: mm.train(m, X0, Y0, 10.0), TypeError, ["steps", "integer", "10.0"]),
    ("batch_size 0", lambda m: mm.train(m, X0, Y0, 5, batch_size=0), ValueError, ["batch_size", ">= 1", "0"]),
    (
        "batch_size 2**24 + 1",
        lambda m: mm.train(m, X0, Y0, 5, batch_size=2**24 + 1),
        ValueError,
        ["batch_size", str(2**24), str(2**24 + 1)],
    ),
    (
        "lr nan",
        lambda m: mm.train(m, X0, Y0, 5, lr=float("nan")),
        ValueError,
        ["lr", "finite", "step 0", "nan"],
    ),
    ("lr inf", lambda m: mm.train(m, X0, Y0, 5, lr=float("inf")), ValueError, ["lr", "finite", "inf"]),
    ("lr negative", lambda m: mm.train(m, X0, Y0, 5, lr=-0.1), ValueError, ["lr", ">= 0", "-0.1"]),
    ("lr str", lambda m: mm.train(m, X0, Y0, 5, lr="0.1"), TypeError, ["lr", "number", "'0.1'"]),
    ("lr bool", lambda m: mm.train(m, X0, Y0, 5, lr=True), TypeError, ["lr", "bool"]),
    ("lr complex", lambda m: mm.train(m, X0, Y0, 5, lr=0.1 + 0j), TypeError, ["lr", "complex"]),
    (
        "lr array too short",
        lambda m: mm.train(m, X0, Y0, 5, lr=[0.1] * 4),
        ValueError,
        ["lr", "steps = 5", r"\(4,\)"],
    ),
    (
        "lr array nan at step 3",
        lambda m: mm.train(m, X0, Y0, 5, lr=[0.1, 0.1, 0.1, np.nan, 0.1]),
        ValueError,
        ["lr", "step 3", "nan"],
    ),
    (
        "lr array of str",
        lambda m: mm.train(m, X0, Y0, 2, lr=np.array(["a", "b"])),
        TypeError,
        ["lr", "dtype"],
    ),
    (
        "lr callable nan at step 4",
        lambda m: mm.train(m, X0, Y0, 6, lr=lambda s: 0.1 if s != 4 else float("nan")),
        ValueError,
        ["lr", "step 4", "nan"],
    ),
    (
        "lr callable returns str",
        lambda m: mm.train(m, X0, Y0, 3, lr=lambda s: "fast"),
        TypeError,
        [r"lr\(0\)", "real number", "'fast'"],
    ),
    (
        "lr callable returns a bool at step 2",
        lambda m: mm.train(m, X0, Y0, 4, lr=lambda s: 0.1 if s != 2 else True),
        TypeError,
        [r"lr\(2\)", "real number", "bool True"],
    ),
    (
        "batch_indices beyond int32",
        lambda m: mm.train(m, X0, Y0, 2, batch_size=2, batch_indices=[[0, BIG], [1, 2]]),
        IndexError,
        [rf"batch_indices\[0, 1\] = {BIG}", "0 <= batch_indices < 50", "rows in X"],
    ),
    (
        "batch_indices = len(X)",
        lambda m: mm.train(m, X0, Y0, 2, batch_size=2, batch_indices=[[0, 1], [N, 2]]),
        IndexError,
        [r"batch_indices\[1, 0\] = 50"],
    ),
    (
        "batch_indices negative",
        lambda m: mm.train(m, X0, Y0, 2, batch_size=2, batch_indices=[[0, 1], [2, -3]]),
        IndexError,
        [r"batch_indices\[1, 1\] = -3"],
    ),
    (
        "batch_indices uint64 2**64-1",
        lambda m: mm.train(m, X0, Y0, 1, batch_size=1, batch_indices=np.array([[2**64 - 1]], np.uint64)),
        IndexError,
        [rf"= {2**64 - 1}\b"],
    ),
    (
        "batch_indices shape",
        lambda m: mm.train(m, X0, Y0, 2, batch_size=2, batch_indices=np.zeros((2, 3), int)),
        ValueError,
        ["batch_indices", r"\(2, 2\)", r"\(2, 3\)"],
    ),
    (
        "batch_indices float",
        lambda m: mm.train(m, X0, Y0, 2, batch_size=2, batch_indices=np.zeros((2, 2))),
        TypeError,
        ["batch_indices", "float64"],
    ),
    ("momentum 1", lambda m: mm.train(m, X0, Y0, 5, momentum=1.0), ValueError, ["momentum", "< 1.0", "1.0"]),
    (
        "momentum nan",
        lambda m: mm.train(m, X0, Y0, 5, momentum=float("nan")),
        ValueError,
        ["momentum", "finite"],
    ),
    (
        "nesterov without momentum",
        lambda m: mm.train(m, X0, Y0, 5, nesterov=True),
        ValueError,
        ["nesterov", "momentum"],
    ),
    (
        "nesterov str",
        lambda m: mm.train(m, X0, Y0, 5, momentum=0.9, nesterov="yes"),
        TypeError,
        ["nesterov", "bool"],
    ),
    (
        "eps 0",
        lambda m: mm.train(m, X0, Y0, 5, optimizer="adamw", eps=0.0),
        ValueError,
        ["eps", "> 0.0", "0.0"],
    ),
    (
        "betas 1",
        lambda m: mm.train(m, X0, Y0, 5, optimizer="adamw", betas=(1.0, 0.9)),
        ValueError,
        [r"betas\[0\]", "< 1.0"],
    ),
    (
        "betas triple",
        lambda m: mm.train(m, X0, Y0, 5, optimizer="adamw", betas=(0.9, 0.9, 0.9)),
        ValueError,
        ["betas", "pair"],
    ),
    (
        "weight_decay inf",
        lambda m: mm.train(m, X0, Y0, 5, weight_decay=float("inf")),
        ValueError,
        ["weight_decay", "finite"],
    ),
    ("dropout 1", lambda m: mm.train(m, X0, Y0, 5, dropout=1.0), ValueError, ["dropout", "< 1.0", "1.0"]),
    (
        "optimizer adam",
        lambda m: mm.train(m, X0, Y0, 5, optimizer="adam"),
        ValueError,
        ["optimizer", "adamw", "'adam'"],
    ),
    ("optimizer list", lambda m: mm.train(m, X0, Y0, 5, optimizer=["sgd"]), ValueError, ["optimizer"]),
    (
        "momentum with adamw",
        lambda m: mm.train(m, X0, Y0, 5, optimizer="adamw", momentum=0.9),
        ValueError,
        ["momentum", "betas"],
    ),
    (
        "on_divergence",
        lambda m: mm.train(m, X0, Y0, 5, on_divergence="ignore"),
        ValueError,
        ["on_divergence", "'ignore'"],
    ),
    ("X_val alone", lambda m: mm.train(m, X0, Y0, 5, X_val=X0), ValueError, ["X_val", "Y_val"]),
    (
        "X_val out of range",
        lambda m: mm.train(m, X0, Y0, 5, X_val=idx(99), Y_val=Y0),
        IndexError,
        [r"X_val\[7, 2\] = 99"],
    ),
    (
        "eval_every 0",
        lambda m: mm.train(m, X0, Y0, 5, X_val=X0, Y_val=Y0, eval_every=0),
        ValueError,
        ["eval_every", ">= 1"],
    ),
    (
        "keep_best without X_val",
        lambda m: mm.train(m, X0, Y0, 5, keep_best=True),
        ValueError,
        ["keep_best", "X_val"],
    ),
    ("train X out of range", lambda m: mm.train(m, idx(BIG), Y0, 5), IndexError, [rf"X\[7, 2\] = {BIG}"]),
    ("train on no rows", lambda m: mm.train(m, X0[:0], Y0[:0], 5), ValueError, ["empty"]),
    (
        "state of another model",
        lambda m: mm.train(m, X0, Y0, 1, state=mm.train(make_model(), X0, Y0, 0).state),
        ValueError,
        ["state", "another model"],
    ),
    (
        "state with other settings",
        lambda m: mm.train(m, X0, Y0, 1, batch_size=8, state=mm.train(m, X0, Y0, 0).state),
        ValueError,
        ["batch_size=32", "this call: 8"],
    ),
    (
        "state not a TrainState",
        lambda m: mm.train(m, X0, Y0, 1, state={}),
        TypeError,
        ["state", "TrainState"],
    ),
    ("model not an MLP", lambda m: mm.train("model", X0, Y0, 1), TypeError, ["model", "MLP", "str"]),
    # ---- parameters
    (
        "set_params missing key",
        lambda m: m.set_params({k: a for k, a in m.get_params().items() if k != "b2"}),
        ValueError,
        ["keys", r"missing \['b2'\]"],
    ),
    (
        "set_params extra key",
        lambda m: m.set_params({**m.get_params(), "W3": np.zeros(3)}),
        ValueError,
        [r"unexpected \['W3'\]"],
    ),
    (
        "set_params shape",
        lambda m: m.set_params({**m.get_params(), "W1": np.zeros((H, T * E))}),
        ValueError,
        [r"params\['W1'\]", r"\(12, 16\)", r"\(16, 12\)"],
    ),
    (
        "set_params nan (last array)",
        lambda m: m.set_params({**m.get_params(), "b2": np.full(V, np.nan)}),
        ValueError,
        [r"params\['b2'\]", "finite", "nan", r"\(0,\)"],
    ),
    (
        "set_params too large for the dtype (1e300 in float32, 1e310 in float64)",
        lambda m: m.set_params(
            {**m.get_params(), "C": np.full((V, E), 1e300 if m.dtype == "float32" else 1e310)}
        ),
        ValueError,
        [r"params\['C'\]", "finite in float(32|64)", "inf"],
    ),
    (
        "set_params bool",
        lambda m: m.set_params({**m.get_params(), "C": np.ones((V, E), bool)}),
        TypeError,
        [r"params\['C'\]", "bool"],
    ),
    (
        "set_params complex",
        lambda m: m.set_params({**m.get_params(), "C": np.ones((V, E), complex)}),
        TypeError,
        [r"params\['C'\]", "complex128"],
    ),
    (
        "set_params timedelta",
        lambda m: m.set_params({**m.get_params(), "C": np.ones((V, E), "m8[s]")}),
        TypeError,
        [r"params\['C'\]", "timedelta64"],
    ),
    (
        "set_params str",
        lambda m: m.set_params({**m.get_params(), "C": np.full((V, E), "1")}),
        TypeError,
        [r"params\['C'\]", "<U1"],
    ),
    (
        "set_params not a mapping",
        lambda m: m.set_params(list(m.get_params().values())),
        TypeError,
        ["params", "mapping", "list"],
    ),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_call_is_refused_and_changes_nothing(case, dtype):
    name, call, exc, patterns = case
    model = make_model(dtype)
    before = snapshot(model)
    with pytest.raises(exc) as info:
        call(model)
    assert type(info.value) is exc, type(info.value)
    message = str(info.value)
    for p in patterns:
        assert re.search(p, message), (name, p, message)
    assert snapshot(model) == before, f"{name}: the refused call changed the parameters"
    # and the model still works
    assert np.isfinite(model.loss(X0, Y0))


def test_messages_name_argument_expected_and_actual():
    """The shape of every message from the shared checks: argument, expectation, the given value."""
    with pytest.raises(ValueError, match=r"^block_size must be >= 1, got 0$"):
        mm.MLP(V, block_size=0)
    with pytest.raises(ValueError, match=r"^n_embd must be <= 1048576, got 1048577$"):
        mm.MLP(V, n_embd=2**20 + 1)
    with pytest.raises(TypeError, match=r"^vocab must be an integer, got float 27.0$"):
        mm.MLP(27.0)
    with pytest.raises(ValueError, match=r"^temperature must be finite, got nan$"):
        make_model().sample_ids(1, temperature=float("nan"))


# ------------------------------------------------------------------------------------ constructor

BAD_MODELS = [
    (dict(vocab=0), ValueError, ["vocab", ">= 1", "0"]),
    (dict(vocab=True), TypeError, ["vocab", "bool"]),
    (dict(vocab="abc"), TypeError, ["vocab", "str"]),
    (dict(vocab=2**31), ValueError, ["vocab", str(2**31 - 1), str(2**31)]),
    (dict(block_size=0), ValueError, ["block_size", ">= 1"]),
    (dict(block_size=2**16 + 1), ValueError, ["block_size", "65536"]),
    (dict(n_embd=-3), ValueError, ["n_embd", ">= 1", "-3"]),
    (dict(n_embd=10.0), TypeError, ["n_embd", "integer", "10.0"]),
    (dict(n_hidden=0), ValueError, ["n_hidden", ">= 1", "0"]),
    (dict(n_hidden=()), ValueError, ["n_hidden", "1 to 8", r"\(\)"]),
    (dict(n_hidden=(4,) * 9), ValueError, ["n_hidden", "1 to 8"]),
    (dict(n_hidden=(4, 0)), ValueError, ["n_hidden", ">= 1"]),
    (dict(n_hidden=200.0), TypeError, ["n_hidden", "integer", "200.0"]),
    (dict(n_hidden="200"), TypeError, ["n_hidden", "integer"]),
    (dict(init="xavier"), ValueError, ["init", "kaiming", "lecture", "'xavier'"]),
    (dict(init=["lecture"]), ValueError, ["init", r"\['lecture'\]"]),
    (dict(dtype="float16"), ValueError, ["dtype", "'float32' or 'float64'", "float16"]),
    (dict(dtype="int32"), ValueError, ["dtype", "int32"]),
    (dict(dtype=None), ValueError, ["dtype", "None"]),
    (dict(dtype="nonsense"), ValueError, ["dtype", "nonsense"]),
    (dict(seed=-1), ValueError, ["seed", ">= 0"]),
    (dict(seed="0"), TypeError, ["seed", "integer"]),
]


@pytest.mark.parametrize("kwargs, exc, patterns", BAD_MODELS, ids=[str(k) for k, _, _ in BAD_MODELS])
def test_bad_model_arguments(kwargs, exc, patterns):
    kwargs = {"vocab": V, **kwargs}
    with pytest.raises(exc) as info:
        mm.MLP(**kwargs)
    for p in patterns:
        assert re.search(p, str(info.value)), (kwargs, p, str(info.value))


def test_accepted_argument_types():
    """What is accepted is converted without surprises: NumPy integers for sizes, any integer
    dtype, order and strides for ids, the dtype given as a NumPy type, widths as any sequence."""
    m = mm.MLP(
        np.int64(V),
        block_size=np.int32(T),
        n_embd=np.uint8(E),
        n_hidden=np.array([H, 5]),
        dtype=np.float64,
        seed=np.uint64(2**64 - 1),
    )
    assert (m.vocab_size, m.block_size, m.n_embd, m.n_hidden, m.dtype) == (V, T, E, (H, 5), "float64")
    assert all(type(x) is int for x in (m.vocab_size, m.block_size, m.n_embd, *m.n_hidden, m.seed))
    ref = m.loss(X0, Y0)
    for X in (
        X0.astype(np.uint8),
        X0.astype(">i2"),
        np.asfortranarray(X0),
        X0.tolist(),
        X0.astype(np.uint64),
    ):
        assert m.loss(X, Y0) == ref
    assert m.sample_ids(2, top_k=np.int64(3), seed=np.uint64(5), max_len=np.int16(9)).shape == (2, 9)
    h = mm.train(m, X0, Y0, 3, batch_size=np.int64(4), lr=np.float32(0.1), seed=np.int8(3))
    assert h.steps == 3


def test_top_k_beyond_the_vocabulary_is_no_cut():
    """top_k >= the vocabulary size keeps every character; huge values (beyond int32) included,
    which used to reach the binding and fail there with an unreadable TypeError."""
    m = make_model("float64")
    full = m.sample_ids(20, seed=3)
    for k in (V, V + 1, 2**31, 2**40):
        assert np.array_equal(m.sample_ids(20, seed=3, top_k=k), full)


def test_prefix_takes_any_integer_sequence():
    m = mm.MLP(mm.Vocab.from_words(["abc"]), 2, 3, 8, seed=0)
    want = m.sample_ids(5, prefix=[1, 2], seed=1)
    for prefix in ((1, 2), np.array([1, 2], np.uint8), np.array([1, 2], ">i8"), [np.int64(1), np.int32(2)]):
        assert np.array_equal(m.sample_ids(5, prefix=prefix, seed=1), want)
    assert all(s.startswith("ab") for s in m.sample(5, prefix="ab", seed=1))
    with pytest.raises(ValueError, match=r"'d' at position 1 of 'ad' is not in the vocabulary"):
        m.sample(2, prefix="ad")
    with pytest.raises(ValueError, match=r"prefix 'a\.' contains '\.'"):
        m.sample(2, prefix="a.")
    with pytest.raises(TypeError, match="prefix must be a str, got list"):
        m.sample(2, prefix=[1])


def test_lr_accepts_every_real_number_type():
    from fractions import Fraction

    base = make_model("float64")
    ref = None
    for lr in (
        0.125,
        np.float32(0.125),
        np.float64(0.125),
        Fraction(1, 8),
        [0.125] * 4,
        np.full(4, 0.125, np.float32),
        lambda s: 0.125,
        lambda s: np.float32(0.125),
        lambda s: Fraction(1, 8),
    ):
        m = base.copy()
        h = mm.train(m, X0, Y0, 4, batch_size=8, lr=lr)
        out = snapshot(m), h.loss.tolist()
        assert ref is None or out == ref, lr
        ref = out


def test_batch_size_times_block_size_fits_int32():
    """The core indexes a batch's ids with 32-bit integers: batch_size * block_size must fit, or
    the kernels would overflow. Refused before any memory is allocated."""
    m = mm.MLP(V, block_size=2**16, n_embd=1, n_hidden=1)
    X = np.zeros((1, 2**16), np.int32)
    before = snapshot(m)
    with pytest.raises(
        ValueError, match=r"batch_size \* block_size must be <= 2147483647, got 32768 \* 65536"
    ):
        mm.train(m, X, np.zeros(1, np.int32), 1, batch_size=2**15)
    assert snapshot(m) == before
    assert mm.train(m, X, np.zeros(1, np.int32), 1, batch_size=2).steps == 1


def test_loss_and_grad_refuses_more_ids_than_int32_before_copying(monkeypatch):
    # Views of 2**31 ids that take no memory (their contiguous int32 copies would take 8 GiB, so the
    # conversion is skipped here): the limit is on the validated arrays' size.
    strided = np.lib.stride_tricks.as_strided
    X = strided(np.zeros(1, np.int32), shape=(2**29, 4), strides=(0, 0))
    Y = strided(np.zeros(1, np.int32), shape=(2**29,), strides=(0,))
    m4 = mm.MLP(V, block_size=4, n_embd=1, n_hidden=1)
    monkeypatch.setattr(_validate, "index_array", lambda a, *args, **kw: a)
    with pytest.raises(ValueError, match=r"at most 2147483647 ids.*536870912 x 4"):
        m4.loss_and_grad(X, Y)


# ------------------------------------------------------------------------------------ memory


def test_model_too_large_for_memory_is_a_memory_error():
    before = set(mm.MLP(V).param_names)
    for kw in (
        dict(vocab=10**6, n_embd=10**5, n_hidden=10**5),
        dict(vocab=2**31 - 1, block_size=1, n_embd=1, n_hidden=1),
        dict(vocab=V, block_size=2**16, n_embd=2**20, n_hidden=2**20),
        dict(vocab=V, n_hidden=(2**20,) * 8),
    ):
        with pytest.raises(
            MemoryError, match=r" needs [\d.]+ [GTPE]iB for its parameters alone; this machine "
        ):
            mm.MLP(**kw)
    assert before == {"C", "W1", "b1", "W2", "b2"}


MEMORY_CHILD = r"""
import json, os, resource, sys
import numpy as np
import makemore_cpp as mm

asan = "asan" in os.environ.get("LD_PRELOAD", "")
if not asan:  # cap the address space, so the refusals do not depend on the machine's overcommit policy
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY))
out = {}

def attempt(name, f):
    try:
        f()
        out[name] = "ok"
    except MemoryError as e:
        out[name] = "MemoryError"
    except ValueError as e:
        out[name] = "ValueError"

mm.set_num_threads(2)
X = np.zeros((4, 3), np.int32); Y = np.zeros(4, np.int32)
m = mm.MLP(27, 3, 10, 4000, seed=0)
before = {k: a.tobytes() for k, a in m.get_params().items()}
# the training workspace of a batch of 2**24 rows: hundreds of GiB
attempt("train huge batch", lambda: mm.train(m, X, Y, 1, batch_size=2**24))
attempt("train huge batch adamw dropout",
        lambda: mm.train(m, X, Y, 1, batch_size=2**24, optimizer="adamw", dropout=0.5))
# the evaluation tables of a long context over a large vocabulary: block_size * V * n_hidden numbers
big = mm.MLP(2**20, block_size=2**12, n_embd=1, n_hidden=16)
Xb = np.zeros((1, 2**12), np.int32)
attempt("loss huge tables", lambda: big.loss(Xb, np.zeros(1, np.int32)))
attempt("logits huge tables", lambda: big.logits(Xb))
attempt("sample huge tables", lambda: big.sample_ids(1))
attempt("loss_and_grad huge rows",
        lambda: m.loss_and_grad(np.zeros((2**22, 3), np.int32), np.zeros(2**22, np.int32)))
out["untouched"] = before == {k: a.tobytes() for k, a in m.get_params().items()}
out["usable"] = float(mm.train(m, X, Y, 2, batch_size=4).loss[-1])
print(json.dumps(out))
"""


def child_env() -> dict:
    env = dict(os.environ)
    src = str(pathlib.Path(mm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_allocations_that_fail_are_memory_errors_not_aborts():
    """Sizes the parameter check lets through but whose scratch memory cannot be had: the core's
    failed allocation surfaces as MemoryError (the process lives on), the model is untouched."""
    p = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD], env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, (p.returncode, p.stderr[-3000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for name in (
        "train huge batch",
        "train huge batch adamw dropout",
        "loss huge tables",
        "logits huge tables",
        "sample huge tables",
        "loss_and_grad huge rows",
    ):
        assert out[name] in ("MemoryError", "ValueError"), (name, out)
    assert out["untouched"] is True
    assert np.isfinite(out["usable"])


# ------------------------------------------------------------------------------------ the rest of the API


def test_data_functions_refuse_bad_arguments():
    vocab = mm.Vocab.from_words(["abc"])
    with pytest.raises(TypeError, match=r"words must be a list of strings, got one str 'abc'"):
        mm.build_dataset("abc", vocab)
    with pytest.raises(TypeError, match="words must be a list of strings"):
        mm.Vocab.from_words("abc")
    with pytest.raises(TypeError, match="words must be a list of strings"):
        mm.split_words("abc")
    with pytest.raises(TypeError, match=r"words\[1\] is int, expected str"):
        mm.Vocab.from_words(["a", 1])
    with pytest.raises(ValueError, match=r"block_size must be a positive integer, got 0"):
        mm.build_dataset(["abc"], vocab, 0)
    with pytest.raises(ValueError, match=r"block_size must be a positive integer, got 2.0"):
        mm.build_dataset(["abc"], vocab, 2.0)
    with pytest.raises(TypeError, match="vocab must be a Vocab, got dict"):
        mm.build_dataset(["abc"], {"a": 1})
    with pytest.raises(ValueError, match=r"fractions must be non-negative and sum to 1, got \[nan, 1.0\]"):
        mm.split_words(["a"] * 10, (float("nan"), 1.0))
    with pytest.raises(TypeError, match=r"fractions must be a sequence of numbers, got 'ab'"):
        mm.split_words(["a"] * 10, "ab")
    with pytest.raises(TypeError, match="ids must be integers, got float 1.7"):
        vocab.decode([1.7])
    with pytest.raises(ValueError, match=r"id 4 is not in the vocabulary \(0 <= id < 4\)"):
        vocab.decode([4])
    assert vocab.decode(np.array([1, 2, 0], np.uint8)) == "ab."


def test_threads_and_instruction_sets():
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        mm.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        mm.set_num_threads(2.0)
    with pytest.raises(ValueError, match="instruction set 'sse9' is unknown or not supported"):
        mm.set_isa("sse9")
    n = mm.get_num_threads()
    mm.set_num_threads(np.int64(1))
    assert mm.get_num_threads() == 1
    mm.set_num_threads(n)


def test_validation_happens_once_at_the_boundary(monkeypatch):
    """Arguments are checked and converted once: the core receives C-contiguous int32 ids and is
    never called when a check fails (an id out of range in ids that are int32 already is the core's
    to find in loss and logits: test_int32_ids_out_of_range_are_found_by_the_core_and_named)."""
    m = make_model()
    seen = []
    real = m._m

    class Spy:
        def __getattr__(self, name):
            f = getattr(real, name)

            def wrapped(*args):
                seen.append(
                    (name, [(a.dtype.str, a.flags.c_contiguous) for a in args if isinstance(a, np.ndarray)])
                )
                return f(*args)

            return wrapped

    m._m = Spy()
    m.loss(np.asfortranarray(X0.astype(np.uint16)), Y0.astype(">i8"))
    assert seen and all(
        arrays == [("<i4", True), ("<i4", True)] for name, arrays in seen if name == "evaluate"
    )
    seen.clear()
    with pytest.raises(IndexError):
        m.loss(idx(BIG), Y0)
    with pytest.raises(ValueError):
        m.sample_ids(2, temperature=float("nan"))
    assert seen == []
    m._m = real


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "block_size", [3, 8], ids=["distinct contexts", "every row"]
)  # 27**8 contexts: every row
@pytest.mark.parametrize(
    "where, row, col, bad",
    [
        ("X", 0, 0, V),
        ("X", 69_999, 2, -1),
        ("X", 41_000, 1, 2**31 - 1),
        ("Y", 69_999, None, -(2**31)),
        ("Y", 35_123, None, V),
        ("logits X", 52_000, 0, 1000),
    ],
)
def test_int32_ids_out_of_range_are_found_by_the_core_and_named(
    isa, threads, block_size, where, row, col, bad
):
    """loss() and logits() send C-contiguous int32 ids to the core unchecked: the core checks them
    in the pass that reads them (on either thread's share of the rows, before using any as an
    index). The call then raises the same IndexError as for any other array, naming the entry, and
    changes nothing; with every id in range, the result is the one for the same ids as int64."""
    rng = np.random.default_rng(7)
    X = rng.integers(0, V, (70_000, block_size)).astype(np.int32)
    Y = rng.integers(0, V, 70_000).astype(np.int32)
    m = make_model(block_size=block_size)
    before, threads_before = snapshot(m), mm.get_num_threads()
    mm.set_num_threads(threads)
    try:
        assert m.loss(X, Y) == m.loss(X.astype(np.int64), Y.astype(np.int64))
        if where == "Y":
            Y[row] = bad
            pattern = rf"Y\[{row}\] = {bad}\b"
        else:
            X[row, col] = bad
            pattern = rf"X\[{row}, {col}\] = {bad}\b"
        with pytest.raises(IndexError, match=pattern):
            m.logits(X) if where == "logits X" else m.loss(X, Y)
    finally:
        mm.set_num_threads(threads_before)
    assert snapshot(m) == before


@pytest.mark.parametrize(
    "Y",
    [np.where(np.arange(N) == 3, -1, Y0), Y0[:-1], None, Y0 + 0.5],
    ids=["Y out of range", "Y too short", "Y None", "Y float"],
)
def test_an_int32_id_out_of_range_in_X_is_named_before_anything_wrong_with_Y(Y):
    """X's range is left to the core when X is int32, but its error comes first, as for any X."""
    X = idx(99).astype(np.int32)
    with pytest.raises(IndexError, match=r"X\[7, 2\] = 99\b"):
        make_model().loss(X, Y)


def test_an_int32_id_out_of_range_in_a_later_call_into_the_core_is_named():
    """loss() over more rows than one call into the core takes (2**18): an id out of range in the
    second call's rows is named like one in the first."""
    rng = np.random.default_rng(8)
    X = rng.integers(0, V, (300_000, T)).astype(np.int32)
    Y = rng.integers(0, V, 300_000).astype(np.int32)
    Y[299_999] = -7
    with pytest.raises(IndexError, match=r"Y\[299999\] = -7\b"):
        make_model().loss(X, Y)


# ------------------------------------------------------------------------------------ tiny temperatures


@pytest.mark.parametrize(
    "dtype, tiny",
    [("float64", 5e-324), ("float64", 1e-310), ("float32", 1e-39), ("float32", 1e-45), ("float32", 5e-324)],
)
def test_temperatures_whose_reciprocal_overflows_draw_the_most_likely_character(dtype, tiny):
    """The limit temperature -> 0 is the most likely character. Below 1/max(dtype), 1/temperature is
    +inf in the core's precision: the weights are then 1 at the largest logit and 0 elsewhere."""
    m = mm.MLP(27, 2, 3, 7, seed=1, dtype=dtype)
    greedy = m.sample_ids(20, seed=2, temperature=0, max_len=8)
    assert np.array_equal(m.sample_ids(20, seed=2, temperature=tiny, max_len=8), greedy)
    # just above the threshold the core's own arithmetic is fine, and also greedy here
    assert np.array_equal(
        m.sample_ids(20, seed=2, temperature=1e-30 if dtype == "float32" else 1e-300, max_len=8), greedy
    )


@pytest.mark.parametrize("dtype, tiny", [("float64", 1e-310), ("float32", 1e-39)])
def test_core_sampler_with_an_overflowing_reciprocal_temperature(dtype, tiny):
    """The core itself, given a temperature whose reciprocal overflows: its weights exp((l - max l) /
    temperature) take the exponent as 0 at the max (not 0 * inf = NaN, which made every character the
    last id), so the draws are the most likely characters, and the reference's."""
    m = mm.MLP(27, 2, 3, 7, seed=1, dtype=dtype)
    prefix = np.zeros(0, np.int32)
    got = m._m.sample(2, 0, 20, tiny, 0, prefix, 8, False)
    want = m._m.sample(2, 0, 20, 0.0, 0, prefix, 8, False)
    assert np.array_equal(got, want)
    # the reference, in float64 (where 1e-39 has a finite reciprocal), draws the same
    theirs = ref.sample(m.get_params(), 20, seed=2, temperature=tiny, max_len=8)
    assert [list(r[r > 0]) for r in got] == theirs


@pytest.mark.parametrize("call", ["loss", "loss_and_grad", "train"])
def test_missing_targets_are_named(call):
    """Y=None where targets are needed: a TypeError that names Y (found by the hypothesis campaign:
    it used to fail inside the package with "'NoneType' object is not subscriptable")."""
    m = mm.MLP(5, block_size=2, n_embd=2, n_hidden=3)
    X = np.zeros((4, 2), np.int32)
    before = m.get_params()
    with pytest.raises(TypeError, match=r"^Y must be an array of integers"):
        if call == "train":
            mm.train(m, X, None, 2, batch_size=2)
        else:
            getattr(m, call)(X, None)
    assert all(np.array_equal(before[k], m.get_params()[k]) for k in before)


def unaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` starting one byte into a buffer: contiguous but not aligned."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = buf[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def test_unaligned_arrays_reach_the_core_aligned():
    """A contiguous but unaligned int32 or float array is copied before the core reads it (reading
    through it in C++ is undefined behaviour; the sanitizer job found Y passed through unaligned)."""
    X = np.random.default_rng(0).integers(0, 5, (9, 2)).astype(np.int32)
    Y = np.arange(9, dtype=np.int32) % 5
    assert _validate.index_array(unaligned(X), "X", (None, 2), 5, "").flags.aligned
    assert _validate.core_array(unaligned(np.ones(7)), np.float64).flags.aligned
    m = mm.MLP(5, block_size=2, n_embd=2, n_hidden=3, dtype="float64")
    assert m.loss(unaligned(X), unaligned(Y)) == m.loss(X, Y)
    p = m.get_params()
    m.set_params({k: unaligned(a) for k, a in p.items()})
    assert all(np.array_equal(m.get_params()[k], p[k]) for k in p)
