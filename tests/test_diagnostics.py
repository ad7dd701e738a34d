"""Part 3's diagnostics (makemore_cpp.diagnose, train(..., diagnostics_every=N)) against PyTorch: the
same model in the float64 reference with retain_grad() on every Tanh's output gives the same
statistics, and the recorded update ratios are those of the parameters before and after each step."""

from __future__ import annotations

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import _core, nn
from makemore_cpp import reference as ref

torch = pytest.importorskip("torch")


def models():
    rng = np.random.default_rng(3)
    mlp = mm.MLP(27, block_size=4, n_embd=7, n_hidden=(41, 23), seed=2, dtype="float64", init="kaiming")
    seq = nn.Sequential(
        [
            nn.Embedding(27, 5),
            nn.FlattenConsecutive(2),
            nn.Linear(10, 33, bias=False),
            nn.BatchNorm1d(33),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(66, 19),
            nn.Tanh(),
            nn.Linear(19, 27),
        ],
        vocab=27,
        block_size=4,
        seed=5,
        dtype="float64",
    )
    X = rng.integers(0, 27, (57, 4)).astype(np.int32)
    Y = rng.integers(0, 27, 57).astype(np.int32)
    return [mlp, seq], X, Y


def torch_stats(model, X, Y):
    """The lecture's notebook: every Tanh's output with retain_grad(), after loss.backward()."""
    m = ref.torch_layers(
        model.layers,
        {
            k: a
            for k, a in zip([_layer_name(model, n) for n in model.param_names], model.get_params().values())
        },
        torch.float64,
    )
    m.train()
    x = torch.as_tensor(X).long()
    outs = []
    for i, layer in enumerate(m):
        x = layer(x)
        if isinstance(layer, ref._layer_modules()["Tanh"]):
            x.retain_grad()
            outs.append((i, x))
    loss = torch.nn.functional.cross_entropy(x, torch.as_tensor(Y).long())
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in m.named_parameters()}
    data = {k: p.detach().numpy() for k, p in m.named_parameters()}
    return float(loss), outs, grads, data


def _layer_name(model, name):
    """The torch module's name of a parameter: an MLP's C, W1, b1 ... are 0.weight, 2.weight, 2.bias ..."""
    if not isinstance(model, mm.MLP):
        return name
    table = mm.nn.Sequential(model.layers, vocab=model.vocab_size, block_size=model.block_size).param_names
    return dict(zip(model.param_names, table))[name]


@pytest.mark.parametrize("which", [0, 1], ids=["mlp", "sequential"])
def test_diagnose_matches_torch_retain_grad(which):
    mods, X, Y = models()
    model = mods[which]
    before = {k: a.copy() for k, a in model.get_params().items()}
    stats = mm.diagnose(model, X, Y)
    loss, outs, grads, data = torch_stats(model, X, Y)
    assert abs(stats["loss"] - loss) <= 1e-12 * loss
    assert [a["layer"] for a in stats["activations"]] == [i for i, _ in outs]
    for a, g, (_, t) in zip(stats["activations"], stats["gradients"], outs):
        t_ = t.detach().numpy()
        assert a["mean"] == pytest.approx(t_.mean(), rel=1e-10, abs=1e-14)
        assert a["std"] == pytest.approx(t.std().item(), rel=1e-10)
        assert a["saturated"] == (np.abs(t_) > 0.97).mean()
        assert a["hist"] == np.histogram(t_, bins=np.linspace(-1, 1, 101))[0].tolist()
        gr = t.grad.numpy()
        assert g["mean"] == pytest.approx(gr.mean(), rel=1e-9, abs=1e-14 * np.abs(gr).max())
        assert g["std"] == pytest.approx(t.grad.std().item(), rel=1e-9)
        assert g["hist"] == np.histogram(gr, bins=100)[0].tolist()
    for name, p in stats["params"].items():
        tname = _layer_name(model, name)
        ratio = grads[tname].std(ddof=1) / data[tname].std(ddof=1)
        assert p["grad_data_ratio"] == pytest.approx(ratio, rel=1e-9), name
        assert p["shape"] == list(data[tname].shape)
    assert {k: a.tobytes() for k, a in model.get_params().items()} == {
        k: a.tobytes() for k, a in before.items()
    }


