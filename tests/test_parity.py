"""The core against the PyTorch reference (float64): losses, every gradient, whole training
trajectories, every optimizer, dropout, initialisation, evaluation and sampling, on every
instruction set this CPU has; on the lecture's shapes, the ends of the ranges, and shapes drawn at
random with every size odd, never a multiple of a vector width."""

from __future__ import annotations

import numpy as np
import pytest

import makemore_cpp as mm
from makemore_cpp import reference as ref

torch = pytest.importorskip("torch")

TOL_GRAD = {"float64": 1e-10, "float32": 1e-5}
TOL_TRAJ = {"float64": 1e-9, "float32": 1e-4}


def rel_err(ours: dict, theirs: dict) -> float:
    """Largest error of any tensor relative to that tensor's largest entry."""
    worst = 0.0
    for k, r in theirs.items():
        scale = max(float(np.abs(r).max()), 1e-300)
        worst = max(worst, float(np.abs(np.asarray(ours[k], np.float64) - r).max()) / scale)
    return worst


def check_final_params(ours: dict, theirs: dict, dtype: str) -> None:
    """A trajectory's final parameters within TOL_TRAJ of the reference's, relative to each
    tensor's largest entry (the README's figure, as for the losses)."""
    err = rel_err(ours, theirs)
    print(f"final parameters, {dtype}: {err:.3g}")
    assert err < TOL_TRAJ[dtype], (dtype, err)


def as64(params: dict) -> dict:
    return {k: a.astype(np.float64) for k, a in params.items()}


def odd(rng, lo: int, hi: int) -> int:
    """An odd number in [lo, hi] (lo odd): never a multiple of a vector width (4 to 16 lanes)."""
    return lo + 2 * int(rng.integers(0, (hi - lo) // 2 + 1))


def random_shapes(seed: int, n: int, deep: bool = False):
    """(V, block_size, n_embd, n_hidden, batch) drawn over the ranges the core must handle, every
    size odd."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        V, T, E = odd(rng, 3, 99), odd(rng, 1, 15), odd(rng, 1, 31)
        H = tuple(odd(rng, 1, 599) for _ in range(int(rng.integers(2, 4)))) if deep else odd(rng, 1, 599)
        yield V, T, E, H, odd(rng, 1, 999)


# Chosen: the lecture's shapes, and the ends of the ranges (vocabulary 2-100, block 1-16, n_embd
# 1-32, n_hidden 1-600, batch 1-1000), some of them whole vectors
EDGE_SHAPES = [
    (2, 1, 1, 1, 1),
    (27, 3, 10, 200, 32),
    (27, 3, 2, 100, 32),
    (3, 16, 32, 600, 1000),
    (100, 1, 1, 17, 33),
    (97, 5, 7, 15, 999),
    (28, 4, 9, 31, 17),
]


def check_gradients(V, T, E, H, B, dtype, init, seed):
    rng = np.random.default_rng(seed)
    model = mm.MLP(V, block_size=T, n_embd=E, n_hidden=H, seed=seed, init=init, dtype=dtype)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, B)
    loss, grads = model.loss_and_grad(X, Y)
    rloss, rgrads = ref.loss_and_grad(as64(model.get_params()), X, Y)
    assert set(grads) == set(rgrads) == set(model.param_names)
    for k, g in grads.items():
        assert g.shape == rgrads[k].shape and g.dtype == np.dtype(dtype)
    return abs(loss - rloss) / abs(rloss), rel_err(grads, rgrads)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_and_gradients_match_torch(isa, dtype):
    shapes = EDGE_SHAPES + list(random_shapes(1234 + len(isa), 14))
    worst = 0.0
    for i, (V, T, E, H, B) in enumerate(shapes):
        init = "lecture" if i % 2 == 0 else "kaiming"
        eloss, egrad = check_gradients(V, T, E, H, B, dtype, init, seed=i)
        worst = max(worst, eloss, egrad)
        assert eloss < TOL_GRAD[dtype], (isa, V, T, E, H, B, init, eloss)
        assert egrad < TOL_GRAD[dtype], (isa, V, T, E, H, B, init, egrad)
    print(f"{isa} {dtype}: worst relative error {worst:.2e}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_deep_models_match_torch(isa, dtype):
    """Several hidden layers (n_hidden a tuple), with the initialisation deep models are trained with."""
    worst = 0.0
    for i, (V, T, E, H, B) in enumerate(random_shapes(99, 6, deep=True)):
        eloss, egrad = check_gradients(V, T, E, H, B, dtype, "kaiming", seed=i)
        worst = max(worst, eloss, egrad)
        assert max(eloss, egrad) < TOL_GRAD[dtype], (isa, V, T, E, H, B, eloss, egrad)
    print(f"{isa} {dtype}, deep: worst relative error {worst:.2e}")


def test_deep_lecture_init_float32_as_accurate_as_torch_float32():
    """With N(0, 1) weights a deep float32 model is ill-conditioned (tanh layers of width ~500 take
    pre-activations of size ~20): torch's own float32 misses its float64 answer by up to ~1e-4.
    Ours must be as close to float64 as torch's float32 is."""
    rng = np.random.default_rng(5)
    for V, T, E, H, B in [(51, 10, 30, (328, 374, 492), 765), (54, 5, 29, (439, 370, 190), 232)]:
        model = mm.MLP(V, T, E, H, seed=3, init="lecture", dtype="float32")
        X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, B)
        loss, grads = model.loss_and_grad(X, Y)
        p32 = model.get_params()
        rloss, rgrads = ref.loss_and_grad(as64(p32), X, Y)
        m32 = ref.TorchMLP(p32, dtype=torch.float32)
        tl = torch.nn.functional.cross_entropy(m32(X), torch.as_tensor(Y))
        tl.backward()
        tgrads = {k: p.grad.double().numpy() for k, p in m32.named_parameters()}
        ours = max(abs(loss - rloss) / rloss, rel_err(grads, rgrads))
        theirs = max(abs(float(tl.detach()) - rloss) / rloss, rel_err(tgrads, rgrads))
        print(f"deep N(0, 1) float32: ours {ours:.2e}, torch's float32 {theirs:.2e}")
        assert ours < 3 * theirs + 1e-6, (ours, theirs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_is_stable_for_extreme_logits(isa, dtype):
    """Logits of +-1000 (float64) and +-100 (float32): finite and equal to the reference."""
    big = 1000.0 if dtype == "float64" else 100.0
    V, T, E, H, B = 29, 3, 4, 37, 41
    model = mm.MLP(V, T, E, H, seed=1, dtype=dtype)
    p = model.get_params()
    rng = np.random.default_rng(0)
    p["W2"] = p["W2"] * 0.01
    p["b2"] = rng.choice([-big, big, 0.5 * big], V)
    model.set_params(p)
    X, Y = rng.integers(0, V, (B, T)), rng.integers(0, V, B)
    loss, grads = model.loss_and_grad(X, Y)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())
    rloss, rgrads = ref.loss_and_grad(as64(model.get_params()), X, Y)
    assert abs(loss - rloss) / rloss < TOL_GRAD[dtype]
    assert rel_err(grads, rgrads) < TOL_GRAD[dtype]
    assert abs(model.loss(X, Y) - rloss) / rloss < TOL_GRAD[dtype]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(27, 3, 10, 200, 32), (31, 5, 7, 45, 19)])
