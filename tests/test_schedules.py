"""Learning-rate schedules: the arrays train() takes from them are the rates of each step."""
from __future__ import annotations

import random

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import schedules
from makemore_cpp.training import _lr_array


def per_step(f, start, n):
    return np.array([float(f(start + i)) for i in range(n)])


@pytest.mark.parametrize("seed", range(8))
def test_step_decay_arrays_are_its_calls(seed):
    rng = random.Random(seed)
    points = [(0, rng.choice([0.1, 1, 0.5]))] + [(rng.randint(0, 60), rng.random()) for _ in range(rng.randint(0, 4))]
    rng.shuffle(points)  # any order, repeated steps included
    f = mm.step_decay(points)
    start, n = rng.randint(0, 40), rng.randint(0, 50)
    np.testing.assert_array_equal(f.at_steps(start, n), per_step(f, start, n))
    np.testing.assert_array_equal(_lr_array(f, n, start), per_step(f, start, n))


def test_parsed_schedules_give_each_steps_rate():
    for spec in ("0.1", 0.25, "0.1@0:0.01@100000", "0.3@0:0.2@5:0.1@5"):
        f = mm.parse_schedule(spec)
        for start in (0, 99_990):
            np.testing.assert_array_equal(_lr_array(f, 20, start), per_step(f, start, 20))
    f = mm.parse_schedule("cosine:3e-3:warmup=10:min=1e-5", steps=100)
    assert not hasattr(f, "at_steps")  # called step by step, as math.cos gives them
    np.testing.assert_array_equal(_lr_array(f, 100, 0), per_step(f, 0, 100))


def test_a_schedule_trains_as_its_array():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, (40, 3)).astype(np.int32)
    Y = rng.integers(0, 5, 40).astype(np.int32)
    base = mm.MLP(5, block_size=3, n_embd=2, n_hidden=7, dtype="float64", seed=3)
    f = schedules.step_decay([(0, 0.2), (6, 0.05)])
    a, b = base.copy(), base.copy()
    ha = mm.train(a, X, Y, 12, batch_size=8, lr=f, seed=1)
    hb = mm.train(b, X, Y, 12, batch_size=8, lr=[0.2] * 6 + [0.05] * 6, seed=1)
    assert ha.loss.tolist() == hb.loss.tolist()
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, b.get_params()[k])


def test_a_callable_whose_at_steps_gives_the_wrong_length_is_refused():
    def lr(step):
        return 0.1
    lr.at_steps = lambda start, n: np.full(n - 1, 0.1)
    m = mm.MLP(5, block_size=3, n_embd=2, n_hidden=7, seed=3)
    before = {k: v.copy() for k, v in m.get_params().items()}
    X = np.zeros((10, 3), np.int32)
    with pytest.raises(ValueError, match=r"lr.at_steps\(0, 4\) must give 4 rates, got shape \(3,\)"):
        mm.train(m, X, np.zeros(10, np.int32), 4, batch_size=2, lr=lr)
    assert all(np.array_equal(v, before[k]) for k, v in m.get_params().items())
