"""Learning-rate schedules: functions of the global step, for ``train(lr=...)``.

``constant`` and ``step_decay`` are piecewise-constant schedules whose rates ``train`` takes as one
array (``at_steps``: the same numbers as calling the schedule at each step), so that a run need not
make 200,000 Python calls first; any other callable, a wrapper of these included, is called at
each step.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np

__all__ = ["constant", "step_decay", "cosine", "parse_schedule"]

Schedule = Callable[[int], float]


class _StepSchedule:
    """Piecewise constant: the value of the last point whose step is <= the step (points sorted)."""

    def __init__(self, points: list, name: str):
        for point in points:
            _rate(point[1], name)
        self.points = points
        self._name = name

    def __call__(self, step: int) -> float:
        value = self.points[0][1]
        for start, v in self.points:
            if step >= start:
                value = v
        return value

    def at_steps(self, first: int, n: int) -> np.ndarray:
        """The rates of steps first .. first + n - 1 (float64), by the same rule over an array."""
        steps = np.arange(first, first + n, dtype=np.int64)
        out = np.full(n, float(self.points[0][1]), dtype=np.float64)
        for start, v in self.points:
            out[steps >= start] = float(v)
        return out

    def __repr__(self) -> str:
        return f"{self._name}({self.points!r})"


def _rate(v: Any, name: str, what: str = "learning rates") -> float:
    """A learning rate: a real number (not a bool), finite and >= 0."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: {what} must be real numbers, got {type(v).__name__} {v!r}")
    if not (math.isfinite(float(v)) and float(v) >= 0):
        raise ValueError(f"{name}: {what} must be finite and >= 0, got {v!r}")
    return float(v)


def _step(s: Any, name: str, what: str) -> int:
    """A step number: an integer (not a bool) >= 0."""
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
        raise TypeError(f"{name}: {what} must be an integer, got {type(s).__name__} {s!r}")
    if s < 0:
        raise ValueError(f"{name}: {what} must be >= 0, got {s}")
    return int(s)


def constant(lr: float) -> Schedule:
    """The same rate at every step (finite, >= 0)."""
    return _StepSchedule([(0, lr)], "constant")


def step_decay(points: list[tuple[int, float]]) -> Schedule:
    """Piecewise constant: ``[(0, 0.1), (100_000, 0.01)]`` is the lecture's 0.1, then 0.01 from
    step 100,000. The points may come in any order; each step at most once, the first 0."""
    try:
        points = [(p[0], p[1]) for p in points]
    except (TypeError, IndexError, KeyError):
        raise TypeError(f"step_decay: points must be (step, rate) pairs, got {points!r}") from None
    for start, value in points:
        _step(start, "step_decay", "steps")
        _rate(value, "step_decay")
    points = sorted(points, key=lambda p: p[0])
    if not points or points[0][0] != 0:
        raise ValueError(f"a step schedule must start at step 0, got {points}")
    for (a, x), (b, y) in zip(points[:-1], points[1:]):
        if a == b:
            raise ValueError(f"step_decay: step {a} is given two rates, {x!r} and {y!r}")
    return _StepSchedule(points, "step_decay")


