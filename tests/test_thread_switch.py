"""The training loop's choice of threads (cpp/common.h: ThreadSwitch). A step on 2 threads waits at
every phase for the slower thread, so when something else takes a core the loop runs its steps on
one thread for a while. Two promises: switching between steps changes no result (every sum is taken
in one order at any thread count), and the choice follows the step times as documented."""
from __future__ import annotations

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import _core


def train_digest(X, Y, H, dropout, threads, every, steps=24, **kw):
    before = mm.get_num_threads()
    mm.set_num_threads(threads)
    _core._set_switch_every(every)
    try:
        model = mm.MLP(27, X.shape[1], 24, H, seed=1, init="kaiming")
        hist = mm.train(model, X, Y, steps=steps, batch_size=256, dropout=dropout, **kw)
        return hist, model
    finally:
        _core._set_switch_every(0)
        mm.set_num_threads(before)


@pytest.mark.parametrize("H, dropout, opt", [(300, 0.0, dict(lr=0.1)), (300, 0.1, dict(optimizer="adamw", lr=1e-3)),
                                             ((256, 128), 0.1, dict(optimizer="sgd", lr=0.05, momentum=0.9))])
def test_switching_threads_between_steps_changes_nothing(isa, H, dropout, opt):
    """Steps on 2 threads with every 1st, 3rd or 7th step switched to 1 thread (so the next
    minibatch is sometimes prepared beside the update, sometimes not) give the bits of 1 thread."""
    rng = np.random.default_rng(3)
    X, Y = rng.integers(0, 27, (20000, 8)) // 3, rng.integers(0, 27, 20000)
    ref_hist, ref_model = train_digest(X, Y, H, dropout, 1, 0, **opt)
    for every in (1, 3, 7):
        hist, model = train_digest(X, Y, H, dropout, 2, every, **opt)
        np.testing.assert_array_equal(hist.loss, ref_hist.loss)
        for k, a in ref_model.get_params().items():
            np.testing.assert_array_equal(model.get_params()[k], a, err_msg=f"{k}, switching every {every}")


def test_switching_threads_keeps_the_rollback_of_a_divergence():
    """A run that diverges while switching between 1 and 2 threads stops at the step 1 thread
    stops at, with the same parameters."""
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, 27, (20000, 8)) // 3, rng.integers(0, 27, 20000)
    lr = np.r_[np.full(11, 0.1), np.full(13, 1e100)]
    got = []
    for threads, every in ((1, 0), (2, 2), (2, 5)):
        hist, model = train_digest(X, Y, 300, 0.0, threads, every, lr=lr, on_divergence="stop")
        assert hist.stopped and hist.steps in (11, 12)
        got.append((hist.steps, hist.loss.tobytes(), [a.tobytes() for a in model.get_params().values()]))
    assert got[0] == got[1] == got[2]


def plan(many, one):
    many, one = np.broadcast_arrays(np.asarray(many, float), np.asarray(one, float))
    return _core._thread_switch_plan(np.ascontiguousarray(many), np.ascontiguousarray(one))


def test_two_threads_while_faster_with_a_rare_look_at_one():
    """Steps on 2 threads at 400 us, on 1 at 700 us: 2 steps in 512 run on one thread, to keep
    its time known; no more."""
    p = plan(np.full(5000, 4e-4), 7e-4)
    assert not p[:16].any()
    assert 0 < p.mean() <= 2 * (5000 // 512 + 1) / 5000
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, p.astype(int), 0])))[::2]
    assert (runs == 2).all()


def test_one_thread_while_two_are_slower():
    """2 threads at 1.2 ms a step, 1 thread at 0.7 ms: after the first look at one thread, nearly
    every step runs on one, with a try of 3 steps on two every 128 steps at most."""
    p = plan(np.full(5000, 1.2e-3), 7e-4)
    assert p[100:].mean() > 0.95
    many = np.flatnonzero(~p[100:])
    assert len(many) <= 3 * (4900 // 128 + 2)


def test_the_choice_follows_a_change():
    """A second core taken away half-way: within 10 steps the loop runs on one thread; given back:
    within 128 + 3 steps it is on two again and stays there."""
    slow = np.r_[np.full(2000, 4e-4), np.full(2000, 1.2e-3), np.full(2000, 4e-4)]
    p = plan(slow, 7e-4)
    assert p[2010:4000].mean() > 0.9
    back = 4000 + np.flatnonzero(~p[4000:])[0]
    assert back - 4000 <= 128
    assert p[back + 3:].mean() < 0.01


def test_plan_input_is_checked():
    with pytest.raises(ValueError, match="1-d arrays of one length"):
        _core._thread_switch_plan(np.zeros(3), np.zeros(4))
