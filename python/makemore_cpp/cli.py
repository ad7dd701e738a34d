"""The command line, ``makemore-cpp <command>`` (or ``python -m makemore_cpp <command>``), and the
same commands as Python functions.

    makemore-cpp train                      # the lecture's model on the bundled names, in seconds
    makemore-cpp sample runs/<time> -n 20   # names marked in train / in dev / in test / new
    makemore-cpp lr-find                    # the lecture's learning-rate sweep and a suggestion
    makemore-cpp sweep --n-hidden 100,200,300 --n-embd 2,10 --steps 50000
    makemore-cpp embeddings runs/<time>     # the scatter of the embedding table C
    makemore-cpp overfit                    # memorise 32 examples: the sanity check
    makemore-cpp bench --quick              # the benchmark suite

In Python: :func:`run_train`, :func:`run_sample`, :func:`run_lr_find`, :func:`run_sweep`,
:func:`run_embeddings`, :func:`run_overfit` take the options as keyword arguments, print what the
command prints (unless ``quiet=True``) and return what they computed. The pieces without files are
:func:`lr_find`, :func:`suggest_lr`, :func:`overfit`, :func:`loss_floor` and :func:`mark_samples`.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import itertools
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

import makemore_cpp as mm

from . import checkpoint as ckpt
from .data import Vocab, build_dataset, load_names, load_words, split_words
from .experiments import LRFindResult, OverfitResult, loss_floor, lr_find, mark_samples, overfit, suggest_lr
from .fitting import build_model, resolve, train_options
from .model import MLP
from .presets import PRESETS
from .schedules import parse_schedule

__all__ = [
    "main",
    "CLIError",
    "run_train",
    "TrainResult",
    "run_sample",
    "run_lr_find",
    "LRFindResult",
    "lr_find",
    "suggest_lr",
    "run_sweep",
    "run_embeddings",
    "run_overfit",
    "overfit",
    "OverfitResult",
    "loss_floor",
    "mark_samples",
    "find_checkpoint",
    "run_bench",
    "parse_hidden",
    "build_parser",
]

PROG = "makemore-cpp"
RUNS = "runs"  # default parent folder of training runs
CHECKPOINT = "model.npz"  # a run's checkpoint: model, optimizer state, step, settings
BEST = "best.npz"  # the best model by dev loss, when the run keeps the best
LOG = "log.jsonl"
LOSSES = "losses.npy"  # every step's minibatch loss (float32), for the plot across --resume
LOSS_PNG = "loss.png"
SUMMARY = "summary.json"
CHUNK_SECONDS = 0.25  # training runs in chunks this long, between progress and log updates


class CLIError(Exception):
    """A usage error: reported as ``makemore-cpp <command>: error: <message>`` with exit status 2."""


def _printer(quiet: bool) -> Callable[..., None]:
    if quiet:
        return lambda *a, **k: None
    return lambda *a, **k: print(*a, **k, flush=True)


def _plots():
    from . import plots

    return plots


# ============================================================================================ data


def _load_input(path: str | os.PathLike | None) -> tuple[list[str], str | None]:
    """The words of ``path`` (absolute path returned), or the bundled names (None)."""
    if path is None:
        return load_names(), None
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise CLIError(f"input file {path} does not exist")
    words = load_words(path)
    if not words:
        raise CLIError(f"input file {path} holds no words")
    return words, path


def _describe_input(path: str | None, words: Sequence[str]) -> str:
    return f"{len(words):,} words from {path}" if path else f"{len(words):,} names (bundled)"


def _words_digest(words: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()[:16]


def parse_hidden(text: str | int | Sequence[int]) -> int | tuple[int, ...]:
    """``"200"`` -> 200; ``"256x256"`` -> (256, 256): hidden-layer widths, layers separated by 'x'."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    if not isinstance(text, str):
        return tuple(int(t) for t in text)
    try:
        widths = [int(t) for t in text.lower().split("x")]
    except ValueError:
        raise CLIError(
            f"--n-hidden: expected a width such as 200, or widths of several layers such as "
            f"256x256, got {text!r}"
        ) from None
    return widths[0] if len(widths) == 1 else tuple(widths)


def _hidden_text(h: Any) -> str:
    return "x".join(str(w) for w in h) if isinstance(h, (list, tuple)) else str(h)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(val) for val in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# ============================================================================================ train


@dataclass
class TrainResult:
    """What :func:`run_train` did: the folder, the model (the best one when the run keeps the best),
    its losses on train/dev/test, the samples with their marks, and the run's step count and time."""

    workdir: str
    model: MLP
    losses: dict[str, float]
    samples: list[tuple[str, str]]
    step: int
    total_steps: int
    seconds: float
    steps_per_second: float
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)


def _new_workdir() -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(RUNS, stamp)
    path, i = base, 2
    while os.path.exists(path):
        path, i = f"{base}-{i}", i + 1
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _atomic_write(path: str, write: Callable[[Any], None], mode: str = "w") -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it an ordinary file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_log(path: str) -> list[dict]:
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