@pytest.mark.parametrize(
    "opt",
    [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(optimizer="adamw", lr=3e-3, weight_decay=0.01)],
    ids=["sgd", "momentum", "adamw"],
)
def test_update_ratios_are_those_of_the_parameters_before_and_after(opt):
    mods, X, Y = models()
    for model in mods:
        model32 = model.copy()
        hist = mm.train(model, X, Y, 25, batch_size=16, diagnostics_every=10, **opt)
        d = hist.diagnostics
        assert d.update_ratio.shape == (25, len(model.trained_names))
        assert list(d.steps) == list(range(25))
        assert [s for s, _ in d.records] == [0, 10, 20]
        # the same run step by step, the ratio from the parameters themselves
        state = None
        for s in range(25):
            before = model32.get_params()
            state = mm.train(model32, X, Y, 1, batch_size=16, state=state, **opt).state
            after = model32.get_params()
            for j, name in enumerate(model.trained_names):
                want = np.log10((after[name] - before[name]).std(ddof=1) / after[name].std(ddof=1))
                assert d.update_ratio[s, j] == pytest.approx(want, abs=1e-9), (s, name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "n_hidden, threads, batch_size",
    [(37, 1, 16), (523, 1, 16), (523, 2, 300), (200, 2, 512)],
    ids=["one-block", "column-blocks", "column-blocks-2-threads", "separate-update-2-threads"],
)
def test_update_ratios_of_plain_sgd_inside_the_backward_pass(dtype, n_hidden, threads, batch_size):
    """Plain SGD on one hidden layer updates each block of parameters inside the backward pass and
    takes the update's sums there (in the blocks' tiles; 523 units: two column blocks, on one thread
    or split between two); with two threads and no column blocks, in a pass of its own. Each step's
    ratio against the one from the parameters before and after it (float32 sums each lane in
    float32: within 5e-7 in log10, about 1e-6 of the ratio; 3e-8 seen)."""
    rng = np.random.default_rng(n_hidden)
    X = rng.integers(0, 27, (401, 3)).astype(np.int32)
    Y = rng.integers(0, 27, 401).astype(np.int32)
    model = mm.MLP(27, block_size=3, n_embd=7, n_hidden=n_hidden, seed=4, dtype=dtype, init="kaiming")
    copy = model.copy()
    before_threads = mm.get_num_threads()
    mm.set_num_threads(threads)
    try:
        hist = mm.train(model, X, Y, 12, batch_size=batch_size, lr=0.1, diagnostics_every=5)
        state = None
        for s in range(12):
            before = copy.get_params()
            state = mm.train(copy, X, Y, 1, batch_size=batch_size, lr=0.1, state=state).state
            after = copy.get_params()
            for j, name in enumerate(copy.trained_names):
                u = after[name].astype(np.float64) - before[name]
                want = np.log10(u.std(ddof=1) / after[name].astype(np.float64).std(ddof=1))
                tol = 1e-9 if dtype == "float64" else 5e-7
                assert hist.diagnostics.update_ratio[s, j] == pytest.approx(want, abs=tol), (s, name)
    finally:
        mm.set_num_threads(before_threads)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_update_ratios_across_thread_counts(dtype):
    """The run is bit-identical at any thread count (parameters, losses, records); the update ratios
    are summed where each path updates (inside the backward pass on one thread, in a pass of its own
    on two, for this shape), so only their last bits may differ: within 1e-14 (float64) and 1e-6
    (float32) in log10, as docs/guarantees.md says."""
    rng = np.random.default_rng(11)
    X = rng.integers(0, 27, (700, 3)).astype(np.int32)
    Y = rng.integers(0, 27, 700).astype(np.int32)
    before_threads = mm.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            mm.set_num_threads(threads)
            model = mm.MLP(27, block_size=3, n_embd=7, n_hidden=200, seed=4, dtype=dtype)
            hist = mm.train(model, X, Y, 9, batch_size=512, lr=0.1, diagnostics_every=4)
            runs.append((model.get_params(), hist))
    finally:
        mm.set_num_threads(before_threads)
    (p1, h1), (p2, h2) = runs
    assert all(p1[k].tobytes() == p2[k].tobytes() for k in p1)
    assert h1.loss.tobytes() == h2.loss.tobytes()
    assert h1.diagnostics.records == h2.diagnostics.records
    tol = 1e-14 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(h1.diagnostics.update_ratio, h2.diagnostics.update_ratio, rtol=0, atol=tol)


