"""The training loop: minibatch SGD (or momentum, or AdamW) run in the C++ core."""

from __future__ import annotations

import dataclasses
import functools
import numbers
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import _core
from . import _validate as v
from ._signals import interrupts_deferred
from .diagnostics import BINS, SATURATED, Diagnostics, _record
from .model import Model
from .schedules import _StepSchedule

__all__ = ["train", "TrainOptions", "History", "TrainState", "DivergenceError", "TrainingInterrupted"]

OPTIMIZERS = {"sgd": _core.OPT_SGD, "adamw": _core.OPT_ADAMW}
CHUNK_SECONDS = 0.05  # longest stretch in C++ between checks for Ctrl-C
UPDATE_STATS_STEPS = 4096  # the most steps of one call with diagnostics (its update statistics' buffer)
RECORDS_PER_CALL = 64  # and of its records (the room the core keeps for them)


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or parameter. ``history`` holds the run up to the last
    finite step; the model keeps the parameters after it."""

    def __init__(self, message: str, history: "History | None" = None):
        super().__init__(message)
        self.history = history

    def __reduce__(self) -> tuple:
        # The history holds the core's training state, which cannot be pickled: another process
        # (multiprocessing) receives the message, without it.
        return (DivergenceError, (str(self), None))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a notebook's interrupt) stopped :func:`train`: a ``KeyboardInterrupt`` that
    carries the run so far. The model holds the parameters after the last completed step;
    ``history`` holds that step's losses, and ``history.state`` continues the run from there
    (``train(model, X, Y, steps, state=e.history.state)``)."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


@dataclass(frozen=True)
class TrainOptions:
    """How :func:`train` takes its steps, checked when made::

        opts = mm.TrainOptions(batch_size=128, optimizer="adamw", weight_decay=0.05)
        mm.train(model, X, Y, steps, lr=3e-3, options=opts)   # as the same keyword arguments

    batch_size: rows per step; seed: keys the minibatch draws and the dropout masks (row i of step
    s is a pure function of seed, s and i).
    optimizer: ``"sgd"`` (with ``momentum``, ``nesterov``, ``weight_decay`` as torch.optim.SGD) or
        ``"adamw"`` (``betas``, ``eps``, decoupled ``weight_decay`` as torch.optim.AdamW).
    dropout: probability of zeroing each hidden unit during training (inverted dropout).
    """

    batch_size: int = 32
    seed: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        checked = {
            "batch_size": v.integer(self.batch_size, "batch_size", 1, 1 << 24),
            "seed": v.seed(self.seed),
        }
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        checked["momentum"] = momentum = v.real(self.momentum, "momentum", 0.0, 1.0, high_open=True)
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {self.nesterov!r}")
        if self.nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if self.optimizer == "adamw" and momentum:
            raise ValueError("momentum applies to optimizer='sgd'; AdamW's are its betas")
        checked["nesterov"] = bool(self.nesterov)
        betas = self.betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers, got {betas!r}")
        checked["betas"] = (
            v.real(betas[0], "betas[0]", 0.0, 1.0, high_open=True),
            v.real(betas[1], "betas[1]", 0.0, 1.0, high_open=True),
        )
        checked["eps"] = v.real(self.eps, "eps", 0.0, low_open=True)
        checked["weight_decay"] = v.real(self.weight_decay, "weight_decay", 0.0)
        checked["dropout"] = v.real(self.dropout, "dropout", 0.0, 1.0, high_open=True)
        for name, value in checked.items():  # the checked values (ints, floats, a pair) replace the given
            object.__setattr__(self, name, value)

    def as_dict(self) -> dict:
        """The options, JSON-ready (``betas`` as a list)."""
        return {**dataclasses.asdict(self), "betas": list(self.betas)}


class TrainState:
    """What a run needs to continue exactly where it stopped: the options, the global step count
    (which keys the minibatch and dropout draws and the learning-rate schedule) and the optimizer's
    moments. Returned in ``History.state``; pass it back as ``train(..., state=...)``."""

    def __init__(self, model: Model, options: TrainOptions):
        if options.batch_size * model.block_size > v.INT32_MAX:
            raise ValueError(
                f"batch_size * block_size must be <= {v.INT32_MAX}, got {options.batch_size} * "
                f"{model.block_size}"
            )
        model._check_batch(options.batch_size, "a minibatch (batch_size)")
        self.model = model
        self.options = options
        self.step = 0
        opt = _core.OptConfig(
            kind=OPTIMIZERS[options.optimizer],
            momentum=options.momentum,
            nesterov=options.nesterov,
            beta1=options.betas[0],
            beta2=options.betas[1],
            eps=options.eps,
            weight_decay=options.weight_decay,
            dropout=options.dropout,
        )
        self._t = _core.Trainer(model._m, options.batch_size, opt)

    @property
    def settings(self) -> dict:
        """The options as a JSON-ready dict."""
        return self.options.as_dict()

    def __repr__(self) -> str:
        o = self.options
        return (
            f"TrainState(step={self.step:,}, optimizer={o.optimizer!r}, batch_size={o.batch_size}, "
            f"seed={o.seed}, model={type(self.model).__name__} of {self.model.num_params:,} parameters)"
        )

    def meta(self) -> dict:
        """JSON-ready settings and counters (the moments are in :meth:`moments`)."""
        return {"settings": self.settings, "step": self.step, "updates": self._t.t}

    def moments(self) -> dict[str, np.ndarray]:
        """The optimizer's moment buffers, keyed ``m/C``, ``v/W1``, ... (empty for plain SGD)."""
        m, s = self._t.moments()
        out = {}
        for prefix, arrays in (("m", m), ("v", s)):
            if arrays is not None:
                out.update({f"{prefix}/{k}": a for k, a in zip(self.model.trained_names, arrays)})
        return out

    @classmethod
    def restore(cls, model: Model, meta: dict, arrays: Mapping[str, np.ndarray]) -> "TrainState":
        """The state :meth:`meta` and :meth:`moments` describe (the moments among ``arrays``)."""
        settings = meta["settings"]
        options = TrainOptions(**{f.name: settings[f.name] for f in dataclasses.fields(TrainOptions)})
        st = cls(model, options)
        st.step = v.integer(meta["step"], "step", 0, 2**62)
        st._t.t = v.integer(meta["updates"], "updates", 0, 2**62)
        m, w = st._t.moments()

        def get(prefix, present):
            if present is None:
                return None
            return [v.core_array(arrays[f"{prefix}/{k}"], model.dtype) for k in model.trained_names]

        st._t.set_moments(get("m", m), get("v", w))
        return st