def test_sgd_trajectory_replays_torch(isa, dtype, shape):
    """500 steps of the lecture's loop on given rows: every minibatch loss and the final parameters."""
    V, T, E, H, B = shape
    rng = np.random.default_rng(7)
    N = 3000
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)
    model = mm.MLP(V, T, E, H, seed=2, init="kaiming", dtype=dtype)
    p0 = as64(model.get_params())
    steps = 500
    bidx = rng.integers(0, N, (steps, B))
    lr = np.where(np.arange(steps) < 250, 0.1, 0.01)
    hist = mm.train(model, X, Y, steps=steps, batch_size=B, lr=lr, batch_indices=bidx)
    rlosses, rparams = ref.train_replay(p0, X, Y, lr, bidx)
    err = np.abs(hist.loss - rlosses) / np.abs(rlosses)
    assert err.max() < TOL_TRAJ[dtype], (isa, int(err.argmax()), float(err.max()))
    check_final_params(model.get_params(), rparams, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "hidden, opt",
    [(530, dict(optimizer="sgd")), (777, dict(optimizer="adamw", weight_decay=0.05, dropout=0.2))],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_column_blocks_replay_torch(isa, dtype, hidden, opt, threads):
    """One hidden layer of 530 or 777 units: the sums over the hidden units are taken in 2 or 3
    column blocks (cpp/common.h: kblocks), on 1 thread or split between 2 (with 3 blocks, 2 and 1):
    every minibatch loss and the final parameters against torch, with and without dropout."""
    V, T, E, B, N = 29, 6, 11, 40, 2000
    rng = np.random.default_rng(hidden)
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)
    model = mm.MLP(V, T, E, hidden, seed=5, init="kaiming", dtype=dtype)
    p0 = as64(model.get_params())
    lr = 3e-3 if opt["optimizer"] == "adamw" else 0.05
    before = mm.get_num_threads()
    mm.set_num_threads(threads)
    try:
        hist = mm.train(model, X, Y, steps=120, batch_size=B, lr=lr, seed=31, **opt)
    finally:
        mm.set_num_threads(before)
    rlosses, rparams = ref.train_replay(p0, X, Y, lr, steps=120, batch_size=B, seed=31, **opt)
    err = np.abs(hist.loss - rlosses) / np.abs(rlosses)
    assert err.max() < TOL_TRAJ[dtype], (isa, threads, int(err.argmax()), float(err.max()))
    check_final_params(model.get_params(), rparams, dtype)


