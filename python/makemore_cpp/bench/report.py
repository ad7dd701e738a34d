"""The benchmark's text report, its Speed table in markdown, and the summary kept in the JSON.

A row compares one of ours against the best (lowest median) of `others`; the ratio is always the
other side's median over ours: above 1, ours is faster."""

from __future__ import annotations

from .timing import FAR_NS, median

RUNS = ("run", "wavenet run", "wavenet run, torch")


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt(unit: str, s: float) -> str:
    return f"{1 / s:,.0f} names/s" if unit == "s/name" else fmt_time(s)


def _best(samples: dict, names: list) -> tuple[str, float] | None:
    meds = [(n, median(samples[n])) for n in names if samples.get(n)]
    return min(meds, key=lambda x: x[1]) if meds else None


def summarize_row(r: dict, row: dict) -> dict:
    """Ours, the best other and the best JAX, as medians and ratios (other / ours)."""
    s = r["samples"]
    ours = median(s[row["ours"]]) if s.get(row["ours"]) else None
    out = {"name": row["name"], "ours": row["ours"], "ours_median": ours, "why": row.get("why", "")}
    for key, names in (("other", row.get("others", [])), ("jax", row.get("jax", []))):
        b = _best(s, names)
        if b:
            out[f"best_{key}"], out[f"{key}_median"] = b
            out[f"{key}_ratio"] = b[1] / ours if ours else None
    if row.get("lecture"):
        out["lecture"] = True
    return out


def summarize(results: dict) -> dict:
    return {
        label: [summarize_row(r, row) for row in r["rows"]]
        for label, r in results.items()
        if "rows" in r and "samples" in r
    }


def report(results: dict) -> str:
    lines = ["", f"{'workload':<38} {'implementation':<48} {'median':>13} {'vs makemore_cpp':>16}", "-" * 118]
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"{name:<38} skipped: {r['skipped']}")
            continue
        if name in RUNS:
            lines += run_lines(name, r)
            continue
        meds = {k: median(v) for k, v in r["samples"].items()}
        ours = meds.get("makemore_cpp")
        for impl, m in meds.items():
            ratio = "" if impl == "makemore_cpp" or ours is None else f"{m / ours:.1f}x slower"
            lines.append(f"{name:<38} {impl:<48} {fmt(r['unit'], m):>13} {ratio:>16}")
        if "ours_skipped" in r:
            lines.append(f"{name:<38} makemore_cpp not measured: {r['ours_skipped']}")
        for row in summarize({name: r})[name]:
            lines.append("    " + row_sentence(row, r["unit"]))
    # 2 threads against 1: measured side by side in the 2-thread workload (its "1 thread" line).
    for b, label, impl, one in [
        ("eval, 2 threads", "eval", "makemore_cpp", "makemore_cpp, 1 thread"),
        ("eval, 2 threads", "eval, every row", "makemore_cpp, every row", "every row, 1 thread"),
        ("large step, 2 threads", "large step", "makemore_cpp", "makemore_cpp, 1 thread"),
        ("lecture step, 2 threads", "lecture step", "makemore_cpp", "makemore_cpp, 1 thread"),
    ]:
        if b in results and impl in results[b]["samples"] and one in results[b]["samples"]:
            s = median(results[b]["samples"][one]) / median(results[b]["samples"][impl])
            lines.append(
                f"{label}: makemore_cpp on 2 threads is {s:.2f}x its 1-thread speed (side by side)"
                + split_by_cores(results[b], impl, one)
            )
    return "\n".join(lines)


def row_sentence(row: dict, unit: str) -> str:
    if row["ours_median"] is None:
        text = f"{row['name']}: ours not measured"
    else:
        text = f"{row['name']}: {row['ours']} {fmt(unit, row['ours_median'])}"
    if "best_other" in row:
        text += f"; best other: {row['best_other']} {fmt(unit, row['other_median'])}"
        if row["other_ratio"]:
            text += f" ({row['other_ratio']:.1f}x ours)"
    if "best_jax" in row:
        text += f"; {row['best_jax']} {fmt(unit, row['jax_median'])}"
        if row["jax_ratio"]:
            text += f" ({row['jax_ratio']:.1f}x ours)"
    return text + (f" -- why: {row['why']}" if row["why"] else "")


