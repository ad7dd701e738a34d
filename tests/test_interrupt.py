"""Ctrl-C: a SIGINT sent to a process busy in ``train``, in ``loss`` over millions of rows, in
``sample`` of millions of names, or in a ``sweep``, stops it within a fraction of a second with
KeyboardInterrupt; afterwards the model holds the parameters of the last completed step (for
``train``) or is unchanged (the others), and it remains usable.

Each test runs the work in a child process, waits until it is busy, sends SIGINT and reads the
time the child caught KeyboardInterrupt. The bound asserted is generous (2 s, on a shared machine);
the latencies measured are printed (``pytest -s``) and recorded as test properties."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

import makemore_cpp as mm

LATENCY_BOUND = 2.0  # seconds; typically a few hundredths
WAIT_BUSY = 1.0  # seconds between "busy" and the signal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import makemore_cpp as mm

what = sys.argv[1]
mm.set_num_threads(2)
words = mm.load_names()
vocab = mm.Vocab.from_words(words)
X, Y = mm.build_dataset(words, vocab, 3)

def digest(model):
    return hashlib.sha256(b"".join(a.tobytes() for a in model.get_params().values())).hexdigest()

CFG = dict(block_size=3, n_embd=10, seed=7)
TRAIN = dict(batch_size=1024, lr=0.05, seed=3)
if what == "train":
    model = mm.MLP(vocab, n_hidden=200, **CFG)
    X, Y = X[:20000], Y[:20000]                   # (the replay below validates X at every call)
elif what == "loss":
    # 87,000 multiply-adds a row: 11M rows take seconds. A context of 6 has too many possible values
    # (27^6) for the core to find the distinct ones by table, so every row is computed.
    model = mm.MLP(vocab, n_hidden=1000, **dict(CFG, block_size=6))
    X, Y = mm.build_dataset(words, vocab, 6)
    X, Y = np.tile(X, (50, 1)), np.tile(Y, 50)
else:
    model = mm.MLP(vocab, n_hidden=200, **CFG)    # untrained, so names are long: ~50 characters
before = digest(model)
print("busy", flush=True)
try:
    if what == "train":
        mm.train(model, X, Y, 10**6, **TRAIN)
    elif what == "loss":
        model.loss(X, Y)
    else:
        model.sample(5_000_000)
    print(json.dumps({"finished": True}), flush=True)
    sys.exit(0)
except KeyboardInterrupt as e:
    caught = time.time()
    interrupted = e
out = {"caught": caught, "finished": False}
if what == "train":
    # train's TrainingInterrupted carries the run so far; its state counts the completed steps
    hist = getattr(interrupted, "history", None)
    out["history_step"] = None if hist is None else hist.state.step
    out["history_losses"] = None if hist is None else len(hist.loss)
    # Which step do the parameters belong to? Replay from the same start one step at a time (the
    # run is deterministic) until the parameters are bit-identical.
    after = model.get_params()
    replay = mm.MLP(vocab, n_hidden=200, **CFG)
    state = mm.train(replay, X, Y, 0, **TRAIN).state
    out["step"] = None
    for k in range(1, 200_000):
        mm.train(replay, X, Y, 1, state=state, **TRAIN)
        got = replay.get_params()
        if all(np.array_equal(got[n], after[n]) for n in after):
            out["step"] = k
            break
    out["changed"] = digest(model) != before
    h = mm.train(model, X, Y, 3, **TRAIN)               # usable: training continues
    out["usable"] = bool(np.isfinite(h.loss).all() and np.isfinite(model.loss(X[:1000], Y[:1000])))
else:
    out["unchanged"] = digest(model) == before
    out["usable"] = bool(np.isfinite(model.loss(X[:1000], Y[:1000])) and len(model.sample(3)) == 3)
    mm.train(model, X[:100], Y[:100], 2)
print(json.dumps(out), flush=True)
"""


