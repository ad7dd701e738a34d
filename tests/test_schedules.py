"""Learning-rate schedules: the arrays train() takes from them are the rates of each step."""

from __future__ import annotations

import functools
import random
from decimal import Decimal
from unittest import mock

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
    points = [(0, rng.choice([0.1, 1, 0.5]))] + [
        (s, rng.random()) for s in rng.sample(range(1, 60), rng.randint(0, 4))
    ]
    rng.shuffle(points)  # any order (a step given twice is refused: test_careless.py)
    f = mm.step_decay(points)
    start, n = rng.randint(0, 40), rng.randint(0, 50)
    np.testing.assert_array_equal(f.at_steps(start, n), per_step(f, start, n))
    np.testing.assert_array_equal(_lr_array(f, n, start), per_step(f, start, n))


def test_parsed_schedules_give_each_steps_rate():
    for spec in ("0.1", 0.25, "0.1@0:0.01@100000", "0.3@0:0.1@9:0.2@5"):
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


def test_wrappers_and_look_alikes_are_called_at_each_step():
    base = mm.step_decay([(0, 0.1), (3, 0.01)])

    @functools.wraps(base)  # copies base's attributes, at_steps's class excepted
    def warm(step):
        return base(step) * min(1.0, (step + 1) / 4)

    class Own:  # an at_steps of another meaning
        def __call__(self, step):
            return 0.5

        def at_steps(self, x):
            return "not rates"

    np.testing.assert_array_equal(_lr_array(warm, 6, 0), per_step(warm, 0, 6))
    np.testing.assert_array_equal(_lr_array(Own(), 3, 0), [0.5] * 3)
    np.testing.assert_array_equal(_lr_array(mock.Mock(return_value=0.25), 3, 0), [0.25] * 3)


@pytest.mark.parametrize("value", [True, "0.1", None, Decimal("0.1"), 0.1 + 0j, np.bool_(True)])
def test_schedules_refuse_rates_that_are_not_real_numbers(value):
    for make in (lambda: mm.step_decay([(0, 0.1), (5, value)]), lambda: schedules.constant(value)):
        with pytest.raises(
            TypeError, match=f"learning rates must be real numbers, got {type(value).__name__}"
        ):
            make()


def test_a_callable_is_checked_at_each_step_before_the_next_is_called():
    calls = []

    def lr(step):
        calls.append(step)
        return "fast" if step == 1 else 1 / (2 - step)

    with pytest.raises(TypeError, match=r"lr\(1\) must return a real number, got str 'fast'"):
        _lr_array(lr, 4, 0)
    assert calls == [0, 1]
