"""The training loop allocates nothing: a run of many steps makes exactly as many calls into malloc
and friends as a run of few (counted by a preloaded shim around glibc's allocator).

Through ``mm.train`` itself, on the paths a user's runs take: the lecture's default (no dropout,
ids handed to the core as bytes, each minibatch's distinct contexts computed once); a hidden layer
of 512 units on 2 threads (column blocks, the next minibatches prepared a step ahead), with plain
SGD and with AdamW; and the layer plan (``nn.Sequential`` with BatchNorm1d, 2-D and 3-D). And below
``mm.train``, the core's loop with dropout and int32 ids."""

from __future__ import annotations

import json
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


TRAIN_SCRIPT = r"""
import ctypes, json, numpy as np
import makemore_cpp as mm
from makemore_cpp import nn, training
count = ctypes.CDLL(None).mm_alloc_calls
training.CHUNK_SECONDS = 0  # one call into the core a run: its loop, not the Ctrl-C checks
words = mm.load_names()
vocab = mm.Vocab.from_words(words)
data = {T: mm.build_dataset(words, vocab, T) for T in (3, 8)}
core_calls = []

class Counted:  # counts the allocator's calls of each call train() makes into the core
    def __init__(self, t):
        self.t = t

    def run(self, x, *args):
        before = count()
        result = self.t.run(x, *args)
        core_calls.append((x.dtype.name, count() - before))
        return result

    def __getattr__(self, name):
        return getattr(self.t, name)

def layers(T):
    if T == 3:
        return [nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 201, bias=False), nn.BatchNorm1d(201),
                nn.Tanh(), nn.Linear(201, 27)]
    return [nn.Embedding(27, 9), nn.FlattenConsecutive(2), nn.Linear(18, 65, bias=False),
            nn.BatchNorm1d(65), nn.Tanh(), nn.FlattenConsecutive(4), nn.Linear(260, 67, bias=False),
            nn.BatchNorm1d(67), nn.Tanh(), nn.Linear(67, 27)]

CASES = {
    # name: (threads, block size, model, train's keyword arguments, few steps, many steps)
    "lecture": (2, 3, lambda: mm.MLP(vocab, 3, 10, 200, seed=1), dict(lr=0.1), 2000, 20000),
    "blocks-sgd": (2, 8, lambda: mm.MLP(vocab, 8, 24, 512, seed=1), dict(batch_size=137, lr=0.1), 200, 1000),
    "blocks-adamw": (
        2, 8, lambda: mm.MLP(vocab, 8, 24, 517, seed=1),
        dict(batch_size=139, optimizer="adamw", lr=1e-3, weight_decay=0.01), 200, 1000,
    ),
    "bn": (
        2, 3, lambda: nn.Sequential(layers(3), vocab=vocab, block_size=3, seed=1), dict(lr=0.1), 2000, 20000,
    ),
    "bn-3d": (
        2, 8, lambda: nn.Sequential(layers(8), vocab=vocab, block_size=8, seed=1),
        dict(batch_size=33, lr=0.1, momentum=0.9), 1100, 4000,
    ),
}
out = {}
for name, (threads, T, make, kw, few, many) in CASES.items():
    mm.set_num_threads(threads)
    X, Y = data[T]
    model = make()
    h = mm.train(model, X, Y, few, **kw)  # the first run makes the state and its workspaces
    h.state._t = Counted(h.state._t)
    h = mm.train(model, X, Y, few, state=h.state, **kw)
    core_calls.clear()
    for steps in (few, many, few):
        h = mm.train(model, X, Y, steps, state=h.state, **kw)
    assert np.isfinite(h.loss).all()
    out[name] = core_calls[:]  # (the ids' dtype, allocations) of each call into the core
    core_calls.clear()
print(json.dumps(out))
"""

# The shim wraps glibc's allocator (__libc_malloc and friends): Linux only. (This project's CI is
# Linux, where this never skips; elsewhere the shim would not link.)
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the shim wraps glibc's allocator"
)


def allocation_calls(tmp_path, script: str) -> dict:
    """Run ``script`` in a child with the counting shim preloaded; the JSON of its last line."""
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
        [sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_training_through_train_does_not_allocate(tmp_path):
    """Through ``mm.train``: its call into the core for many steps makes exactly as many allocator
    calls as for few, before and after (the arguments' conversions; the loop none), on the
    lecture's default path with byte ids, with column blocks on 2 threads (SGD and AdamW), and with
    the layer plan's BatchNorm1d (2-D and 3-D). Each run is one call into the core
    (training.CHUNK_SECONDS = 0). Measured: 14 calls each, for 200 steps as for 20,000."""
    calls = allocation_calls(tmp_path, TRAIN_SCRIPT)
    print(calls)
    assert set(calls) == {"lecture", "blocks-sgd", "blocks-adamw", "bn", "bn-3d"}
    for name, runs in calls.items():
        # one call into the core a run (few, many, few steps), with byte ids
        assert [dtype for dtype, _ in runs] == ["uint8"] * 3, (name, runs)
        few, many, again = (n for _, n in runs)
        assert few == many == again < 50, (name, runs)


def test_the_core_loop_with_dropout_and_int32_ids_does_not_allocate(tmp_path):
    """Below ``mm.train``: the core's loop with dropout (every row computed) on int32 ids, for
    20,000 steps on 1 thread and 2,000 on 2 (two hidden layers, AdamW), as many calls as for 10."""
    calls = allocation_calls(tmp_path, SCRIPT)
    # The same few calls (the argument conversions) however many steps the loop runs.
    assert calls["1-10"] == calls["1-20000"], calls
    assert calls["2-10"] == calls["2-2000"], calls
    assert calls["1-10"] < 50, calls