@dataclass(repr=False)
class History:
    """What a call of :func:`train` did.

    loss: minibatch loss of every step; lr: the learning rate of every step; step0: the global
    step of ``loss[0]``; seconds and steps_per_second: wall time of the loop; eval_step,
    eval_loss, eval_seconds: the validation loss after those global steps (with X_val); best_step
    and best_loss: the best of them (the model holds its parameters when keep_best); diagnostics:
    what ``diagnostics_every`` recorded (:class:`makemore_cpp.diagnostics.Diagnostics`).
    """

    loss: np.ndarray
    lr: np.ndarray
    step0: int = 0
    seconds: float = 0.0
    steps_per_second: float = 0.0
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    best_step: int | None = None
    best_loss: float | None = None
    stopped: str | None = None
    state: TrainState | None = None
    diagnostics: Diagnostics | None = None

    @property
    def steps(self) -> int:
        return len(self.loss)

    def __repr__(self) -> str:
        n = len(self.loss)
        parts = [f"{n:,} steps" + (f" from step {self.step0:,}" if self.step0 else "")]
        if n:
            k = min(n, 1000)
            parts.append(
                f"last loss {self.loss[-1]:.4f} (mean of the last {k:,}: {np.mean(self.loss[-k:]):.4f})"
            )
            parts.append(f"lr {self.lr[-1]:.3g}")
        parts.append(f"{self.seconds:.2f} s ({self.steps_per_second:,.0f} steps/s)")
        if self.eval_step:
            parts.append(f"val loss {self.eval_loss[-1]:.4f} at step {self.eval_step[-1]:,}")
            if len(self.eval_step) > 1:
                parts.append(f"best {self.best_loss:.4f} at step {self.best_step:,}")
        if self.diagnostics is not None:
            parts.append(f"diagnostics every {self.diagnostics.every:,} steps")
        if self.stopped:
            parts.append(f"stopped: {self.stopped}")
        return f"History({', '.join(parts)})"