def one_and_two_threads_replay_torch(isa, dtype, dropout, shape, lr, seeds):
    """Train a fresh model (V, T, E, H; batch B of N random rows) with plain SGD at 1 and at 2
    threads: the same bits at both, and the losses and final parameters replay torch.optim.SGD."""
    V, T, E, H, B, N = shape
    data_seed, model_seed, batch_seed = seeds
    rng = np.random.default_rng(data_seed)
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)
    got = {}
    before = mm.get_num_threads()
    try:
        for threads in (1, 2):
            mm.set_num_threads(threads)
            model = mm.MLP(V, T, E, H, seed=model_seed, init="kaiming", dtype=dtype)
            p0 = as64(model.get_params())
            hist = mm.train(model, X, Y, steps=len(lr), batch_size=B, lr=lr, seed=batch_seed, dropout=dropout)
            got[threads] = (hist.loss, model.get_params())
    finally:
        mm.set_num_threads(before)
    np.testing.assert_array_equal(got[1][0], got[2][0])
    for k, a in got[1][1].items():
        np.testing.assert_array_equal(a, got[2][1][k], err_msg=k)
    rlosses, rparams = ref.train_replay(
        p0, X, Y, lr, steps=len(lr), batch_size=B, seed=batch_seed, dropout=dropout
    )
    err = np.abs(got[1][0] - rlosses) / np.abs(rlosses)
    assert err.max() < TOL_TRAJ[dtype], (isa, int(err.argmax()), float(err.max()))
    check_final_params(got[1][1], rparams, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_plain_sgd_inside_the_step_replays_torch_and_the_separate_update(isa, dtype, dropout):
    """Plain SGD on a one-part step takes each parameter block's update inside the backward pass,
    after the products that read it (cpp/model.h). At 1 thread that is this path; at 2 threads a
    batch of 400 rows (2.1 M multiply-adds, over the 1.5 M from which a step is split: model.h,
    parts_for) is split in two parts and updated after the step, as every other optimizer is: the
    same bits, and both replay torch.optim.SGD (odd shapes, with and without dropout)."""
    lr = np.r_[np.full(40, 0.2), np.full(40, 0.05)]
    one_and_two_threads_replay_torch(
        isa, dtype, dropout, (29, 5, 7, 147, 400, 3000), lr, (int(dropout * 10) + 7, 6, 17)
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_plain_sgd_with_column_blocks_inside_the_step_replays_torch(isa, dtype, dropout):
    """With column blocks (one hidden layer of 530 units: 2 blocks, cpp/common.h: kblocks) plain SGD
    is also taken inside the backward pass, each thread updating its blocks' columns; on 2 threads
    a batch of 100 rows is a two-part step whose last phase prepares the next minibatches (the
    next one's contexts on one thread; the one after's rows and ids on the other, after it scatters
    dC and updates C: cpp/train.h). 1 and 2 threads give the same bits, and both replay
    torch.optim.SGD (odd shapes, with and without dropout)."""
    lr = np.r_[np.full(30, 0.1), np.full(30, 0.03)]
    one_and_two_threads_replay_torch(
        isa, dtype, dropout, (29, 6, 11, 530, 100, 3000), lr, (int(dropout * 10) + 11, 8, 19)
    )


def test_seeded_minibatches_are_the_documented_draws():
    """Without batch_indices the core draws row i of step s from (seed, s, i): the reference's
    NumPy twin of the generator reproduces the whole trajectory."""
    V, T, E, H, B, N = 27, 3, 10, 64, 32, 5000
    rng = np.random.default_rng(3)
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)
    model = mm.MLP(V, T, E, H, seed=4, dtype="float64")
    p0 = model.get_params()
    hist = mm.train(model, X, Y, steps=300, batch_size=B, lr=0.1, seed=12345)
    rlosses, rparams = ref.train_replay(p0, X, Y, 0.1, steps=300, batch_size=B, seed=12345)
    assert np.abs(hist.loss - rlosses).max() < 1e-9 * np.abs(rlosses).max()
    assert rel_err(model.get_params(), rparams) < 1e-9
    idx = ref.batch_indices(12345, 300, B, N)
    assert idx.min() >= 0 and idx.max() < N and len(np.unique(idx)) > 0.8 * min(N, idx.size)


OPTIMIZERS = [
    dict(optimizer="sgd", momentum=0.9),
    dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(optimizer="sgd", weight_decay=0.01),
    dict(optimizer="adamw", weight_decay=0.05, betas=(0.9, 0.99), eps=1e-8),
    dict(optimizer="adamw", weight_decay=0.0, dropout=0.2),
    dict(optimizer="sgd", dropout=0.5),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_optimizers_and_dropout_replay_torch_optim(dtype, opt):
    """Momentum, Nesterov, weight decay, AdamW and dropout against torch.optim with the same rows and
    the same dropout masks (drawn by the reference's twin of the core's generator), two hidden layers."""
    V, T, E, H, B, N = 23, 4, 6, (40, 19), 24, 2000
    rng = np.random.default_rng(11)
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)
    model = mm.MLP(V, T, E, H, seed=8, init="kaiming", dtype=dtype)
    p0 = as64(model.get_params())
    lr = 3e-3 if opt["optimizer"] == "adamw" else 0.05
    steps = 200
    hist = mm.train(model, X, Y, steps=steps, batch_size=B, lr=lr, seed=99, **opt)
    rlosses, rparams = ref.train_replay(p0, X, Y, lr, steps=steps, batch_size=B, seed=99, **opt)
    err = np.abs(hist.loss - rlosses) / np.abs(rlosses)
    assert err.max() < TOL_TRAJ[dtype], (int(err.argmax()), float(err.max()))
    check_final_params(model.get_params(), rparams, dtype)


def test_dropout_masks_are_the_documented_draws():
    masks = ref.dropout_masks(5, 17, [33, 21], 12, 0.3)
    for layer, m in enumerate(masks):
        core = mm._core.dropout_mask("float64", 5, 17, layer, 2, 12, m.shape[1], 0.3)
        np.testing.assert_array_equal(core, m)
        assert 0.55 < (m > 0).mean() < 0.85


@pytest.mark.parametrize("init", ["lecture", "kaiming"])
def test_initialisation_is_the_documented_draws(init):
    model = mm.MLP(29, block_size=4, n_embd=5, n_hidden=(33, 17), seed=77, init=init, dtype="float64")
    theirs = ref.init_params(29, 4, 5, (33, 17), seed=77, init=init)
    for k, a in model.get_params().items():
        np.testing.assert_allclose(a, theirs[k], rtol=1e-12, atol=1e-15)
    z = np.concatenate([ref.init_params(27, 3, 10, 200, seed=0)[k].ravel() for k in ("C", "W1", "W2")])
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02  # N(0, 1)


# (V, T, E, H, N): 41^6 contexts, too many to find the distinct ones by table: every row computed;
# 27^3 and 5^2: each distinct context computed once (nearly every row distinct; most rows repeats).
EVAL_SHAPES = [(41, 6, 11, (77, 30), 5001), (27, 3, 10, 200, 5001), (5, 2, 3, (19,), 5001)]


@pytest.mark.parametrize("shape", EVAL_SHAPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_evaluation_over_many_rows_matches_torch(isa, dtype, shape):
    V, T, E, H, N = shape
    rng = np.random.default_rng(2)
    model = mm.MLP(V, T, E, H, seed=5, init="kaiming", dtype=dtype)
    X, Y = rng.integers(0, V, (N, T)), rng.integers(0, V, N)
    p = as64(model.get_params())
    tol = TOL_GRAD[dtype]
    assert abs(model.loss(X, Y) - ref.loss(p, X, Y)) < tol * ref.loss(p, X, Y)
    lg, rlg = model.logits(X), ref.logits(p, X)
    assert lg.shape == (N, V) and lg.dtype == np.dtype(dtype)
    assert np.abs(lg - rlg).max() < tol * np.abs(rlg).max()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_repeated_contexts_keep_exact_zero_gradients(isa, dtype):
    """Training sums the dlogits of a minibatch's rows with one context before the backward pass.
    Where each row's gradient is exactly zero (one character: softmax is 1), so is the sum -- a
    shortcut such as count x softmax - (one per row) would leave rounding residue, and AdamW turns
    any nonzero gradient into a full step (the campaign found both)."""
    model = mm.MLP(1, 1, 1, 1, seed=0, dtype=dtype)
    X, Y = np.zeros((26, 1), np.int64), np.zeros(26, np.int64)
    loss, grads = model.loss_and_grad(X, Y)
    assert loss == 0.0
    for k, g in grads.items():
        assert not g.any(), (k, g)
    # and with the rows of the other contexts mixed in: still the reference's gradient
    V, rng = 5, np.random.default_rng(3)
    model = mm.MLP(V, 2, 3, 7, seed=1, dtype=dtype)
    X = np.repeat(rng.integers(0, V, (4, 2)), 9, axis=0)
    Y = rng.integers(0, V, len(X))
    loss, grads = model.loss_and_grad(X, Y)
    rloss, rgrads = ref.loss_and_grad(as64(model.get_params()), X, Y)
    assert abs(loss - rloss) < TOL_GRAD[dtype] * rloss and rel_err(grads, rgrads) < TOL_GRAD[dtype]
    # zero gradients and no weight decay: AdamW leaves every parameter where it was
    m1 = mm.MLP(1, 1, 1, 1, seed=0, dtype=dtype)
    p0 = m1.get_params()
    mm.train(
        m1,
        np.zeros((1, 1), int),
        np.zeros(1, int),
        steps=5,
        batch_size=3,
        optimizer="adamw",
        lr=0.5,
        weight_decay=0.0,
    )
    for k, a in m1.get_params().items():
        np.testing.assert_array_equal(a, p0[k])


@pytest.mark.parametrize("threads", [1, 2])
def test_distinct_contexts_give_the_every_row_results(isa, threads):
    """Evaluating each distinct context once gives bit for bit what computing every row gives:
    the 32-row loss sums and the logits, with and without Y, on random shapes and row counts
    (few to many repeats), float32 and float64; every block size from 1 to 8 (the core's context
    numbers are computed by a loop specialised for each block size up to 6, and a general one),
    with a vocabulary whose V^T contexts fit the core's table (at most 65,536), so that the
    distinct contexts are found."""
    rng = np.random.default_rng(77 + threads)
    before = mm.get_num_threads()
    mm.set_num_threads(threads)
    try:
        for i in range(16):
            T = 1 + i % 8
            V = int(rng.integers(2, min(40, int(round(65536 ** (1 / T)))) + 1))
            assert V**T <= 65536
            E, H = (
                int(rng.integers(1, 20)),
                tuple(int(rng.integers(1, 150)) for _ in range(int(rng.integers(1, 3)))),
            )
            N = int(rng.integers(1, 40000))
            dtype = ("float32", "float64")[i % 2]
            model = mm.MLP(V, T, E, H, seed=i, init="kaiming", dtype=dtype)
            # ids drawn unevenly, as characters are: many repeated contexts
            X = np.minimum(rng.geometric(0.3, (N, T)) - 1, V - 1).astype(np.int32)
            Y = rng.integers(0, V, N).astype(np.int32)
            a_loss, a_logits = model._m.evaluate(X, Y, True, True)
            b_loss, b_logits = model._m.evaluate(X, Y, True, False)
            np.testing.assert_array_equal(a_loss, b_loss)
            np.testing.assert_array_equal(a_logits, b_logits)
            assert a_logits.shape == (N, V)
            np.testing.assert_array_equal(model._m.evaluate(X, None, True, True)[1], b_logits)
            assert model._m.evaluate(X, Y, False, True)[1] is None
        # no rows (the package's loss() refuses them; the core returns nothing to sum)
        model = mm.MLP(27, 3, 10, 200, seed=1)
        X0, Y0 = np.zeros((0, 3), np.int32), np.zeros(0, np.int32)
        for dedup in (True, False):
            loss0, logits0 = model._m.evaluate(X0, Y0, True, dedup)
            assert np.size(loss0) == 0 and logits0.shape == (0, 27)
    finally:
        mm.set_num_threads(before)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(temperature=0.7),
        dict(temperature=1.5, top_k=5),
        dict(prefix=[3, 1]),
        dict(temperature=0),
        dict(max_len=4),
    ],
)
def test_sampling_is_the_documented_draws(isa, kw):
    """The core's sampler and the reference's (float64, one name and one character at a time, with
    the same draws) give the same names."""
    V = 27
    model = mm.MLP(V, 3, 10, 64, seed=1, init="kaiming", dtype="float64")
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, V, (2000, 3)), rng.integers(1, V, 2000)
    mm.train(model, X, Y, steps=200, lr=0.5)
    n = 50
    ids = model.sample_ids(n, seed=9, **kw)
    theirs = ref.sample(
        model.get_params(),
        n,
        seed=9,
        temperature=kw.get("temperature", 1.0),
        top_k=kw.get("top_k"),
        prefix=kw.get("prefix", ()),
        max_len=kw.get("max_len", 100),
    )
    ours = [list(row[row > 0]) for row in ids]
    assert ours == theirs


