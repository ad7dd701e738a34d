"""The notebooks (notebooks/*.ipynb) run top to bottom under a Jupyter kernel with small step
counts, and the package behaves in a kernel as a notebook user expects: each figure shown once,
a progress bar that is one widget (no flood of lines), and a kernel interrupt that stops training
within a fraction of a second, leaving the model at a completed step and the run resumable.

Needs the test extra's notebook runners (pip install ".[test]"); skipped with the reason otherwise. The
notebooks run with scripts/run_notebooks.py's code (the kernel is this Python)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pathlib
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NEEDED = ("nbclient", "nbformat", "ipykernel", "ipywidgets", "matplotlib", "torch")
MISSING = [m for m in NEEDED if importlib.util.find_spec(m) is None]
CELL_TIMEOUT = 300  # seconds a cell may take; a notebook takes 20-30 s in all (quick)
LATENCY_BOUND = 2.0  # seconds from the kernel's interrupt to the cell's end; typically a few hundredths

pytestmark = [
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"the notebook runners are not installed (no {', '.join(MISSING)}): pip install '.[test]'",
    ),
    pytest.mark.skipif(
        os.environ.get("MAKEMORE_SANITIZE_RUN") == "1",
        reason="a Jupyter kernel under the sanitizer's preloaded runtime: the notebooks run in the test job",
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"part2_mlp", "part3_activations_batchnorm", "part5_wavenet"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, record_property):
    nb, seconds = runner().execute(path, quick=True, timeout=CELL_TIMEOUT)
    record_property("seconds", round(seconds, 1))
    print(f"\n{path.name}: {seconds:.1f} s")
    images = 0
    for i, cell in enumerate(nb.cells):
        outputs = cell.get("outputs", [])
        assert not [o for o in outputs if o["output_type"] == "error"], f"cell {i}"
        pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
        images += len(pngs)
        # a figure a plot function returned is shown once, not again when the cell ends
        assert len(set(pngs)) == len(pngs), f"cell {i} shows a figure twice"
        for png in pngs:
            assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
        # the progress bar is one widget, not lines of text
        for o in outputs:
            if o["output_type"] == "stream":
                assert "step/s" not in o["text"], f"cell {i} printed a text progress bar"
    assert images >= 1, "the notebook showed no figure inline"


SETUP = """
import makemore_cpp as mm
words = mm.load_names()
vocab = mm.Vocab.from_words(words)
X, Y = mm.build_dataset(words, vocab, 3)
def fresh():
    return mm.MLP(vocab, n_embd=10, n_hidden=64, seed=5)
model = fresh()
print("ready")
"""
TRAIN = """
import time
try:
    hist = mm.train(model, X, Y, steps=10**7, lr=0.05, seed=3, progress=True)
finally:
    stopped = time.time()  # when train raised (the cell still raises, as a user sees it)
"""
CHECK = """
import json, sys
import numpy as np
e = sys.last_value
step = e.history.state.step
replay = fresh()
mm.train(replay, X, Y, steps=step, lr=0.05, seed=3)
same = all(np.array_equal(a, b) for a, b in zip(replay.get_params().values(), model.get_params().values()))
more = mm.train(model, X, Y, steps=100, lr=0.05, seed=3, state=e.history.state)
print(json.dumps({
    "kind": type(e).__name__, "keyboard": isinstance(e, KeyboardInterrupt), "step": step, "stopped": stopped,
    "losses": len(e.history.loss), "same": same, "continued": more.step0,
    "usable": bool(np.isfinite(model.loss(X, Y))), "repr": repr(e.history),
}))
"""


def run_cell(kc, code: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    """Execute ``code``; return the shell reply and the iopub messages of that execution."""
    msg_id = kc.execute(code)
    return wait_reply(kc, msg_id, timeout)


def wait_reply(kc, msg_id: str, timeout: float) -> tuple[dict, list[dict]]:
    messages, deadline = [], time.time() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.time()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:  # (other requests' replies, such as wait_for_ready's, may come first)
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.time()))
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply, messages


def test_kernel_interrupt_stops_training_promptly_and_leaves_a_usable_model(record_property):
    from jupyter_client.manager import KernelManager

    rn = runner()
    with rn.this_python_kernel() as name:
        km = KernelManager(kernel_name=name)
        km.start_kernel(env=rn.kernel_env(quick=True))
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            reply, _ = run_cell(kc, SETUP)
            assert reply["content"]["status"] == "ok", reply["content"]

            msg_id = kc.execute(TRAIN)
            shown = []
            while not shown:  # training has begun when its progress bar is shown
                msg = kc.get_iopub_msg(timeout=60)
                if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "display_data":
                    shown.append(msg)
            time.sleep(1.0)
            sent = time.time()
            km.interrupt_kernel()
            reply, messages = wait_reply(kc, msg_id, timeout=60)
            ended = time.time() - sent  # the cell's end: its traceback formatted by IPython too
            assert reply["content"]["status"] == "error"
            assert reply["content"]["ename"] == "TrainingInterrupted", reply["content"]
            # the bar: one widget; no stream of text lines while training
            assert "application/vnd.jupyter.widget-view+json" in shown[0]["content"]["data"]
            assert not [m for m in messages if m["msg_type"] == "stream"], messages

            reply, messages = run_cell(kc, CHECK, timeout=300)
            assert reply["content"]["status"] == "ok", reply["content"]
            text = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
            res = json.loads(text.strip().splitlines()[-1])
            latency = res["stopped"] - sent
            record_property("interrupt_latency_s", round(latency, 4))
            print(
                f"\ntraining stopped {latency * 1e3:.0f} ms after the interrupt, the cell after {ended:.2f} s"
            )
            assert latency < LATENCY_BOUND, latency
            assert res["keyboard"] and res["kind"] == "TrainingInterrupted", res
            assert res["step"] >= 1 and res["losses"] == res["step"], res
            assert res["same"] is True, "the model's parameters are not those after the last counted step"
            assert res["continued"] == res["step"] and res["usable"], res
            assert "stopped: interrupted" in res["repr"], res
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


def test_quick_setting_is_read_by_every_notebook():
    import nbformat

    for path in NOTEBOOKS:
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "MAKEMORE_NOTEBOOK_QUICK" in first.source and "NAMES_TXT" in first.source, path.name


def test_stored_notebooks_are_executed_and_clean():
    """The notebooks are stored with their outputs, every code cell run in order, without errors."""
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), path.name
        for c in code:
            assert not [o for o in c.outputs if o["output_type"] == "error"], path.name
            assert "Traceback" not in json.dumps(c.outputs), path.name
