"""``fit``: split, build, train and evaluate in one call, from a preset's settings.

res = mm.fit()                        # the lecture: 200,000 SGD steps, dev loss about 2.17
res = mm.fit(preset="kaiming")        # the lecture's part-3 initialisation: about 2.10
res = mm.fit(preset="best")           # this project's best MLP recipe (see PRESETS["best"])
res = mm.fit(words, n_hidden=300, steps=50_000)   # any field of a preset can be overridden
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import _core, nn
from . import _validate as v
from .data import Vocab, build_dataset, load_names, split_words
from .mlp import MLP
from .model import Model
from .presets import PRESETS
from .schedules import parse_schedule
from .training import History, TrainOptions, train

__all__ = [
    "fit",
    "FitResult",
    "resolve",
    "check_config",
    "build_model",
    "train_options",
    "bn_layers",
    "wavenet_layers",
]


@dataclass(repr=False)
class FitResult:
    """What :func:`fit` did: the trained model, its history, the split and the losses on each part.

    seconds: the training's wall time (``history.seconds`` and its evaluations, from the start of
    the loop); setup_seconds: from the call to that start (the split, the examples, the model), so
    that ``setup_seconds + history.eval_seconds[i]`` is the time of evaluation i from the call.
    """

    model: Model
    history: History
    vocab: Vocab
    splits: dict[str, list[str]]
    losses: dict[str, float]
    config: dict[str, Any]
    seconds: float
    setup_seconds: float = 0.0
    data: dict[str, tuple] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        losses = ", ".join(f"{k} {val:.4f}" for k, val in self.losses.items())
        return (
            f"FitResult(preset={self.config.get('preset')!r}, model={repr(self.model).splitlines()[0]}, "
            f"{len(self.history.loss):,} steps in {self.seconds:.1f} s, losses: {losses})"
        )


def resolve(preset: str = "lecture", **overrides: Any) -> dict[str, Any]:
    """A preset's settings with ``overrides`` applied (unknown names are an error)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    cfg = dict(PRESETS[preset])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise TypeError(f"unknown setting(s) {sorted(unknown)}; settings are {sorted(cfg)}")
    cfg.update({k: val for k, val in overrides.items() if val is not None})
    cfg["preset"] = preset
    return cfg