NEAR_TIE = 1e-5  # float32 logits are within 1e-5 of the reference's (test_loss_and_gradients_match_torch)


def near_tie(params: dict, ctx: list, i: int, k: int, seed: int, a: int, b: int, kw: dict) -> float:
    """How near the reference's draw of character k of name i (after the context ``ctx``) comes to
    choosing ``a`` instead of its ``b``, relative to the largest logit or to the sum of the weights:
    the draw's running sum of weights against the sum at the boundary between the two characters,
    or (temperature 0) the two logits against each other."""
    lg = ref._forward_np(params, np.array([ctx]))[0]
    T = kw.get("temperature", 1.0)
    if T == 0:
        return abs(lg[a] - lg[b]) / np.abs(lg).max()
    top_k = kw.get("top_k")
    thr = np.sort(lg)[::-1][top_k - 1] if top_k and top_k < len(lg) else -np.inf
    w = np.where(lg >= thr, np.exp((lg - lg.max()) / T), 0.0)
    cum = np.cumsum(w)
    u = float(ref.draw(ref.key(seed, ref.SAMPLE), [i * (1 << 20) + k])[0] >> np.uint64(11)) * 2.0**-53
    return abs(u * cum[-1] - cum[min(a, b)]) / cum[-1]


def float32_names_against_reference(model, n: int, seed: int, **kw) -> int:
    """A float32 model's names against the reference's sampler on its parameters converted to
    float64 (the same draws, keyed by (seed, name, character)). The float32 logits are the
    reference's to ~1e-6, so a name may differ only where the draw falls within that of the
    boundary between two characters: each name that differs is checked to differ first at such a
    near tie (within NEAR_TIE). Returns how many differ."""
    params = as64(model.get_params())
    ids = model.sample_ids(n, seed=seed, **kw)
    ours = [list(row[row > 0]) for row in ids]
    theirs = ref.sample(params, n, seed=seed, **kw)
    T = params["W1"].shape[0] // params["C"].shape[1]
    differ = 0
    for i, (x, y) in enumerate(zip(ours, theirs)):
        if x == y:
            continue
        differ += 1
        k = next(j for j in range(max(len(x), len(y))) if j >= min(len(x), len(y)) or x[j] != y[j])
        ctx = ([0] * T + x[:k])[-T:]
        a, b = (x + [0])[k], (y + [0])[k]
        gap = near_tie(params, ctx, i, k, seed, a, b, kw)
        assert gap <= NEAR_TIE, (i, k, x, y, gap)
    return differ


