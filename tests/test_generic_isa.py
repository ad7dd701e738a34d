"""A CPU without AVX2 and AVX-512, as the instruction-set switch makes one: a fresh process with
MAKEMORE_CPP_ISA=generic runs on the generic kernels from import to exit, and they compute what the
float64 PyTorch reference computes, within the README's tolerances (loss and gradients 1e-10 in
float64, 1e-5 in float32, relative to each tensor's largest entry; training trajectories 1e-9 and
1e-4), and sample the reference's names. The same process without the variable takes the best
instruction set this CPU has, so the variable, not the CPU, made the choice."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

import makemore_cpp as mm

pytest.importorskip("torch")

TOL_GRAD = {"float64": 1e-10, "float32": 1e-5}
TOL_TRAJ = {"float64": 1e-9, "float32": 1e-4}

CHILD = r"""
import json
import numpy as np
import makemore_cpp as mm
from makemore_cpp import reference as ref

def rel_err(ours, theirs):
    return max(float(np.abs(np.asarray(ours[k], np.float64) - r).max()) / max(float(np.abs(r).max()), 1e-300)
               for k, r in theirs.items())

out = {"at_import": mm.get_isa(), "grad": {}, "traj": {}}
rng = np.random.default_rng(0)
# Shapes that are no multiple of any vector width, one deep; the lecture's.
shapes = [(27, 3, 10, 200, 32), (2, 1, 1, 1, 1), (97, 5, 7, 15, 999), (31, 4, 9, (37, 29), 45)]
for dtype in ("float64", "float32"):
    worst = 0.0
    for V, T, E, H, B in shapes:
        model = mm.MLP(V, T, E, H, seed=3, init="kaiming", dtype=dtype)
        X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, B)
        loss, grads = model.loss_and_grad(X, Y)
        p64 = {k: a.astype(np.float64) for k, a in model.get_params().items()}
        rloss, rgrads = ref.loss_and_grad(p64, X, Y)
        worst = max(worst, abs(loss - rloss) / abs(rloss), rel_err(grads, rgrads))
    out["grad"][dtype] = worst
    V, N = 27, 3000
    X, Y = rng.integers(0, V, (N, 3)), rng.integers(0, V, N)
    model = mm.MLP(V, 3, 10, 200, seed=2, init="kaiming", dtype=dtype)
    p0 = {k: a.astype(np.float64) for k, a in model.get_params().items()}
    hist = mm.train(model, X, Y, steps=300, batch_size=32, lr=0.1, seed=5)
    rlosses, _ = ref.train_replay(p0, X, Y, 0.1, steps=300, batch_size=32, seed=5)
    out["traj"][dtype] = float(np.max(np.abs(hist.loss - rlosses) / np.abs(rlosses)))
model = mm.MLP(27, 3, 10, 64, seed=1, init="kaiming", dtype="float64")
mm.train(model, X, Y, steps=200, lr=0.5)
ids = model.sample_ids(40, seed=9)  # one row per name, 0-padded
out["same_names"] = [list(r[r > 0]) for r in ids] == ref.sample(model.get_params(), 40, seed=9)
out["at_exit"] = mm.get_isa()
print(json.dumps(out))
"""


def run_child(code: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MAKEMORE_CPP_ISA"}
    env.update(env_extra)
    src = str(pathlib.Path(mm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_forced_generic_runs_generic_throughout_and_matches_the_reference():
    p = run_child(CHILD, MAKEMORE_CPP_ISA="generic")
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["at_import"] == "generic" and out["at_exit"] == "generic", out
    for dtype in ("float64", "float32"):
        assert out["grad"][dtype] < TOL_GRAD[dtype], (dtype, out["grad"])
        assert out["traj"][dtype] < TOL_TRAJ[dtype], (dtype, out["traj"])
    assert out["same_names"], out


def test_without_the_switch_the_best_instruction_set_is_chosen():
    best = next(n for n in ("avx512", "avx2", "generic") if mm._core.isa_supported(n))
    p = run_child("import makemore_cpp as mm; print(mm.get_isa())")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == [best]


@pytest.mark.parametrize("name", ["avx9", "GENERIC", "sse2"])
def test_an_instruction_set_the_core_lacks_fails_the_import_with_its_name(name):
    p = run_child("import makemore_cpp", MAKEMORE_CPP_ISA=name)
    assert p.returncode != 0
    assert f"MAKEMORE_CPP_ISA={name!r}" in p.stderr and "ImportError" in p.stderr, p.stderr[-2000:]
