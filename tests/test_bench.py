"""The benchmark suite runs (a smoke test: sizes are tiny and no timing is checked)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import makemore_cpp


def test_bench_quick_runs_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(makemore_cpp.__file__)),
                                                       os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-m", "makemore_cpp.bench", "--quick", "--no-jax", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True and data["meta"]["isa"] in ("avx512", "avx2", "generic")
    results = data["results"]
    assert {"lecture step, 1 thread", "eval, 1 thread", "sampling, 1 thread", "large step, 1 thread", "run"} <= set(results)
    for name, r in results.items():
        if name == "run":
            assert r["steps"] > 0 and r["losses"]["dev"] > 0 and r["peak_rss_mib"] > 0
            continue
        ours = r["samples"]["makemore_cpp"]
        assert len(ours) >= 2 and all(t > 0 for t in ours)
    assert "makemore_cpp" in res.stdout and "vs makemore_cpp" in res.stdout
