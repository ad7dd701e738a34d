"""Divergence: a learning rate that blows up raises DivergenceError naming the step at which the
loss (or a parameter) became non-finite; the model keeps the parameters of the last finite step
(checked by replay, and against torch); ``on_divergence="stop"`` returns the history instead.
Never silent NaNs."""

from __future__ import annotations

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import reference as ref

V, T, E, H = 27, 3, 10, 64


@pytest.fixture(scope="module")
def data():
    words = mm.load_names()[:3000]
    vocab = mm.Vocab.from_words(mm.load_names())
    X, Y = mm.build_dataset(words, vocab, T)
    return X, Y


def model(dtype="float32", seed=0, init="lecture"):
    return mm.MLP(V, T, E, H, seed=seed, dtype=dtype, init=init)


def params_bytes(m):
    return {k: a.tobytes() for k, a in m.get_params().items()}


def all_finite(m):
    return all(np.isfinite(a).all() for a in m.get_params().values())


def replay(steps, dtype, X, Y, **train):
    """A fresh model (seed 0) trained for ``steps`` steps with the same settings."""
    m = model(dtype)
    if not np.isscalar(train["lr"]):
        train["lr"] = train["lr"][:steps]
    mm.train(m, X, Y, steps, **train)
    return m


def check_divergence(e: mm.DivergenceError, m: mm.MLP, step0: int = 0) -> int:
    """The error names step k (global) and the model holds the parameters after step k-1."""
    h = e.history
    k = step0 + h.steps
    msg = str(e)
    assert isinstance(e, FloatingPointError)
    assert f"at step {k} " in msg or f"of step {k} " in msg, msg
    assert (f"after step {k - 1}" in msg) if k > 0 else ("initial parameters" in msg), msg
    assert h.stopped == msg
    assert np.isfinite(h.loss).all() and len(h.loss) == h.steps and len(h.lr) == h.steps
    assert all_finite(m)
    return k


def jump(at, before, after, steps=1000):
    return np.r_[np.full(at, before), np.full(steps - at, after)]


DIVERGING = {
    # constant rates: the loss of step 1 is not finite
    "float32 sgd 1e30": ("float32", "sgd", np.full(1000, 1e30)),
    "float64 sgd 1e300": ("float64", "sgd", np.full(1000, 1e300)),
    "float32 adamw 1e30": ("float32", "adamw", np.full(1000, 1e30)),
    "float64 adamw 1e200": ("float64", "adamw", np.full(1000, 1e200)),
    # a rate that jumps after 150 good steps: the update of step 150 is not finite, so the core
    # rolls back (restores its snapshot and replays the chunk's steps)
    "float32 sgd jump to 1e100": ("float32", "sgd", jump(150, 0.1, 1e100)),
    "float32 adamw jump to 1e38": ("float32", "adamw", jump(150, 0.01, 1e38)),
    "float32 sgd momentum jump to 1e60": ("float32", "sgd momentum", jump(150, 0.05, 1e60)),
    # the loss of step 151 is not finite
    "float64 sgd jump to 1e300": ("float64", "sgd", jump(150, 0.1, 1e300)),
}


@pytest.mark.parametrize("case", list(DIVERGING))
def test_divergence_names_the_step_and_keeps_the_last_finite_parameters(data, case):
    X, Y = data
    dtype, optimizer, lrs = DIVERGING[case]
    settings = dict(
        lr=lrs,
        optimizer=optimizer.split()[0],
        seed=4,
        batch_size=32,
        momentum=0.9 if "momentum" in optimizer else 0.0,
    )
    m = model(dtype)
    with pytest.raises(mm.DivergenceError) as info:
        mm.train(m, X, Y, 1000, **settings)
    k = check_divergence(info.value, m)
    assert f"(lr {lrs[k]:g})" in str(info.value)
    assert (
        k == (0 if lrs[0] > 1e50 and dtype == "float32" else 1) if lrs[0] == lrs[-1] else k in (150, 151)
    ), k
    # the parameters are exactly those of a run of k steps
    assert params_bytes(m) == params_bytes(replay(k, dtype, X, Y, **settings))
    # and the same run with on_divergence="stop" returns, with the same parameters
    m2 = model(dtype)
    h = mm.train(m2, X, Y, 1000, on_divergence="stop", **settings)
    assert h.stopped == str(info.value) and h.steps == info.value.history.steps
    assert params_bytes(m2) == params_bytes(m)
    # the model remains usable (its parameters may be too large to train on: give it others)
    assert isinstance(m.loss(X[:100], Y[:100]), float)
    m.set_params(model(dtype).get_params())
    h = mm.train(m, X, Y, 5, lr=0.01, optimizer=settings["optimizer"])
    assert np.isfinite(h.loss).all()


