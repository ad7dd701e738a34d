"""The command line: `python -m makemore_cpp.bench` and `makemore-cpp bench`."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

import numpy as np

import makemore_cpp as mm

from . import layer_workloads as lw
from . import mlp_workloads as mw
from .datasets import bench_words
from .report import markdown, readme_table, report, summarize
from .timing import try_import

WORKLOADS = [
    "step",
    "step2",
    "eval",
    "eval2",
    "sample",
    "large",
    "large2",
    "run",
    "wavenet",
    "bn",
    "seqmlp",
    "wavenet-run",
    "diagnostics",
]
OPT_IN = ["wavenet-run-torch"]  # about 5 minutes: only when asked for by name


def run_one(w: str, args) -> dict:
    """{label: result} of workload w."""
    threads = 2 if w.endswith("2") else 1
    t = f"{threads} thread{'s' if threads > 1 else ''}"
    jax = not args.no_jax
    if w.startswith("step"):
        return {
            f"lecture step, {t}": mw.step_workload(
                mw.LECTURE, threads, args, jax and threads == 1, mw.WHY_STEP
            )
        }
    if w.startswith("large"):
        return {f"large step, {t}": mw.step_workload(mw.LARGE, threads, args, False, mw.WHY_LARGE)}
    if w.startswith("eval"):
        return {f"eval, {t}": mw.eval_workload(threads, args)}
    if w == "sample":
        return mw.sample_workloads(args)
    if w == "run":
        return {"run": mw.run_workload(args)}
    if w in ("wavenet", "bn"):
        return {f"{w} step, 1 thread": lw.layer_step_workload(w, args, jax)}
    if w == "seqmlp":
        return {"nn.Sequential MLP step, 1 thread": lw.seqmlp_workload(args)}
    if w == "diagnostics":
        return {"diagnostics, 1 thread": lw.diagnostics_workload(args)}
    if w == "wavenet-run":
        return {"wavenet run": lw.wavenet_run_workload(args)}
    if w == "wavenet-run-torch":
        return {"wavenet run, torch": lw.wavenet_run_torch_workload(args)}
    raise ValueError(w)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="makemore-cpp bench",
        description=(__package__ and sys.modules[__package__].__doc__ or "").split("\n\n")[0],
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: check that it runs")
    ap.add_argument(
        "-w",
        "--workload",
        action="append",
        choices=WORKLOADS + OPT_IN,
        help="run only these (repeatable); default: "
        + ", ".join(WORKLOADS)
        + "; by name only: "
        + ", ".join(OPT_IN),
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help="interleaved rounds per workload (default 7, quick 2)"
    )
    ap.add_argument("--steps", type=int, default=None, help="steps per timed call of a training workload")
    ap.add_argument("--no-jax", action="store_true", help="leave JAX out even if it is installed")
    ap.add_argument("--json", default="bench.json", help="where to write the results (default bench.json)")
    ap.add_argument(
        "--markdown", default=None, metavar="FILE", help="also write the full table (markdown) here"
    )
    ap.add_argument(
        "--readme", default=None, metavar="FILE", help="also write the README's Speed table (markdown) here"
    )
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    chosen = args.workload or WORKLOADS
    have = os.sched_getaffinity(0)
    args.cpus = len(have)
    started, load_before = now(), os.getloadavg()
    results: dict[str, dict] = {}
    for w in chosen:
        if w.endswith("2") and len(have) < 2:
            print(f"skipping {w}: only one CPU available", file=sys.stderr)
            continue
        print(f"running {w} ...", file=sys.stderr, flush=True)
        for label, r in run_one(w, args).items():
            if "skipped" in r or "ours_skipped" in r:
                print(
                    f"  {label}: {r.get('skipped') or 'makemore_cpp not measured: ' + r['ours_skipped']}",
                    file=sys.stderr,
                )
            results[label] = r
    try:
        os.sched_setaffinity(0, have)
    except OSError:
        pass
    torch = try_import("torch")
    jax = None if args.no_jax else try_import("jax")
    meta = {
        "date": started,
        "finished": now(),
        # The host's 1-minute load average before and after: above the CPU count, others were running.
        "loadavg": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cpus": len(have),
        "cores": os.cpu_count(),
        "isa": mm.get_isa(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "jax": getattr(jax, "__version__", None),
        "command": " ".join(
            ["python -m makemore_cpp.bench"] + (list(argv) if argv is not None else sys.argv[1:])
        ),
        "data": bench_words(args.quick)[1],
        "quick": args.quick,
        "repeats": args.repeats,
    }
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": results, "summary": summarize(results)}, f, indent=1)
    print(report(results))
    print(f"\nwrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results, meta))
        print(f"wrote {args.markdown}")
    if args.readme:
        with open(args.readme, "w") as f:
            f.write(readme_table(results, meta))
        print(f"wrote {args.readme}")
    return 0
