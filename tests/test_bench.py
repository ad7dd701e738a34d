"""The benchmark suite runs (a smoke test: sizes are tiny and no timing is checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import makemore_cpp


def test_bench_quick_runs_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(makemore_cpp.__file__)), os.environ.get("PYTHONPATH", "")]
        ),
    )
    res = subprocess.run(
        [sys.executable, "-m", "makemore_cpp.bench", "--quick", "--no-jax", "--json", str(out)],
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
        "large step, 1 thread",
        "run",
    } <= set(results)
    for name, r in results.items():
        if name == "run":
            assert r["steps"] > 0 and r["losses"]["dev"] > 0 and r["peak_rss_mib"] > 0
            continue
        ours = r["samples"]["makemore_cpp"]
        assert len(ours) >= 2 and all(t > 0 for t in ours)
    assert "makemore_cpp" in res.stdout and "vs makemore_cpp" in res.stdout
    if len(os.sched_getaffinity(0)) >= 2:
        two = results["large step, 2 threads"]
        assert len(two["round_trip_ns"]) == len(two["samples"]["makemore_cpp"])
        assert all(ns > 0 for ns in two["round_trip_ns"])
        assert "round trip" in res.stdout


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

    monkeypatch.setattr(bench, "SETTLE", 0.0)
    calls = []

    def impl(name):
        def run():
            calls.append(name)
            return 0.0

        return run

    out = bench.interleave({"A": impl("A"), "B": impl("B"), "C": impl("C")}, 3)
    assert calls == list("CBA" + "ABC" + "CBA" + "ABC")  # a warm-up round, then the rounds
    assert {k: len(v) for k, v in out.items()} == {"A": 3, "B": 3, "C": 3}