def check_config(cfg: dict[str, Any], vocab_size: int | None = None) -> None:
    """Check every setting of a preset's settings (:func:`resolve`) without building anything: the
    model's sizes and kind, the schedule over ``steps``, the optimizer's settings, the evaluation
    and split settings; with ``vocab_size``, that the model's parameters, the optimizer's moments
    and a minibatch's activations fit in this machine's memory. Raises what building and training
    would raise (``ValueError``, ``TypeError``, ``MemoryError``), naming the setting, before any of
    it is done."""
    steps = v.integer(cfg["steps"], "steps", 0)
    T = v.integer(cfg["block_size"], "block_size", 1, 1 << 16)
    E = v.integer(cfg["n_embd"], "n_embd", 1, 1 << 20)
    hidden = cfg["n_hidden"]
    widths = list(hidden) if hasattr(hidden, "__iter__") and not isinstance(hidden, str) else [hidden]
    if not 1 <= len(widths) <= _core.MAX_HIDDEN:
        raise ValueError(f"n_hidden must be a width or 1 to {_core.MAX_HIDDEN} widths, got {hidden!r}")
    widths = [v.integer(w, "n_hidden", 1, 1 << 20) for w in widths]
    dtype = v.dtype_name(cfg["dtype"])
    v.seed(cfg["seed"], "seed")
    v.real(cfg["out_scale"], "out_scale")
    kind = cfg["model"]
    if kind == "mlp":
        if cfg["init"] not in ("lecture", "kaiming"):
            raise ValueError(f"init must be 'lecture' or 'kaiming' for model='mlp', got {cfg['init']!r}")
        if cfg["out_scale"] != 1.0:
            raise ValueError(
                f"out_scale applies to layer models; model='mlp' scales by init, got {cfg['out_scale']}"
            )
    elif kind in LAYER_MODELS:
        if cfg["init"] != "layers":
            raise ValueError(
                f"init {cfg['init']!r} is for model='mlp'; a layer model starts as its classes do: "
                "init='layers'"
            )
        if len(widths) != 1:
            raise ValueError(f"model={kind!r} takes one hidden width, got n_hidden={hidden!r}")
    else:
        raise ValueError(f"model must be 'mlp' or one of {sorted(LAYER_MODELS)}, got {kind!r}")
    v.seed(cfg["train_seed"], "train_seed")
    options = train_options(cfg)
    lr = cfg["lr"]
    if not callable(lr):
        parse_schedule(lr, steps)
    if cfg["eval_every"] is not None:
        v.integer(cfg["eval_every"], "eval_every", 0)
    if not isinstance(cfg["keep_best"], (bool, np.bool_)):
        raise TypeError(f"keep_best must be True or False, got {cfg['keep_best']!r}")
    if cfg["split_seed"] is not None:
        v.integer(cfg["split_seed"], "split_seed")
    split_words([], cfg["split"])  # checks the fractions
    if vocab_size is None:
        return
    V = v.integer(vocab_size, "vocab_size", 1)
    if kind == "mlp":
        sizes = [T * E, *widths, V]
        params = V * E + sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    else:
        layers = LAYER_MODELS[kind](V, T, E, widths[0])  # the layer objects only: nothing allocated
        params = sum(layer.numbers() for layer in layers)
        sizes = [T * E, widths[0] * T, V]
    item = 8 if dtype == "float64" else 4
    copies = 2 + (2 if options.optimizer == "adamw" else 1 if options.momentum else 0)  # + grads, moments
    activations = 2.0 * options.batch_size * sum(sizes)  # forward values and their gradients
    v.fits(
        item * (copies * params + activations),
        f"a model of {params:,} parameters trained in batches of {options.batch_size:,}",
        " at the least (parameters, gradients, moments, a minibatch's activations)",
    )


def build_model(cfg: dict[str, Any], vocab: Vocab | int) -> Model:
    """The model of a preset's settings (:func:`resolve`): an MLP, or the layer list its ``model``
    names (presets.py), its last Linear's initial weight times ``out_scale``."""
    kind = cfg["model"]
    if kind == "mlp":
        if cfg["out_scale"] != 1.0:
            raise ValueError(
                f"out_scale applies to layer models; model='mlp' scales by init, got {cfg['out_scale']}"
            )
        return MLP(
            vocab,
            block_size=cfg["block_size"],
            n_embd=cfg["n_embd"],
            n_hidden=cfg["n_hidden"],
            seed=cfg["seed"],
            init=cfg["init"],
            dtype=cfg["dtype"],
        )
    if kind not in LAYER_MODELS:
        raise ValueError(f"model must be 'mlp' or one of {sorted(LAYER_MODELS)}, got {kind!r}")
    if cfg["init"] != "layers":
        raise ValueError(
            f"init {cfg['init']!r} is for model='mlp'; a layer model starts as its classes do: init='layers'"
        )
    V = len(vocab) if isinstance(vocab, Vocab) else vocab
    layers = LAYER_MODELS[kind](V, cfg["block_size"], cfg["n_embd"], cfg["n_hidden"])
    model = nn.Sequential(
        layers, vocab=vocab, block_size=cfg["block_size"], seed=cfg["seed"], dtype=cfg["dtype"]
    )
    if cfg["out_scale"] != 1.0:
        params = model.get_params()
        last = f"{len(layers) - 1}.weight"
        params[last] = params[last] * cfg["out_scale"]
        model.set_params(params)
    return model