def run_train(
    workdir: str | os.PathLike | None = None,
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    resume: bool = False,
    threads: int | None = None,
    log_every: int | None = None,
    samples: int = 20,
    sample_seed: int = 0,
    plot: bool = True,
    progress: bool | None = None,
    quiet: bool = False,
    **overrides: Any,
) -> TrainResult:
    """``makemore-cpp train``: train a preset's model (with any of its settings overridden) on the
    words of ``input`` (default: the bundled names), split 80/10/10 as the lecture does.

    Writes into ``workdir`` (default ``runs/<date-time>``): ``model.npz``, the checkpoint (saved at
    every dev evaluation and at the end); ``log.jsonl``, one JSON record per line; ``losses.npy``,
    every step's minibatch loss; ``loss.png``, the loss curve; ``summary.json``, the final losses
    and samples; and ``best.npz`` when the settings keep the best model by dev loss.

    resume: continue the run in ``workdir`` from its checkpoint, up to its total steps (or up to
        ``steps`` when given); the result is identical to a run that was never interrupted.
    overrides: any setting of ``PRESETS[preset]`` (``steps``, ``lr``, ``n_hidden``, ...); ``lr`` as a
        number or schedule text such as ``"0.1@0:0.01@100000"``.
    progress: a tqdm bar (steps/s, running loss); None shows it only when stderr is a terminal.
    """
    say = _printer(quiet)
    overrides = {k: val for k, val in overrides.items() if val is not None}
    if "n_hidden" in overrides:
        overrides["n_hidden"] = parse_hidden(overrides["n_hidden"])
    if "lr" in overrides:
        if callable(overrides["lr"]):
            raise CLIError(
                "lr must be a number or schedule text (it is stored in the checkpoint), not a callable"
            )
        overrides["lr"] = str(overrides["lr"])
    if threads is not None:
        mm.set_num_threads(threads)

    if resume:
        if workdir is None:
            raise CLIError("--resume needs the run's folder: -o WORKDIR")
        workdir = os.fspath(workdir)
        cpath = os.path.join(workdir, CHECKPOINT)
        if not os.path.exists(cpath):
            raise CLIError(f"nothing to resume: {cpath} does not exist")
        ck = ckpt.load(cpath)
        extra = ck.extra
        if ck.state is None or "settings" not in extra:
            raise CLIError(f"{cpath} was not written by '{PROG} train' (no training state): cannot resume it")
        cfg = dict(extra["settings"])
        cfg["n_hidden"] = cfg["n_hidden"] if isinstance(cfg["n_hidden"], int) else tuple(cfg["n_hidden"])
        fixed = {k: val for k, val in overrides.items() if k not in ("steps", "eval_every")}
        changed = {
            k: (cfg.get(k), val) for k, val in fixed.items() if _jsonable(val) != _jsonable(cfg.get(k))
        }
        if changed:
            raise CLIError(
                "a resumed run keeps its settings (only --steps and --eval-every may change); these differ "
                "from the checkpoint's: "
                + ", ".join(f"{k} = {a!r} there, {b!r} here" for k, (a, b) in changed.items())
            )
        if input is not None and os.path.abspath(os.fspath(input)) != extra.get("input"):
            raise CLIError(f"the run was trained on {extra.get('input') or 'the bundled names'}, not {input}")
        model, state = ck.model, ck.state
        done = state.step
        total = int(overrides.get("steps", extra["total_steps"]))
        if "steps" in overrides:
            cfg["steps"] = total
        if "eval_every" in overrides:
            cfg["eval_every"] = overrides["eval_every"]
        if total < done:
            raise CLIError(f"the checkpoint is at step {done:,}, past --steps {total:,}")
        if total != extra["total_steps"] and str(cfg["lr"]).startswith("cosine"):
            say(f"note: the cosine schedule is stretched from {extra['total_steps']:,} to {total:,} steps")
        words, input_path = _load_input(extra.get("input"))
        if extra.get("input_digest") and _words_digest(words) != extra["input_digest"]:
            raise CLIError(
                f"{input_path or 'the bundled names'} changed since the run started: cannot resume it"
            )
        elapsed0 = float(extra.get("elapsed", 0.0))
        best = extra.get("best")
        preset = cfg.get("preset", preset)
        log_every = log_every or extra.get("log_every")
    else:
        cfg = resolve(preset, **overrides)
        if callable(cfg["lr"]):
            raise CLIError("lr must be a number or schedule text")
        cfg["lr"] = str(cfg["lr"])
        words, input_path = _load_input(input)
        workdir = _new_workdir() if workdir is None else os.fspath(workdir)
        if os.path.exists(os.path.join(workdir, CHECKPOINT)):
            raise CLIError(
                f"{workdir} already holds a run ({CHECKPOINT}): continue it with --resume, or "
                "choose another -o"
            )
        total = int(cfg["steps"])
        vocab = Vocab.from_words(words)
        model = MLP(
            vocab,
            block_size=cfg["block_size"],
            n_embd=cfg["n_embd"],
            n_hidden=cfg["n_hidden"],
            seed=cfg["seed"],
            init=cfg["init"],
            dtype=cfg["dtype"],
        )
        state, done, elapsed0, best = None, 0, 0.0, None
    log_every = max(1, int(log_every or 100))
    parse_schedule(cfg["lr"], total)  # a bad schedule fails before any file is written
    if total < 1:
        raise CLIError("steps must be at least 1")
    vocab = Vocab.from_words(words)
    if model.vocab != vocab:
        raise CLIError("the input's characters differ from the checkpoint's vocabulary")
    os.makedirs(workdir, exist_ok=True)
    paths = {
        name: os.path.join(workdir, f)
        for name, f in (
            ("checkpoint", CHECKPOINT),
            ("log", LOG),
            ("losses", LOSSES),
            ("plot", LOSS_PNG),
            ("summary", SUMMARY),
            ("best", BEST),
        )
    }

    T = model.block_size
    tr, dev, te = split_words(words, cfg["split"], seed=cfg["split_seed"])
    Xtr, Ytr = build_dataset(tr, vocab, T)
    Xdev, Ydev = build_dataset(dev, vocab, T)
    Xte, Yte = build_dataset(te, vocab, T)
    if len(Xtr) == 0:
        raise CLIError("the training split is empty: give more words")
    lr_fn = parse_schedule(cfg["lr"], total)
    eval_every = int(cfg["eval_every"] or 0) if len(Xdev) else 0
    keep_best = bool(cfg.get("keep_best")) and len(Xdev) > 0
    train_kw = dict(
        batch_size=cfg["batch_size"],
        seed=cfg["train_seed"],
        optimizer=cfg["optimizer"],
        momentum=cfg["momentum"],
        nesterov=cfg["nesterov"],
        betas=tuple(cfg["betas"]),
        eps=cfg["eps"],
        weight_decay=cfg["weight_decay"],
        dropout=cfg["dropout"],
    )

    # Every step's loss so far (for the plot); the log without records past the checkpoint.
    losses = np.full(total, np.nan, np.float32)
    known = done  # losses[known:] are this session's
    if resume and os.path.exists(paths["losses"]):
        prev = np.load(paths["losses"])[:done]
        losses[: len(prev)] = prev
        known = 0 if len(prev) == done else done
    records = (
        [r for r in _read_log(paths["log"]) if not isinstance(r.get("step"), int) or r["step"] <= done]
        if resume
        else []
    )
    digest = _words_digest(words)
    settings = _jsonable({k: val for k, val in cfg.items()})
    start = time.perf_counter()
    now = lambda: elapsed0 + time.perf_counter() - start  # noqa: E731
    event = {
        "event": "resume" if resume else "start",
        "step": done,
        "total_steps": total,
        "elapsed": elapsed0,
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if not resume:
        event.update(settings=settings, input=input_path, params=model.num_params)
    records.append(event)
    _atomic_write(paths["log"], lambda f: f.writelines(json.dumps(r) + "\n" for r in records))
    log = open(paths["log"], "a", encoding="utf-8")

    def extra() -> dict:
        return {
            "command": "train",
            "settings": settings,
            "total_steps": total,
            "input": input_path,
            "input_digest": digest,
            "split": list(cfg["split"]),
            "split_seed": cfg["split_seed"],
            "lr": cfg["lr"],
            "elapsed": now(),
            "best": best,
            "log_every": log_every,
        }

    def save_checkpoint() -> None:
        ckpt.save(paths["checkpoint"], model, state, extra())
        _atomic_write(paths["losses"], lambda f: np.save(f, losses[: state.step if state else 0]), mode="wb")

    say(
        f"{PROG} train: {'resuming ' if resume else ''}the {preset!r} preset on "
        f"{_describe_input(input_path, words)}; "
        f"{model.num_params:,} parameters"
    )
    say(
        f"  block_size {cfg['block_size']}, n_embd {cfg['n_embd']}, n_hidden "
        f"{_hidden_text(cfg['n_hidden'])}, "
        f"batch {cfg['batch_size']}, lr {cfg['lr']}, {cfg['optimizer']}, {total:,} steps"
        f"{f' from step {done:,}' if resume else ''}, {cfg['dtype']}, {mm.get_num_threads()} thread(s)"
    )
    say(f"  writing to {workdir}{os.sep}")

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=done,
        unit="step",
        dynamic_ncols=True,
        leave=False,
        file=sys.stderr,
        disable=None if progress is None else not progress,
        desc="train",
    )
    dev_loss = None
    if best is not None:
        dev_loss = best.get("dev_loss")
    chunk = 100
    step_start = done
    try:
        while done < total:
            stop = total if not eval_every else min(total, (done // eval_every + 1) * eval_every)
            n = min(chunk, stop - done)
            t0 = now()
            hist = mm.train(model, Xtr, Ytr, n, lr=lr_fn, state=state, on_divergence="stop", **train_kw)
            t1 = now()
            state = hist.state
            k = len(hist.loss)
            losses[done : done + k] = hist.loss
            chunk = max(1, int(k / max(t1 - t0, 1e-6) * CHUNK_SECONDS))
            for i in range(k):  # one record each log_every steps; elapsed interpolated within the chunk
                s = done + i + 1
                if s % log_every == 0 or s == total:
                    lo = max(known, s - log_every)
                    log.write(
                        json.dumps(
                            {
                                "step": s,
                                "loss": float(hist.loss[i]),
                                "loss_mean": float(np.mean(losses[lo:s])),
                                "lr": float(hist.lr[i]),
                                "elapsed": round(t0 + (t1 - t0) * (i + 1) / k, 4),
                            }
                        )
                        + "\n"
                    )
            done = state.step
            post = {"loss": f"{np.mean(losses[max(known, done - 100) : done]):.4f}"}
            if dev_loss is not None:
                post["dev"] = f"{dev_loss:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.update(k)
            if hist.stopped is not None:
                log.write(
                    json.dumps({"event": "diverged", "step": done, "message": hist.stopped, "elapsed": now()})
                    + "\n"
                )
                log.flush()
                save_checkpoint()
                raise CLIError(
                    f"training diverged: {hist.stopped}. Try a smaller learning rate (see '{PROG} lr-find')"
                )
            if done == total or (eval_every and done % eval_every == 0):
                if len(Xdev):
                    dev_loss = model.loss(Xdev, Ydev)
                    log.write(json.dumps({"step": done, "dev_loss": dev_loss, "elapsed": now()}) + "\n")
                    if keep_best and (best is None or dev_loss < best["dev_loss"]):
                        best = {"step": done, "dev_loss": dev_loss}
                        ckpt.save(paths["best"], model, None, extra())
                log.flush()
                save_checkpoint()
    except KeyboardInterrupt:
        bar.close()
        log.close()
        last = ckpt.load(paths["checkpoint"]).state.step if os.path.exists(paths["checkpoint"]) else 0
        say(
            f"\ninterrupted. The checkpoint in {workdir} is at step {last:,}; continue with: "
            f"{PROG} train --resume -o {workdir}",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
        if not log.closed:
            log.flush()
    seconds = now()
    trained = done - step_start
    seg_seconds = time.perf_counter() - start
    rate = trained / seg_seconds if seg_seconds > 0 else 0.0
    if trained:
        say(
            f"trained {trained:,} steps in {seg_seconds:.1f} s ({rate:,.0f} steps/s); step {done:,} "
            f"of {total:,}"
        )
    else:
        say(
            f"the run is already at step {done:,} of {total:,}: nothing to train (give a larger "
            "--steps to go on)"
        )

    final = model
    if keep_best and best is not None and best["step"] != done and os.path.exists(paths["best"]):
        final = ckpt.load(paths["best"]).model
        say(f"using the best model by dev loss, from step {best['step']:,} (saved in {paths['best']})")
    result_losses = {
        name: final.loss(X, Y)
        for name, (X, Y) in (("train", (Xtr, Ytr)), ("dev", (Xdev, Ydev)), ("test", (Xte, Yte)))
        if len(X)
    }
    say("loss  " + "  ".join(f"{k} {val:.4f}" for k, val in result_losses.items()))
    names = final.sample(samples, seed=sample_seed) if samples else []
    marks = mark_samples(names, {"train": tr, "dev": dev, "test": te})
    if names:
        say(f"{len(names)} samples:")
        width = max(len(n) for n in names)
        for name, mark in zip(names, marks):
            say(f"  {name:<{width}}  {mark}")
    log.write(
        json.dumps(
            {
                "event": "end",
                "step": done,
                **{f"{k}_loss": val for k, val in result_losses.items()},
                "elapsed": seconds,
                "steps_per_second": rate,
            }
        )
        + "\n"
    )
    log.close()
    summary = {
        "step": done,
        "total_steps": total,
        "losses": result_losses,
        "seconds": seconds,
        "steps_per_second": rate,
        "params": model.num_params,
        "best": best,
        "settings": settings,
        "input": input_path,
        "samples": [{"name": n, "mark": m} for n, m in zip(names, marks)],
    }
    _atomic_write(paths["summary"], lambda f: json.dump(summary, f, indent=1))
    files = {
        "checkpoint": paths["checkpoint"],
        "log": paths["log"],
        "losses": paths["losses"],
        "summary": paths["summary"],
    }
    if keep_best and os.path.exists(paths["best"]):
        files["best"] = paths["best"]
    source = os.path.basename(input_path) if input_path else "the bundled names"
    if plot:
        try:
            evals = [(r["step"], r["dev_loss"]) for r in _read_log(paths["log"]) if "dev_loss" in r]
            _plots().loss_curve(
                losses[:done],
                paths["plot"],
                window=_window(done),
                eval_steps=[s for s, _ in evals],
                eval_losses=[val for _, val in evals],
                title=f"Training loss: {preset} preset on {source}, {model.num_params:,} parameters, "
                f"{done:,} steps",
            )
            files["plot"] = paths["plot"]
        except ImportError as e:
            say(f"no {LOSS_PNG}: {e}")
    say(f"wrote {workdir}{os.sep}: " + ", ".join(os.path.basename(p) for p in files.values()))
    say(
        f"next: {PROG} sample {workdir}   |   {PROG} embeddings {workdir}   |   {PROG} train "
        f"--resume -o {workdir} --steps N"
    )
    return TrainResult(
        workdir=workdir,
        model=final,
        losses=result_losses,
        samples=list(zip(names, marks)),
        step=done,
        total_steps=total,
        seconds=seconds,
        steps_per_second=rate,
        settings=settings,
        files=files,
    )


def _window(steps: int) -> int:
    """The lecture's 1,000-step windows for long runs; about 100 windows for short ones."""
    return 1000 if steps >= 100_000 else max(1, steps // 100)


# ============================================================================================ sample


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


def _splits_of(extra: dict) -> tuple[dict[str, list[str]] | None, str]:
    """The train/dev/test words a checkpoint was trained on, recomputed from its recorded input file
    and split; (None, reason) when they cannot be."""
    if "split_seed" not in extra:
        return None, "the checkpoint does not record its training data"
    src = extra.get("input")
    if src is not None and not os.path.isfile(src):
        return None, f"its input file {src} is gone"
    words = load_names() if src is None else load_words(src)
    if extra.get("input_digest") and _words_digest(words) != extra["input_digest"]:
        return None, f"{src or 'the bundled names'} changed since training"
    tr, dev, te = split_words(words, tuple(extra.get("split", (0.8, 0.1, 0.1))), seed=extra["split_seed"])
    return {"train": tr, "dev": dev, "test": te}, ""


def run_sample(
    path: str | os.PathLike | None = None,
    n: int = 20,
    *,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
    prefix: str = "",
    unique: bool = False,
    max_len: int = 100,
    names_only: bool = False,
    threads: int | None = None,
    quiet: bool = False,
) -> list[tuple[str, str]]:
    """``makemore-cpp sample``: draw ``n`` names from a checkpoint (a file, a run folder, or the
    newest run) and mark each as makemore.py does: ``in train``, ``in dev``, ``in test`` (found in
    that part of the data the model was trained on, recomputed from the recorded input file and
    split seed) or ``new``. ``unique`` drops repeats and draws on until ``n`` distinct names (or
    gives up after ``100 * n`` draws). Returns (name, mark) pairs."""
    say = _printer(quiet)
    if threads is not None:
        mm.set_num_threads(threads)
    if not isinstance(n, int) or n < 0:
        raise CLIError(f"-n must be a non-negative integer, got {n!r}")
    file = find_checkpoint(path)
    ck = ckpt.load(file)
    model = ck.model
    if model.vocab is None:
        raise CLIError(f"{file} holds a model without a vocabulary: it cannot write names")
    if unique:
        names: list[str] = []
        seen: set[str] = set()
        drawn, batch = 0, max(n, 16)
        while len(names) < n and drawn < 100 * max(n, 1):
            for name in model.sample(drawn + batch, seed, temperature, top_k, prefix, max_len)[drawn:]:
                if name not in seen and len(names) < n:
                    seen.add(name)
                    names.append(name)
            drawn += batch
            batch *= 2
        if len(names) < n:
            say(f"note: only {len(names)} distinct names in {drawn:,} draws", file=sys.stderr)
    else:
        names = model.sample(n, seed, temperature, top_k, prefix, max_len)
    splits, why = _splits_of(ck.extra)
    marks = mark_samples(names, splits) if splits is not None else ["?"] * len(names)
    if names_only:
        for name in names:
            say(name)
        return list(zip(names, marks))
    where = (
        f"step {ck.state.step:,}"
        if ck.state is not None
        else (f"best, step {ck.extra['best']['step']:,}" if ck.extra.get("best") else "")
    )
    say(f"{file}{f' ({where})' if where else ''}: {model!r}")
    width = max((len(s) for s in names), default=0)
    for name, mark in zip(names, marks):
        say(f"  {name:<{width}}  {mark}")
    if splits is None:
        say(f"(cannot mark the names: {why})")
    else:
        counts = {m: marks.count(m) for m in ("in train", "in dev", "in test", "new")}
        say(f"{len(names)} names: " + ", ".join(f"{c} {m}" for m, c in counts.items()))
    return list(zip(names, marks))


# ============================================================================================ lr-find


def _model_overrides(overrides: dict) -> dict:
    out = {k: val for k, val in overrides.items() if val is not None}
    if "n_hidden" in out:
        out["n_hidden"] = parse_hidden(out["n_hidden"])
    return out


def run_lr_find(
    output: str | os.PathLike = "lr_find.png",
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    steps: int = 1000,
    lr_min: float = 1e-3,
    lr_max: float = 1.0,
    threads: int | None = None,
    plot: bool = True,
    quiet: bool = False,
    **overrides: Any,
) -> LRFindResult:
    """``makemore-cpp lr-find``: the lecture's learning-rate sweep on a fresh model of the preset
    (with overrides such as ``n_hidden``, ``batch_size``), on the training split of ``input``; writes
    the plot of loss against log10(lr) to ``output`` and prints the suggested rate and why."""
    say = _printer(quiet)
    if threads is not None:
        mm.set_num_threads(threads)
    cfg = resolve(preset, **_model_overrides(overrides))
    words, input_path = _load_input(input)
    vocab = Vocab.from_words(words)
    tr, _, _ = split_words(words, cfg["split"], seed=cfg["split_seed"])
    X, Y = build_dataset(tr, vocab, cfg["block_size"])
    model = build_model(cfg, vocab)
    say(
        f"{PROG} lr-find: {model!r} on {_describe_input(input_path, words)} (training split); "
        f"one step of batch {cfg['batch_size']} at each of {steps:,} rates from {lr_min:g} to {lr_max:g}"
    )
    res = lr_find(
        model,
        X,
        Y,
        steps=steps,
        lr_min=lr_min,
        lr_max=lr_max,
        options=train_options(cfg),
    )
    if plot:
        res.plot = _plots().lr_find_plot(
            res.lre,
            res.losses,
            output,
            suggested_lr=res.suggested_lr,
            smoothed=res.smoothed,
            title=f"Learning-rate sweep ({model.num_params:,}-parameter model, "
            f"batch {cfg['batch_size']}, one step per rate)",
        )
    say(f"suggested learning rate: {res.suggested_lr:.3g}")
    say(f"  how: {res.how}")
    if res.plot:
        say(f"wrote {res.plot}")
    return res


# ============================================================================================ sweep

SWEEP_KEYS = ("block_size", "n_embd", "n_hidden", "batch_size", "lr")
_SWEEP_WORDS: list[str] | None = None


def _sweep_init(input_path: str | None, threads: int) -> None:
    global _SWEEP_WORDS
    mm.set_num_threads(threads)
    _SWEEP_WORDS, _ = _load_input(input_path)


def _sweep_worker_init(input_path: str | None, threads: int) -> None:
    # Ctrl-C is the parent's to handle: it terminates the pool. A worker that raised
    # KeyboardInterrupt itself would only be replaced by a new one. (Only in pool workers: an
    # ignored SIGINT would be inherited by every process the caller starts.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _sweep_init(input_path, threads)


def _sweep_one(job: tuple[int, str, dict]) -> dict:
    i, preset, settings = job
    res = mm.fit(_SWEEP_WORDS, preset, **settings)
    return {
        "index": i,
        "params": res.model.num_params,
        "train_loss": res.losses.get("train", float("nan")),
        "dev_loss": res.losses.get("dev", float("nan")),
        "seconds": res.seconds,
        "steps_per_second": res.history.steps_per_second,
    }


def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_sweep(
    grid: dict[str, Sequence[Any]] | None = None,
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    output: str | os.PathLike = "sweep.csv",
    jobs: int | None = None,
    threads_per_job: int = 1,
    quiet: bool = False,
    **overrides: Any,
) -> list[dict]:
    """``makemore-cpp sweep``: train one model for every combination of ``grid`` (lists of values
    for ``block_size``, ``n_embd``, ``n_hidden``, ``batch_size``, ``lr``; the preset's value where a
    key is absent), ``jobs`` at a time in separate processes (default: one per CPU, each on
    ``threads_per_job`` threads). ``overrides`` (e.g. ``steps``) apply to every run. Prints the
    table sorted by dev loss, writes it as CSV to ``output`` and returns its rows (sorted).

    The worker processes are started with multiprocessing's "spawn" method (the core's thread pool
    does not survive a fork), so a script calling this with ``jobs > 1`` needs the usual
    ``if __name__ == "__main__":`` guard."""
    import multiprocessing as mp

    say = _printer(quiet)
    grid = {k: list(val) for k, val in (grid or {}).items() if val}
    unknown = set(grid) - set(SWEEP_KEYS)
    if unknown:
        raise CLIError(f"cannot sweep over {sorted(unknown)}; sweepable: {', '.join(SWEEP_KEYS)}")
    if "n_hidden" in grid:
        grid["n_hidden"] = [parse_hidden(h) for h in grid["n_hidden"]]
    if "lr" in grid:
        grid["lr"] = [str(x) for x in grid["lr"]]
    fixed = _model_overrides(overrides)
    base = resolve(preset, **fixed)  # checks the names of the settings
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    for c in combos:  # fail here, not in a worker
        cfg = dict(base, **c)
        parse_schedule(cfg["lr"], cfg["steps"])
        for k in ("block_size", "n_embd", "batch_size"):
            if not isinstance(cfg[k], int) or cfg[k] < 1:
                raise CLIError(f"{k} must be a positive integer, got {cfg[k]!r}")
    settings = [dict(fixed, **c, eval_every=0) for c in combos]
    words, input_path = _load_input(input)  # checks the file before starting workers
    jobs = min(jobs or _default_jobs(), len(combos)) or 1
    say(
        f"{PROG} sweep: {len(combos)} run(s) of the {preset!r} preset, {base['steps']:,} steps each, on "
        f"{_describe_input(input_path, words)}; {jobs} process(es) of {threads_per_job} thread(s)"
    )
    t0 = time.perf_counter()
    results: list[dict] = []
    work = [(i, preset, s) for i, s in enumerate(settings)]
    if jobs == 1:
        _sweep_init(input_path, threads_per_job)
        it: Iterable[dict] = map(_sweep_one, work)
        pool = None
    else:
        pool = mp.get_context("spawn").Pool(
            jobs, initializer=_sweep_worker_init, initargs=(input_path, threads_per_job)
        )
        it = pool.imap_unordered(_sweep_one, work)
    try:
        for r in it:
            c = combos[r["index"]]
            row = {
                k: (_hidden_text(c[k]) if k == "n_hidden" else c[k])
                if k in c
                else (_hidden_text(base[k]) if k == "n_hidden" else base[k])
                for k in SWEEP_KEYS
            }
            row.update(
                steps=base["steps"],
                params=r["params"],
                train_loss=r["train_loss"],
                dev_loss=r["dev_loss"],
                seconds=r["seconds"],
            )
            results.append(row)
            say(
                f"  [{len(results)}/{len(combos)}] "
                + " ".join(f"{k}={row[k]}" for k in keys)
                + f"  dev {row['dev_loss']:.4f}  ({row['seconds']:.1f} s)",
                file=sys.stderr,
            )
    except BaseException:  # Ctrl-C or a failed run: stop the workers now, do not wait for the queue
        if pool is not None:
            pool.terminate()
            pool.join()
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    results.sort(key=lambda r: (math.isnan(r["dev_loss"]), r["dev_loss"]))
    cols = list(SWEEP_KEYS) + ["steps", "params", "train_loss", "dev_loss", "seconds"]
    output = os.fspath(output)
    if os.path.dirname(os.path.abspath(output)):
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in results:
            w.writerow(
                {
                    k: (
                        f"{r[k]:.6f}"
                        if k in ("train_loss", "dev_loss")
                        else f"{r[k]:.3f}"
                        if k == "seconds"
                        else r[k]
                    )
                    for k in cols
                }
            )

    _atomic_write(output, write)
    header = ["block", "embd", "hidden", "batch", "lr", "params", "train", "dev", "seconds"]
    say(
        f"\n{'':>3} "
        + " ".join(f"{h:>8}" for h in header[:4])
        + f" {'lr':>20} "
        + " ".join(f"{h:>8}" for h in header[5:])
    )
    for rank, r in enumerate(results, 1):
        say(
            f"{rank:>3} {r['block_size']:>8} {r['n_embd']:>8} {r['n_hidden']:>8} "
            f"{r['batch_size']:>8} {str(r['lr']):>20} "
            f"{r['params']:>8,} {r['train_loss']:>8.4f} {r['dev_loss']:>8.4f} {r['seconds']:>8.1f}"
        )
    say(f"sorted by dev loss; {time.perf_counter() - t0:.1f} s in all; wrote {output}")
    return results


# ============================================================================================ embeddings


def run_embeddings(
    path: str | os.PathLike | None = None, output: str | os.PathLike | None = None, *, quiet: bool = False
) -> str:
    """``makemore-cpp embeddings``: the lecture's scatter of the embedding table ``C`` of a
    checkpoint (a file, a run folder or the newest run), each character drawn on its point; for
    ``n_embd > 2`` the first two principal components (the plot says so). Writes ``output``
    (default ``embeddings.png`` beside the checkpoint) and returns its path."""
    say = _printer(quiet)
    file = find_checkpoint(path)
    model = ckpt.load(file).model
    if output is None:
        output = os.path.join(os.path.dirname(os.path.abspath(file)), "embeddings.png")
    written = _plots().embeddings_plot(model, output, title=None)
    how = (
        "its two columns"
        if model.n_embd == 2
        else f"PCA from {model.n_embd} dimensions"
        if model.n_embd > 2
        else "one dimension"
    )
    say(f"{file}: C is {model.vocab_size} x {model.n_embd}; plotted {how}; wrote {written}")
    return written


# ============================================================================================ overfit


def run_overfit(
    input: str | os.PathLike | None = None,
    preset: str = "lecture",
    *,
    words: int = 5,
    max_steps: int = 10_000,
    lr: float = 0.1,
    tol: float = 0.01,
    threads: int | None = None,
    quiet: bool = False,
    **overrides: Any,
) -> OverfitResult:
    """``makemore-cpp overfit``: the lecture's sanity check. Build the examples of the first
    ``words`` words (the lecture's five names give 32), train the preset's model on all of them at
    every step, and report whether the loss came within ``tol`` of the lowest loss possible on
    them (which is above zero where one context has several next characters)."""
    say = _printer(quiet)
    if threads is not None:
        mm.set_num_threads(threads)
    cfg = resolve(preset, **_model_overrides(overrides))
    all_words, input_path = _load_input(input)
    if words < 1:
        raise CLIError("--words must be at least 1")
    few = all_words[:words]
    vocab = Vocab.from_words(all_words)
    X, Y = build_dataset(few, vocab, cfg["block_size"])
    model = build_model(cfg, vocab)
    say(
        f"{PROG} overfit: {model!r} on the first {len(few)} words of "
        f"{_describe_input(input_path, all_words)} "
        f"({', '.join(few[:8])}{', ...' if len(few) > 8 else ''}): {len(X)} examples, every step on "
        f"all of them, lr {lr:g}"
    )
    res = overfit(model, X, Y, max_steps=max_steps, lr=lr, tol=tol)
    say(f"loss {res.initial_loss:.4f} -> {res.loss:.4f} after {res.steps:,} steps")
    say(
        f"lowest possible on these examples: {res.floor:.4f} "
        + (
            "(every context is followed by one character)"
            if res.floor == 0
            else "(some contexts, such as the start of every word, are followed by several characters)"
        )
    )
    if res.passed:
        say(f"PASS: the model memorised the batch (loss within {tol:g} of the floor)")
    else:
        say(
            f"FAIL: the loss is {res.loss - res.floor:.4f} above the floor after {res.steps:,} steps "
            f"(tolerance {tol:g}); try more --max-steps or another --lr"
        )
    return res


# ============================================================================================ bench


def run_bench(argv: Sequence[str] | None = None) -> int:
    """``makemore-cpp bench``: the benchmark suite, :func:`makemore_cpp.bench.main` (all its options)."""
    try:
        from . import bench
    except ImportError as e:
        raise CLIError(f"the benchmark suite is not available in this installation ({e})") from None
    return int(bench.main(list(argv or [])) or 0)


# ============================================================================================ argparse


def _comma(kind: Callable[[str], Any]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [kind(t.strip()) for t in text.split(",") if t.strip()]
        except (ValueError, CLIError) as e:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r} ({e})") from None

    return parse


def _positive_int(text: str) -> int:
    try:
        n = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-i", "--input", metavar="FILE", help="words, one per line (default: the bundled 29,910 names)"
    )
    p.add_argument(
        "--preset",
        default="lecture",
        choices=sorted(PRESETS),
        help="settings to start from (default: lecture); the options below override them",
    )


def _add_model(p: argparse.ArgumentParser, batch: bool = True) -> None:
    g = p.add_argument_group("model (default: the preset's)")
    g.add_argument("--block-size", type=_positive_int, help="characters of context (lecture: 3)")
    g.add_argument("--n-embd", type=_positive_int, help="embedding dimensions per character (lecture: 10)")
    g.add_argument(
        "--n-hidden", help="hidden-layer width (lecture: 200), or widths of several tanh layers as 256x256"
    )
    g.add_argument("--init", choices=["lecture", "kaiming"], help="parameter initialisation")
    g.add_argument(
        "--dtype", choices=["float32", "float64"], help="float type of the parameters (default float32)"
    )
    g.add_argument("--seed", type=int, help="seed of the initial parameters (lecture: 2147483647)")
    if batch:
        g.add_argument("--batch-size", type=_positive_int, help="examples per step (lecture: 32)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="threads for the core (default: every CPU); results do not depend on it",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``makemore-cpp`` and its subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=fmt,
        description=(
            "The makemore lectures' character-level MLP (part 2), trained and sampled by a C++ core.\n\n"
            "Start with:  makemore-cpp train       (the lecture's model on the bundled names, in seconds)"
        ),
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {mm.__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        formatter_class=fmt,
        help="train a model; checkpoint, JSON-lines log, loss plot, samples",
        description=(
            "Train the lecture's MLP (or a preset's, with any setting changed) and write into WORKDIR:\n"
            f"  {CHECKPOINT}  checkpoint (config, vocabulary, parameters, optimizer state, step)\n"
            f"  {LOG}  one JSON record per line: step, minibatch loss, lr, elapsed; dev loss at intervals\n"
            f"  {LOSS_PNG}   the loss curve (log scale, means over windows)\n"
            f"  {LOSSES}, {SUMMARY}  every step's loss; the final losses and samples\n"
            "With no options: the lecture's 200,000 steps on the bundled names, printing the\n"
            "train/dev/test losses and 20 samples."
        ),
    )
    _add_data(p)
    p.add_argument(
        "-o", "--workdir", metavar="WORKDIR", help=f"folder for the run's files (default: {RUNS}/<date-time>)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in WORKDIR (-o) from its checkpoint"
    )
    _add_model(p)
    g = p.add_argument_group("optimisation (default: the preset's)")
    g.add_argument(
        "--steps", type=_positive_int, help="total steps (lecture: 200000); with --resume, a new total"
    )
    g.add_argument(
        "--lr",
        help="learning rate or schedule: 0.1, 0.1@0:0.01@100000 (lecture), cosine:3e-3:warmup=1000:min=1e-5",
    )
    g.add_argument("--optimizer", choices=["sgd", "adamw"])
    g.add_argument("--momentum", type=float, help="SGD momentum")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--dropout", type=float, help="probability of zeroing a hidden unit while training")
    g.add_argument("--train-seed", type=int, help="seed of the minibatch draws (default 0)")
    g.add_argument("--split-seed", type=int, help="seed of the 80/10/10 shuffle (lecture: 42)")
    g.add_argument(
        "--eval-every",
        type=int,
        help="steps between dev-loss evaluations and checkpoints (lecture preset: 10000)",
    )
    g.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also save the best model by dev loss (best.npz) and report on it",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--log-every",
        type=_positive_int,
        help="steps between log records (default 100; a resumed run keeps its own)",
    )
    o.add_argument("--samples", type=int, default=20, help="names to draw at the end (default 20)")
    o.add_argument("--no-plot", action="store_true", help=f"do not draw {LOSS_PNG}")
    o.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: only when stderr is a terminal)",
    )
    _add_threads(p)

    p = sub.add_parser(
        "sample",
        formatter_class=fmt,
        help="draw names from a checkpoint, marked in train / in test / new",
        description=(
            "Draw names from a checkpoint and mark each as makemore.py does: 'in train', 'in dev' or\n"
            "'in test' if the data the model was trained on holds it (that part of the split), else 'new'."
        ),
    )
    p.add_argument(
        "checkpoint", nargs="?", help=f"a checkpoint file or run folder (default: the newest run in {RUNS}/)"
    )
    p.add_argument("-n", "--num", type=int, default=20, help="how many names (default 20)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the draws (default 0); name i depends only on (seed, i)"
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divide the logits by this (default 1; 0: always the most likely)",
    )
    p.add_argument("--top-k", type=_positive_int, help="draw only from the k most likely characters")
    p.add_argument("--prefix", default="", help="start every name with these characters")
    p.add_argument("--max-len", type=_positive_int, default=100, help="longest name (default 100)")
    p.add_argument("--unique", action="store_true", help="drop repeats (and draw on until -n distinct names)")
    p.add_argument("--names-only", action="store_true", help="print only the names, one per line")
    _add_threads(p)

    p = sub.add_parser(
        "lr-find",
        formatter_class=fmt,
        help="the lecture's learning-rate sweep: plot and suggestion",
        description=(
            "The lecture's learning-rate search: lre = linspace(-3, 0, 1000), lrs = 10**lre; one\n"
            "minibatch step at each rate in turn on a fresh model. Plots the loss against log10(lr)\n"
            "and suggests a rate, printing how it was chosen."
        ),
    )
    _add_data(p)
    p.add_argument("-o", "--output", default="lr_find.png", help="the plot (default lr_find.png)")
    p.add_argument(
        "--steps", type=_positive_int, default=1000, help="rates to try, one step each (default 1000)"
    )
    p.add_argument("--lr-min", type=float, default=1e-3, help="first rate (default 1e-3)")
    p.add_argument("--lr-max", type=float, default=1.0, help="last rate (default 1)")
    _add_model(p)
    _add_threads(p)

    p = sub.add_parser(
        "sweep",
        formatter_class=fmt,
        help="a grid of runs across processes; table and CSV sorted by dev loss",
        description=(
            "Train every combination of the comma-separated values (one run per combination, one\n"
            "process per CPU by default) and print train/dev loss, parameters and time, sorted by\n"
            "dev loss; the table is also written as CSV. The lecture's 'larger hidden layer / larger\n"
            "embedding' experiments:  makemore-cpp sweep --n-hidden 100,200,300 --n-embd 2,10"
        ),
    )
    _add_data(p)
    p.add_argument("--block-size", type=_comma(_positive_int), help="e.g. 3,4,5")
    p.add_argument("--n-embd", type=_comma(_positive_int), help="e.g. 2,10")
    p.add_argument("--n-hidden", type=_comma(str), help="e.g. 100,200,300 (a layer list as 256x256)")
    p.add_argument("--batch-size", type=_comma(_positive_int), help="e.g. 32,64")
    p.add_argument(
        "--lr",
        type=_comma(str),
        help="rates or schedules, e.g. 0.05,0.1 or 0.1@0:0.01@100000,0.2@0:0.02@100000",
    )
    p.add_argument("--steps", type=_positive_int, help="steps of every run (default: the preset's)")
    p.add_argument("--seed", type=int, help="seed of the initial parameters of every run")
    p.add_argument("-j", "--jobs", type=_positive_int, help="processes at once (default: one per CPU)")
    p.add_argument(
        "--threads-per-job", type=_positive_int, default=1, help="core threads in each process (default 1)"
    )
    p.add_argument("-o", "--output", default="sweep.csv", help="the CSV file (default sweep.csv)")

    p = sub.add_parser(
        "embeddings",
        formatter_class=fmt,
        help="plot the embedding table C, a character on each point",
        description=(
            "The lecture's figure of the embedding table C: one point per character, the character\n"
            "drawn on it. With n_embd > 2 the points are projected on C's first two principal\n"
            "components (the plot says so). Train a 2-D one with: makemore-cpp train --n-embd 2"
        ),
    )
    p.add_argument(
        "checkpoint", nargs="?", help=f"a checkpoint file or run folder (default: the newest run in {RUNS}/)"
    )
    p.add_argument("-o", "--output", help="the plot (default: embeddings.png beside the checkpoint)")

    p = sub.add_parser(
        "overfit",
        formatter_class=fmt,
        help="sanity check: memorise a few names' examples",
        description=(
            "The lecture's sanity check: train on the examples of the first few names only (five\n"
            "names give 32 examples), all of them at every step, and check that the loss falls to\n"
            "the lowest possible on them. That is not zero: the start of every name ('...') is\n"
            "followed by several different letters. Exit status 1 if it does not get there."
        ),
    )
    _add_data(p)
    p.add_argument(
        "--words",
        type=_positive_int,
        default=5,
        help="how many words from the start of the input (default 5)",
    )
    p.add_argument(
        "--max-steps",
        type=_positive_int,
        default=10_000,
        help="give up after this many steps (default 10000)",
    )
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1, the lecture's)")
    p.add_argument(
        "--tol", type=float, default=0.01, help="how close to the floor counts as memorised (default 0.01)"
    )
    _add_model(p, batch=False)
    _add_threads(p)

    sub.add_parser("bench", add_help=False, help="the benchmark suite (see: makemore-cpp bench --help)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: ``makemore-cpp <command> [options]``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # its own parser, with all of its options
        try:
            return run_bench(argv[1:])
        except CLIError as e:
            print(f"{PROG} bench: error: {e}", file=sys.stderr)
            return 2
    ap = build_parser()
    if not argv:
        ap.print_help()
        return 0
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 0
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, ImportError, MemoryError, OSError, mm.DivergenceError) as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, (CLIError, ValueError, TypeError)) else 1


