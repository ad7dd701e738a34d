"""Learning-rate schedules: functions of the global step, for ``train(lr=...)``.

``constant`` and ``step_decay`` are piecewise-constant schedules whose rates ``train`` takes as one
array (``at_steps``: the same numbers as calling the schedule at each step), so that a run need not
make 200,000 Python calls first; any other callable, a wrapper of these included, is called at
each step.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np

__all__ = ["constant", "step_decay", "cosine", "parse_schedule"]

Schedule = Callable[[int], float]


class _StepSchedule:
    """Piecewise constant: the value of the last point whose step is <= the step (points sorted)."""

    def __init__(self, points: list, name: str):
        for point in points:
            v = point[1]
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name}: learning rates must be real numbers, got {type(v).__name__} {v!r}")
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


def constant(lr: float) -> Schedule:
    return _StepSchedule([(0, lr)], "constant")


def step_decay(points: list[tuple[int, float]]) -> Schedule:
    """Piecewise constant: ``[(0, 0.1), (100_000, 0.01)]`` is the lecture's 0.1, then 0.01 from "
    "step 100,000."""
    points = sorted(points)
    if not points or points[0][0] != 0:
        raise ValueError(f"a step schedule must start at step 0, got {points}")
    return _StepSchedule(points, "step_decay")


def cosine(lr: float, steps: int, warmup: int = 0, min_lr: float = 0.0) -> Schedule:
    """Linear warm-up over ``warmup`` steps, then cosine decay from ``lr`` to ``min_lr`` at ``steps``."""

    def f(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t))

    return f


def parse_schedule(spec: str | float, steps: int | None = None) -> Schedule:
    """A schedule from text, as the command line takes it:

    ``0.1``                    constant
    ``0.1@0:0.01@100000``      step decay (value@first_step, ...)
    ``cosine:3e-3``            cosine decay to 0 over ``steps``; ``cosine:3e-3:warmup=1000:min=1e-5``
    """
    if isinstance(spec, (int, float)):
        return constant(float(spec))
    text = str(spec).strip()
    try:
        if text.startswith("cosine:"):
            parts = text.split(":")[1:]
            lr, opts = float(parts[0]), dict(p.split("=", 1) for p in parts[1:])
            unknown = set(opts) - {"warmup", "min"}
            if unknown:
                raise ValueError(f"unknown option(s) {sorted(unknown)}")
            if steps is None:
                raise ValueError("a cosine schedule needs the number of steps")
            return cosine(lr, steps, int(opts.get("warmup", 0)), float(opts.get("min", 0.0)))
        if "@" in text:
            points = []
            for part in text.split(":"):
                value, start = part.split("@")
                points.append((int(start), float(value)))
            return step_decay(points)
        return constant(float(text))
    except ValueError as e:
        raise ValueError(
            f"cannot read the learning-rate schedule {spec!r}: {e}. Examples: '0.1', "
            "'0.1@0:0.01@100000', 'cosine:3e-3:warmup=1000:min=1e-5'"
        ) from None