def test_diagnostics_do_not_change_training():
    mods, X, Y = models()
    for model in mods:
        a, b = model.copy(), model.copy()
        ha = mm.train(a, X, Y, 40, batch_size=16, lr=0.1, dropout=0.1)
        hb = mm.train(b, X, Y, 40, batch_size=16, lr=0.1, dropout=0.1, diagnostics_every=7)
        assert ha.loss.tobytes() == hb.loss.tobytes()
        assert [x.tobytes() for x in a.get_params().values()] == [
            x.tobytes() for x in b.get_params().values()
        ]
        # each record is diagnose() of its step's minibatch, with its dropout masks
        step, rec = hb.diagnostics.records[1]
        rows = ref.batch_indices(0, 1, 16, len(X), step0=step)[0]
        c = model.copy()
        mm.train(c, X, Y, step, batch_size=16, lr=0.1, dropout=0.1)
        again = mm.diagnose(c, X[rows], Y[rows], dropout=0.1, seed=0, step=step)
        assert again == rec


def _model(kind, dtype):
    """Plain SGD with statistics updates the one-hidden-layer MLP inside the backward pass (its
    sums also the finite check); the two-layer MLP and a layer list in a pass of its own."""
    if kind == "layers":
        return nn.Sequential(
            [nn.Embedding(27, 7), nn.Flatten(), nn.Linear(21, 37), nn.Tanh(), nn.Linear(37, 27)],
            vocab=27,
            block_size=3,
            seed=3,
            dtype=dtype,
        )
    hidden = 37 if kind == "fused" else (37, 20)
    return mm.MLP(27, block_size=3, n_embd=7, n_hidden=hidden, seed=3, dtype=dtype, init="kaiming")


def _runs(kind, dtype, lr, params=None, steps=12):
    """The same run without and with diagnostics."""
    rng = np.random.default_rng(7)
    X = rng.integers(0, 27, (300, 3)).astype(np.int32)
    Y = rng.integers(0, 27, 300).astype(np.int32)
    runs = []
    for every in (None, 5):
        model = _model(kind, dtype)
        if params:
            model.set_params(params(model.get_params()))
        h = mm.train(model, X, Y, steps, batch_size=16, lr=lr, diagnostics_every=every, on_divergence="stop")
        runs.append((model.get_params(), h))
    return runs