def test_float32_sampler_draws_the_reference_names(isa):
    """The default float32 model's sampler against the reference's (float64, one character at a
    time, on the float32 parameters converted), at temperatures 1, 0.7 with top_k 5, 1.3 and 0, with
    a prefix and without: by the batched forward passes (the lecture's model; 500 names, fewer than
    its 19,683 contexts) and by the table (V 13, context 2: 169 contexts; 400 names). The same names,
    but where float32 rounding meets a near tie of the draw (each one checked): measured, 0 of
    10,000 names of the lecture's model differ, and none of these."""
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 3)
    model = mm.MLP(vocab, 3, 10, 201, seed=1)
    assert model.dtype == "float32"
    mm.train(model, X, Y, steps=3000, lr=0.1)
    small = _trained_small(dtype="float32")
    differ = 0
    for kw in (dict(), dict(temperature=0.7, top_k=5), dict(temperature=1.3), dict(temperature=0)):
        for m, n, prefix in ((model, 500, ()), (model, 100, tuple(vocab.encode("ka"))), (small, 400, (3,))):
            differ += float32_names_against_reference(m, n, seed=3, prefix=prefix, **kw)
    assert differ <= 4, differ  # of 4,000 names: each a near tie, and rare


def test_sample_prefix_of_larger_draw():
    """Names are strings, a draw's first names those of a larger draw, a prefix starts each: the
    reference's names, decoded."""
    words = mm.load_names()[:2000]
    vocab = mm.Vocab.from_words(words)
    model = mm.MLP(vocab, n_hidden=51, dtype="float64")
    X, Y = mm.build_dataset(words, vocab)
    mm.train(model, X, Y, steps=500)
    a, b = model.sample(10, seed=3), model.sample(1000, seed=3)
    assert a == b[:10]
    params = model.get_params()
    assert b == ["".join(vocab.itos[c] for c in name) for name in ref.sample(params, 1000, seed=3)]
    assert all(isinstance(s, str) and "." not in s for s in b)
    ka = ref.sample(params, 20, seed=1, prefix=vocab.encode("ka"))
    assert model.sample(20, seed=1, prefix="ka") == ["".join(vocab.itos[c] for c in name) for name in ka]
    assert all(s.startswith("ka") for s in model.sample(20, seed=1, prefix="ka"))


