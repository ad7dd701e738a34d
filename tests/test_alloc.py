"""The training loop allocates nothing: the core's loop for 20,000 steps makes exactly as many
calls into malloc and friends as for 10 (counted by a preloaded shim around glibc's allocator)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import makemore_cpp

SHIM = r"""
#include <stddef.h>
#include <stdatomic.h>
extern void* __libc_malloc(size_t); extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t); extern void* __libc_memalign(size_t, size_t);
static atomic_long calls;
long mm_alloc_calls(void) { return atomic_load(&calls); }
void* malloc(size_t n) { atomic_fetch_add(&calls, 1); return __libc_malloc(n); }
void* calloc(size_t a, size_t b) { atomic_fetch_add(&calls, 1); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { atomic_fetch_add(&calls, 1); return __libc_realloc(p, n); }
int posix_memalign(void** p, size_t al, size_t n) {
    atomic_fetch_add(&calls, 1); *p = __libc_memalign(al, n); return *p ? 0 : 12;
}
void* aligned_alloc(size_t al, size_t n) { atomic_fetch_add(&calls, 1); return __libc_memalign(al, n); }
void* memalign(size_t al, size_t n) { atomic_fetch_add(&calls, 1); return __libc_memalign(al, n); }
"""

SCRIPT = r"""
import ctypes, json, numpy as np
import makemore_cpp as mm
count = ctypes.CDLL(None).mm_alloc_calls
rng = np.random.default_rng(0)
X = np.ascontiguousarray(rng.integers(0, 27, (5000, 3)), dtype=np.int32)
Y = np.ascontiguousarray(rng.integers(0, 27, 5000), dtype=np.int32)
out = {}
for threads, hidden, batch, opt in [(1, 200, 32, "sgd"), (2, (256, 128), 256, "adamw")]:
    mm.set_num_threads(threads)
    model = mm.MLP(27, block_size=3, n_hidden=hidden, init="kaiming")
    state = mm.train(model, X, Y, steps=1, batch_size=batch, optimizer=opt, lr=1e-3, dropout=0.1).state
    for steps in (10, 20000 if batch == 32 else 2000):
        lr = np.full(steps, 1e-3)
        losses = np.empty(steps)
        before = count()
        state._t.run(X, Y, None, lr, state.step, 0, 0.0, losses)
        out[f"{threads}-{steps}"] = count() - before
        state.step += steps
print(json.dumps(out))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the shim wraps glibc's allocator")
def test_training_loop_does_not_allocate(tmp_path):
    if os.environ.get("MAKEMORE_SANITIZE_RUN"):
        pytest.skip(
            "under scripts/sanitize.sh the sanitizer's allocator replaces glibc's, which the shim counts"
        )
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the allocation-counting shim")
    (tmp_path / "shim.c").write_text(SHIM)
    so = tmp_path / "shim.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", str(tmp_path / "shim.c"), "-o", str(so)], check=True)
    env = dict(
        os.environ,
        LD_PRELOAD=str(so),
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(makemore_cpp.__file__)), os.environ.get("PYTHONPATH", "")]
        ),
    )
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    import json

    calls = json.loads(res.stdout.strip().splitlines()[-1])
    # The same few calls (the argument conversions) however many steps the loop runs.
    assert calls["1-10"] == calls["1-20000"], calls
    assert calls["2-10"] == calls["2-2000"], calls
    assert calls["1-10"] < 50, calls
