"""Reproducibility. What a run computes is determined by: the seeds (the model's ``seed`` for the
initial parameters; ``train``'s ``seed`` for the minibatches and dropout; ``sample``'s ``seed``),
the settings, the dtype, and the instruction-set path (``get_isa()``: avx512, avx2 or generic) --
and by nothing else: not the thread count, not the process, not how the work is cut into calls.
Same inputs, bit-identical parameters, losses and samples, run after run."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import model as model_module

ISAS = [name for name in ("generic", "avx2", "avx512") if mm._core.isa_supported(name)]

RUN = r"""
import hashlib, json, sys
import numpy as np
import makemore_cpp as mm

# The last two have one hidden layer wide enough for column blocks (3 of uneven widths; 2).
CONFIGS = (
    ("float32", "float32", 200, dict(lr=0.1)),
    ("float64", "float64", (64, 48), dict(optimizer="adamw", lr=0.01, weight_decay=0.01, dropout=0.1)),
    ("blocks-dropout", "float32", 777, dict(lr=0.05, momentum=0.9, dropout=0.1)),
    ("blocks", "float64", 530, dict(lr=0.05)),
)

def results(threads):
    mm.set_num_threads(threads)
    words = mm.load_names()[:4000]
    vocab = mm.Vocab.from_words(mm.load_names())
    X, Y = mm.build_dataset(words, vocab, 4)
    out = {}
    for name, dtype, hidden, opt in CONFIGS:
        m = mm.MLP(vocab, block_size=4, n_embd=8, n_hidden=hidden, seed=11, dtype=dtype, init="kaiming")
        init = m.get_params()
        h = mm.train(
            m, X, Y, 700, batch_size=48, seed=5, X_val=X[:3000], Y_val=Y[:3000], eval_every=350, **opt
        )
        out[name] = dict(
            init=init,
            params=m.get_params(),
            losses=h.loss,
            eval_losses=np.array(h.eval_loss),
            names=m.sample(300, seed=3, temperature=0.8, top_k=10),
            ids=m.sample_ids(50, seed=4, prefix=vocab.encode("ma"), max_len=12),
            loss=np.float64(m.loss(X, Y)),
            logits=m.logits(X[:500]),
        )
    return out

def run(threads):
    out = {}
    for name, r in results(threads).items():
        d = hashlib.sha256()
        for a in r["params"].values():
            d.update(a.tobytes())
        for k in ("losses", "eval_losses", "ids", "loss", "logits"):
            d.update(r[k].tobytes())
        d.update(json.dumps(r["names"]).encode())
        out[name] = d.hexdigest()
    return out