def child_env() -> dict:
    env = dict(os.environ)
    src = str(pathlib.Path(mm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def interrupt(args: list[str], ready: str, timeout: float = 120) -> tuple[float, str, subprocess.Popen]:
    """Start ``args``, wait for a stdout line starting with ``ready`` and WAIT_BUSY more, send
    SIGINT; return (the time it was sent, the rest of stdout, the process)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        for line in p.stdout:
            if line.startswith(ready):
                break
        else:
            raise AssertionError(f"the child never got busy: {p.stderr.read()[-3000:]}")
        time.sleep(WAIT_BUSY)
        sent = time.time()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        p.kill()
        p.communicate()
        raise
    assert p.returncode == 0, (p.returncode, err[-3000:])
    return sent, out, p


@pytest.mark.parametrize("what", ["train", "loss", "sample"])
def test_sigint_stops_promptly_and_leaves_a_usable_model(what, record_property):
    sent, out, p = interrupt([sys.executable, "-c", CHILD, what], "busy")
    res = json.loads(out.strip().splitlines()[-1])
    assert res["finished"] is False, f"{what} finished before the signal: make the work longer"
    latency = res["caught"] - sent
    record_property(f"latency_{what}_s", round(latency, 4))
    print(f"\n{what}: KeyboardInterrupt {latency * 1e3:.1f} ms after SIGINT")
    assert latency < LATENCY_BOUND, latency
    assert res["usable"] is True
    if what == "train":
        # the parameters are those after a completed step (found by replay), not a mixture
        assert res["step"] is not None and res["step"] >= 1, res
        assert res["changed"] is True
        # ... and the exception's history and state count exactly those steps
        assert res["history_step"] == res["step"] == res["history_losses"], res
    else:
        assert res["unchanged"] is True


def sweep_available() -> bool:
    p = subprocess.run(
        [sys.executable, "-m", "makemore_cpp", "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    return p.returncode == 0 and "sweep" in p.stdout


@pytest.mark.parametrize("target", ["group", "parent"])
def test_sigint_stops_a_sweep_promptly(tmp_path, target, record_property):
    """``makemore-cpp sweep`` runs its grid in worker processes. Ctrl-C in a terminal signals the
    whole foreground process group ("group"); ``kill -INT <pid>`` only the parent ("parent").
    Either way the sweep must end within a fraction of a second, exit status 130."""
    if not sweep_available():
        pytest.skip("the sweep subcommand does not exist yet")
    args = [
        sys.executable,
        "-m",
        "makemore_cpp",
        "sweep",
        "--n-hidden",
        "50,60,70,80",
        "--steps",
        "5000000",
        "-j",
        "2",
        "-o",
        str(tmp_path / "sweep.csv"),
    ]
    p = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        for line in p.stdout:  # the header, printed before the worker processes start
            if "sweep:" in line:
                break
        time.sleep(4)  # the workers start (spawned: a new interpreter each) and are training
        assert p.poll() is None, p.communicate()
        sent = time.time()
        if target == "group":
            os.killpg(p.pid, signal.SIGINT)
        else:
            p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=4 * LATENCY_BOUND)
            latency = time.time() - sent  # upper bound: includes the interpreter's exit
        except subprocess.TimeoutExpired:
            latency = float("inf")
            err = ""
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
        try:
            os.killpg(p.pid, signal.SIGKILL)  # any worker left in the child's process group
        except ProcessLookupError:
            pass
    record_property(f"latency_sweep_{target}_s", round(latency, 4))
    print(f"\nsweep ({target}): exited {latency * 1e3:.0f} ms after SIGINT")
    assert latency < LATENCY_BOUND, f"the sweep took {latency:.1f} s to stop"
    assert p.returncode == 130, (p.returncode, err[-2000:])
    assert "interrupted" in err


def test_a_sweep_in_process_leaves_the_sigint_handler_alone(tmp_path):
    """Only the sweep's worker processes ignore SIGINT: a sweep run in the caller's process must not
    change its handler (an ignored SIGINT would also be inherited by every process it starts)."""
    from makemore_cpp import cli

    before = signal.getsignal(signal.SIGINT)
    cli.run_sweep({"n_hidden": [5]}, steps=3, jobs=1, output=tmp_path / "s.csv", quiet=True)
    assert signal.getsignal(signal.SIGINT) is before