def test_results_do_not_depend_on_thread_count():
    """Every sum is taken in one order whatever the split between threads: bit-identical results
    at 1 and 2 threads, for a configuration large enough to use both."""
    rng = np.random.default_rng(0)
    V, T, E, B, N = 27, 8, 24, 256, 20000
    X, Y = rng.integers(0, V, (N, T)) // 3, rng.integers(0, V, N)  # // 3: repeated contexts
    before = mm.get_num_threads()
    # two layers with dropout; one layer (its activations in per-thread panels), with and without
    # dropout, of a width whose vectors do not split evenly
    for H, dropout in (((256, 128), 0.1), (300, 0.0), (300, 0.1)):
        results = []
        try:
            for threads in (1, 2):
                mm.set_num_threads(threads)
                model = mm.MLP(V, T, E, H, seed=1, init="kaiming")
                hist = mm.train(
                    model, X, Y, steps=30, batch_size=B, lr=1e-3, optimizer="adamw", dropout=dropout
                )
                results.append(
                    (hist.loss.copy(), model.get_params(), model.loss(X, Y), model.sample_ids(300, seed=2))
                )
        finally:
            mm.set_num_threads(before)
        (l1, p1, e1, s1), (l2, p2, e2, s2) = results
        np.testing.assert_array_equal(l1, l2)
        for k in p1:
            np.testing.assert_array_equal(p1[k], p2[k])
        assert e1 == e2
        np.testing.assert_array_equal(s1, s2)
    # and evaluation by distinct contexts (a block size whose contexts fit a table); 3 threads on
    # this project's 2 CPUs: a late thread's share of the contexts may be taken over by another
    X3 = rng.integers(0, V, (200000, 3)) // 2
    losses = []
    try:
        for threads in (1, 2, 3):
            mm.set_num_threads(threads)
            losses.append(mm.MLP(V, 3, 10, 200, seed=1).loss(X3, Y[:1].repeat(200000)))
    finally:
        mm.set_num_threads(before)
    assert losses[0] == losses[1] == losses[2]


