"""Ctrl-C at random moments: SIGINT (once or twice, to the process group as a terminal sends it or to
the parent alone) to ``makemore-cpp train``, ``sweep`` and ``sample`` running as child processes,
at random delays. Each trial must end promptly with exit status 130, leave no process running and
no temporary file, and leave a run folder that resumes: ``train --resume`` from the checkpoint the
message names equals a run that was never interrupted, bit for bit.

    python scripts/interrupt_campaign.py --trials 60 --seed 1        # a few minutes
    python scripts/interrupt_campaign.py --commands train --trials 20 --json report.json
    python scripts/interrupt_campaign.py --commands train-bn,train-wavenet --trials 20  # layer models

A signal that arrives while Python itself is still starting (importing the package, before the
command runs) ends the process the interpreter's way, killed by SIGINT (a shell reports 130) with
Python's traceback; such trials are counted as "startup", not as failures. tests/test_careless.py
runs a few trials of this campaign.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
LATENCY_BOUND = 2.0  # seconds from the first signal to the exit, on a shared machine

TRAIN = ["--n-hidden", "32", "--eval-every", "2000", "--samples", "0", "--no-plot", "--log-every", "100"]
SWEEP = ["--n-hidden", "1500,1600,1700,1800", "--batch-size", "256", "--steps", "1000000", "-o", "s.csv"]


def package_dir() -> str:
    """The folder of the makemore_cpp this process imports: the installed one, or else this
    checkout's (which has an extension only when built in place)."""
    try:
        import makemore_cpp
    except ImportError:
        sys.path.insert(0, str(ROOT / "python"))
        import makemore_cpp
    return str(pathlib.Path(makemore_cpp.__file__).resolve().parent.parent)


def env() -> dict:
    """The children's environment: they import the same package as this process."""
    e = dict(os.environ)
    src = package_dir()
    e["PYTHONPATH"] = src + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "makemore_cpp", *map(str, args)]


def live_in_group(pgid: int) -> list[str]:
    """The processes of a group still running (zombies, which only wait to be reaped, excepted)."""
    out = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120])
        except (OSError, IndexError, ValueError):
            pass
    return out


def temporary_files(folder: pathlib.Path) -> list[str]:
    return [str(p.relative_to(folder)) for p in folder.rglob(".tmp-*")]


def interrupt(
    args: list[str], cwd: pathlib.Path, rng: random.Random, when: str, signals: int, target: str, ready: str
) -> dict:
    """Run ``args`` in a session of its own; send SIGINT ``signals`` times to ``target`` ("group" or
    "parent") at a random moment (``when``: "start", from the process's start; "ready", after its
    first line of output starting with ``ready``); return what happened."""
    p = subprocess.Popen(
        args,
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    first = ""
    try:
        if when == "ready":
            for line in p.stdout:
                if line.startswith(ready):
                    first = line
                    break
            delay = rng.uniform(0.0, 2.5)
        else:
            delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        sent = time.time()
        gaps = []
        for k in range(signals):
            if p.poll() is not None:
                break
            try:
                os.killpg(p.pid, signal.SIGINT) if target == "group" else p.send_signal(signal.SIGINT)
            except ProcessLookupError:
                break
            if k + 1 < signals:
                gaps.append(rng.uniform(0.0, 0.4))
                time.sleep(gaps[-1])
        try:
            out, err = p.communicate(timeout=60)
            latency = time.time() - sent
        except subprocess.TimeoutExpired:
            out, err, latency = "", "", float("inf")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    time.sleep(0.5)
    left = live_in_group(p.pid)
    try:  # (a failure: clean up after it)
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return {
        "when": when,
        "delay": round(delay, 3),
        "signals": signals,
        "gaps": [round(g, 3) for g in gaps],
        "target": target,
        "code": p.returncode,
        "latency": round(latency, 3),
        "left": left,
        "tmp": temporary_files(cwd),
        "stdout": first + out[-2000:],
        "stderr": err[-3000:],
    }


def judge(r: dict) -> list[str]:
    """What is wrong with a trial's outcome (empty: nothing)."""
    problems = []
    started = "makemore-cpp" in r["stdout"] or "makemore-cpp" in r["stderr"]
    if r["code"] == -signal.SIGINT and not started:
        r["outcome"] = "startup"  # killed while Python imported the package: the interpreter's way
    elif r["code"] == 0:
        r["outcome"] = "finished"
    elif r["code"] != 130:
        problems.append(f"exit status {r['code']}, not 130")
    if r["latency"] > LATENCY_BOUND:
        problems.append(f"took {r['latency']:.2f} s to exit after the signal")
    if "Traceback" in r["stderr"] and r.get("outcome") != "startup":
        problems.append("a traceback")
    if r["left"]:
        problems.append(f"processes left running: {r['left']}")
    if r["tmp"]:
        problems.append(f"temporary files left: {r['tmp']}")
    r.setdefault("outcome", "interrupted")
    return problems


def trial_train(
    work: pathlib.Path,
    rng: random.Random,
    signals: int,
    when: str,
    check_resume: bool,
    preset: str = "lecture",
) -> dict:
    """``train`` of ``preset`` (the MLP; "bn" or "wavenet", models of layer classes)."""
    args = ["--steps", 10_000_000, "--preset", preset, *TRAIN]
    r = interrupt(cli("train", "-o", "a", *args), work, rng, when, signals, "group", "  writing")
    problems = judge(r)
    ck = work / "a" / "model.npz"
    m = re.search(r"is at step ([\d,]+) of", r["stderr"])
    if r["outcome"] == "interrupted":
        if "nothing to resume" in r["stderr"]:
            if ck.exists():
                problems.append("it says there is nothing to resume, but a checkpoint exists")
        elif not m:
            if (work / "a").exists():  # (no folder: stopped during the checks, nothing written)
                problems.append("no message naming the checkpoint's step")
        elif not ck.exists():
            problems.append(f"it names a checkpoint at step {m.group(1)} that does not exist")
        else:
            package_dir()
            from makemore_cpp.checkpoint import load

            at = load(ck).state.step
            r["step"] = at
            if at != int(m.group(1).replace(",", "")):
                problems.append(f"the message says step {m.group(1)}, the checkpoint is at {at}")
            if check_resume:
                problems += resume_equals_straight(work, at, preset)
    elif r["outcome"] == "startup" and (work / "a").exists():
        problems.append("a run folder was made before the command began")
    r["problems"] = problems
    return r


def resume_equals_straight(work: pathlib.Path, at: int, preset: str = "lecture") -> list[str]:
    """--resume to ``at + 300`` steps equals a run of ``at + 300`` steps straight."""
    import numpy as np

    from makemore_cpp.checkpoint import load

    total = str(at + 300)
    for args in (
        cli("train", "-o", "a", "--resume", "--steps", total),
        cli("train", "-o", "b", "--steps", total, "--preset", preset, *TRAIN),
    ):
        p = subprocess.run(args, cwd=work, env=env(), capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            return [f"{' '.join(args[3:6])} failed: {p.stderr[-500:]}"]
    a, b = load(work / "a" / "model.npz"), load(work / "b" / "model.npz")
    problems = []
    if a.state.step != b.state.step:
        problems.append(f"resumed to step {a.state.step}, straight to {b.state.step}")
    pa, pb = a.model.get_params(), b.model.get_params()
    if not all(np.array_equal(pa[k], pb[k]) for k in pa):
        problems.append("the resumed run's parameters differ from the straight run's")

    def records(d: str) -> list:
        lines = (work / d / "log.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"], r["loss_mean"]) for r in map(json.loads, lines) if "loss" in r]

    if records("a") != records("b"):
        problems.append("the resumed run's log differs from the straight run's")
    if not np.array_equal(np.load(work / "a" / "losses.npy"), np.load(work / "b" / "losses.npy")):
        problems.append("the resumed run's losses.npy differs from the straight run's")
    return problems


