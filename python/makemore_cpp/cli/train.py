"""``makemore-cpp train``: train a preset's model in a run folder, resumable from its checkpoint."""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import checkpoint, get_num_threads, plots, set_num_threads
from ..data import Vocab, build_dataset, split_words
from ..diagnostics import Diagnostics
from ..experiments import mark_samples
from ..fitting import build_model, resolve, train_options
from ..model import Model
from ..schedules import parse_schedule
from ..training import train
from .common import PROG, CLIError, describe_input, hidden_text, jsonable, model_overrides, printer
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
    overrides = model_overrides(overrides)
    if "lr" in overrides:
        if callable(overrides["lr"]):
            raise CLIError(
                "lr must be a number or schedule text (it is stored in the checkpoint), not a callable"
            )
        overrides["lr"] = str(overrides["lr"])
    if threads is not None:
        set_num_threads(threads)

    # The run: a new one, or the one in workdir with its model and training state.
    if resume:
        run, model, state = Run.resume(workdir, overrides, input, log_every, say)
        preset = run.cfg.get("preset", preset)
    else:
        cfg = resolve(preset, **overrides)
        if callable(cfg["lr"]):
            raise CLIError("lr must be a number or schedule text")
        cfg["lr"] = str(cfg["lr"])
        run = Run.new(workdir, cfg, input, log_every)
        model, state = build_model(cfg, Vocab.from_words(run.words)), None
    cfg, total, done = run.cfg, run.total, state.step if state else 0
    lr_fn = parse_schedule(cfg["lr"], total)  # bad settings fail before any file is written
    options = train_options(cfg)
    if total < 1:
        raise CLIError("steps must be at least 1")
    vocab = Vocab.from_words(run.words)
    if model.vocab != vocab:
        raise CLIError("the input's characters differ from the checkpoint's vocabulary")
    os.makedirs(run.workdir, exist_ok=True)

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

    losses, known = run.previous_losses(done)  # losses[known:] are this session's
    diag = None
    if resume and os.path.exists(os.path.join(run.workdir, "diagnostics.json")):
        diag = Diagnostics.load(run.workdir).until(done)
        diagnostics = diagnostics or diag.every
    if diagnostics is not None and (
        isinstance(diagnostics, bool) or not isinstance(diagnostics, int) or diagnostics < 1
    ):
        raise CLIError(f"--diagnostics must be a positive number of steps, got {diagnostics!r}")

    def save() -> None:
        run.save(model, state, losses)
        if diag is not None:
            diag.save(run.workdir)

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

    # The loop: chunks of steps of about CHUNK_SECONDS; a log record every log_every steps; the
    # dev loss and a checkpoint every eval_every steps and at the end.
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
    dev_loss = run.best.get("dev_loss") if run.best is not None else None
    chunk = 100
    step_start = done
    try:
        while done < total:
            stop = total if not eval_every else min(total, (done // eval_every + 1) * eval_every)
            n = min(chunk, stop - done)
            t0 = run.elapsed()
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
            if hist.diagnostics is not None:
                if diag is None:
                    diag = hist.diagnostics
                else:
                    diag.extend(hist.diagnostics)
            t1 = run.elapsed()
            state = hist.state
            k = len(hist.loss)
            losses[done : done + k] = hist.loss
            chunk = max(1, int(k / max(t1 - t0, 1e-6) * CHUNK_SECONDS))
            for i in range(k):  # one record each log_every steps; elapsed interpolated within the chunk
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
            done = state.step
            post = {"loss": f"{np.mean(losses[max(known, done - 100) : done]):.4f}"}
            if dev_loss is not None:
                post["dev"] = f"{dev_loss:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.update(k)
            if hist.stopped is not None:
                run.log(
                    {"event": "diverged", "step": done, "message": hist.stopped, "elapsed": run.elapsed()}
                )
                run.flush()
                save()
                raise CLIError(
                    f"training diverged: {hist.stopped}. Try a smaller learning rate (see '{PROG} lr-find')"
                )
            if done == total or (eval_every and done % eval_every == 0):
                if len(Xdev):
                    dev_loss = model.loss(Xdev, Ydev)
                    run.log({"step": done, "dev_loss": dev_loss, "elapsed": run.elapsed()})
                    if keep_best and (run.best is None or dev_loss < run.best["dev_loss"]):
                        run.save_best(model, done, dev_loss)
                run.flush()
                save()
    except KeyboardInterrupt:
        bar.close()
        run.close()
        path = run.paths["checkpoint"]
        last = checkpoint.load(path).state.step if os.path.exists(path) else 0
        say(
            f"\ninterrupted. The checkpoint in {run.workdir} is at step {last:,}; continue with: "
            f"{PROG} train --resume -o {run.workdir}",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
        run.flush()
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

    # The result: the losses of the final (or best) model, samples marked as makemore.py does.
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
        files.update(diag.save(run.workdir))
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