def test_same_seed_same_everything():
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 27, (4000, 3)), rng.integers(0, 27, 4000)
    runs = []
    for _ in range(2):
        model = mm.MLP(27, seed=5)
        h = mm.train(model, X, Y, steps=400, seed=8)
        runs.append((h.loss, model.get_params(), model.sample_ids(50, seed=1)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


@pytest.mark.parametrize(
    "kw", [dict(), dict(temperature=0.8, top_k=4), dict(temperature=0), dict(prefix=[2])]
)
def test_tabulated_sampling_draws_the_same_names(kw):
    """With few contexts (V^T) next to the names drawn, the sampler tabulates every context's
    distribution once; the names are the same as one character at a time."""
    V, T = 13, 2  # 169 contexts
    model = mm.MLP(V, T, 5, 40, seed=2, init="kaiming", dtype="float64")
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, V, (3000, T)), rng.integers(1, V, 3000)
    Y[::5] = 0
    mm.train(model, X, Y, steps=300, lr=0.5)
    many = model.sample_ids(400, seed=4, **kw)  # tabulated: 400 names > 169 contexts
    few = model.sample_ids(40, seed=4, **kw)  # one character at a time
    np.testing.assert_array_equal(many[:40], few)
    theirs = ref.sample(
        model.get_params(),
        40,
        seed=4,
        temperature=kw.get("temperature", 1.0),
        top_k=kw.get("top_k"),
        prefix=kw.get("prefix", ()),
    )
    assert [list(r[r > 0]) for r in few] == theirs


def _sampler_model(V, T, H, seed=2):
    model = mm.MLP(V, T, 5, H, seed=seed, init="kaiming", dtype="float64")
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, V, (3000, T)), rng.integers(1, V, 3000)
    Y[::5] = 0
    mm.train(model, X, Y, steps=200, lr=0.5)
    return model