def _dispatch(args: argparse.Namespace) -> int:
    c = args.command
    if c == "train":
        run_train(
            args.workdir,
            args.input,
            args.preset,
            resume=args.resume,
            threads=args.threads,
            log_every=args.log_every,
            samples=args.samples,
            plot=not args.no_plot,
            progress=args.progress,
            block_size=args.block_size,
            n_embd=args.n_embd,
            n_hidden=args.n_hidden,
            init=args.init,
            dtype=args.dtype,
            seed=args.seed,
            batch_size=args.batch_size,
            steps=args.steps,
            lr=args.lr,
            optimizer=args.optimizer,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            dropout=args.dropout,
            train_seed=args.train_seed,
            split_seed=args.split_seed,
            eval_every=args.eval_every,
            keep_best=args.keep_best,
        )
        return 0
    if c == "sample":
        run_sample(
            args.checkpoint,
            args.num,
            seed=args.seed,
            temperature=args.temperature,
            top_k=args.top_k,
            prefix=args.prefix,
            unique=args.unique,
            max_len=args.max_len,
            names_only=args.names_only,
            threads=args.threads,
        )
        return 0
    if c == "lr-find":
        run_lr_find(
            args.output,
            args.input,
            args.preset,
            steps=args.steps,
            lr_min=args.lr_min,
            lr_max=args.lr_max,
            threads=args.threads,
            block_size=args.block_size,
            n_embd=args.n_embd,
            n_hidden=args.n_hidden,
            init=args.init,
            dtype=args.dtype,
            seed=args.seed,
            batch_size=args.batch_size,
        )
        return 0
    if c == "sweep":
        grid = {k: getattr(args, k) for k in SWEEP_KEYS if getattr(args, k)}
        run_sweep(
            grid,
            args.input,
            args.preset,
            output=args.output,
            jobs=args.jobs,
            threads_per_job=args.threads_per_job,
            steps=args.steps,
            seed=args.seed,
        )
        return 0
    if c == "embeddings":
        run_embeddings(args.checkpoint, args.output)
        return 0
    if c == "overfit":
        res = run_overfit(
            args.input,
            args.preset,
            words=args.words,
            max_steps=args.max_steps,
            lr=args.lr,
            tol=args.tol,
            threads=args.threads,
            block_size=args.block_size,
            n_embd=args.n_embd,
            n_hidden=args.n_hidden,
            init=args.init,
            dtype=args.dtype,
            seed=args.seed,
        )
        return 0 if res.passed else 1
    raise AssertionError(c)
