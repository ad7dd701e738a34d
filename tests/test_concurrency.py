"""Threads. Separate models train at the same time from separate Python threads, with the GIL
released while the core works, each giving bit for bit what it gives alone. One model used from
two threads at once is refused: the second call raises RuntimeError ("in use by another thread")
at once, for the whole of the first call, and changes nothing."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import makemore_cpp as mm

BUSY = "in use by another thread"
# Under the sanitizer job (scripts/sanitize.sh: every core call some 50x slower) the runs are a
# tenth as long: what is checked -- the same bits, the refusals, the GIL -- does not depend on it.
SHORTER = 10 if os.environ.get("MAKEMORE_SANITIZE_RUN") == "1" else 1


@pytest.fixture(scope="module")
def dataset():
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words[:5000], vocab, 3)
    return vocab, X, Y


def params_bytes(model: mm.MLP) -> dict[str, bytes]:
    return {k: a.tobytes() for k, a in model.get_params().items()}


JOBS = [
    dict(model=dict(n_hidden=200, dtype="float32", seed=1), train=dict(steps=1500, lr=0.1, seed=1)),
    dict(
        model=dict(n_hidden=(64, 48), dtype="float64", seed=2, init="kaiming"),
        train=dict(steps=600, lr=0.01, optimizer="adamw", weight_decay=0.01, seed=2, batch_size=64),
    ),
    dict(
        model=dict(n_hidden=100, dtype="float32", seed=3),
        train=dict(steps=1000, lr=0.05, momentum=0.9, nesterov=True, dropout=0.2, seed=3),
    ),
    dict(
        model=dict(n_hidden=300, dtype="float64", seed=4),
        train=dict(steps=500, lr=0.1, seed=4, batch_size=256),
    ),
]


def run_job(job, vocab, X, Y):
    model = mm.MLP(vocab, block_size=3, n_embd=10, **job["model"])
    settings = dict(job["train"], steps=job["train"]["steps"] // SHORTER)
    hist = mm.train(model, X, Y, **settings)
    return params_bytes(model), hist.loss.tobytes(), model.sample(20, seed=5)


def test_separate_models_train_concurrently_as_alone(dataset):
    vocab, X, Y = dataset
    alone = [run_job(job, vocab, X, Y) for job in JOBS]
    for threads in (1, 2):
        mm.set_num_threads(threads)
        try:
            results: list = [None] * len(JOBS)
            errors: list = []

            def work(i, results=results, errors=errors):
                try:
                    results[i] = run_job(JOBS[i], vocab, X, Y)
                except BaseException as e:  # pragma: no cover - reported below
                    errors.append(e)

            ts = [threading.Thread(target=work, args=(i,)) for i in range(len(JOBS))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        finally:
            mm.set_num_threads(mm._core.default_threads())
        assert not errors, errors
        for i, (got, want) in enumerate(zip(results, alone)):
            assert got[0] == want[0], (
                f"job {i}: parameters differ from the run alone (core threads {threads})"
            )
            assert got[1] == want[1], f"job {i}: losses differ"
            assert got[2] == want[2], f"job {i}: samples differ"


def test_core_releases_the_gil(dataset):
    """While a thread is inside one long call into the core, the main thread runs Python."""
    vocab, X, Y = dataset
    model = mm.MLP(vocab, 3, 10, 300, seed=0)
    st = mm.train(model, X, Y, 0, batch_size=512).state
    steps = 4000 // SHORTER  # one call into the core, a second or more
    lrs = np.full(steps, 0.01)
    losses = np.empty(steps)
    X32, Y32 = X.astype(np.int32), Y.astype(np.int32)
    inside = threading.Event()
    done = threading.Event()

    def long_call():
        inside.set()
        st._t.run(X32, Y32, None, lrs, 0, 0, 0.0, losses)  # seconds=0: no time limit, all steps in one call
        done.set()

    t = threading.Thread(target=long_call)
    t.start()
    inside.wait()
    time.sleep(0.05)  # let the thread enter the core
    count = 0
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        count += 1
    still_inside = not done.is_set()
    t.join()
    assert count > 1000
    assert still_inside, (
        "the core call ended before the main thread ran: make it longer (this is not a GIL failure)"
    )


def test_a_refused_call_leaves_the_running_calls_records_alone(dataset):
    """A second call into a training state that a thread is running with part 3's records is
    refused before it touches them: the running call returns the records of the same call made
    alone (the core's calls, as train() makes them)."""
    from makemore_cpp.diagnostics import BINS, SATURATED

    vocab, X, Y = dataset
    steps = 3000 // SHORTER
    X32, Y32 = X.astype(np.int32), Y.astype(np.int32)

    def call(st):
        return st._t.run(
            X32, Y32, None, np.full(steps, 0.01), 0, 0, 0.0, np.zeros(steps), None, 10, BINS, SATURATED
        )

    alone = call(mm.train(mm.MLP(vocab, 3, 10, 100, seed=4), X, Y, 0, batch_size=32).state)
    st = mm.train(mm.MLP(vocab, 3, 10, 100, seed=4), X, Y, 0, batch_size=32).state
    inside, out = threading.Event(), {}

    def run():
        inside.set()
        out["a"] = call(st)

    t = threading.Thread(target=run)
    t.start()
    inside.wait()
    time.sleep(0.02)
    refused = 0
    while t.is_alive() and refused < 20:
        with pytest.raises(RuntimeError, match="in use"):
            st._t.run(X32, Y32, None, np.full(5, 0.01), 0, 0, 0.0, np.zeros(5), None, 10, BINS + 1, SATURATED)
        refused += 1
    t.join()
    assert refused > 0, "the running call ended first: make it longer"
    n, status, records = out["a"]
    assert (n, status) == (steps, 0)
    assert [r[0] for r in records] == list(range(0, steps, 10))
    assert out["a"] == alone


def test_one_model_from_two_threads_is_refused_whole(dataset):
    """While thread A trains a model, every call of thread B on it -- train, loss, logits,
    loss_and_grad, sample, get_params, set_params, save -- raises RuntimeError at once, even
    between A's chunks in the core; and A's run ends exactly as it would alone."""
    vocab, X, Y = dataset
    # long enough that A is still training when B's last attempt ends (B's attempts take about
    # 0.15 s; A's run about 1 s here)
    settings = dict(steps=40000 // SHORTER, batch_size=32, seed=9)
    alone = mm.MLP(vocab, 3, 10, 200, seed=5)
    mm.train(alone, X, Y, lr=0.1, **settings)

    model = mm.MLP(vocab, 3, 10, 200, seed=5)
    started = threading.Event()
    release = threading.Event()
    result = {}

    def lr(step):  # evaluated inside train, once the model is held: the signal that A is in
        if step == 0:
            started.set()
            release.wait(30)  # hold A at its start until B has tried everything once
        return 0.1

    def thread_a():
        try:
            result["hist"] = mm.train(model, X, Y, lr=lr, **settings)
        except BaseException as e:  # pragma: no cover
            result["error"] = e

    a = threading.Thread(target=thread_a)
    a.start()
    assert started.wait(30)
    other = mm.MLP(vocab, 3, 10, 200, seed=6).get_params()
    attempts = {
        "train": lambda: mm.train(model, X, Y, 10),
        "loss": lambda: model.loss(X, Y),
        "logits": lambda: model.logits(X[:5]),
        "loss_and_grad": lambda: model.loss_and_grad(X[:5], Y[:5]),
        "sample": lambda: model.sample(3),
        "sample_ids": lambda: model.sample_ids(3),
        "get_params": lambda: model.get_params(),
        "set_params": lambda: model.set_params(other),
        "copy": lambda: model.copy(),
    }

    def try_all():
        for f in attempts.values():
            with pytest.raises(RuntimeError, match=BUSY):
                f()

    try:
        try_all()  # while A waits at its start
        release.set()
        time.sleep(0.05)  # A is now training, in and out of the core
        rounds = 0
        while rounds < 5 and a.is_alive():  # about 0.1 s of attempts
            try_all()
            rounds += 1
            time.sleep(0.01)
        assert rounds == 5, "A finished before B's attempts did: make A's run longer"
    finally:
        release.set()
        a.join()
    assert "error" not in result, result.get("error")
    assert params_bytes(model) == params_bytes(alone), "B's refused calls changed A's run"
    # free again: every call works
    assert np.isfinite(model.loss(X, Y))
    mm.train(model, X, Y, 5)


def test_same_thread_may_nest_calls(dataset):
    """train's own evaluations (X_val), keep_best's parameter copies and a learning-rate callable
    that looks at the model run on the thread that holds it: allowed."""
    vocab, X, Y = dataset
    model = mm.MLP(vocab, 3, 10, 50, seed=1)
    seen = []
    h = mm.train(
        model,
        X,
        Y,
        200,
        lr=lambda s: (seen.append(model.loss(X[:50], Y[:50])) if s == 0 else None) or 0.1,
        X_val=X[:500],
        Y_val=Y[:500],
        eval_every=50,
        keep_best=True,
    )
    assert len(seen) == 1 and len(h.eval_loss) == 4 and h.best_step is not None


def test_refusal_is_released_after_an_error(dataset):
    """A call that fails (bad argument, divergence, interrupt) releases the model."""
    vocab, X, Y = dataset
    model = mm.MLP(vocab, 3, 10, 50, seed=1)
    with pytest.raises(ValueError):
        mm.train(model, X, Y, 10, lr=float("nan"))
    with pytest.raises(mm.DivergenceError):
        mm.train(model.copy(), X, Y, 10, lr=1e300)
    with pytest.raises(ZeroDivisionError):
        mm.train(model, X, Y, 10, lr=lambda s: 1 / 0)

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("loss", model.loss(X, Y)))
    t.start()
    t.join()
    assert np.isfinite(out["loss"])


def test_threads_setting_does_not_change_results_while_other_threads_train(dataset):
    """The core's thread count is global; results do not depend on it, so changing it while other
    threads train does not change what they compute."""
    vocab, X, Y = dataset
    job = JOBS[0]
    want = run_job(job, vocab, X, Y)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("r", run_job(job, vocab, X, Y)))
    t.start()
    try:
        while t.is_alive():
            for n in (1, 2, 1, 2):
                mm.set_num_threads(n)
                time.sleep(0.005)
    finally:
        t.join()
        mm.set_num_threads(mm._core.default_threads())
    assert got["r"] == want
