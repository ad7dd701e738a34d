"""The lecture's layer classes (makemore_cpp.nn) against the float64 PyTorch reference of the same
classes (makemore_cpp.reference): loss and every gradient in training mode, evaluation mode,
trajectories with the running statistics, initialisation, sampling, files and errors; on every
instruction set this CPU has, on random layer lists whose widths are odd (never a multiple of a
vector width), 2-D and 3-D batch norm, contexts 1 to 16.

Tolerances, as for the MLP (tests/test_parity.py): 1e-10 (float64) and 1e-5 (float32) relative to
each tensor's largest entry. A gradient that is zero in exact arithmetic (the bias of a Linear
that a BatchNorm1d follows: the batch mean removes it), below a millionth of the model's largest
gradient entry, is compared to that largest entry instead: both sides are rounding noise there.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import nn
from makemore_cpp import reference as ref

torch = pytest.importorskip("torch")

TOL = {"float64": 1e-10, "float32": 1e-5}


def odd(rng, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi)) | 1


def random_layers(rng, V: int, T: int) -> list:
    """A random valid layer list: an Embedding, then flattenings, Linears, BatchNorm1d (on 2-D or
    3-D inputs) and Tanh in any order, ending with a Linear to the vocabulary on a 2-D input."""
    E = odd(rng, 1, 12)
    layers: list = [nn.Embedding(V, E)]
    t, C, ndim = T, E, 3  # the lecture's Embedding gives (B, T, E), 3-D even when T is 1
    while True:
        linears = sum(isinstance(layer, nn.Linear) for layer in layers)
        if ndim == 3 and (rng.random() < 0.35 or (len(layers) > 3 and t == 1) or linears >= 4):
            if rng.random() < 0.3 or linears >= 4:
                layers.append(nn.Flatten())
                C, t = C * t, 1
            else:
                n = int(rng.choice([n for n in range(1, t + 1) if t % n == 0 and (n > 1 or t == 1)]))
                layers.append(nn.FlattenConsecutive(n))
                C, t = C * n, t // n
            ndim = 3 if t > 1 else 2
            continue
        if ndim == 2 and len(layers) > 2 and (rng.random() < 0.3 or linears >= 4):
            break
        w = odd(rng, 3, 40)
        layers.append(nn.Linear(C, w, bias=bool(rng.random() < 0.6)))
        C = w
        if rng.random() < 0.6:
            eps, momentum = float(rng.choice([1e-5, 1e-3])), float(rng.choice([0.1, 0.3]))
            layers.append(nn.BatchNorm1d(C, eps=eps, momentum=momentum))
        if rng.random() < 0.8:
            layers.append(nn.Tanh())
    layers.append(nn.Linear(C, V))
    return layers


def model_and_data(seed: int, dtype: str, rows: int | None = None):
    rng = np.random.default_rng(seed)
    V = odd(rng, 3, 40)
    T = int(rng.integers(1, 17))
    layers = random_layers(rng, V, T)
    model = nn.Sequential(layers, vocab=V, block_size=T, seed=seed, dtype=dtype)
    B = rows or odd(rng, 3, 90)
    X = rng.integers(0, V, (B, T)).astype(np.int32)
    X[: B // 3] = X[0]  # repeated contexts
    Y = rng.integers(0, V, B).astype(np.int32)
    return model, X, Y, rng


def randomise(model, rng) -> dict:
    """Parameters away from their initial values (BatchNorm's gamma, beta and running statistics
    included; weights 1.5 N(0, 1)/sqrt(fan_in)), set in the model; returned as float64."""
    params = {}
    for k, a in model.get_params().items():
        x = rng.standard_normal(a.shape) * (
            1.5 / np.sqrt(a.shape[0]) if a.ndim == 2 and k != "0.weight" else 0.7
        )
        if k.endswith("running_var") or k.endswith("gamma"):
            x = np.abs(x) + 0.2
        params[k] = x
    model.set_params(params)
    return {k: np.asarray(a, np.float64) for k, a in model.get_params().items()}


def rel_errors(got: dict, want: dict) -> dict:
    """Each tensor's largest difference relative to its largest entry; for a tensor below a
    millionth of the largest entry of all (zero in exact arithmetic), relative to that instead."""
    top = max(np.abs(w).max() for w in want.values())
    scale = {k: np.abs(w).max() if np.abs(w).max() >= 1e-6 * top else top for k, w in want.items()}
    return {k: float(np.abs(got[k] - want[k]).max() / scale[k]) for k in want}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_and_gradients_match_torch(isa, dtype):
    worst = 0.0
    for seed in range(14):
        model, X, Y, rng = model_and_data(100 + seed, dtype)
        params = randomise(model, rng)
        loss, grads = model.loss_and_grad(X, Y)
        rloss, rgrads = ref.layers_loss_and_grad(model.layers, params, X, Y)
        assert set(grads) == set(rgrads) == set(model.trained_names)
        errs = rel_errors(grads, rgrads)
        errs["loss"] = abs(loss - rloss) / max(1.0, abs(rloss))
        worst = max(worst, max(errs.values()))
        assert max(errs.values()) <= TOL[dtype], (seed, model.layers, errs)
    print(f"{isa} {dtype}: worst relative error {worst:.2e}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_evaluation_mode_matches_torch(isa, dtype):
    for seed in range(8):
        model, X, Y, rng = model_and_data(200 + seed, dtype, rows=777)
        params = randomise(model, rng)
        want = ref.layers_logits(model.layers, params, X)
        got = model.logits(X)
        assert np.abs(got - want).max() / np.abs(want).max() <= TOL[dtype], (seed, model.layers)
        loss = model.loss(X, Y)
        assert abs(loss - ref.layers_loss(model.layers, params, X, Y)) <= TOL[dtype] * max(1.0, loss)


TRAJECTORIES = [
    dict(lr=0.05),
    dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(optimizer="adamw", lr=3e-3, weight_decay=0.05),
    dict(lr=0.05, dropout=0.2),
]


@pytest.mark.parametrize("opt", TRAJECTORIES, ids=["sgd", "nesterov", "adamw", "dropout"])
def test_trajectories_replay_torch(opt):
    """Every minibatch loss of a run within 1e-9 (float64) of the reference loop's, and the final
    parameters and running statistics within 1e-9 of their largest entry; 500 steps for plain SGD.
    (On the default instruction set: each op is checked on every one above.)"""
    steps = 500 if opt == TRAJECTORIES[0] else 150
    for seed in range(2):
        model, X, Y, rng = model_and_data(300 + seed, "float64", rows=600)
        start = {k: np.asarray(a, np.float64) for k, a in model.get_params().items()}
        h = mm.train(model, X, Y, steps, batch_size=odd(rng, 5, 40), seed=seed, **opt)
        rl, rparams = ref.layers_train_replay(
            model.layers,
            start,
            X,
            Y,
            opt.get("lr"),
            steps=steps,
            batch_size=h.state.options.batch_size,
            seed=seed,
            **{k: val for k, val in opt.items() if k != "lr"},
        )
        assert np.abs(h.loss - rl).max() <= 1e-9 * max(1.0, np.abs(rl).max()), (seed, model.layers)
        errs = rel_errors(model.get_params(), rparams)
        assert max(errs.values()) <= 1e-9, (seed, model.layers, errs)


def test_the_mlp_and_its_layer_list_compute_the_same():
    """mm.MLP and the nn.Sequential of Embedding, Flatten, Linear, Tanh, Linear: the same losses and
    gradients (float64, 1e-12), parameters C = 0.weight, W1 = 2.weight, b1 = 2.bias, ..."""
    rng = np.random.default_rng(7)
    mlp = mm.MLP(27, block_size=5, n_embd=7, n_hidden=(33, 19), seed=3, dtype="float64")
    seq = nn.Sequential(mlp.layers, vocab=27, block_size=5, dtype="float64")
    names = dict(zip(mlp.param_names, seq.param_names))
    assert names == {
        "C": "0.weight",
        "W1": "2.weight",
        "b1": "2.bias",
        "W2": "4.weight",
        "b2": "4.bias",
        "W3": "6.weight",
        "b3": "6.bias",
    }
    seq.set_params({names[k]: a for k, a in mlp.get_params().items()})
    X = rng.integers(0, 27, (61, 5)).astype(np.int32)
    Y = rng.integers(0, 27, 61).astype(np.int32)
    l1, g1 = mlp.loss_and_grad(X, Y)
    l2, g2 = seq.loss_and_grad(X, Y)
    assert abs(l1 - l2) <= 1e-12 * l1
    for k, a in g1.items():
        assert np.abs(a - g2[names[k]]).max() <= 1e-12 * np.abs(a).max()
    assert seq.plan == mlp.plan == "mlp"
    assert abs(mlp.loss(X, Y) - seq.loss(X, Y)) <= 1e-12


def test_initialisation_is_the_documented_draws():
    for seed in range(3):
        model, _, _, _ = model_and_data(400 + seed, "float64")
        want = ref.layers_init_params(model.layers, model.vocab_size, model.block_size, seed=400 + seed)
        got = model.get_params()
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-13, atol=0, err_msg=k)


def test_sampling_is_the_reference_draws():
    for seed in range(3):
        model, X, Y, rng = model_and_data(500 + seed, "float64")
        params = randomise(model, rng)
        for kw in (dict(), dict(temperature=0.7, top_k=3), dict(temperature=0)):
            ids = model.sample_ids(12, seed=seed, max_len=20, **kw)
            want = ref.layers_sample(model.layers, params, model.block_size, 12, seed=seed, max_len=20, **kw)
            got = [list(row[: (row != 0).sum()]) for row in ids]
            assert got == want, (seed, kw)


def test_float32_sampling_is_the_reference_draws(isa):
    """A float32 layer model's names (its default dtype) against the reference sampler on its
    parameters converted to float64: the same, but where the float32 rounding meets a near tie of
    a draw (within 1e-5 of the boundary between two characters' running sums, or of two greedy
    logits), each checked. Measured: 0 of 360 names differ on each path."""
    differ = 0
    for seed in range(3):
        model, X, Y, rng = model_and_data(700 + seed, "float32")
        assert model.dtype == "float32"
        params = randomise(model, rng)
        T = model.block_size
        for kw in (dict(), dict(temperature=0.7, top_k=3), dict(temperature=0)):
            ids = model.sample_ids(40, seed=seed, max_len=20, **kw)
            got = [list(row[: (row != 0).sum()]) for row in ids]
            want = ref.layers_sample(model.layers, params, T, 40, seed=seed, max_len=20, **kw)
            for i, (x, y) in enumerate(zip(got, want)):
                if x == y:
                    continue
                differ += 1
                k = next(j for j in range(max(len(x), len(y))) if j >= min(len(x), len(y)) or x[j] != y[j])
                ctx = ([0] * T + x[:k])[-T:]
                logits = ref.layers_logits(model.layers, params, np.array([ctx]))[0]
                gap = near_tie(logits, seed, i, k, (x + [0])[k], (y + [0])[k], **kw)
                assert gap <= 1e-5, (seed, kw, i, x, y, gap)
    print(f"{isa}: {differ} of 360 names differ")
    assert differ <= 3, differ  # of 360 names


def near_tie(lg, seed, i, k, a, b, temperature=1.0, top_k=None) -> float:
    """How near character k of name i came to being ``a`` instead of the reference's ``b``: the
    draw's share of the weights against the running sum between them (or, greedy, the two logits),
    relative to the sum of the weights (or the largest logit)."""
    if temperature == 0:
        return abs(lg[a] - lg[b]) / np.abs(lg).max()
    thr = np.sort(lg)[::-1][top_k - 1] if top_k and top_k < len(lg) else -np.inf
    cum = np.cumsum(np.where(lg >= thr, np.exp((lg - lg.max()) / temperature), 0.0))
    u = float(ref.draw(ref.key(seed, ref.SAMPLE), [i * (1 << 20) + k])[0] >> np.uint64(11)) * 2.0**-53
    return abs(u * cum[-1] - cum[min(a, b)]) / cum[-1]


def test_files_round_trip_and_torch(tmp_path):
    words = mm.load_names()[:3000]
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 4)
    model = nn.Sequential(
        [
            nn.Embedding(len(vocab), 9),
            nn.FlattenConsecutive(2),
            nn.Linear(18, 21),
            nn.BatchNorm1d(21),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(42, len(vocab)),
        ],
        vocab=vocab,
        block_size=4,
        seed=5,
    )
    mm.train(model, X, Y, 200, batch_size=16)
    path = tmp_path / "m.npz"
    model.save(path)
    for back in (mm.load(path), nn.Sequential.load(path)):
        assert type(back) is nn.Sequential and back.layers == model.layers
        assert {k: a.tobytes() for k, a in back.get_params().items()} == {
            k: a.tobytes() for k, a in model.get_params().items()
        }
        assert back.sample(5, seed=1) == model.sample(5, seed=1)
    with pytest.raises(ValueError, match="not a MLP"):
        mm.MLP.load(path)
    module = model.to_torch()
    module.eval()
    with torch.no_grad():
        out = ref._layers_forward(module, X[:300]).numpy()
    np.testing.assert_allclose(out, model.logits(X[:300]), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "layers, T, match",
    [
        (
            [nn.Embedding(27, 10), nn.Flatten(), nn.Linear(31, 50), nn.Linear(50, 27)],
            3,
            r"layer 2: Linear's fan_in is 31 but its input has 30 channels",
        ),
        (
            [nn.Embedding(27, 10), nn.FlattenConsecutive(2), nn.Linear(20, 27)],
            3,
            r"not divisible by FlattenConsecutive's n = 2",
        ),
        (
            [nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 26)],
            3,
            r"layer 2: the model's output has 26 channels; it must be the vocabulary size 27",
        ),
        ([nn.Embedding(27, 10), nn.Linear(10, 27)], 3, r"must end with 2-D logits"),
        ([nn.Embedding(26, 10), nn.Flatten(), nn.Linear(30, 27)], 3, r"layer 0: the Embedding's rows"),
        ([nn.Flatten(), nn.Linear(30, 27)], 3, r"layer 0: the first layer must be an Embedding"),
        (
            [nn.Embedding(27, 10), nn.Flatten(), nn.BatchNorm1d(31), nn.Linear(30, 27)],
            3,
            r"layer 2: BatchNorm1d's dim is 31 but its input has 30 channels",
        ),
    ],
)
def test_layers_that_do_not_fit_are_refused_at_construction(layers, T, match):
    with pytest.raises(ValueError, match=match):
        nn.Sequential(layers, vocab=27, block_size=T)


def test_layer_arguments_are_checked():
    with pytest.raises(TypeError, match="Linear: fan_in must be an integer"):
        nn.Linear(3.0, 4)
    with pytest.raises(ValueError, match="BatchNorm1d: eps must be > 0"):
        nn.BatchNorm1d(4, eps=0)
    with pytest.raises(ValueError, match="FlattenConsecutive: n must be between 1"):
        nn.FlattenConsecutive(0)
    with pytest.raises(TypeError, match=r"layers\[1\] must be a makemore_cpp.nn layer"):
        nn.Sequential([nn.Embedding(5, 2), "Flatten"], vocab=5, block_size=2)


def test_batch_norm_needs_two_rows_in_training():
    model = nn.Sequential(
        [nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 7), nn.BatchNorm1d(7), nn.Linear(7, 5)],
        vocab=5,
        block_size=2,
    )
    X, Y = np.zeros((1, 2), np.int32), np.zeros(1, np.int32)
    with pytest.raises(ValueError, match=r"layer 3 \(BatchNorm1d\) in training mode needs 2 values"):
        model.loss_and_grad(X, Y)
    with pytest.raises(ValueError, match=r"needs 2 values"):
        mm.train(model, X, Y, 1, batch_size=1)
    assert np.isfinite(model.loss(X, Y))  # evaluation mode: the running statistics


def test_results_do_not_depend_on_thread_count():
    """A layer list whose products are split between 2 threads (each above the 1.5 million
    multiply-adds from which an op is split, cpp/kernels.h: parts_for): 2-D and 3-D batch norm,
    with and without dropout; the same bits at 1 and 2 threads -- losses, parameters and running
    statistics, loss and logits."""
    rng = np.random.default_rng(6)
    V, T, B = 27, 8, 255
    layers = [
        nn.Embedding(V, 11),
        nn.FlattenConsecutive(2),
        nn.Linear(22, 301, bias=False),  # 1,020 rows x 22 x 301: 6.8 M
        nn.BatchNorm1d(301),
        nn.Tanh(),
        nn.FlattenConsecutive(4),
        nn.Linear(1204, 203, bias=False),  # 255 x 1,204 x 203: 62 M
        nn.BatchNorm1d(203),
        nn.Tanh(),
        nn.Linear(203, V),
    ]
    X = rng.integers(0, V, (3000, T)).astype(np.int32)
    Y = rng.integers(0, V, 3000).astype(np.int32)
    steps = 8 if os.environ.get("MAKEMORE_SANITIZE_RUN") == "1" else 30  # the sanitizer job: shorter
    before = mm.get_num_threads()
    try:
        for dropout in (0.0, 0.1):
            runs = []
            for threads in (1, 2):
                mm.set_num_threads(threads)
                m = nn.Sequential(layers, vocab=V, block_size=T, seed=3, dtype="float32")
                h = mm.train(m, X, Y, steps, batch_size=B, seed=1, lr=0.05, dropout=dropout)
                params = [a.tobytes() for a in m.get_params().values()]
                runs.append((h.loss.tobytes(), params, m.loss(X, Y), m.logits(X[:999]).tobytes()))
            assert runs[0] == runs[1], dropout
    finally:
        mm.set_num_threads(before)