def _lr_array(lr: Any, steps: int, start: int) -> np.ndarray:
    def number(x: Any, step: int) -> float:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
            raise TypeError(f"lr({step}) must return a real number, got {type(x).__name__} {x!r}")
        return float(x)

    if type(lr) is _StepSchedule:  # constant, step_decay: their rates as one array
        arr = lr.at_steps(start, steps)
    elif callable(lr):
        values = []
        for i in range(steps):
            x = lr(start + i)
            values.append(x if type(x) is float else number(x, start + i))
        arr = np.array(values, dtype=np.float64)
    elif isinstance(lr, numbers.Real) and not isinstance(lr, (bool, np.bool_)):
        arr = np.full(steps, float(lr))
    else:
        if isinstance(lr, (str, bytes, bool, np.bool_, numbers.Number)):
            raise TypeError(
                f"lr must be a real number, a callable or an array of length steps = {steps}, "
                f"got {type(lr).__name__} {lr!r}"
            )
        arr = v.to_numpy(lr)
        if arr.dtype.kind not in "iuf":
            raise TypeError(
                f"lr must be a real number, a callable or an array of length steps = {steps}, "
                f"got an array of dtype {arr.dtype}"
            )
        arr = arr.astype(np.float64)
        if arr.shape != (steps,):
            raise ValueError(
                f"lr must be a number, a callable or an array of length steps = {steps}, got shape "
                f"{arr.shape}"
            )
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"learning rates must be finite and >= 0: lr at step {start + i} is {arr[i]}")
    return v.core_array(arr, np.float64)