"""


SCOPE: dict = {}
exec(RUN, SCOPE)
CONFIGS = SCOPE["CONFIGS"]


def digest_here(threads: int) -> dict:
    try:
        return SCOPE["run"](threads)
    finally:
        mm.set_num_threads(mm._core.default_threads())


def results_here(threads: int) -> dict:
    try:
        return SCOPE["results"](threads)
    finally:
        mm.set_num_threads(mm._core.default_threads())


def child_env(**extra) -> dict:
    env = dict(os.environ, **extra)
    src = str(pathlib.Path(mm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def digest_in_child(threads: int, isa: str) -> dict:
    code = RUN + f"\nprint(mm.get_isa()); print(json.dumps(run({threads})))\n"
    p = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(MAKEMORE_CPP_ISA=isa),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    got_isa, out = p.stdout.strip().splitlines()[-2:]
    assert got_isa == isa
    return json.loads(out)


def test_same_seed_same_bits_at_any_thread_count_in_any_process(isa):
    """On each instruction set: two runs in this process at 1 and 2 threads (and more threads than
    CPUs), and one in a fresh process, give the same bits."""
    first = digest_here(1)
    assert digest_here(2) == first
    assert digest_here(5) == first
    assert digest_in_child(2, isa) == first


# What the parity tests (tests/test_parity.py) promise of each path against the float64 reference;
# two paths are then within twice that of each other (relative to each tensor's largest entry).
TOL_TRAJ = {"float32": 1e-4, "float64": 1e-9}


def test_instruction_set_paths_draw_alike_and_agree_to_the_parity_tolerances():
    """What may differ between the instruction-set paths (docs/guarantees.md): the last bits of
    every float the kernels compute (vector widths change the order of additions; FMA), and so
    whatever follows from them -- a sample may draw another character where two running sums straddle
    the draw. What is the same: the initial parameters (drawn by scalar code, bit for bit), the
    minibatch rows and dropout masks (integer draws of (seed, step, row)), and hence runs that agree
    to the parity tolerances: every minibatch loss, the evaluations, the final parameters, the loss
    and logits. Each path's own bits, run after run and at any thread count, are the test above.
    (Measured over these 700-step runs: float32 losses 1.9e-7 apart, parameters 9e-7; float64
    losses 5e-12, parameters 3e-11; all 300 names alike.)"""
    before = mm.get_isa()
    got = {}
    try:
        for name in ISAS:
            mm.set_isa(name)
            assert mm.get_isa() == name
            got[name] = results_here(2)
    finally:
        mm.set_isa(before)
    first, *others = ISAS
    a = got[first]
    for isa in others:
        b = got[isa]
        for cfg, dtype in ((c[0], c[1]) for c in CONFIGS):
            x, y = a[cfg], b[cfg]
            for k, p in x["init"].items():
                assert p.tobytes() == y["init"][k].tobytes(), (isa, cfg, k)
            tol = 2 * TOL_TRAJ[dtype]
            for k in ("losses", "eval_losses", "loss"):
                err = np.abs(np.asarray(x[k]) - y[k]).max() / np.abs(x[k]).max()
                assert err <= tol, (first, isa, cfg, k, err)
            for k, p in x["params"].items():
                err = np.abs(p - y["params"][k]).max() / np.abs(p).max()
                assert err <= tol, (first, isa, cfg, k, err)
            err = np.abs(x["logits"] - y["logits"]).max() / np.abs(x["logits"]).max()
            assert err <= tol, (first, isa, cfg, "logits", err)
            same = sum(s == t for s, t in zip(x["names"], y["names"]))
            print(f"{first} vs {isa}, {cfg}: {same} of {len(x['names'])} names alike")


def params_digest(m) -> str:
    return hashlib.sha256(b"".join(a.tobytes() for a in m.get_params().values())).hexdigest()


def test_seeds_decide_and_only_seeds():
    words = mm.load_names()[:2000]
    vocab = mm.Vocab.from_words(mm.load_names())
    X, Y = mm.build_dataset(words, vocab, 3)
    a, b, c = (mm.MLP(vocab, 3, 10, 100, seed=s) for s in (1, 1, 2))
    assert params_digest(a) == params_digest(b) != params_digest(c)
    mm.train(a, X, Y, 300, seed=7)
    mm.train(b, X, Y, 300, seed=7)
    assert params_digest(a) == params_digest(b)
    c = mm.MLP(vocab, 3, 10, 100, seed=1)
    mm.train(c, X, Y, 300, seed=8)
    assert params_digest(c) != params_digest(a)
    # a run split in two with the state equals the run in one piece
    d = mm.MLP(vocab, 3, 10, 100, seed=1)
    h = mm.train(d, X, Y, 120, seed=7)
    mm.train(d, X, Y, 180, seed=7, state=h.state)
    assert params_digest(d) == params_digest(a)
    # samples: name i depends on (seed, i) only
    assert a.sample(50, seed=3) == b.sample(50, seed=3) == a.sample(80, seed=3)[:50]
    assert a.sample(50, seed=3) != a.sample(50, seed=4)


def test_results_do_not_depend_on_how_calls_are_chunked(monkeypatch):
    """loss, logits and sample cut their work into calls sized by time; the answer is the same
    bits however it is cut."""
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 3)
    m = mm.MLP(vocab, 3, 10, 200, seed=0)
    mm.train(m, X, Y, 500)
    # block size 6: more contexts than a table holds, so loss() cuts the rows into calls too
    X6, Y6 = mm.build_dataset(words[:3000], vocab, 6)
    m6 = mm.MLP(vocab, 6, 10, 200, seed=0)
    mm.train(m6, X6, Y6, 300)

    def results():
        return (
            m.loss(X, Y),
            m6.loss(X6, Y6),
            m.logits(X[:5000]).tobytes(),
            m.sample(3000, seed=1),
            m.sample_ids(700, seed=2).tobytes(),
        )

    want = results()
    for seconds, first in ((1e-9, 1.0), (1e-4, 1e5), (10.0, 1e12)):
        monkeypatch.setattr(model_module, "CHUNK_SECONDS", seconds)
        monkeypatch.setattr(model_module, "FIRST_CHUNK_MACS", first)
        monkeypatch.setattr(model_module, "FIRST_SAMPLE_CHARS", first)
        assert results() == want, (seconds, first)


def test_column_blocks_on_two_threads_give_the_same_bits_however_the_run_is_cut(monkeypatch):
    """With column blocks and plain SGD on 2 threads the minibatches are prepared a step or two
    ahead, in two sets of buffers (cpp/train.h). A run in one call, in two calls (state=), and in
    calls of one step each (the time limit of each call into the core cut to nothing) give the same
    bits, and the same as on 1 thread."""
    from makemore_cpp import training

    rng = np.random.default_rng(4)
    V, T, E, H, B, N = 27, 8, 24, 512, 160, 4000
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)

    def run(threads, cuts):
        mm.set_num_threads(threads)
        m = mm.MLP(V, T, E, H, seed=2)
        losses, state = [], None
        for k in cuts:
            h = mm.train(m, X, Y, k, batch_size=B, lr=0.1, seed=9, state=state)
            losses.append(h.loss)
            state = h.state
        return np.concatenate(losses).tobytes(), {k: a.tobytes() for k, a in m.get_params().items()}

    before = mm.get_num_threads()
    try:
        want = run(2, [9])
        assert run(2, [4, 5]) == want
        assert run(1, [9]) == want
        monkeypatch.setattr(training, "CHUNK_SECONDS", 1e-9)
        assert run(2, [9]) == want
    finally:
        mm.set_num_threads(before)


def test_chunks_cover_the_range_aligned():
    for n, first, most, align in (
        (0, 10, 100, 32),
        (1, 1, 1, 1),
        (1000, 1, 64, 32),
        (10**6, 1e9, 2**18, 32),
        (777, 5.5, 50, 1),
    ):
        ranges = list(model_module._chunks(n, first, most, align))
        assert [a for a, _ in ranges] == ([0] + [b for _, b in ranges[:-1]] if n else [])
        assert (ranges[-1][1] if ranges else 0) == n
        assert all(a % align == 0 and b - a <= max(most, align) for a, b in ranges)


def test_the_documentation_says_what_determines_results():
    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guarantees.md"
    if not doc.exists():
        pytest.skip("docs/guarantees.md is not in this tree (installed package)")
    text = doc.read_text(encoding="utf-8").lower()
    for word in ("seed", "thread", "instruction-set path", "get_isa", "bit-identical", "dtype", "version"):
        assert word in text, word


@pytest.mark.parametrize("V, dropout", [(27, 0.0), (256, 0.1)])
def test_ids_read_as_bytes_give_the_same_bits(V, dropout):
    """train() hands the core its rows as bytes when the vocabulary fits one and the run is long
    enough to pay for the copy: the same parameters and losses, bit for bit, as the rows as int32."""
    rng = np.random.default_rng(V)
    X, Y = rng.integers(0, V, (3000, 4)), rng.integers(0, V, 3000)
    got = []
    for as_bytes in (False, True):
        m = mm.MLP(V, 4, 8, 60, seed=2)
        st = mm.train(m, X, Y, steps=1, lr=0.05, dropout=dropout).state
        lr, losses = np.full(300, 0.05), np.zeros(300)
        x, y = (
            (X.astype(np.uint8), Y.astype(np.uint8)) if as_bytes else (X.astype(np.int32), Y.astype(np.int32))
        )
        assert st._t.run(x, y, None, lr, st.step, 0, 0.0, losses) == (300, 0, [])  # (done, status, records)
        got.append((losses.tobytes(), [a.tobytes() for a in m.get_params().values()]))
    assert got[0] == got[1]
    # and through train(): 300 steps of 32 rows read more than an eighth of the 3,000 rows (bytes);
    # 3 steps do not (int32), and continuing gives the same bits either way
    a, b = mm.MLP(V, 4, 8, 60, seed=2), mm.MLP(V, 4, 8, 60, seed=2)
    ha = mm.train(a, X, Y, steps=303, lr=0.05, dropout=dropout)
    hb = mm.train(b, X, Y, steps=3, lr=0.05, dropout=dropout)
    seen = []

    class Spy:  # records the dtype train() hands the core
        def __init__(self, t):
            self.t = t

        def run(self, x, *args):
            seen.append(x.dtype)
            return self.t.run(x, *args)

        def __getattr__(self, name):
            return getattr(self.t, name)

    hb.state._t = Spy(hb.state._t)
    hb2 = mm.train(b, X, Y, steps=300, lr=0.05, dropout=dropout, state=hb.state)
    assert seen and all(d == np.uint8 for d in seen)
    np.testing.assert_array_equal(ha.loss, np.r_[hb.loss, hb2.loss])
    for k, p in a.get_params().items():
        np.testing.assert_array_equal(p, b.get_params()[k])


def test_ids_as_bytes_need_a_small_vocabulary():
    m = mm.MLP(300, 2, 4, 16)
    st = mm.train(m, np.zeros((10, 2), int), np.zeros(10, int), steps=1).state
    with pytest.raises(ValueError, match="at most 256"):
        st._t.run(
            np.zeros((10, 2), np.uint8),
            np.zeros(10, np.uint8),
            None,
            np.full(2, 0.1),
            st.step,
            0,
            0.0,
            np.zeros(2),
        )
    small = mm.MLP(27, 2, 4, 16)
    st = mm.train(small, np.zeros((10, 2), int), np.zeros(10, int), steps=1).state
    with pytest.raises(TypeError, match="Y must be a C-contiguous array of uint8, got int32"):
        st._t.run(
            np.zeros((10, 2), np.uint8),
            np.zeros(10, np.int32),
            None,
            np.full(2, 0.1),
            st.step,
            0,
            0.0,
            np.zeros(2),
        )
    with pytest.raises(TypeError, match="X must be a C-contiguous array of int32, got int64"):
        st._t.run(
            np.zeros((10, 2), np.int64),
            np.zeros(10, np.int32),
            None,
            np.full(2, 0.1),
            st.step,
            0,
            0.0,
            np.zeros(2),
        )
