"""The benchmark suite runs (a smoke test: sizes are tiny and no timing is checked), and its other
sides compute what ours computes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import makemore_cpp


def test_bench_quick_runs_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "speed.md"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(makemore_cpp.__file__)), os.environ.get("PYTHONPATH", "")]
        ),
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "makemore_cpp.bench",
            "--quick",
            "--no-jax",
            "--json",
            str(out),
            "--markdown",
            str(md),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True and data["meta"]["isa"] in ("avx512", "avx2", "generic")
    results = data["results"]
    assert {
        "lecture step, 1 thread",
        "eval, 1 thread",
        "sampling, 1 thread",
        "sampling 20 names, 1 thread",
        "sampling 1,000 names, 1 thread",
        "large step, 1 thread",
        "run",
        "wavenet step, 1 thread",
        "bn step, 1 thread",
        "nn.Sequential MLP step, 1 thread",
        "wavenet run",
    } <= set(results)
    for name, r in results.items():
        assert "skipped" not in r and "ours_skipped" not in r, (name, r)
        if name in ("run", "wavenet run"):
            assert r["steps"] > 0 and r["losses"]["dev"] > 0 and r["seconds"] > 0
            continue
        ours = r["samples"][r["rows"][0]["ours"]]
        assert len(ours) >= 2 and all(t > 0 for t in ours)
        for impl, ts in r["samples"].items():
            assert len(ts) == 2 and all(t > 0 for t in ts), (name, impl)
        for row in r["rows"]:  # every row names implementations that were timed
            assert {row["ours"], *row["others"], *row.get("jax", [])} <= set(r["samples"]), (name, row)
    # PyTorch as a competent user writes it, beside the lecture's own loops (labelled as such).
    run = results["run"]
    assert (
        run["peak_rss_mib"] > 0
        and run["torch"]["steps"] == run["steps"]
        and run["torch"]["losses"]["dev"] > 0
    )
    assert "lecture" in run["torch"]["label"]
    ev = results["eval, 1 thread"]["samples"]
    assert {
        "torch, distinct contexts",
        "torch, the lecture's every-row pass",
        "makemore_cpp, every row",
    } <= set(ev)
    for n in ("20", "1,000"):
        assert {"torch batched, multinomial", "torch batched, searchsorted"} <= set(
            results[f"sampling {n} names, 1 thread"]["samples"]
        )
    assert "torch, the lecture's one-name loop" in results["sampling, 1 thread"]["samples"]
    for w in ("wavenet", "bn"):
        r = results[f"{w} step, 1 thread"]
        assert "torch eager, the lecture's classes" in r["samples"] and r["params"] > 0
    summary = data["summary"]
    assert summary["eval, 1 thread"][0]["best_other"] == "torch, distinct contexts"
    assert "makemore_cpp" in res.stdout and "vs makemore_cpp" in res.stdout
    table = md.read_text()
    assert data["meta"]["cpu_model"] in table and data["meta"]["command"] in table
    assert "| loss() over the training split | 1 |" in table and "(*lecture*)" in table
    if len(os.sched_getaffinity(0)) >= 2:
        two = results["large step, 2 threads"]
        assert len(two["round_trip_ns"]) == len(two["samples"]["makemore_cpp"])
        assert all(ns > 0 for ns in two["round_trip_ns"])
        assert "round trip" in res.stdout
        for w in ("lecture step", "large step"):  # PyTorch at 1 and at 2 threads, interleaved
            assert {"torch eager, 1 thread", "torch eager, 2 threads"} <= set(
                results[f"{w}, 2 threads"]["samples"]
            )
        assert summary["eval, 2 threads"][0]["best_other"].startswith("torch, distinct contexts, ")


def test_core_round_trip_measures_and_leaves_the_affinity_alone():
    from makemore_cpp.bench import core_round_trip_ns

    before = os.sched_getaffinity(0)
    if len(before) < 2:
        import pytest

        pytest.skip(f"needs 2 CPUs, this process may use {sorted(before)}")
    ns = core_round_trip_ns(200)
    assert 0 < ns < 1e9
    assert os.sched_getaffinity(0) == before


def test_core_round_trip_on_one_cpu_is_nan_and_bad_rounds_are_refused():
    # In a child process, so that this process's affinity is not touched.
    code = (
        "import os, math, makemore_cpp.bench as b\n"
        "cpu = min(os.sched_getaffinity(0)); os.sched_setaffinity(0, {cpu})\n"
        "assert math.isnan(b.core_round_trip_ns(100)), 'one CPU: nan'\n"
        "assert os.sched_getaffinity(0) == {cpu}\n"
        "for bad, err in ((0, ValueError), (-5, ValueError), (True, TypeError), (2.0, TypeError)):\n"
        "    try:\n"
        "        b.core_round_trip_ns(bad)\n"
        "    except err as e:\n"
        "        assert 'rounds' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError(f'rounds={bad!r} accepted')\n"
        "print('ok')\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(makemore_cpp.__file__)), os.environ.get("PYTHONPATH", "")]
        ),
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_the_report_splits_two_thread_ratios_by_the_cores_round_trip():
    from makemore_cpp.bench import split_by_cores

    r = {
        "samples": {"two": [1.0, 1.0, 1.0, 1.0], "one": [2.0, 1.9, 1.0, 1.1]},
        "round_trip_ns": [70.0, 90.0, 340.0, 360.0],
    }
    text = split_by_cores(r, "two", "one")
    assert "round trip 70-360 ns" in text
    assert "cores close: 1.95x in 2" in text and "cores far: 1.05x in 2" in text
    assert split_by_cores({"samples": r["samples"]}, "two", "one") == ""
    only_far = dict(r, round_trip_ns=[400.0] * 4)
    assert "cores close" not in split_by_cores(only_far, "two", "one")


def test_interleave_alternates_the_order_of_its_rounds(monkeypatch):
    from makemore_cpp import bench
    from makemore_cpp.bench import timing

    monkeypatch.setattr(timing, "SETTLE", 0.0)
    calls = []

    def impl(name):
        def run():
            calls.append(name)
            return 0.0

        return run

    out = bench.interleave({"A": impl("A"), "B": impl("B"), "C": impl("C")}, 3)
    assert calls == list("CBA" + "ABC" + "CBA" + "ABC")  # a warm-up round, then the rounds
    assert {k: len(v) for k, v in out.items()} == {"A": 3, "B": 3, "C": 3}


# ----------------------------------------------------------------------------- the other sides


def _lecture_batch(T: int, B: int = 32, V: int = 27, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)).astype(np.int32), rng.integers(0, V, B).astype(np.int32)


def test_the_lecture_models_have_the_lecture_parameter_counts():
    pytest.importorskip("torch")
    from makemore_cpp.bench import lecture_layers as L
    from makemore_cpp.bench.layer_specs import bn_spec, wavenet_spec
    from makemore_cpp.bench.layer_workloads import PARAMS

    for name, spec in (("wavenet", wavenet_spec()), ("bn", bn_spec())):
        model = L.build(spec, L.lecture_params(spec))
        assert L.num_params(model) == PARAMS[name]
    assert PARAMS == {"wavenet": 76_579, "bn": 12_097}


@pytest.mark.parametrize("which", ["wavenet", "bn"])
def test_the_jax_step_computes_the_lecture_classes_loss_gradients_and_running_stats(which):
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    import torch.nn.functional as F

    from makemore_cpp.bench import jax_models as J
    from makemore_cpp.bench import lecture_layers as L
    from makemore_cpp.bench.layer_specs import bn_spec, wavenet_spec

    spec, T = (wavenet_spec(), 8) if which == "wavenet" else (bn_spec(), 3)
    params = L.lecture_params(spec, seed=7)
    # Running statistics away from their initial values, so that their update is tested.
    rng = np.random.default_rng(1)
    for k in params:
        if k.endswith("running_mean"):
            params[k] = rng.normal(size=params[k].shape).astype(np.float32)
        if k.endswith("running_var"):
            params[k] = rng.uniform(0.5, 2, params[k].shape).astype(np.float32)
    xb, yb = _lecture_batch(T)
    model = L.build(spec, params)
    loss = F.cross_entropy(model(torch.tensor(xb, dtype=torch.long)), torch.tensor(yb, dtype=torch.long))
    loss.backward()
    jloss, grads, stats = J.loss_and_grad(spec, params, xb, yb)
    assert abs(jloss - loss.item()) <= 1e-5 * max(1.0, abs(loss.item()))
    for i, layer in enumerate(model.layers):
        for name in ("weight", "bias", "gamma", "beta"):
            t = getattr(layer, name, None)
            if t is not None:
                g = t.grad.numpy()
                np.testing.assert_allclose(grads[f"{i}.{name}"], g, rtol=1e-4, atol=1e-5 * np.abs(g).max())
        for name in J.STATS:
            if hasattr(layer, name):
                np.testing.assert_allclose(
                    stats[f"{i}.{name}"], getattr(layer, name).numpy().reshape(-1), rtol=1e-5, atol=1e-6
                )


# block_size 3: the contexts numbered through a table (bincount); 5: 27^5 numbers, by torch.unique
@pytest.mark.parametrize("block_size", [3, 5])
def test_torch_by_distinct_contexts_computes_the_every_row_loss(block_size):
    pytest.importorskip("torch")
    import makemore_cpp as mm
    from makemore_cpp.bench import torch_mlp

    words = mm.load_names()[:2000]
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, block_size)
    model = mm.MLP(vocab, block_size=block_size, seed=3)
    every = torch_mlp.every_row_loss(model, X, Y)()
    assert len(np.unique(X, axis=0)) < len(X) / (3 if block_size == 3 else 1.5)
    assert abs(torch_mlp.distinct_loss(model, X, Y)() - every) < 1e-5 * every
    assert abs(model.loss(X, Y) - every) < 1e-5 * every


@pytest.mark.parametrize("draw", ["multinomial", "searchsorted"])
def test_the_batched_torch_sampler_draws_from_the_model(draw):
    torch = pytest.importorskip("torch")
    import makemore_cpp as mm
    from makemore_cpp.bench import torch_mlp

    words = mm.load_names()[:2000]
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 3)
    model = mm.MLP(vocab, seed=3, init="kaiming")
    mm.train(model, X, Y, steps=300, lr=0.1)
    n, max_len = 20_000, 12
    ids = torch_mlp.batched_sampler(model, draw, max_len=max_len, seed=5)(n).long().numpy()
    assert ids.shape == (n, max_len) and ids.min() >= 0 and ids.max() < len(vocab)
    ended = np.cumsum(ids == 0, axis=1) > 0  # after its first 0, a name holds only 0s
    assert (ids[ended] == 0).all()
    # The first character's frequencies against the model's distribution after '...'.
    p = torch.softmax(torch.tensor(model.logits(np.zeros((1, 3), np.int32))[0]), 0).numpy()
    freq = np.bincount(ids[:, 0], minlength=len(vocab)) / n
    assert np.abs(freq - p).max() < 5 * np.sqrt(p.max() / n)


def test_the_pytorch_wavenet_run_is_opt_in():
    from makemore_cpp.bench.command import OPT_IN, WORKLOADS

    assert "wavenet-run-torch" in OPT_IN and "wavenet-run-torch" not in WORKLOADS


def test_the_layer_rows_start_pytorch_from_our_parameters(monkeypatch):
    """The WaveNet row: PyTorch's model (the lecture's classes) is built from our model's
    parameters, and the row compares our timing with it."""
    pytest.importorskip("torch")
    import argparse

    from makemore_cpp import nn
    from makemore_cpp.bench import layer_workloads as lw
    from makemore_cpp.bench import lecture_layers as L
    from makemore_cpp.bench.datasets import data

    built = []
    real_build = L.build
    monkeypatch.setattr(
        L, "build", lambda spec, params=None: built.append(params) or real_build(spec, params)
    )
    monkeypatch.setattr(lw, "pin_threads", lambda n: None)
    # the steps are the quick benchmark run's to time (test_bench_quick_runs_every_workload)
    monkeypatch.setattr(lw, "ours_steps", lambda model, X, Y, B: lambda k: None)
    monkeypatch.setattr(L, "lecture_steps", lambda model, X, Y, B: lambda k: None)
    args = argparse.Namespace(quick=True, steps=2, repeats=2)
    r = lw.layer_step_workload("wavenet", args, with_jax=False)
    assert len(r["samples"]["makemore_cpp"]) == 2 and r["params"] == 76_579
    vocab = data(8, True)[0]
    spec, T, _ = lw.model_spec("wavenet", len(vocab))
    ours = lw.ours_model(nn, spec, vocab, T).get_params()
    assert len(built) == 1 and set(built[0]) == set(ours)
    assert all(np.array_equal(built[0][k], ours[k]) for k in ours)
    row = r["rows"][0]
    assert row["ours"] == "makemore_cpp" and row["others"] == ["torch eager, the lecture's classes"]