def cosine(lr: float, steps: int, warmup: int = 0, min_lr: float = 0.0) -> Schedule:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``lr`` to ``min_lr`` at ``steps``.
    Needs ``warmup < steps`` (unless ``steps`` is 0) and ``min_lr <= lr``, all of them >= 0."""
    lr = _rate(lr, "cosine", "the rate")
    steps = _step(steps, "cosine", "steps")
    warmup = _step(warmup, "cosine", "warmup")
    min_lr = _rate(min_lr, "cosine", "min")
    if 0 < steps <= warmup:  # (a run of 0 steps calls no schedule)
        raise ValueError(
            f"cosine: the warm-up of {warmup:,} steps leaves none of the run's {steps:,} steps to decay "
            "(warmup must be < steps)"
        )
    if min_lr > lr:
        raise ValueError(f"cosine: min = {min_lr:g} is above the rate {lr:g}: the schedule would rise")

    def f(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))

    return f


EXAMPLES = "write a rate (0.1), rates from given steps (0.1@0:0.01@100000) or cosine:3e-3:warmup=100"


def parse_schedule(spec: str | float, steps: int | None = None) -> Schedule:
    """A schedule from text, as the command line takes it:

    ``0.1``                    constant
    ``0.1@0:0.01@100000``      step decay (rate@first_step, ...; the first step 0, each step once)
    ``cosine:3e-3``            cosine decay to 0 over ``steps``; ``cosine:3e-3:warmup=1000:min=1e-5``

    Every rate must be finite and >= 0. ``ValueError`` (``TypeError`` for a spec that is neither a
    number nor text) saying what is wrong in plain words.
    """
    if isinstance(spec, (numbers.Real)) and not isinstance(spec, (bool, np.bool_)):
        try:
            return constant(spec)
        except ValueError:
            raise ValueError(f"the learning rate must be finite and >= 0, got {spec!r}") from None
    if not isinstance(spec, str):
        raise TypeError(f"a learning-rate schedule is a number or text, got {type(spec).__name__} {spec!r}")
    if steps is not None:
        steps = _step(steps, "parse_schedule", "steps")
    try:
        return _parse(spec.strip(), steps)
    except ValueError as e:
        raise ValueError(f"cannot read the learning-rate schedule {spec!r}: {e}") from None


def _number(text: str, what: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r} is not a number") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{what} must be finite and >= 0, got {text.strip()}")
    return x


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r} is not a whole number") from None
    if not (math.isfinite(x) and x == int(x)):
        raise ValueError(f"{what} {text.strip()!r} is not a whole number")
    return int(x)


def _parse(text: str, steps: int | None) -> Schedule:
    if not text:
        raise ValueError(f"it is empty; {EXAMPLES}")
    if text.split(":", 1)[0].strip().lower() == "cosine":
        parts = text.split(":")[1:]
        if not parts or not parts[0].strip():
            raise ValueError("cosine needs its peak rate, as cosine:3e-3")
        lr = _number(parts[0], "the rate")
        opts: dict[str, str] = {}
        for p in parts[1:]:
            key, eq, value = p.partition("=")
            key = key.strip()
            if not eq or not value.strip():
                raise ValueError(f"{p!r} is not an option: write warmup=STEPS or min=RATE")
            if key not in ("warmup", "min"):
                raise ValueError(f"unknown option {key!r}: cosine takes warmup=STEPS and min=RATE")
            if key in opts:
                raise ValueError(f"{key} is given twice")
            opts[key] = value
        warmup = _whole(opts.get("warmup", "0"), "warmup")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0 steps, got {warmup}")
        min_lr = _number(opts.get("min", "0"), "min")
        if steps is None:
            raise ValueError("a cosine schedule needs the number of steps")
        try:
            return cosine(lr, steps, warmup, min_lr)
        except ValueError as e:
            raise ValueError(str(e).removeprefix("cosine: ")) from None
    if "@" in text:
        points: dict[int, float] = {}
        for part in text.split(":"):
            value, at, start = part.partition("@")
            if not at or not value.strip() or not start.strip() or "@" in start:
                raise ValueError(f"{part.strip()!r} is not rate@step (as 0.01@100000)")
            rate = _number(value, "a rate")
            first = _whole(start, "a step")
            if first < 0:
                raise ValueError(f"steps must be >= 0, got {first} in {part.strip()!r}")
            if first in points:
                raise ValueError(f"step {first} is given two rates, {points[first]:g} and {rate:g}")
            points[first] = rate
        if 0 not in points:
            raise ValueError(f"the first rate must start at step 0 (add rate@0), got steps {sorted(points)}")
        return step_decay(sorted(points.items()))
    if ":" in text:
        raise ValueError(f"rates from given steps need @step each (0.1@0:0.01@100000); {EXAMPLES}")
    return constant(_number(text, "the rate"))