def run_lines(name: str, r: dict) -> list[str]:
    def one(label: str, x: dict) -> str:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in x["losses"].items() if k in ("train", "dev"))
        title = f"{name}, {x['steps']:,} steps"
        return f"{title:<38} {label:<48} {fmt_time(x['seconds']):>13}  {losses}"

    if name == "wavenet run, torch":
        return [one(r["label"], r)]
    threads = f"makemore_cpp, {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
    lines = [one(threads, r) + (f", peak RSS {r['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in r else "")]
    if "torch" in r:
        t = r["torch"]
        lines.append(one(t["label"], t) + f"  ({t['seconds'] / r['seconds']:.1f}x ours)")
    return lines


def split_by_cores(r: dict, impl: str, one: str) -> str:
    """The rounds' 2-thread/1-thread ratios, by the cores' round trip measured before each round."""
    probes = r.get("round_trip_ns")
    if not probes:
        return ""
    parts = []
    for label, far in (("cores close", False), ("cores far", True)):
        ratios = [
            a / b
            for a, b, ns in zip(r["samples"][one], r["samples"][impl], probes)
            if ns == ns and (ns >= FAR_NS) == far
        ]
        if ratios:
            parts.append(f"{label}: {median(ratios):.2f}x in {len(ratios)}")
    ns = [x for x in probes if x == x]
    trip = f"round trip {min(ns):.0f}-{max(ns):.0f} ns" if ns else "round trip not measured"
    return f"; {trip}; " + ", ".join(parts) if parts else f"; {trip}"


# ----------------------------------------------------------------------------- markdown


def where(meta: dict) -> str:
    """The run's header line: when, on what, with which versions, by which command."""
    load = " to ".join(f"{x:.1f}" for x in meta.get("loadavg", [])) or "?"
    versions = ", ".join(f"{k} {meta[k]}" for k in ("python", "numpy", "torch", "jax") if meta.get(k))
    return (
        f"Measured {meta['date']} to {meta.get('finished', '?')} on {meta['cpu_model']} "
        f"({meta['cpus']} of {meta['cores']} CPUs, load average {load}, "
        f"instruction-set path {meta['isa']}); {versions}; data {meta.get('data')}. "
        f"Command: `{meta['command']}`."
    )


# The README's Speed table: (result label, row name prefix, short name). The full table, with each
# row's reason, is markdown()'s.
README_ROWS = [
    ("lecture step, 1 thread", "training step", "lecture's training step (batch 32)"),
    ("eval, 1 thread", "loss() over", "`loss()` over the 182,625 training rows"),
    ("sampling 20 names, 1 thread", "sample(", "`sample(20)`, one call"),
    ("sampling 1,000 names, 1 thread", "sample(", "`sample(1000)`"),
    ("sampling 200,000 names, 1 thread", "sample(", "`sample(200000)`"),
    ("large step, 1 thread", "training step", "training step, batch 512, context 8, 512 units"),
    ("large step, 2 threads", "training step", "the same, 2 threads"),
    ("bn step, 1 thread", "part 3", "part 3's batch-norm MLP step (batch 32)"),
    ("wavenet step, 1 thread", "part 5", "part 5's WaveNet step (batch 32)"),
]


def readme_table(results: dict, meta: dict) -> str:
    """The README's Speed section body: the header line, a headline sentence and one short table
    taken from the same run (at most 20 lines; the full table is :func:`markdown`'s)."""
    summary = summarize(results)
    rows, ratio = [], {}
    for label, prefix, short in README_ROWS:
        row = next((x for x in summary.get(label, []) if x["name"].startswith(prefix)), None)
        if not row or not row["ours_median"] or "best_other" not in row:
            continue
        unit = results[label]["unit"]
        jax = f"{row['jax_ratio']:.1f}x" if row.get("jax_ratio") else ""
        ratio[label] = row["other_ratio"], row.get("jax_ratio")
        rows.append(
            f"| {short} | {results[label]['threads']} | {fmt(unit, row['ours_median'])} | "
            f"{fmt(unit, row['other_median'])} ({row['best_other']}) | {row['other_ratio']:.1f}x | {jax} |"
        )
    for label, r in results.items():
        if label == "run" and "torch" in r and "skipped" not in r:
            rows.append(
                f"| the lecture's 200,000-step run (*lecture*: PyTorch as the lecture writes it) | "
                f"{r['threads']} | {fmt_time(r['seconds'])} | {fmt_time(r['torch']['seconds'])} | "
                f"{r['torch']['seconds'] / r['seconds']:.1f}x | |"
            )
    said = []
    for label, what in (
        ("lecture step, 1 thread", "the lecture's training step"),
        ("wavenet step, 1 thread", "part 5's WaveNet step"),
        ("eval, 1 thread", "`loss()` over the training split"),
        ("sampling 1,000 names, 1 thread", "`sample(1000)`"),
    ):
        if label in ratio:
            other, jax = ratio[label]
            said.append(f"{what} {other:.0f}x" + (f" ({jax:.1f}x JAX)" if jax else ""))
    headline = "Against the best PyTorch a user would write, on one thread: " + ", ".join(said) + "."
    lines = [
        headline,
        "",
        "| workload | threads | makemore_cpp | best PyTorch | ratio | JAX ratio |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
        *rows,
        "",
        where(meta),
    ]
    return "\n".join(lines) + "\n"


def markdown(results: dict, meta: dict) -> str:
    """The Speed table: one row per comparison, with the header line saying where and how."""
    lines = [
        where(meta),
        "",
        "Medians of interleaved rounds; a ratio is the other side's median over ours (above 1: ours is "
        "faster). Where PyTorch ran in several ways or at 1 and 2 threads, the best is shown and named. "
        "Rows marked *lecture* compare against the lecture's own loop, not against the best PyTorch.",
        "",
        "| workload | threads | makemore_cpp | best other | other / ours | JAX | JAX / ours | why |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = summarize(results)
    for label, r in results.items():
        if label in RUNS:
            lines += run_rows(label, r)
            continue
        if "skipped" in r:
            lines.append(f"| {label} | | not measured: {r['skipped']} | | | | | |")
            continue
        for row in summary[label]:
            lines.append(md_row(row, r))
    return "\n".join(lines) + "\n"


def md_row(row: dict, r: dict) -> str:
    unit = r["unit"]
    ours = (
        fmt(unit, row["ours_median"]) if row["ours_median"] else f"not measured: {r.get('ours_skipped', '')}"
    )
    cells = [row["name"] + (" (*lecture*)" if row.get("lecture") else ""), str(r["threads"]), ours]
    for key in ("other", "jax"):
        if f"best_{key}" in row:
            cells.append(f"{fmt(unit, row[f'{key}_median'])} ({row[f'best_{key}']})")
            cells.append(f"{row[f'{key}_ratio']:.1f}x" if row[f"{key}_ratio"] else "")
        else:
            cells += ["", ""]
    return "| " + " | ".join(cells + [row["why"]]) + " |"


def run_rows(label: str, r: dict) -> list[str]:
    if "skipped" in r:
        return [f"| {label} | | not measured: {r['skipped']} | | | | | |"]

    def cell(x: dict) -> str:
        return f"{fmt_time(x['seconds'])}; " + ", ".join(
            f"{k} {v:.4f}" for k, v in x["losses"].items() if k in ("train", "dev")
        )

    name = f"{label}, {r['steps']:,} steps"
    if label == "wavenet run, torch":
        return [f"| {name} (*lecture*) | {r['threads']} | | {cell(r)} ({r['label']}) | | | | opt-in |"]
    other, ratio = ("", "")
    if "torch" in r:
        other = f"{cell(r['torch'])} ({r['torch']['label']})"
        ratio = f"{r['torch']['seconds'] / r['seconds']:.1f}x"
    lecture = " (*lecture*)" if "torch" in r else ""
    return [f"| {name}{lecture} | {r['threads']} | {cell(r)} | {other} | {ratio} | | | {r.get('why', '')} |"]
