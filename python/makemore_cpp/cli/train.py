"""``makemore-cpp train``: train a preset's model in a run folder, resumable from its checkpoint."""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import _validate as v
from .. import checkpoint, get_num_threads, plots, set_num_threads
from .._signals import interrupts_deferred
from ..data import Vocab, build_dataset, split_words
from ..diagnostics import Diagnostics
from ..experiments import mark_samples
from ..fitting import build_model, check_config, resolve, train_options
from ..model import SAMPLE_NAME_BYTES, Model
from ..schedules import parse_schedule
from ..training import DivergenceError, History, TrainState, train
from .common import (
    PROG,
    CLIError,
    as_options,
    describe_input,
    hidden_text,
    jsonable,
    model_overrides,
    option,
    printer,
    threads_to_use,
)
from .run import LOSS_PNG, Run, read_log

CHUNK_SECONDS = 0.25  # training runs in chunks this long, between progress and log updates


@dataclass
class TrainResult:
    """What :func:`run_train` did: the folder, the model (the best one when the run keeps the best),
    its losses on train/dev/test, the samples with their marks, and the run's step count and time."""

    workdir: str
    model: Model
    losses: dict[str, float]
    samples: list[tuple[str, str]]
    step: int
    total_steps: int
    seconds: float
    steps_per_second: float
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)


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
    diagnostics: int | None = None,
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
    diagnostics: every this many steps, part 3's statistics of that step's minibatch, and the
        update:data ratios of every step, into ``diagnostics.json`` and ``update_ratio.npz`` (draw
        them with ``makemore-cpp diagnose WORKDIR``); a resumed run keeps its own.
    """
    say = printer(quiet)
    # Every option is checked before anything is written: a run that cannot finish fails here.
    overrides = model_overrides(overrides)
    if "lr" in overrides:
        if callable(overrides["lr"]):
            raise CLIError(
                "lr must be a number or schedule text (it is stored in the checkpoint), not a callable"
            )
        overrides["lr"] = str(overrides["lr"])
    threads = threads_to_use(threads, say)
    log_every = option(log_every, "--log-every", 1)
    samples = option(samples, "--samples", 0)
    sample_seed = option(sample_seed, "sample_seed", 0, 2**64 - 1)
    diagnostics = option(diagnostics, "--diagnostics", 1)
    for name, flag in (("plot", plot), ("resume", resume), ("progress", progress)):
        if flag is not None and not isinstance(flag, (bool, np.bool_)):
            raise CLIError(f"{name} must be True or False, got {flag!r}")

    # The run: a new one, or the one in workdir with its model and training state.
    if resume:
        run, model, state = Run.resume(workdir, overrides, input, log_every, say)
        preset = run.cfg.get("preset", preset)
        _check(run.cfg)  # the checkpoint's settings with the new --steps and --eval-every
    else:
        cfg = resolve(preset, **overrides)
        if callable(cfg["lr"]):
            raise CLIError("lr must be a number or schedule text")
        cfg["lr"] = str(cfg["lr"])
        _check(cfg)  # the settings alone, before the words are read
        run = Run.new(workdir, cfg, input, log_every)
        vocab = Vocab.from_words(run.words)
        _check(cfg, len(vocab))
        model, state = _built(lambda: build_model(cfg, vocab)), None
    cfg, total, done = run.cfg, run.total, state.step if state else 0
    if total < 1:
        raise CLIError(f"--steps must be >= 1, got {total}")
    lr_fn = parse_schedule(cfg["lr"], total)
    options = train_options(cfg)
    vocab = Vocab.from_words(run.words)
    if model.vocab != vocab:
        raise CLIError("the input's characters differ from the checkpoint's vocabulary")
    diag = None
    encoded: list[str] = []  # the JSON of diag's records saved so far (a run only appends to them)
    if resume and os.path.exists(os.path.join(run.workdir, "diagnostics.json")):
        diag = Diagnostics.load(run.workdir).until(done)
        diagnostics = diagnostics or diag.every
    if diagnostics is not None and options.batch_size < 2:
        raise CLIError("--diagnostics needs --batch-size >= 2 (the statistics' standard deviations)")
    per_step = 4 + (8 * len(model.trained_names) if diagnostics else 0)  # the losses, the update ratios
    fits(total * per_step, f"--steps {total:,}", f" for every step's loss ({per_step} bytes a step)")
    fits(SAMPLE_NAME_BYTES * samples, f"--samples {samples:,}", " at the least")

    # The lecture's data: the 80/10/10 split and the examples of each part.
    T = model.block_size
    tr, dev, te = split_words(run.words, cfg["split"], seed=cfg["split_seed"])
    Xtr, Ytr = build_dataset(tr, vocab, T)
    Xdev, Ydev = build_dataset(dev, vocab, T)
    Xte, Yte = build_dataset(te, vocab, T)
    if len(Xtr) == 0:
        raise CLIError("the training split is empty: give more words")
    eval_every = int(cfg["eval_every"] or 0) if len(Xdev) else 0
    keep_best = bool(cfg.get("keep_best")) and len(Xdev) > 0
    if state is None:
        state = _built(lambda: TrainState(model, options))  # the core's training workspace
    run.check_files(diagnostics is not None or diag is not None)  # nothing there but regular files
    if threads is not None:
        set_num_threads(threads)

    losses, known = run.previous_losses(done)  # losses[known:] are this session's
    settings = jsonable(cfg)
    event = {
        "event": "resume" if resume else "start",
        "step": done,
        "total_steps": total,
        "elapsed": run.elapsed0,
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if not resume:
        event.update(settings=settings, input=run.input_path, params=model.num_params)
    saved = done if resume else None  # the step of the checkpoint in the folder
    if run.evaluated is None and resume:
        run.evaluated = done  # a checkpoint of an earlier version: written after its evaluation
    dev_loss = run.best.get("dev_loss") if run.best is not None else None
    step_start = done
    bar = None

    def save() -> None:
        """The checkpoint of step ``done``, written last (after the losses and diagnostics that
        go with it): whatever stops the run meanwhile, the checkpoint in the folder is whole and
        the files beside it hold at least its steps."""
        nonlocal saved
        run.save(
            model,
            state,
            losses,
            extra_files=(lambda: diag.save(run.workdir, encoded=encoded)) if diag else None,
        )
        saved = done

    def take(hist: History) -> None:
        """A call of train()'s steps into the run: losses, log records, diagnostics, the bar."""
        nonlocal done, diag
        k = len(hist.loss)
        t1 = run.elapsed()
        t0 = t1 - hist.seconds
        losses[done : done + k] = hist.loss
        for i in range(k):  # one record each log_every steps; elapsed interpolated within the call
            s = done + i + 1
            if s % run.log_every == 0 or s == total:
                lo = max(known, s - run.log_every)
                run.log(
                    {
                        "step": s,
                        "loss": float(hist.loss[i]),
                        "loss_mean": float(np.mean(losses[lo:s])),
                        "lr": float(hist.lr[i]),
                        "elapsed": round(t0 + (t1 - t0) * (i + 1) / k, 4),
                    }
                )
        if hist.diagnostics is not None:
            if diag is None:
                diag = hist.diagnostics
            else:
                diag.extend(hist.diagnostics)
        done += k
        if bar is not None:
            post = {"loss": f"{np.mean(losses[max(known, done - 100) : done]):.4f}"}
            if dev_loss is not None:
                post["dev"] = f"{dev_loss:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.update(k)

    try:
        try:
            os.makedirs(run.workdir, exist_ok=True)
            run.lock()
            run.begin(event, done)
            say(
                f"{PROG} train: {'resuming ' if resume else ''}the {preset!r} preset on "
                f"{describe_input(run.input_path, run.words)}; {model.num_params:,} parameters"
            )
            say(
                f"  block_size {cfg['block_size']}, n_embd {cfg['n_embd']}, n_hidden "
                f"{hidden_text(cfg['n_hidden'])}, "
                f"batch {cfg['batch_size']}, lr {cfg['lr']}, {cfg['optimizer']}, {total:,} steps"
                f"{f' from step {done:,}' if resume else ''}, {cfg['dtype']}, {get_num_threads()} thread(s)"
            )
            say(f"  writing to {run.workdir}{os.sep}")

            # The loop: calls of about CHUNK_SECONDS; a log record every log_every steps; the dev loss
            # and a checkpoint every eval_every steps and at the end. Ctrl-C stops it with a checkpoint
            # of the last completed step (below).
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
            chunk = 100
            while True:
                if (
                    done > 0
                    and (done == total or (eval_every and done % eval_every == 0))
                    and (run.evaluated != done)
                ):
                    # An evaluation and its checkpoint are written together (Ctrl-C waits for them).
                    with interrupts_deferred():
                        if len(Xdev):
                            dev_loss = model.loss(Xdev, Ydev)
                            run.log({"step": done, "dev_loss": dev_loss, "elapsed": run.elapsed()})
                            if keep_best and (run.best is None or dev_loss < run.best["dev_loss"]):
                                run.save_best(model, done, dev_loss)
                        run.evaluated = done
                        run.flush()
                        save()
                if done >= total:
                    break
                stop = total if not eval_every else min(total, (done // eval_every + 1) * eval_every)
                n = min(chunk, stop - done)
                hist = train(
                    model,
                    Xtr,
                    Ytr,
                    n,
                    lr=lr_fn,
                    options=options,
                    state=state,
                    on_divergence="stop",
                    diagnostics_every=diagnostics,
                )
                with interrupts_deferred():
                    take(hist)
                chunk = max(1, int(len(hist.loss) / max(hist.seconds, 1e-6) * CHUNK_SECONDS))
                if hist.stopped is not None:
                    with interrupts_deferred():
                        run.log(
                            {
                                "event": "diverged",
                                "step": done,
                                "message": hist.stopped,
                                "elapsed": run.elapsed(),
                            }
                        )
                        run.flush()
                        save()
                    # A failure of the work, not of the options (exit status 1): the folder holds the
                    # checkpoint of the last finite step.
                    raise DivergenceError(
                        f"training diverged: {hist.stopped}. Try a smaller learning rate "
                        f"(see '{PROG} lr-find')",
                        hist,
                    )
        except KeyboardInterrupt as e:
            with interrupts_deferred(merge=True):  # a second Ctrl-C is part of this one
                if bar is not None:
                    bar.close()
                _interrupted(e, run, state, done, saved, take, save, say)
            raise
        finally:
            if bar is not None:
                bar.close()
            run.flush()
        return _finish(
            run,
            model,
            cfg,
            preset,
            done,
            step_start,
            total,
            keep_best,
            diag,
            encoded,
            settings,
            losses,
            samples,
            sample_seed,
            plot,
            say,
            (tr, dev, te),
            ((Xtr, Ytr), (Xdev, Ydev), (Xte, Yte)),
        )
    finally:
        run.unlock()


def _check(cfg: dict, vocab_size: int | None = None) -> None:
    """check_config, its refusals as usage errors (exit status 2) naming the options."""
    try:
        check_config(cfg, vocab_size)
    except MemoryError as e:
        raise CLIError(str(e)) from None
    except (ValueError, TypeError) as e:
        raise CLIError(as_options(str(e))) from None


def _built(make: Callable[[], Any]) -> Any:
    """What ``make`` builds; a refusal for memory as a usage error (exit status 2)."""
    try:
        return make()
    except MemoryError as e:
        raise CLIError(str(e)) from None


def fits(nbytes: float, what: str, detail: str = "") -> None:
    try:
        v.fits(nbytes, what, detail)
    except MemoryError as e:
        raise CLIError(str(e)) from None


def _interrupted(
    e: KeyboardInterrupt,
    run: Run,
    state: TrainState,
    done: int,
    saved: int | None,
    take: Callable[[History], None],
    save: Callable[[], None],
    say: Callable[..., None],
) -> None:
    """Ctrl-C: the steps the interrupted call completed join the run, and a checkpoint of the last
    completed step is written, so that ``--resume`` goes on from there; when the run's record of
    its steps cannot be trusted (a second Ctrl-C at the wrong moment), the checkpoint in the
    folder is kept as it is, and --resume redoes the steps after it."""
    hist = getattr(e, "history", None)
    if hist is not None and hist.state is state and done + len(hist.loss) == state.step:
        take(hist)
        done = state.step
    if done == state.step and saved != done and run.holds_lock():
        try:
            run.close()
            save()
            saved = done
        except OSError as err:
            say(f"\ncould not write the checkpoint of step {done:,}: {err}", file=sys.stderr)
    run.close()
    if saved is None:
        say(
            f"\ninterrupted before step {done:,} was saved; nothing to resume in {run.workdir}",
            file=sys.stderr,
        )
        return
    say(
        f"\ninterrupted. The checkpoint in {run.workdir} is at step {saved:,} of {run.total:,}; "
        f"continue with: {PROG} train --resume -o {run.workdir}",
        file=sys.stderr,
    )


def _finish(
    run: Run,
    model: Model,
    cfg: dict,
    preset: str,
    done: int,
    step_start: int,
    total: int,
    keep_best: bool,
    diag: Diagnostics | None,
    encoded: list[str],
    settings: dict,
    losses: np.ndarray,
    samples: int,
    sample_seed: int,
    plot: bool,
    say: Callable[..., None],
    splits: tuple,
    data: tuple,
) -> TrainResult:
    """After the last step: the losses of the final (or best) model, samples marked as makemore.py
    does, the summary and the plot."""
    tr, dev, te = splits
    (Xtr, Ytr), (Xdev, Ydev), (Xte, Yte) = data
    seconds = run.elapsed()
    trained = done - step_start
    session = run.session_seconds()
    rate = trained / session if session > 0 else 0.0
    if trained:
        say(f"trained {trained:,} steps in {session:.1f} s ({rate:,.0f} steps/s); step {done:,} of {total:,}")
    else:
        say(
            f"the run is already at step {done:,} of {total:,}: nothing to train (give a larger "
            "--steps to go on)"
        )

    final = model
    best = run.best
    if keep_best and best is not None and best["step"] != done and os.path.exists(run.paths["best"]):
        final = checkpoint.load(run.paths["best"]).model
        say(f"using the best model by dev loss, from step {best['step']:,} (saved in {run.paths['best']})")
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
    run.log(
        {
            "event": "end",
            "step": done,
            **{f"{k}_loss": val for k, val in result_losses.items()},
            "elapsed": seconds,
            "steps_per_second": rate,
        }
    )
    run.close()
    run.write_summary(
        {
            "step": done,
            "total_steps": total,
            "losses": result_losses,
            "seconds": seconds,
            "steps_per_second": rate,
            "params": model.num_params,
            "best": best,
            "settings": settings,
            "input": run.input_path,
            "samples": [{"name": n, "mark": m} for n, m in zip(names, marks)],
        }
    )
    files = {name: run.paths[name] for name in ("checkpoint", "log", "losses", "summary")}
    if diag is not None:
        files.update(diag.save(run.workdir, encoded=encoded))
    if keep_best and os.path.exists(run.paths["best"]):
        files["best"] = run.paths["best"]
    source = os.path.basename(run.input_path) if run.input_path else "the bundled names"
    if plot:
        try:
            evals = [(r["step"], r["dev_loss"]) for r in read_log(run.paths["log"]) if "dev_loss" in r]
            plots.loss_curve(
                losses[:done],
                run.paths["plot"],
                window=_window(done),
                eval_steps=[s for s, _ in evals],
                eval_losses=[val for _, val in evals],
                title=f"Training loss: {preset} preset on {source}, {model.num_params:,} parameters, "
                f"{done:,} steps",
            )
            files["plot"] = run.paths["plot"]
        except ImportError as e:
            say(f"no {LOSS_PNG}: {e}")
    say(f"wrote {run.workdir}{os.sep}: " + ", ".join(os.path.basename(p) for p in files.values()))
    say(
        f"next: {PROG} sample {run.workdir}   |   {PROG} embeddings {run.workdir}   |   {PROG} train "
        f"--resume -o {run.workdir} --steps N"
    )
    return TrainResult(
        workdir=run.workdir,
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
