"""Model quality on the lecture's split: train presets (or any recipe), print the results table, and
draw dev loss against wall time.

    python benchmarks/quality.py                      # the presets lecture, kaiming and best
    python benchmarks/quality.py --preset best --set steps=100000 --set dropout=0.2
    python benchmarks/quality.py --json benchmarks/quality.json
    python benchmarks/quality.py --figure docs/quality.png   # every preset, and best's recipe in PyTorch

Reads the lecture's names from ../shared/data/names.txt (beside the project), the file the
environment variable MAKEMORE_NAMES_TXT names, or -i FILE; the split
is the lecture's (random.seed(42) shuffle, 80/10/10). Prints preset, parameters, steps, wall time,
train/dev/test loss as a Markdown table. Times are wall time from the call of ``mm.fit`` (the
split, the examples, training with its dev evaluations, and the final losses on train, dev and
test).

``--figure PATH`` runs every preset (unless ``--preset`` names some) on 2 threads and, beside
them, the ``best`` preset's recipe in PyTorch (``makemore_cpp.bench.torch_mlp.recipe_run``) for 3 minutes
(``--torch-budget``), then draws each run's dev evaluations
against wall time with the anchors as horizontal lines. ``--replot JSON`` draws the figure again
from a ``--json`` file of such a run, without training.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time

import makemore_cpp as mm

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.environ.get("MAKEMORE_NAMES_TXT") or os.path.join(
    HERE, "..", "..", "shared", "data", "names.txt"
)
FIGURE_PRESETS = ["lecture", "kaiming", "bn", "wavenet", "best"]
# Dev losses to compare with (horizontal lines of the figure).
ANCHORS = [
    (1.9937, "lecture part 5's WaveNet (PyTorch, 200,000 steps)"),
    (1.9635, "a PyTorch MLP on this split (benchmarks/NOTES.md)"),
    (1.92, "karpathy/makemore's Transformer, about (its README; its own split)"),
]


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_preset(words: list[str], preset: str, overrides: dict, progress: bool) -> dict:
    """One ``mm.fit`` of a preset: its table row and its dev curve against wall time from the call."""
    t0 = time.perf_counter()
    res = mm.fit(words, preset=preset, progress=progress, **overrides)
    wall = time.perf_counter() - t0
    hist = res.history
    curve = [
        [round(res.setup_seconds + t, 3), step, round(loss, 5)]
        for t, step, loss in zip(hist.eval_seconds, hist.eval_step, hist.eval_loss)
    ]
    return {
        "preset": preset,
        "overrides": overrides,
        "params": res.model.num_params,
        "steps": res.history.steps,
        "train_seconds": round(res.seconds, 1),
        "wall_seconds": round(wall, 1),
        "threads": mm.get_num_threads(),
        **{k: round(v, 4) for k, v in res.losses.items()},
        "best_step": hist.best_step,
        "load": round(os.getloadavg()[0], 2),
        "curve": curve,
    }


def run_torch(words: list[str], budget: float) -> dict:
    """The ``best`` preset's recipe (model, initial parameters, optimizer, schedule shape, dropout)
    in PyTorch for ``budget`` seconds, on the same split."""
    cfg = mm.fitting.resolve("best")
    if cfg["model"] != "mlp" or cfg["optimizer"] != "adamw" or not str(cfg["lr"]).startswith("cosine:"):
        raise SystemExit("the PyTorch side runs MLP recipes with AdamW and a cosine schedule")
    sched = str(cfg["lr"]).split(":")
    opts = dict(p.split("=", 1) for p in sched[2:])
    vocab = mm.Vocab.from_words(words)
    parts = mm.data.split_words(words, cfg["split"], seed=cfg["split_seed"])
    data = {
        name: mm.build_dataset(part, vocab, cfg["block_size"])
        for name, part in zip(("train", "dev", "test"), parts)
    }
    model = mm.fitting.build_model(cfg, vocab)
    from makemore_cpp.bench import torch_mlp

    out = torch_mlp.recipe_run(
        model,
        data,
        budget=budget,
        batch_size=cfg["batch_size"],
        lr=float(sched[1]),
        warmup=int(opts.get("warmup", 0)),
        betas=tuple(cfg["betas"]),
        weight_decay=cfg["weight_decay"],
        dropout=cfg["dropout"],
        eval_every=cfg["eval_every"] // 5,
    )
    curve = [
        [round(t, 3), step, round(loss, 5)]
        for t, step, loss in zip(out["eval_seconds"], out["eval_step"], out["eval_loss"])
    ]
    return {
        "preset": "best, PyTorch",
        "params": model.num_params,
        "steps": out["steps"],
        "wall_seconds": round(out["seconds"], 1),
        "threads": out["threads"],
        **{k: round(v, 4) for k, v in out["losses"].items()},
        "probe_s_per_step": out["probe_s_per_step"],
        "load": round(os.getloadavg()[0], 2),
        "curve": curve,
    }


def figure(rows: list[dict], path: str) -> str:
    """Dev loss against wall time, a curve a run, the anchors as horizontal lines."""
    from makemore_cpp.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6))
    torch_rows = [r for r in rows if r["preset"].endswith("PyTorch")]
    for r in rows:
        if not r.get("curve"):
            continue
        t = [c[0] for c in r["curve"]]
        dev = [c[2] for c in r["curve"]]
        is_torch = r in torch_rows
        label = (
            f"{r['preset']}: dev {r['dev']:.4f}, {r['steps']:,} steps in {r['wall_seconds']:.0f} s "
            f"({r['threads']} thread{'s' if r['threads'] > 1 else ''})"
        )
        ax.plot(t, dev, "--" if is_torch else "-", marker="o", ms=3, lw=1.6, label=label)
    styles = [":", "-.", (0, (5, 2, 1, 2))]
    for (value, text), ls in zip(ANCHORS, styles):
        ax.axhline(value, color="gray", ls=ls, lw=1.2, label=f"{value:.4g}: {text}")
    ax.axvline(180, color="black", lw=0.8, alpha=0.5)
    ax.text(180, 2.29, " 3 minutes", fontsize=9, va="top")
    ax.set_xscale("log")
    ax.set_ylim(1.9, 2.3)
    ax.set_xlabel("wall time from the call (s, log scale)")
    ax.set_ylabel("dev loss (mean cross-entropy, nats)")
    host = rows[0].get("host", "")
    ax.set_title(f"makemore_cpp presets on the lecture's split of names.txt: dev loss against time\n{host}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def host_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "-i", "--input", default=DEFAULT_DATA, help="words file (default: the lecture's names.txt)"
    )
    ap.add_argument("--preset", action="append", help="preset(s) to run (default: lecture, kaiming, best)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting (repeatable)"
    )
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all CPUs; --figure: 2)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--figure", default=None, metavar="PNG", help="draw dev loss against wall time here")
    ap.add_argument(
        "--torch-budget",
        type=float,
        default=180.0,
        help="seconds for the PyTorch run of --figure (default: 180)",
    )
    ap.add_argument("--no-torch", action="store_true", help="--figure without the PyTorch run")
    ap.add_argument("--replot", default=None, metavar="JSON", help="draw --figure from a --json file")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if args.replot:
        if not args.figure:
            ap.error("--replot needs --figure PNG")
        with open(args.replot) as f:
            print(figure(json.load(f), args.figure))
        return 0
    if not os.path.exists(args.input):
        print(f"no data at {args.input}: pass -i names.txt", file=sys.stderr)
        return 2
    threads = args.threads or (2 if args.figure else None)
    if threads:
        mm.set_num_threads(threads)
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name.replace("-", "_")] = parse_value(value)
    words = mm.load_words(args.input)
    presets = args.preset or (FIGURE_PRESETS if args.figure else ["lecture", "kaiming", "best"])
    rows = []
    for preset in presets:
        row = run_preset(words, preset, overrides, args.progress)
        row["host"] = host_name()
        rows.append(row)
        print(json.dumps({k: val for k, val in row.items() if k != "curve"}), flush=True)
    if args.figure and not args.no_torch:
        row = run_torch(words, args.torch_budget)
        row["host"] = host_name()
        rows.append(row)
        print(json.dumps({k: val for k, val in row.items() if k != "curve"}), flush=True)
    print()
    print("| preset | parameters | steps | wall time | train | dev | test |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        name = r["preset"] + (
            "".join(f" {k}={v}" for k, v in r["overrides"].items()) if r.get("overrides") else ""
        )
        print(
            f"| {name} | {r['params']:,} | {r['steps']:,} | {r['wall_seconds']:.0f} s "
            f"({r['threads']} threads) "
            f"| {r['train']:.4f} | {r['dev']:.4f} | {r['test']:.4f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.figure:
        print(figure(rows, args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