def bn_layers(V: int, block_size: int, n_embd: int, n_hidden: int) -> list:
    """Part 3's model with batch normalisation."""
    return [
        nn.Embedding(V, n_embd),
        nn.Flatten(),
        nn.Linear(block_size * n_embd, n_hidden, bias=False),
        nn.BatchNorm1d(n_hidden),
        nn.Tanh(),
        nn.Linear(n_hidden, V),
    ]


def wavenet_layers(V: int, block_size: int, n_embd: int, n_hidden: int) -> list:
    """Part 5's hierarchical model: pairs of positions fused level by level (block_size a power of 2)."""
    if block_size < 2 or block_size & (block_size - 1):
        raise ValueError(
            "the wavenet model fuses pairs of positions: block_size must be a power of 2 >= 2, "
            f"got {block_size}"
        )
    layers: list = [nn.Embedding(V, n_embd)]
    width = n_embd
    while block_size > 1:
        layers += [
            nn.FlattenConsecutive(2),
            nn.Linear(2 * width, n_hidden, bias=False),
            nn.BatchNorm1d(n_hidden),
            nn.Tanh(),
        ]
        width, block_size = n_hidden, block_size // 2
    return layers + [nn.Linear(width, V)]


LAYER_MODELS = {"bn": bn_layers, "wavenet": wavenet_layers}


def train_options(cfg: dict[str, Any]) -> TrainOptions:
    """The training options of a preset's settings (:func:`resolve`); ``train_seed`` keys the
    minibatch draws."""
    return TrainOptions(
        batch_size=cfg["batch_size"],
        seed=cfg["train_seed"],
        optimizer=cfg["optimizer"],
        momentum=cfg["momentum"],
        nesterov=cfg["nesterov"],
        betas=tuple(cfg["betas"]) if isinstance(cfg["betas"], (list, tuple)) else cfg["betas"],
        eps=cfg["eps"],
        weight_decay=cfg["weight_decay"],
        dropout=cfg["dropout"],
    )


def fit(
    words: Sequence[str] | None = None, preset: str = "lecture", *, progress: bool = False, **overrides: Any
) -> FitResult:
    """Split ``words`` (default: the bundled names) 80/10/10 as the lecture does, build the examples,
    train a preset's model, and evaluate it on train, dev and test.

    ``overrides`` replace any of the preset's settings (``PRESETS[preset]``); ``lr`` may be a
    number, a schedule text such as ``"0.1@0:0.01@100000"`` or ``"cosine:3e-3:warmup=1000"``, or a
    callable of the step.
    """
    called = time.perf_counter()
    cfg = resolve(preset, **overrides)
    check_config(cfg)  # before the words are read
    words = load_names() if words is None else list(words)
    vocab = Vocab.from_words(words)
    check_config(cfg, len(vocab))
    tr, dev, te = split_words(words, cfg["split"], seed=cfg["split_seed"])
    T = cfg["block_size"]
    data = {name: build_dataset(part, vocab, T) for name, part in (("train", tr), ("dev", dev), ("test", te))}
    model = build_model(cfg, vocab)
    lr = cfg["lr"]
    lr_fn: Callable[[int], float] | float = lr if callable(lr) else parse_schedule(lr, cfg["steps"])
    Xd, Yd = data["dev"]
    has_dev = len(Xd) > 0
    t0 = time.perf_counter()
    hist = train(
        model,
        *data["train"],
        steps=cfg["steps"],
        lr=lr_fn,
        options=train_options(cfg),
        X_val=Xd if has_dev else None,
        Y_val=Yd if has_dev else None,
        eval_every=cfg["eval_every"] if has_dev and cfg["eval_every"] else None,
        keep_best=bool(cfg["keep_best"]) and has_dev,
        progress=progress,
    )
    seconds = time.perf_counter() - t0
    losses = {name: model.loss(X, Y) for name, (X, Y) in data.items() if len(X)}
    return FitResult(
        model=model,
        history=hist,
        vocab=vocab,
        splits={"train": tr, "dev": dev, "test": te},
        losses=losses,
        config=cfg,
        seconds=seconds,
        setup_seconds=t0 - called,
        data=data,
    )