def _in_kernel() -> bool:
    """Whether this is a Jupyter kernel (IPython under ipykernel)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _progress_bar(total: int) -> Any:
    """A tqdm.auto bar of ``total`` steps: a widget in a Jupyter kernel, kept when done (red when
    interrupted); in a terminal a line cleared when done; nothing when the output is not a terminal
    (a log file or CI: no flood of lines). In a kernel without ipywidgets (tqdm.auto then falls
    back to text, and warns), a text line on stdout that the notebook redraws in place."""
    from tqdm.auto import tqdm

    if not _in_kernel():
        return tqdm(total=total, unit="step", dynamic_ncols=True, leave=False, disable=None)
    try:
        from tqdm.notebook import tqdm as widget
    except ImportError:  # pragma: no cover - tqdm.notebook imports without ipywidgets
        widget = None
    if widget is not None and issubclass(tqdm, widget):
        return tqdm(total=total, unit="step", leave=True)
    return tqdm(total=total, unit="step", leave=True, file=sys.stdout, mininterval=0.5, disable=False)


def _interrupted(hist: History, steps: int | None) -> TrainingInterrupted:
    """The TrainingInterrupted of a call of ``steps`` steps (None: before the first) whose run so
    far is ``hist``."""
    hist.stopped = "interrupted"
    if steps is None:
        return TrainingInterrupted("training interrupted before its first step: the model is unchanged", hist)
    return TrainingInterrupted(
        f"training interrupted after {len(hist.loss):,} of {steps:,} steps (global step "
        f"{hist.state.step:,}): the model holds the parameters after that step; this exception's "
        ".history holds the run so far, and train(..., state=e.history.state) continues it",
        hist,
    )


def _interrupts_carry_the_run(f: Callable) -> Callable:
    """A Ctrl-C while ``train`` checks its arguments, before its first step, is a
    TrainingInterrupted too, whose history holds no step (and the ``state`` given, if any): every
    Ctrl-C in train carries the run so far. (From the first step on, train raises it itself.)"""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            state = kwargs.get("state")
            state = state if isinstance(state, TrainState) else None
            step0 = state.step if state is not None else 0
            hist = History(loss=np.zeros(0), lr=np.zeros(0), step0=step0, state=state)
            raise _interrupted(hist, None) from None

    return wrapper


def _holding_model(f: Callable) -> Callable:
    """Check the model, and hold it for the whole call (see Model._exclusive): a model is trained,
    evaluated or sampled by one thread at a time; a second thread's call is refused."""

    @functools.wraps(f)
    def wrapper(model: Model, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(model, Model):
            raise TypeError(
                f"model must be a makemore_cpp.MLP or makemore_cpp.nn.Sequential, got {type(model).__name__}"
            )
        with model._exclusive():
            return f(model, *args, **kwargs)

    return wrapper


@_interrupts_carry_the_run
@_holding_model
def train(
    model: Model,
    X: Any,
    Y: Any,
    steps: int,
    batch_size: int = 32,
    lr: float | Sequence[float] | Callable[[int], float] = 0.1,
    seed: int = 0,
    batch_indices: Any = None,
    *,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    options: TrainOptions | None = None,
    X_val: Any = None,
    Y_val: Any = None,
    eval_every: int | None = None,
    keep_best: bool = False,
    state: TrainState | None = None,
    diagnostics_every: int | None = None,
    progress: bool = False,
    on_divergence: str = "raise",
) -> History:
    """Train ``model`` in place for ``steps`` minibatch steps, as the lecture's loop does::

        for i in range(steps):
            ix = <batch_size random rows>; loss = cross_entropy(model(X[ix]), Y[ix])
            loss.backward(); p -= lr * p.grad

    lr: a number, an array of ``steps`` numbers, or a callable ``step -> lr`` evaluated once for
        each global step before the loop starts.
    seed: keys the minibatch draws (row i of step s is a pure function of seed, s and i); or give
        ``batch_indices`` (steps, batch_size) to replay exact rows.
    optimizer: ``"sgd"`` (with ``momentum``, ``nesterov``, ``weight_decay`` as torch.optim.SGD) or
        ``"adamw"`` (``betas``, ``eps``, decoupled ``weight_decay`` as torch.optim.AdamW).
    dropout: probability of zeroing each hidden unit during training (inverted dropout).
    options: all of these (batch_size to dropout) as one :class:`TrainOptions`; those keyword
        arguments are then left at their defaults.
    X_val, Y_val, eval_every: evaluate the loss on these rows every ``eval_every`` steps and at the
        end; ``keep_best`` leaves the model with the parameters of the best evaluation.
    state: a previous run's ``History.state``, to continue that run (same settings required).
    diagnostics_every: every this many global steps, part 3's statistics of that step's minibatch
        (:func:`makemore_cpp.diagnose`, before the step's update), and at every step the
        update:data ratio of every trained parameter, into ``History.diagnostics``.
    progress: show a tqdm.auto progress bar (steps/s and the running loss): a widget in Jupyter,
        a line in a terminal, nothing when the output is not a terminal.
    on_divergence: ``"raise"`` a :class:`DivergenceError`, or ``"stop"`` and return the history.
        Either way the model keeps the parameters of the last step whose loss and update were finite.

    Ctrl-C (or a notebook's interrupt) stops within 0.5 s with :class:`TrainingInterrupted`, a
    ``KeyboardInterrupt`` whose ``history`` is the run so far; the model then holds the parameters
    after the last completed step, and ``history.state`` continues the run.
    """
    steps = v.integer(steps, "steps", 0)
    per_step = 16 + (0 if type(lr) is _StepSchedule or not callable(lr) else 40)  # losses, rates (floats)
    if diagnostics_every is not None and isinstance(model, Model):
        per_step += 8 * len(model.trained_names)  # every step's update ratios
    v.fits(steps * per_step, f"train(steps={steps:,})", f" for its per-step arrays ({per_step} bytes a step)")
    given = TrainOptions(
        batch_size=batch_size,
        seed=seed,
        optimizer=optimizer,
        momentum=momentum,
        nesterov=nesterov,
        betas=betas,
        eps=eps,
        weight_decay=weight_decay,
        dropout=dropout,
    )
    if options is None:
        options = given
    elif not isinstance(options, TrainOptions):
        raise TypeError(f"options must be a TrainOptions, got {type(options).__name__}")
    elif given != TrainOptions():
        raise ValueError("give the optimizer's settings as options or as keyword arguments, not both")
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"on_divergence must be 'raise' or 'stop', got {on_divergence!r}")
    X, Y = v.rows(model, X, Y)
    if len(X) == 0:
        raise ValueError("X and Y are empty: there is nothing to train on")
    if (X_val is None) != (Y_val is None):
        raise ValueError("give both X_val and Y_val, or neither")
    if X_val is not None:
        X_val, Y_val = v.rows(model, X_val, Y_val, "X_val", "Y_val")
        if len(X_val) == 0:
            raise ValueError("X_val and Y_val are empty")
    if eval_every is not None:
        eval_every = v.integer(eval_every, "eval_every", 1)
        if X_val is None:
            raise ValueError("eval_every needs X_val and Y_val")
    if keep_best and X_val is None:
        raise ValueError("keep_best needs X_val and Y_val")
    if diagnostics_every is not None:
        diagnostics_every = v.integer(diagnostics_every, "diagnostics_every", 1)
        if options.batch_size < 2:
            raise ValueError("diagnostics_every needs batch_size >= 2 (the statistics' standard deviations)")

    if state is None:
        state = TrainState(model, options)
    else:
        if not isinstance(state, TrainState):
            raise TypeError(f"state must be a TrainState (History.state), got {type(state).__name__}")
        if state.model is not model:
            raise ValueError("state belongs to another model")
        theirs, ours = state.settings, options.as_dict()
        diff = {k: (theirs[k], ours[k]) for k in ours if theirs[k] != ours[k]}
        if diff:
            raise ValueError(
                "state was made with other settings; pass the same ones to continue the run: "
                + ", ".join(f"{k}={a!r} (this call: {b!r})" for k, (a, b) in diff.items())
            )
    step0 = state.step
    hist = None
    bar = None
    done = 0
    updates0 = state._t.t
    interrupted = False
    t0 = time.perf_counter()
    try:  # (a Ctrl-C from here on, before the first step included, carries the run so far)
        lrs = _lr_array(lr, steps, step0)
        bidx = None
        if batch_indices is not None:
            bidx = v.index_array(
                batch_indices, "batch_indices", (steps, options.batch_size), len(X), "the number of rows in X"
            )
            bidx = bidx.astype(np.int64)

        # The core reads the minibatch rows at random: as bytes they take a quarter of the memory, and
        # more of them stay in cache (the lecture's step 1-2% faster). The copy pays for itself when
        # the run reads rows of the order of an eighth of X or more.
        X_run, Y_run = X, Y
        if model.vocab_size <= 256 and steps * options.batch_size * 8 >= len(X):
            X_run, Y_run = X.astype(np.uint8), Y.astype(np.uint8)

        losses = np.full(steps, np.nan)
        hist = History(loss=losses, lr=lrs, step0=step0, state=state)
        diag = None
        if diagnostics_every is not None:
            diag = hist.diagnostics = Diagnostics(every=diagnostics_every, names=list(model.trained_names))
            # the run's update ratios, filled in place as the core's calls return
            ratio_all = np.empty((steps, len(diag.names)))
            steps_all = np.arange(step0, step0 + steps, dtype=np.int64)
            ustats_buffer = np.zeros((min(steps, UPDATE_STATS_STEPS), len(diag.names), 2))

        best_params = None
        bar = _progress_bar(steps) if progress else None

        def evaluate() -> None:
            nonlocal best_params
            val = model.loss(X_val, Y_val)
            hist.eval_step.append(state.step)
            hist.eval_loss.append(val)
            hist.eval_seconds.append(time.perf_counter() - t0)
            if hist.best_loss is None or val < hist.best_loss:
                hist.best_loss, hist.best_step = val, state.step
                if keep_best:
                    best_params = model.get_params()

        while done < steps:
            end = steps if eval_every is None else min(steps, (done // eval_every + 1) * eval_every)
            ustats = None
            if diag is not None:
                # the core records part 3's statistics of every diagnostics_every-th step's minibatch
                # before its update, and each step's update statistics
                end = min(end, done + UPDATE_STATS_STEPS, done + RECORDS_PER_CALL * diagnostics_every)
                ustats = ustats_buffer[: end - done]
            # Ctrl-C waits for the statements that count the core's steps (not for the core, which
            # returns every CHUNK_SECONDS): the run's count, its diagnostics and the state's step
            # always agree with the model.
            with interrupts_deferred():
                n, status, records = state._t.run(
                    X_run,
                    Y_run,
                    None if bidx is None else bidx[done:end],
                    lrs[done:end],
                    state.step,
                    options.seed,
                    CHUNK_SECONDS,
                    losses[done:end],
                    ustats,
                    diagnostics_every or 0,
                    BINS,
                    SATURATED,
                )
                if diag is not None:
                    diag.records += [_record(r, diag.names) for r in records]
                    ratio_all[done : done + n] = Diagnostics.ratios(ustats[:n])
                    diag.update_ratio, diag.steps = ratio_all[: done + n], steps_all[: done + n]
                done += n
                state.step += n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(loss=f"{np.mean(losses[max(0, done - 100) : done]):.4f}", refresh=False)
            if status:
                at = step0 + done
                kept = f"the parameters after step {at - 1}" if at > 0 else "its initial parameters"
                if status == _core.RUN_NONFINITE_LOSS:
                    hist.stopped = (
                        f"the minibatch loss became {losses[done]} at step {at} (lr {lrs[done]:g}); "
                        f"the model keeps {kept}"
                    )
                else:
                    hist.stopped = (
                        f"the update of step {at} (lr {lrs[done]:g}) made a parameter non-finite; "
                        f"the model keeps {kept}"
                    )
                break
            if eval_every is not None and (done % eval_every == 0 or done == steps):
                evaluate()
    except KeyboardInterrupt:
        # Where Ctrl-C cannot be held back (another thread's handler), Python may raise it before
        # the loop above counted the last call's steps: the core's count of updates says how many
        # were completed (that call's diagnostics are then not in the history).
        interrupted = True
        done = state._t.t - updates0
        state.step = step0 + done
        if hist is None:  # before the first step
            hist = History(loss=np.zeros(0), lr=np.zeros(0), step0=step0, state=state)
            losses = lrs = np.zeros(0)
    finally:
        if bar is not None:
            bar.close()
    hist.seconds = time.perf_counter() - t0
    hist.loss = losses[:done]
    hist.lr = lrs[:done]
    hist.steps_per_second = done / hist.seconds if hist.seconds > 0 else 0.0
    if interrupted:
        raise _interrupted(hist, steps)
    try:  # (the run's steps are done: a Ctrl-C now stops its last evaluation)
        if (
            X_val is not None
            and hist.stopped is None
            and (not hist.eval_step or hist.eval_step[-1] != state.step)
        ):
            evaluate()
        if keep_best and best_params is not None and hist.best_step != state.step:
            model.set_params(best_params)
    except KeyboardInterrupt:
        raise _interrupted(hist, steps) from None
    if hist.stopped is not None and on_divergence == "raise":
        raise DivergenceError(hist.stopped, hist)
    return hist
