"""The package's structure: the optimizer's settings as one TrainOptions, mm.load, and modules that
import each other without a circle."""

from __future__ import annotations

import ast
import importlib
import pathlib
from types import ModuleType

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import checkpoint

WORDS = mm.load_names()[:300]
VOCAB = mm.Vocab.from_words(WORDS)
X, Y = mm.build_dataset(WORDS, VOCAB, 3)
ADAMW = dict(
    batch_size=16, seed=3, optimizer="adamw", betas=(0.8, 0.99), eps=1e-7, weight_decay=0.01, dropout=0.1
)


def same_params(a: mm.MLP, b: mm.MLP) -> bool:
    pa, pb = a.get_params(), b.get_params()
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_options_are_the_keyword_arguments():
    a, b = mm.MLP(VOCAB, n_hidden=20, seed=1), mm.MLP(VOCAB, n_hidden=20, seed=1)
    ha = mm.train(a, X, Y, 40, lr=0.01, **ADAMW)
    hb = mm.train(b, X, Y, 40, lr=0.01, options=mm.TrainOptions(**ADAMW))
    assert same_params(a, b) and np.array_equal(ha.loss, hb.loss)
    assert ha.state.settings == hb.state.settings and ha.state.options == hb.state.options
    mm.train(a, X, Y, 10, lr=0.01, state=ha.state, options=mm.TrainOptions(**ADAMW))
    mm.train(b, X, Y, 10, lr=0.01, state=hb.state, **ADAMW)
    assert same_params(a, b)


def test_options_or_keyword_arguments_not_both():
    m = mm.MLP(VOCAB, n_hidden=20)
    with pytest.raises(ValueError, match="not both"):
        mm.train(m, X, Y, 1, batch_size=8, options=mm.TrainOptions())
    with pytest.raises(TypeError, match="TrainOptions"):
        mm.train(m, X, Y, 1, options={"batch_size": 8})
    with pytest.raises(ValueError, match="batch_size=16 \\(this call: 32\\)"):
        h = mm.train(m, X, Y, 1, options=mm.TrainOptions(batch_size=16))
        mm.train(m, X, Y, 1, options=mm.TrainOptions(), state=h.state)


@pytest.mark.parametrize(
    "kw",
    [
        {"batch_size": 0},
        {"seed": -1},
        {"optimizer": "rmsprop"},
        {"momentum": 1.0},
        {"nesterov": 1},
        {"nesterov": True},
        {"optimizer": "adamw", "momentum": 0.9},
        {"betas": (0.9,)},
        {"betas": (0.9, float("nan"))},
        {"eps": 0.0},
        {"weight_decay": -1.0},
        {"dropout": 1.0},
    ],
)
def test_options_are_checked_as_train_checks_them(kw):
    with pytest.raises((TypeError, ValueError)) as made:
        mm.TrainOptions(**kw)
    with pytest.raises(type(made.value)) as trained:
        mm.train(mm.MLP(VOCAB, n_hidden=4), X, Y, 1, **kw)
    assert str(made.value) == str(trained.value)


def test_load_gives_the_model_of_any_checkpoint(tmp_path):
    m = mm.MLP(VOCAB, n_hidden=20, seed=2)
    hist = mm.train(m, X, Y, 5, lr=0.01, **ADAMW)
    m.save(tmp_path / "model.npz")
    checkpoint.save(tmp_path / "run.npz", m, hist.state, {"note": "x"})
    for name in ("model.npz", "run.npz"):
        for loaded in (mm.load(tmp_path / name), mm.MLP.load(tmp_path / name)):
            assert same_params(loaded, m) and loaded.vocab == m.vocab


def test_no_import_circle():
    """Every import between the package's modules (at the top of a module or inside a function),
    followed from any module, never leads back to it."""
    root = pathlib.Path(mm.__file__).parent
    names = {}
    for f in root.rglob("*.py"):
        parts = f.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    edges = {m: set() for m in names}
    for m, f in names.items():
        here = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:  # a module (the extension _core among them) or a name in one
                    sub = f"{target}.{a.name}"
                    is_module = isinstance(getattr(importlib.import_module(target), a.name, None), ModuleType)
                    edges[m].add(sub if sub in names or is_module else target)
            elif isinstance(node, ast.Import):
                edges[m].update(a.name for a in node.names)
    edges = {m: {t for t in ts if t in names} for m, ts in edges.items()}

    def reaches(start: str) -> set:
        seen, todo = set(), list(edges[start])
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(edges[t])
        return seen

    circles = sorted(m for m in names if m in reaches(m))
    assert not circles, f"modules in an import circle: {circles}"
