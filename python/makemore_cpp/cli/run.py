"""A training run's folder: checkpoint, best model, log, losses, loss plot and summary; what the
checkpoint records beside the model (the settings, the input and the time trained); the checks
before a run is resumed."""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import IO, Any, Callable

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from .. import checkpoint
from .._files import atomic_write, check_folder, check_writable
from ..model import Model
from ..training import TrainState
from .common import PROG, CLIError, jsonable, load_input, words_digest

RUNS = "runs"  # default parent folder of training runs
CHECKPOINT = "model.npz"  # a run's checkpoint: model, optimizer state, step, settings
BEST = "best.npz"  # the best model by dev loss, when the run keeps the best
LOG = "log.jsonl"
LOSSES = "losses.npy"  # every step's minibatch loss (float32), for the plot across --resume
LOSS_PNG = "loss.png"
SUMMARY = "summary.json"
FILES = {
    "checkpoint": CHECKPOINT,
    "log": LOG,
    "losses": LOSSES,
    "plot": LOSS_PNG,
    "summary": SUMMARY,
    "best": BEST,
}


class Run:
    """One training run: its folder (``paths`` of its files), settings (``cfg``), total steps,
    words and input file, log interval; when resumed, the time trained before this session and the
    best dev loss so far. Files are replaced whole (atomically), except the log, which grows a line
    at a time."""

    def __init__(
        self,
        workdir: str,
        cfg: dict[str, Any],
        total: int,
        words: list[str],
        input_path: str | None,
        log_every: int | None,
        resumed: bool = False,
        elapsed: float = 0.0,
        best: dict | None = None,
    ):
        self.workdir = workdir
        self.paths = {name: os.path.join(workdir, f) for name, f in FILES.items()}
        self.cfg = cfg
        self.total = total
        self.words = words
        self.input_path = input_path
        self.digest = words_digest(words)
        self.log_every = max(1, int(log_every or 100))
        self.resumed = resumed
        self.elapsed0 = elapsed
        self.best = best
        self.evaluated: int | None = None  # the last step whose dev loss (and checkpoint) is written
        self._log: IO | None = None
        self._start = 0.0
        self._lock_fd: int | None = None
        self._locked = False
        self._checkpoint_id: tuple | None = None  # the checkpoint read (None: none), see lock()

    @classmethod
    def new(
        cls,
        workdir: str | os.PathLike | None,
        cfg: dict[str, Any],
        input: str | os.PathLike | None,
        log_every: int | None,
    ) -> "Run":
        """A run of the settings ``cfg`` on the words of ``input``, in ``workdir`` (default
        ``runs/<date-time>``), which must not hold a run already."""
        words, input_path = load_input(input)
        workdir = _new_workdir() if workdir is None else os.fspath(workdir)
        if os.path.exists(os.path.join(workdir, CHECKPOINT)):
            raise CLIError(
                f"{workdir} already holds a run ({CHECKPOINT}): continue it with --resume, or "
                "choose another -o"
            )
        return cls(workdir, cfg, int(cfg["steps"]), words, input_path, log_every)

    @classmethod
    def resume(
        cls,
        workdir: str | os.PathLike | None,
        overrides: dict[str, Any],
        input: str | os.PathLike | None,
        log_every: int | None,
        say: Callable[..., None],
    ) -> tuple["Run", Model, TrainState]:
        """The run in ``workdir``, its model and training state, from its checkpoint. Only ``steps``
        (a new total) and ``eval_every`` of ``overrides`` may differ from its settings; its input
        must be the same words."""
        if workdir is None:
            raise CLIError("--resume needs the run's folder: -o WORKDIR")
        workdir = os.fspath(workdir)
        path = os.path.join(workdir, CHECKPOINT)
        if not os.path.exists(path):
            raise CLIError(f"nothing to resume: {path} does not exist")
        checkpoint_id = _identity(path)  # (before it is read: a checkpoint written meanwhile differs)
        ck = checkpoint.load(path)
        extra = ck.extra
        if ck.state is None or "settings" not in extra:
            raise CLIError(f"{path} was not written by '{PROG} train' (no training state): cannot resume it")
        cfg = dict(extra["settings"])
        cfg["n_hidden"] = cfg["n_hidden"] if isinstance(cfg["n_hidden"], int) else tuple(cfg["n_hidden"])
        fixed = {k: val for k, val in overrides.items() if k not in ("steps", "eval_every")}
        changed = {k: (cfg.get(k), val) for k, val in fixed.items() if jsonable(val) != jsonable(cfg.get(k))}
        if changed:
            raise CLIError(
                "a resumed run keeps its settings (only --steps and --eval-every may change); these differ "
                "from the checkpoint's: "
                + ", ".join(f"{k} = {a!r} there, {b!r} here" for k, (a, b) in changed.items())
            )
        if input is not None and os.path.abspath(os.fspath(input)) != extra.get("input"):
            raise CLIError(f"the run was trained on {extra.get('input') or 'the bundled names'}, not {input}")
        done = ck.state.step
        total = int(overrides.get("steps", extra["total_steps"]))
        if "steps" in overrides:
            cfg["steps"] = total
        if "eval_every" in overrides:
            cfg["eval_every"] = overrides["eval_every"]
        if total < done:
            raise CLIError(f"the checkpoint is at step {done:,}, past --steps {total:,}")
        if total != extra["total_steps"] and str(cfg["lr"]).startswith("cosine"):
            say(f"note: the cosine schedule is stretched from {extra['total_steps']:,} to {total:,} steps")
        words, input_path = load_input(extra.get("input"))
        if extra.get("input_digest") and words_digest(words) != extra["input_digest"]:
            raise CLIError(
                f"{input_path or 'the bundled names'} changed since the run started: cannot resume it"
            )
        run = cls(
            workdir,
            cfg,
            total,
            words,
            input_path,
            log_every or extra.get("log_every"),
            resumed=True,
            elapsed=float(extra.get("elapsed", 0.0)),
            best=extra.get("best"),
        )
        run._checkpoint_id = checkpoint_id
        evaluated = extra.get("evaluated", done)  # (older checkpoints were written after their evaluation)
        run.evaluated = evaluated if isinstance(evaluated, int) else done
        return run, ck.model, ck.state

    def check_files(self, diagnostics: bool = False) -> None:
        """Before anything is written: the run's folder is a folder or can be made, and each file
        the run writes is a regular file or not there yet (a symbolic link, a folder or a device in
        its place is refused, naming it)."""
        try:
            check_folder(self.workdir, "the run")
            names = list(self.paths.values())
            if diagnostics:
                names += [os.path.join(self.workdir, f) for f in ("diagnostics.json", "update_ratio.npz")]
            for path in names:
                check_writable(path, "run's file", make_folder=True)
        except OSError as e:
            raise CLIError(str(e)) from None

    def lock(self) -> None:
        """Hold the run's folder for this process (an advisory lock on the folder itself, released
        by :meth:`unlock` or when the process ends): a second ``train`` on the same folder at the
        same time is refused instead of interleaving its checkpoints and log with this one's. With
        the lock held, the folder is checked again: a new run finds no checkpoint there, a resumed
        one the checkpoint it read (another process may have written one meanwhile). Where the
        file system has no such locks, the run goes on without."""
        fd = os.open(self.workdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if fcntl else None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                fd = None
                if isinstance(e, BlockingIOError):
                    raise CLIError(
                        f"another process is training the run in {self.workdir}: wait for it to end, "
                        "or choose another -o"
                    ) from None
                # (any other error: this file system has no such locks)
        self._lock_fd, self._locked = fd, True
        path = self.paths["checkpoint"]
        if _identity(path) != self._checkpoint_id:
            self.unlock()
            if not self.resumed:
                raise CLIError(
                    f"{self.workdir} already holds a run ({CHECKPOINT}): continue it with --resume, or "
                    "choose another -o"
                )
            raise CLIError(f"{path} changed while it was read (another process wrote it): try again")

    def holds_lock(self) -> bool:
        """Whether this process holds the run's folder (:meth:`lock`, :meth:`unlock`)."""
        return self._locked

    def unlock(self) -> None:
        fd, self._lock_fd, self._locked = self._lock_fd, None, False
        if fd is not None:
            os.close(fd)

    def elapsed(self) -> float:
        """Seconds in all sessions of the run so far."""
        return self.elapsed0 + self.session_seconds()

    def session_seconds(self) -> float:
        """Seconds since this session began (:meth:`begin`)."""
        return time.perf_counter() - self._start

    def previous_losses(self, done: int) -> tuple[np.ndarray, int]:
        """Every step's loss (NaN where not known yet) with those of the steps before ``done`` read
        back, and the first step whose loss this session computes (0 if all were read)."""
        losses = np.full(self.total, np.nan, np.float32)
        known = done
        if self.resumed and os.path.exists(self.paths["losses"]):
            prev = np.load(self.paths["losses"])[:done]
            losses[: len(prev)] = prev
            known = 0 if len(prev) == done else done
        return losses, known

    def begin(self, event: dict, done: int) -> None:
        """Start this session's clock and log: a resumed run's records up to the checkpoint's step
        ``done`` (those past it are redone), then ``event``, then a line at a time (:meth:`log`)."""
        self._start = time.perf_counter()
        records = [
            r
            for r in (read_log(self.paths["log"]) if self.resumed else [])
            if not isinstance(r.get("step"), int) or r["step"] <= done
        ]
        records.append(event)
        atomic_write(self.paths["log"], lambda f: f.writelines(json.dumps(r) + "\n" for r in records))
        self._log = open(self.paths["log"], "a", encoding="utf-8")

    def log(self, record: dict) -> None:
        self._log.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.flush()

    def close(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()

    def extra(self) -> dict:
        """What the checkpoint records beside the model and its training state."""
        return {
            "command": "train",
            "settings": jsonable(self.cfg),
            "total_steps": self.total,
            "input": self.input_path,
            "input_digest": self.digest,
            "split": list(self.cfg["split"]),
            "split_seed": self.cfg["split_seed"],
            "lr": self.cfg["lr"],
            "elapsed": self.elapsed(),
            "best": self.best,
            "log_every": self.log_every,
            "evaluated": self.evaluated,
        }

    def save(
        self,
        model: Model,
        state: TrainState | None,
        losses: np.ndarray,
        extra_files: Callable[[], Any] | None = None,
    ) -> None:
        """The losses of the checkpoint's steps and ``extra_files()`` (what else goes with it),
        then the checkpoint: whatever stops the run between them, the files beside the checkpoint
        hold at least its steps (a resumed run reads only those)."""
        step = state.step if state else 0
        atomic_write(self.paths["losses"], lambda f: np.save(f, losses[:step]), mode="wb", what="losses")
        if extra_files is not None:
            extra_files()
        checkpoint.save(self.paths["checkpoint"], model, state, self.extra())

    def save_best(self, model: Model, step: int, dev_loss: float) -> None:
        self.best = {"step": step, "dev_loss": dev_loss}
        checkpoint.save(self.paths["best"], model, None, self.extra())

    def write_summary(self, summary: dict) -> None:
        atomic_write(self.paths["summary"], lambda f: json.dump(summary, f, indent=1))


def read_log(path: str) -> list[dict]:
    """The records of a run's log; a last line cut short by a crash is left out."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash: the records after the checkpoint are redone anyway
    return records


def _identity(path: str) -> tuple | None:
    """What tells one file at ``path`` from another written there (checkpoints are replaced whole,
    by a rename), or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _new_workdir() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(RUNS, stamp)
    path, i = base, 2
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path


def find_checkpoint(path: str | os.PathLike | None = None, prefer_best: bool = True) -> str:
    """The checkpoint file ``path`` names: the file itself; in a run folder its ``best.npz`` (when
    ``prefer_best`` and present) or ``model.npz``; with no path, the newest run under ``runs/``."""
    if path is None:
        if not os.path.isdir(RUNS):
            raise CLIError(
                f"no checkpoint given and no {RUNS}{os.sep} folder here: train first ('{PROG} "
                "train') or name one"
            )
        runs = [
            os.path.join(RUNS, d)
            for d in os.listdir(RUNS)
            if os.path.exists(os.path.join(RUNS, d, CHECKPOINT))
        ]
        if not runs:
            raise CLIError(
                f"no checkpoint given and no run in {RUNS}{os.sep}: train first ('{PROG} train') or name one"
            )
        path = max(runs, key=lambda d: os.path.getmtime(os.path.join(d, CHECKPOINT)))
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (BEST, CHECKPOINT) if prefer_best else (CHECKPOINT,):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        raise CLIError(f"{path} holds no {CHECKPOINT}")
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such checkpoint file or run folder")
    return path
