"""The named recipes of :func:`makemore_cpp.fit` and ``makemore-cpp train --preset``: every
setting of the model, the optimisation, the evaluation and the data split."""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

# Every preset lists every setting, so what a run did can be read here.
_LECTURE = {
    # model: "mlp" (the part-2 MLP, mm.MLP), or a layer list of makemore_cpp.nn (fitting.py:
    # build_model): "bn", part 3's Embedding, Flatten, Linear (no bias), BatchNorm1d, Tanh, Linear;
    # "wavenet", part 5's Embedding, then (FlattenConsecutive(2), Linear (no bias), BatchNorm1d, Tanh)
    # until the context is one position, then Linear. out_scale multiplies the last Linear's
    # initial weight (the lecture's layers[-1].weight *= 0.1).
    "model": "mlp",
    "block_size": 3,
    "n_embd": 10,
    "n_hidden": 200,
    "init": "lecture",
    "out_scale": 1.0,
    "dtype": "float32",
    "seed": 2147483647,
    # optimisation
    "steps": 200_000,
    "batch_size": 32,
    "lr": "0.1@0:0.01@100000",
    "optimizer": "sgd",
    "momentum": 0.0,
    "nesterov": False,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "train_seed": 0,
    # evaluation
    "eval_every": 10_000,
    "keep_best": False,
    # data
    "split": (0.8, 0.1, 0.1),
    "split_seed": 42,
}
PRESETS: dict[str, dict[str, Any]] = {
    "lecture": dict(_LECTURE),
    "kaiming": dict(_LECTURE, init="kaiming"),
    # Part 3 with batch normalisation: the lecture's layer classes, init "layers" (theirs).
    "bn": dict(_LECTURE, model="bn", init="layers", out_scale=0.1),
    # Part 5's hierarchical model, scaled up: 76,579 parameters; lr 0.01 from step 150,000.
    "wavenet": dict(
        _LECTURE,
        model="wavenet",
        block_size=8,
        n_embd=24,
        n_hidden=128,
        init="layers",
        out_scale=0.1,
        lr="0.1@0:0.01@150000",
    ),
    # Two tanh layers of 384, 32-dimensional embeddings, context 8, AdamW with cosine decay, dropout
    # 0.15: dev 1.935 on the lecture's split in about 2 minutes on 2 cores (the recipes tried, and
    # what each gave, are in benchmarks/NOTES.md).
    "best": dict(
        _LECTURE,
        block_size=8,
        n_embd=32,
        n_hidden=(384, 384),
        init="kaiming",
        steps=90_000,
        batch_size=128,
        lr="cosine:3e-3:warmup=1000",
        optimizer="adamw",
        weight_decay=0.05,
        dropout=0.15,
        eval_every=5_000,
        keep_best=True,
    ),
}
