"""Model quality on the lecture's split: train presets (or any recipe) and print the results table.

    python benchmarks/quality.py                      # the presets lecture, kaiming and best
    python benchmarks/quality.py --preset best --set steps=100000 --set dropout=0.2
    python benchmarks/quality.py --json benchmarks/quality.json

Reads the lecture's names from ../shared/data/names.txt (beside the project) or -i FILE; the split
is the lecture's (random.seed(42) shuffle, 80/10/10). Prints preset, parameters, steps, wall time,
train/dev/test loss as a Markdown table.
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
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "names.txt")


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "-i", "--input", default=DEFAULT_DATA, help="words file (default: the lecture's names.txt)"
    )
    ap.add_argument("--preset", action="append", help="preset(s) to run (default: lecture, kaiming, best)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting (repeatable)"
    )
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all CPUs)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if not os.path.exists(args.input):
        print(f"no data at {args.input}: pass -i names.txt", file=sys.stderr)
        return 2
    if args.threads:
        mm.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name.replace("-", "_")] = parse_value(value)
    words = mm.load_words(args.input)
    rows = []
    for preset in args.preset or ["lecture", "kaiming", "best"]:
        t0 = time.perf_counter()
        res = mm.fit(words, preset=preset, progress=args.progress, **overrides)
        wall = time.perf_counter() - t0
        row = {
            "preset": preset,
            "overrides": overrides,
            "params": res.model.num_params,
            "steps": res.history.steps,
            "train_seconds": round(res.seconds, 1),
            "wall_seconds": round(wall, 1),
            "threads": mm.get_num_threads(),
            **{k: round(v, 4) for k, v in res.losses.items()},
            "best_step": res.history.best_step,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| preset | parameters | steps | wall time | train | dev | test |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        name = r["preset"] + (
            "".join(f" {k}={v}" for k, v in r["overrides"].items()) if r["overrides"] else ""
        )
        print(
            f"| {name} | {r['params']:,} | {r['steps']:,} | {r['wall_seconds']:.0f} s "
            f"({r['threads']} threads) "
            f"| {r['train']:.4f} | {r['dev']:.4f} | {r['test']:.4f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
