"""Digests of what the core computes, over many configurations, to check that a change of the core
keeps the same bits: parameters after a short training run, the losses of every step, loss(),
logits(), loss_and_grad() and sampled ids, on every instruction-set path this CPU has.

    python scripts/param_digest.py > before.json      # then change the core, rebuild, and
    python scripts/param_digest.py | diff before.json -
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys

import numpy as np

import makemore_cpp as mm

SHAPES = [  # (vocab, block_size, n_embd, n_hidden, batch)
    (27, 3, 10, 200, 32),
    (27, 3, 10, 200, 1),
    (5, 1, 1, 1, 7),
    (40, 8, 24, 530, 100),
    (27, 4, 8, 777, 48),
    (30, 5, 7, (64, 48), 33),
    (27, 2, 3, (33, 17, 5), 20),
    (300, 2, 12, 100, 64),
]
OPTIONS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    dict(optimizer="adamw", lr=3e-3, weight_decay=0.05),
    dict(lr=0.1, dropout=0.1),
]


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def run_one(V, T, E, H, B, dtype, opt, threads) -> str:
    mm.set_num_threads(threads)
    rng = np.random.default_rng(V * 1000 + T * 100 + E)
    X = rng.integers(0, V, (3000, T)).astype(np.int32)
    X[::3] = X[0]  # repeated contexts
    Y = rng.integers(0, V, 3000).astype(np.int32)
    m = mm.MLP(V, block_size=T, n_embd=E, n_hidden=H, seed=3, dtype=dtype, init="kaiming")
    h = mm.train(m, X, Y, 40, batch_size=B, seed=5, **opt)
    loss, grads = m.loss_and_grad(X[:B], Y[:B])
    return digest(
        h.loss,
        *m.get_params().values(),
        np.float64(m.loss(X, Y)),
        m.logits(X[:500]),
        np.float64(loss),
        *grads.values(),
        m.sample_ids(50, seed=1),
        m.sample_ids(50, seed=2, temperature=0.7, top_k=5),
    )


def main() -> int:
    out = {}
    for isa in ("generic", "avx2", "avx512"):
        if not mm._core.isa_supported(isa):
            continue
        mm.set_isa(isa)
        for (V, T, E, H, B), dtype, (k, opt), threads in itertools.product(
            SHAPES, ("float32", "float64"), enumerate(OPTIONS), (1, 2)
        ):
            if dtype == "float64" and k in (1, 2):
                continue
            out[f"{isa} V{V} T{T} E{E} H{H} B{B} {dtype} opt{k} t{threads}"] = run_one(
                V, T, E, H, B, dtype, opt, threads
            )
    json.dump(out, sys.stdout, indent=0, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