def _core_names(model, n, temperature, top_k, prefix, max_len, threads, compact, calls=None):
    """The core's names 0 .. n-1 (seed 7), in one call or in calls of `calls` names."""
    before = mm.get_num_threads()
    mm.set_num_threads(threads)
    try:
        step = calls or n
        parts = [
            model._m.sample(
                7, a, min(step, n - a), temperature, top_k, np.array(prefix, np.int32), max_len, compact, None
            )
            for a in range(0, n, step)
        ]
    finally:
        mm.set_num_threads(before)
    return np.concatenate(parts)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "V, T, H",
    [(13, 2, 40), (27, 3, 64), (6, 3, 16), (40, 2, 16)],
    ids=["V13", "V27 T3: two parts", "V6: one line a row", "V40: five lines a row"],
)
@pytest.mark.parametrize(
    "kw",
    [
        dict(max_len=3),
        dict(prefix=[2, 5], max_len=2),
        dict(prefix=[4, 1, 3], max_len=7, temperature=1.7),
        dict(max_len=12, temperature=2.5, top_k=4),
        dict(temperature=0.0, max_len=20),
    ],
)
def test_tabulated_sampling_refills_lanes_and_windows_in_order(isa, threads, V, T, H, kw):
    """The tabulated sampler keeps several names in flight and starts the next as soon as one ends;
    names are drawn a window of 256 at a time, by one or two parts (V27 T3's table is large enough
    for two on 2 threads). With names cut by max_len or filled by the prefix, greedy or not, for rows
    of one to five cache lines of sums, every name is the one the per-character path draws (calls
    of fewer names than contexts), in order, the compact output is the rows' names one after
    another, and the names around the windows' and parts' ends are the reference's."""
    model = _sampler_model(V, T, H)
    n = V**T + 317  # one call of more names than contexts: tabulated
    args = (n, kw.get("temperature", 1.0), kw.get("top_k", 0), kw.get("prefix", ()), kw["max_len"], threads)
    rows = _core_names(model, *args, False)
    flat = _core_names(model, *args, True)
    np.testing.assert_array_equal(rows, _core_names(model, *args, False, calls=V**T - 1))
    names = [list(r[r > 0]) for r in rows]
    assert flat.tolist() == [i for name in names for i in name + [0]]
    picks = sorted({0, 255, 256, 511, 512, n // 2 - 1, n // 2, n - 1} & set(range(n)))
    theirs = [
        ref.sample(
            model.get_params(),
            1,
            seed=7,
            temperature=kw.get("temperature", 1.0),
            top_k=kw.get("top_k") or None,
            prefix=kw.get("prefix", ()),
            max_len=kw["max_len"],
            first=i,
        )[0]
        for i in picks
    ]
    assert [names[i] for i in picks] == theirs
    if kw["max_len"] <= 3:
        assert max(len(name) for name in names) == kw["max_len"]  # names cut by max_len


@pytest.mark.parametrize("threads", [1, 2])
def test_tabulated_sampling_with_long_names_draws_eight_at_a_time(isa, threads):
    """max_len of 2**15 and more: a window of 8 names (its staging rows are long)."""
    model = _sampler_model(6, 3, 16)
    args = (300, 2.5, 0, (), 40_000, threads)
    np.testing.assert_array_equal(_core_names(model, *args, True), _core_names(model, *args, True, calls=100))


def _trained_small(V=13, T=2, dtype="float64", seed=2):
    model = mm.MLP(V, T, 5, 40, seed=seed, init="kaiming", dtype=dtype)
    rng = np.random.default_rng(seed)
    X, Y = rng.integers(0, V, (3000, T)), rng.integers(1, V, 3000)
    Y[::5] = 0
    mm.train(model, X, Y, steps=200, lr=0.5)
    return model


def _core_sample(model, first, n, table=None, temperature=1.0, top_k=0, seed=6):
    return model._m.sample(seed, first, n, temperature, top_k, np.zeros(0, np.int32), 20, False, table)


@pytest.mark.parametrize("temperature, top_k", [(1.0, 0), (0.6, 4), (0.0, 0)])
def test_the_sampling_table_is_kept_between_calls_and_gives_the_same_names(isa, temperature, top_k):
    """sample() cuts its work into calls; the first that tabulates leaves its table to the next,
    which use it whatever their size (the last below is smaller than the 169 contexts): the same
    names as calls that each start afresh."""
    from makemore_cpp import _core

    model = _trained_small()
    table = _core.SampleTable()
    assert not table.filled
    ranges = [(0, 300), (300, 1000), (1000, 1007), (1007, 1500)]
    kept = [_core_sample(model, a, b - a, table, temperature, top_k) for a, b in ranges]
    assert table.filled
    fresh = [_core_sample(model, a, b - a, None, temperature, top_k) for a, b in ranges]
    for k, f in zip(kept, fresh):
        np.testing.assert_array_equal(k, f)
    # and through the public call, whose chunks share one table
    np.testing.assert_array_equal(
        model.sample_ids(1500, seed=6, temperature=temperature, top_k=top_k or None, max_len=20),
        np.concatenate(fresh)[:, :20],
    )


def test_a_sampling_table_that_no_longer_fits_is_made_again():
    """A table is used only with the parameters (byte for byte), instruction set, temperature and
    top_k it was made with; otherwise the call makes it again, and the names are a fresh call's."""
    from makemore_cpp import _core

    model = _trained_small()
    table = _core.SampleTable()
    _core_sample(model, 0, 400, table)
    assert table.filled
    before_change = _core_sample(model, 0, 400)
    # other parameters (the output layer negated: other names), the same shapes
    params = model.get_params()
    params["W2"] = -params["W2"]
    model.set_params(params)
    fresh = _core_sample(model, 0, 400)
    assert not np.array_equal(fresh, before_change)
    np.testing.assert_array_equal(_core_sample(model, 0, 400, table), fresh)
    # another temperature or top_k
    for kw in (dict(temperature=0.5), dict(top_k=2)):
        fresh = _core_sample(model, 0, 400, **kw)
        assert not np.array_equal(fresh, _core_sample(model, 0, 400))
        np.testing.assert_array_equal(_core_sample(model, 0, 400, table, **kw), fresh)
    # another model, of another shape and dtype
    other = _trained_small(V=11, T=2, dtype="float32", seed=5)
    np.testing.assert_array_equal(_core_sample(other, 0, 400, table), _core_sample(other, 0, 400))
    # another instruction set
    before = mm.get_isa()
    _core_sample(model, 0, 400, table)
    try:
        for name in ("avx512", "avx2", "generic"):
            if name != before and _core.isa_supported(name):
                mm.set_isa(name)
                np.testing.assert_array_equal(_core_sample(model, 0, 400, table), _core_sample(model, 0, 400))
                break
    finally:
        mm.set_isa(before)