def trial_sweep(
    work: pathlib.Path, rng: random.Random, signals: int, when: str, jobs: int, target: str
) -> dict:
    r = interrupt(cli("sweep", *SWEEP, "-j", jobs), work, rng, when, signals, target, "makemore-cpp sweep:")
    problems = judge(r)
    if (work / "s.csv").exists() and "wrote the" not in r["stderr"]:
        problems.append("s.csv was written but the message does not say so")
    r["problems"] = problems
    return r


def trial_sample(
    work: pathlib.Path, rng: random.Random, signals: int, when: str, run: pathlib.Path, n: int = 3_000_000
) -> dict:
    r = interrupt(cli("sample", run, "-n", n, "--names-only"), work, rng, when, signals, "group", "")
    problems = judge(r)
    if any(p.name != "keep" for p in work.iterdir()):
        problems.append(f"files written: {sorted(p.name for p in work.iterdir())}")
    r["problems"] = problems
    return r


def make_checkpoint(folder: pathlib.Path) -> pathlib.Path:
    p = subprocess.run(
        cli("train", "-o", "run", "--steps", 200, "--n-hidden", 64, "--samples", 0, "--no-plot"),
        cwd=folder,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    return folder / "run"


def campaign(trials: int, seed: int, commands: list[str], check_resume: bool = True, say=print) -> list[dict]:
    rng = random.Random(seed)
    results = []
    base = pathlib.Path(tempfile.mkdtemp(prefix="mm-interrupts-"))
    try:
        run = make_checkpoint(base) if "sample" in commands else None
        for i in range(trials):
            command = commands[i % len(commands)]
            work = base / f"t{i}"
            work.mkdir()
            (work / "keep").mkdir()
            signals = rng.choice([1, 1, 2, 2, 3])
            when = rng.choice(["ready", "ready", "ready", "start"])
            if command.startswith("train"):  # train, train-bn, train-wavenet
                preset = command.partition("-")[2] or "lecture"
                r = trial_train(work, rng, signals, when, check_resume, preset)
            elif command == "sweep":
                r = trial_sweep(
                    work, rng, signals, when, rng.choice([1, 2, 2]), rng.choice(["group", "parent"])
                )
            else:
                r = trial_sample(work, rng, signals, when, run)
            r["command"] = command
            results.append(r)
            status = "ok" if not r["problems"] else "PROBLEM: " + "; ".join(r["problems"])
            say(
                f"{i + 1:>3} {command:<6} {r['when']:<5} +{r['delay']:.2f}s x{r['signals']} {r['target']:<6} "
                f"-> {r['outcome']:<11} exit {r['code']:>4} in {r['latency']:.2f}s  {status}"
            )
            shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commands", default="train,sweep,sample")
    ap.add_argument("--no-resume-check", action="store_true", help="skip the resume-equals-straight check")
    ap.add_argument("--json", help="write every trial's record here")
    a = ap.parse_args()
    results = campaign(a.trials, a.seed, a.commands.split(","), not a.no_resume_check)
    bad = [r for r in results if r["problems"]]
    lat = sorted(r["latency"] for r in results if r["outcome"] == "interrupted")
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("interrupted", "startup", "finished")}
    print(f"\n{len(results)} trials: {counts}; {len(bad)} with problems")
    if lat:
        print(f"signal to exit: median {lat[len(lat) // 2]:.2f} s, slowest {lat[-1]:.2f} s")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(results, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