@pytest.mark.parametrize("dtype, big", [("float32", 1e30), ("float64", 1e300)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("hidden", [H, 530])
def test_an_update_that_overflows_only_C_is_caught(data, dtype, big, threads, hidden):
    """Plain SGD updates each parameter block inside the backward pass (cpp/model.h); C is updated
    last, after the scatter (with 530 hidden units, in column blocks, and on 2 threads beside the
    next minibatch's preparation). With C tiny and W1 huge (their product, the first layer, as
    before) dC is huge and the rest is not: at rate 0 nothing moves, and at the first large rate
    only C overflows. The run stops there, naming the update, and keeps the parameters of the step
    before: exactly the ones it started with."""
    X, Y = data
    m = mm.MLP(V, T, E, hidden, seed=3, dtype=dtype)
    p = m.get_params()
    p["C"], p["W1"] = p["C"] / big, p["W1"] * big
    m.set_params(p)
    start = params_bytes(m)
    lr = np.r_[np.zeros(7), np.full(5, 1e14)]
    before = mm.get_num_threads()
    mm.set_num_threads(threads)
    try:
        h = mm.train(m, X, Y, steps=len(lr), lr=lr, seed=5, batch_size=100, on_divergence="stop")
    finally:
        mm.set_num_threads(before)
    assert h.steps == 7 and h.stopped.startswith("the update of step 7 "), h.stopped
    assert "the parameters after step 6" in h.stopped
    assert params_bytes(m) == start


def test_the_step_agrees_with_torch(data):
    """float64, lr 1e300: step 0's update is finite, step 1's first layer overflows -- in torch
    too -- and the model holds torch's parameters after step 0.

    Past the overflow the arithmetic decides: each product C[x, e] * W1[e, j] of step 1 is
    infinite, of either sign, so summed one product at a time the first layer is nan (ours, and
    NumPy's elementwise sum), while a BLAS that accumulates with fused multiply-adds keeps the sign
    of its first infinite sum and tanh turns it into +-1 (torch with MKL on an Intel CPU: a finite
    step-1 loss, 1.36e300). So torch's step-1 loss is not compared: its first layer is."""
    import torch

    X, Y = data
    m = model("float64")
    init = m.get_params()
    with pytest.raises(
        mm.DivergenceError,
        match=r"minibatch loss became nan at step 1 \(lr 1e\+300\); "
        r"the model keeps the parameters after step 0",
    ):
        mm.train(m, X, Y, 100, lr=1e300, seed=2)
    bidx = ref.batch_indices(2, 2, 32, len(X))
    with np.errstate(all="ignore"):
        losses, after0 = ref.train_replay(init, X, Y, 1e300, batch_indices=bidx[:1])
        emb = torch.tensor(after0["C"])[torch.as_tensor(X[bidx[1]], dtype=torch.long)].view(32, -1)
        pre = emb @ torch.tensor(after0["W1"]) + torch.tensor(after0["b1"])
    assert np.isfinite(losses[0]) and not torch.isfinite(pre).all()
    got = m.get_params()
    for name, want in after0.items():
        scale = np.abs(want).max()
        assert np.abs(got[name] - want).max() <= 1e-9 * scale, name


def test_divergence_at_the_first_step_keeps_the_initial_parameters(data):
    X, Y = data
    m = model("float32")
    before = params_bytes(m)
    with pytest.raises(mm.DivergenceError, match=r"step 0 .*the model keeps its initial parameters"):
        mm.train(m, X, Y, 10, lr=1e300)
    assert params_bytes(m) == before
    # parameters that overflow the logits: the loss of step 0 is not finite
    m = model("float64")
    m.set_params({k: a * 1e200 for k, a in m.get_params().items()})
    before = params_bytes(m)
    with pytest.raises(mm.DivergenceError, match=r"loss became (nan|inf) at step 0 .*initial parameters"):
        mm.train(m, X, Y, 10)
    assert params_bytes(m) == before


def test_steps_are_counted_across_continued_runs_and_schedules(data):
    X, Y = data
    m = model("float64")
    h = mm.train(m, X, Y, 10, lr=0.1, seed=1)
    with pytest.raises(
        mm.DivergenceError,
        match=r"at step 10 \(lr 1e\+300\).*after step 9|"
        r"at step 11 \(lr 1e\+300\).*after step 10",
    ) as info:
        mm.train(m, X, Y, 10, lr=1e300, seed=1, state=h.state)
    k = check_divergence(info.value, m, step0=10)
    want = model("float64")
    st = mm.train(want, X, Y, 10, lr=0.1, seed=1).state
    mm.train(want, X, Y, k - 10, lr=1e300, seed=1, state=st)
    assert params_bytes(m) == params_bytes(want)

    # a schedule that jumps at step 20: the error names step 20 or 21 and that step's rate
    m = model("float64")
    with pytest.raises(mm.DivergenceError, match=r"step 2[01] \(lr 1e\+300\)") as info:
        mm.train(m, X, Y, 100, lr=lambda s: 0.1 if s < 20 else 1e300, seed=1)
    check_divergence(info.value, m)


def test_keep_best_with_divergence_keeps_the_best_evaluated_parameters(data):
    X, Y = data
    m = model("float32", init="kaiming")
    lrs = jump(300, 0.1, 1e100)
    h = mm.train(
        m,
        X,
        Y,
        1000,
        lr=lrs,
        X_val=X[:2000],
        Y_val=Y[:2000],
        eval_every=100,
        keep_best=True,
        on_divergence="stop",
    )
    assert h.stopped is not None and h.best_step is not None and h.best_step <= h.step0 + h.steps
    assert all_finite(m)
    assert m.loss(X[:2000], Y[:2000]) == h.best_loss


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_never_silent_nans(data, dtype):
    """Across learning rates from sane to absurd: every run either ends with finite losses and
    parameters, or raises DivergenceError with a finite history and finite parameters."""
    X, Y = data
    rng = np.random.default_rng(0)
    outcomes = set()
    for i, lr in enumerate(10.0 ** rng.uniform(-2, 40 if dtype == "float32" else 300, 16)):
        for optimizer in ("sgd", "adamw"):
            m = model(dtype, seed=i)
            try:
                h = mm.train(
                    m, X, Y, 50, lr=lr, optimizer=optimizer, seed=i, momentum=0.9 if optimizer == "sgd" else 0
                )
                outcomes.add("finished")
                assert np.isfinite(h.loss).all() and h.stopped is None
            except mm.DivergenceError as e:
                outcomes.add("diverged")
                check_divergence(e, m)
            assert all_finite(m)
    assert outcomes == {"finished", "diverged"}


@pytest.mark.parametrize("dtype, lr_after", [("float32", 1e100), ("float64", 1e300), ("float32", 1e38)])
def test_divergence_on_two_threads_rolls_back_the_same(data, dtype, lr_after):
    """A step large enough to split between 2 threads, where the update and the next minibatch
    run side by side: the divergence is found at the same step, and the parameters kept are
    those of 1 thread and of a replay, bit for bit."""
    X, Y = data
    settings = dict(
        lr=jump(20, 0.1, lr_after, 60),
        optimizer="adamw" if lr_after == 1e38 else "sgd",
        seed=4,
        batch_size=256,
    )
    before = mm.get_num_threads()
    got = []
    try:
        for threads in (2, 1):
            mm.set_num_threads(threads)
            m = mm.MLP(V, T, E, 512, seed=0, dtype=dtype)
            h = mm.train(m, X, Y, 60, on_divergence="stop", **settings)
            assert h.stopped and h.steps in (20, 21), (threads, h.steps, h.stopped)
            got.append((h.steps, h.loss.tobytes(), params_bytes(m)))
        assert got[0] == got[1]
        mm.set_num_threads(2)
        again = mm.MLP(V, T, E, 512, seed=0, dtype=dtype)
        settings["lr"] = settings["lr"][: got[0][0]]
        mm.train(again, X, Y, got[0][0], **settings)
        assert params_bytes(again) == got[0][2]
    finally:
        mm.set_num_threads(before)