KINDS = ["fused", "separate", "layers"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diagnostics_do_not_change_a_plain_sgd_run(kind, dtype):
    (p1, h1), (p2, h2) = _runs(kind, dtype, 0.1)
    assert h1.loss.tobytes() == h2.loss.tobytes()
    assert all(p1[k].tobytes() == p2[k].tobytes() for k in p1)
    assert [s for s, _ in h2.diagnostics.records] == [0, 5, 10]


@pytest.mark.parametrize("kind", KINDS)
def test_diagnostics_stop_where_the_run_without_them_stops(kind):
    """An lr beyond float32 makes the update of step 6 non-finite: both runs stop there, keeping the
    parameters after step 5, with the same message."""
    lr = np.full(12, 0.1)
    lr[6] = 1e300
    (p1, h1), (p2, h2) = _runs(kind, "float32", lr)
    assert h1.stopped is not None and "made a parameter non-finite" in h1.stopped
    assert h2.stopped == h1.stopped
    assert len(h2.loss) == len(h1.loss) == 6
    assert h1.loss.tobytes() == h2.loss.tobytes()
    assert all(p1[k].tobytes() == p2[k].tobytes() for k in p1)
    assert all(np.isfinite(a).all() for a in p2.values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype, big", [("float32", 3e37), ("float64", 1.5e307)])
def test_an_overflowing_update_sum_with_finite_parameters_does_not_stop_the_run(kind, dtype, big):
    """The first hidden layer's weight near the largest float: its sum overflows while every
    parameter is finite. The run goes on as the run without diagnostics does."""

    def huge(p):
        name = [k for k, a in p.items() if a.ndim == 2][1]  # the Linear after the embedding
        p[name] = np.where(p[name] >= 0, big, -big).astype(dtype)
        p[name][0] = big  # the sum of a row, and of every lane, beyond the largest float
        return p

    (p1, h1), (p2, h2) = _runs(kind, dtype, 1e-3, huge)
    assert h1.stopped is None and h2.stopped is None
    assert len(h2.loss) == 12
    assert h1.loss.tobytes() == h2.loss.tobytes()
    assert all(p1[k].tobytes() == p2[k].tobytes() for k in p1)


def test_the_lectures_initialisation_saturates_and_kaimings_does_not():
    """Part 3's first finding. With W1 N(0, 1) the pre-activations of 30 inputs of unit variance
    spread over about N(0, 30): most Tanh outputs are beyond 0.97. With (5/3)/sqrt(30) they are
    about N(0, (5/3)^2): |t| > 0.97 needs |x| > 2.09, 21% of them."""
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words[:2000], vocab, 3)
    sat = {}
    for init in ("lecture", "kaiming"):
        model = mm.MLP(vocab, init=init, seed=1)
        sat[init] = mm.diagnose(model, X[:32], Y[:32])["activations"][0]["saturated"]
    assert sat["lecture"] > 0.6 and 0.15 < sat["kaiming"] < 0.3, sat


def test_diagnose_refuses_what_it_cannot_measure():
    mods, X, Y = models()
    with pytest.raises(ValueError, match="at least 2 rows"):
        mm.diagnose(mods[0], X[:1], Y[:1])
    with pytest.raises(TypeError, match="model must be"):
        mm.diagnose("model", X, Y)
    with pytest.raises(ValueError, match="diagnostics_every must be >= 1"):
        mm.train(mods[0], X, Y, 5, diagnostics_every=0)


def _awkward_values(rng, n, dtype):
    """n values with those that test a histogram's edges: the edges of 100 bins on [-1, 1] and
    their float neighbours, the saturation threshold's neighbours, the ends, repeats."""
    edges = np.linspace(-1, 1, 101)
    special = np.concatenate(
        [edges, np.nextafter(edges, 2), np.nextafter(edges, -2), [0.97, -0.97, 1.0, -1.0, 0.0, -0.0]]
    ).astype(dtype)
    pick = rng.random(n) < 0.3
    out = rng.uniform(-1.05, 1.05, n).astype(dtype)
    out[pick] = rng.choice(special, int(pick.sum()))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_summarize_is_numpys_statistics(dtype):
    """The core's statistics (cpp/stats.cpp) against NumPy on the array as float64: the mean and
    std within rounding, the saturation count and every histogram count exactly (fixed [-1, 1]
    and fitted ranges), on odd sizes and values on and beside the edges."""
    rng = np.random.default_rng()
    for n in [2, 3, 5, 7, 11, 97, 1001, 6403]:
        for scale in [1.0, 1e-7, 3e4]:
            a = _awkward_values(rng, n, dtype) * dtype(scale)
            a64 = a.astype(np.float64)
            for lo, hi in [(-1.0, 1.0), (None, None)]:
                mean, std, beyond, counts, edges = _core.summarize(a, lo, hi, 0.97, 100)
                want, want_edges = np.histogram(a64, bins=100, range=None if lo is None else (lo, hi))
                assert counts.tolist() == want.tolist(), (n, scale, lo)
                assert edges.tobytes() == want_edges.tobytes(), (n, scale, lo)
                assert beyond == np.count_nonzero(np.abs(a64) > 0.97)
                assert mean == pytest.approx(a64.mean(), rel=1e-12, abs=1e-15 * np.abs(a64).max())
                assert std == pytest.approx(a64.std(ddof=1), rel=1e-12)


def test_summarize_degenerate_arrays():
    """A constant array (NumPy widens the range by 0.5 each way), and one with a NaN: no counts,
    NaN edges for a fitted range, NaN mean and std."""
    for c in [0.0, -3.25, 1.0]:
        a = np.full(9, c)
        _, std, _, counts, edges = _core.summarize(a, None, None, 0.97, 100)
        want, want_edges = np.histogram(a, bins=100)
        assert counts.tolist() == want.tolist() and edges.tobytes() == want_edges.tobytes()
        assert std == 0.0
    a = np.array([0.5, np.nan, -0.25], dtype=np.float32)
    mean, std, _, counts, edges = _core.summarize(a, None, None, 0.97, 100)
    assert np.isnan(mean) and np.isnan(std) and counts.sum() == 0 and np.isnan(edges).all()
    _, _, _, counts, _ = _core.summarize(a, -1.0, 1.0, 0.97, 100)
    assert counts.sum() == 2  # NaN left out, as np.histogram with a range leaves it out
