"""Torch interop: ``model.to_torch()`` is an ``nn.Module`` of the same model with the same weights,
and ``mm.MLP.from_torch`` takes a module, a state dict, or the lecture notebook's dict of tensors.

Logits agree to 1e-6 (float32) and 1e-12 (float64) relative to their scale: the largest
difference is at most tol * max(1, max |logit|). (The lecture's N(0, 1) initialisation gives
logits of size ~50, whose float32 rounding alone is ~5e-6.)"""

from __future__ import annotations

import numpy as np
import pytest

import makemore_cpp as mm

torch = pytest.importorskip("torch")

TOL = {"float32": 1e-6, "float64": 1e-12}
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}


@pytest.fixture(scope="module")
def data():
    words = mm.load_names()
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words[:3000], vocab, block_size=3)
    return vocab, X, Y


def assert_logits_close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(a).max()))
    assert np.abs(a - b).max() <= TOL[dtype] * scale, (np.abs(a - b).max(), scale)


def torch_logits(module, X):
    with torch.no_grad():
        return module(torch.as_tensor(X, dtype=torch.long)).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("init", ["lecture", "kaiming"])
def test_to_torch_is_the_same_model(data, dtype, init):
    vocab, X, Y = data
    model = mm.MLP(vocab, block_size=3, n_embd=10, n_hidden=200, seed=5, init=init, dtype=dtype)
    mm.train(model, X, Y, 200, lr=0.05, seed=1)  # not just the initial weights
    module = model.to_torch()
    assert isinstance(module, torch.nn.Module)
    assert [name for name, _ in module.named_parameters()] == ["C", "W1", "b1", "W2", "b2"]
    for name, p in module.named_parameters():
        assert p.dtype == TORCH_DTYPE[dtype] and p.requires_grad
        np.testing.assert_array_equal(p.detach().numpy(), model.get_params()[name])
    assert_logits_close(torch_logits(module, X), model.logits(X), dtype)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(
            module(torch.as_tensor(X, dtype=torch.long)), torch.as_tensor(Y, dtype=torch.long)
        ).item()
    assert loss == pytest.approx(model.loss(X, Y), rel=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(data, dtype):
    vocab = data[0]
    model = mm.MLP(vocab, block_size=4, n_embd=6, n_hidden=(32, 16), seed=2, init="kaiming", dtype=dtype)
    back = mm.MLP.from_torch(model.to_torch(), vocab=vocab, dtype=dtype)
    # the same shapes and weights (how they were first drawn, seed and init, is not in the weights)
    assert dict(back.config(), seed=0, init="") == dict(model.config(), seed=0, init="")
    for name, a in model.get_params().items():
        np.testing.assert_array_equal(back.get_params()[name], a)
    X4, _ = mm.build_dataset(mm.load_names()[:500], vocab, block_size=4)
    np.testing.assert_array_equal(back.logits(X4), model.logits(X4))
    assert back.sample(10, seed=3) == model.sample(10, seed=3)
    # from a state dict, too
    again = mm.MLP.from_torch(model.to_torch().state_dict(), vocab=vocab, dtype=dtype)
    for name, a in model.get_params().items():
        np.testing.assert_array_equal(again.get_params()[name], a)


def test_a_module_trained_in_torch_comes_back(data):
    """Train a step in torch on the exported module; the model that comes back has the new weights."""
    vocab, X, Y = data
    model = mm.MLP(vocab, seed=0, dtype="float64")
    module = model.to_torch()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(
        module(torch.as_tensor(X[:32], dtype=torch.long)), torch.as_tensor(Y[:32], dtype=torch.long)
    )
    loss.backward()
    opt.step()
    back = mm.MLP.from_torch(module, vocab=vocab, dtype="float64")
    mine = model.copy()
    mm.train(mine, X, Y, 1, batch_size=32, lr=0.1, batch_indices=np.arange(32)[None, :])
    for name, a in mine.get_params().items():
        np.testing.assert_allclose(back.get_params()[name], a, rtol=0, atol=1e-12)


def test_the_lecture_notebooks_dict_loads(data):
    """The notebook's parameters: tensors C, W1, b1, W2, b2 made with torch.randn and a generator,
    kept in a dict; its forward pass is ``emb = C[X]; h = tanh(emb.view(-1, 30) @ W1 + b1);
    logits = h @ W2 + b2``."""
    vocab, X, Y = data
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, 27), generator=g)
    b2 = torch.randn(27, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    model = mm.MLP.from_torch({"C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2}, vocab=vocab)
    assert (model.block_size, model.n_embd, model.n_hidden, model.vocab_size) == (3, 10, (200,), 27)
    assert model.num_params == sum(p.nelement() for p in parameters) == 11897
    Xt = torch.as_tensor(X, dtype=torch.long)
    with torch.no_grad():
        emb = C[Xt]
        h = torch.tanh(emb.view(-1, 30) @ W1 + b1)
        logits = h @ W2 + b2
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(Y, dtype=torch.long)).item()
    assert_logits_close(logits.numpy(), model.logits(X), "float32")
    assert model.loss(X, Y) == pytest.approx(loss, rel=1e-5)
    assert all(isinstance(name, str) for name in model.sample(5))
    # float64 tensors load as float64 when asked, and agree to 1e-12
    d64 = {k: t.detach().double() for k, t in zip(["C", "W1", "b1", "W2", "b2"], parameters)}
    m64 = mm.MLP.from_torch(d64, vocab=vocab, dtype="float64")
    with torch.no_grad():
        ref = torch.tanh(d64["C"][Xt].view(-1, 30) @ d64["W1"] + d64["b1"]) @ d64["W2"] + d64["b2"]
    assert_logits_close(ref.numpy(), m64.logits(X), "float64")
    # without a vocabulary: the size comes from C, and sampling text needs a Vocab
    bare = mm.MLP.from_torch({"C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2})
    assert bare.vocab_size == 27 and bare.vocab is None
    with pytest.raises(ValueError):
        bare.sample(1)


def test_from_torch_rejects_what_does_not_fit():
    C = torch.randn(27, 10)
    with pytest.raises(ValueError):
        mm.MLP.from_torch({"W1": torch.randn(30, 200)})
    with pytest.raises(ValueError):  # W1's rows are not block_size * n_embd
        mm.MLP.from_torch(
            {
                "C": C,
                "W1": torch.randn(31, 200),
                "b1": torch.randn(200),
                "W2": torch.randn(200, 27),
                "b2": torch.randn(27),
            }
        )
    with pytest.raises(ValueError):  # b1 has the wrong length
        mm.MLP.from_torch(
            {
                "C": C,
                "W1": torch.randn(30, 200),
                "b1": torch.randn(100),
                "W2": torch.randn(200, 27),
                "b2": torch.randn(27),
            }
        )
    with pytest.raises(ValueError):  # non-finite weights
        bad = torch.randn(200, 27)
        bad[0, 0] = float("nan")
        mm.MLP.from_torch(
            {"C": C, "W1": torch.randn(30, 200), "b1": torch.randn(200), "W2": bad, "b2": torch.randn(27)}
        )


def test_checkpoint_of_a_torch_model(tmp_path, data):
    """A model from torch saves and loads like any other."""
    from makemore_cpp.checkpoint import load, save

    vocab, X, _ = data
    module = mm.MLP(vocab, seed=4).to_torch()
    model = mm.MLP.from_torch(module, vocab=vocab)
    save(tmp_path / "m.npz", model)
    back = load(tmp_path / "m.npz").model
    assert_logits_close(torch_logits(module, X), back.logits(X), "float32")
