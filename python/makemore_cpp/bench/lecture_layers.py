"""The lecture's layer classes (makemore part 5, "building a WaveNet"), as the lecture writes them,
in PyTorch eager float32; the models of parts 3 and 5 as layer lists; the lecture's training loop.

A model is described once as a spec, a list of (class name, args, kwargs), from which the PyTorch
model here, the JAX model (jax_models.py) and ours (`makemore_cpp.nn`) are all built. Parameters
travel as one dict with the keys of `nn.Sequential.get_params()`: "{i}.weight", "{i}.bias",
"{i}.gamma", "{i}.beta", "{i}.running_mean", "{i}.running_var" (i the layer's index)."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- the lecture's classes
# Verbatim from the lecture's notebook (part 5), but for formatting.


class Linear:
    def __init__(self, fan_in, fan_out, bias=True):
        self.weight = torch.randn((fan_in, fan_out)) / fan_in**0.5  # note: kaiming init
        self.bias = torch.zeros(fan_out) if bias else None

    def __call__(self, x):
        self.out = x @ self.weight
        if self.bias is not None:
            self.out += self.bias
        return self.out

    def parameters(self):
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d:
    def __init__(self, dim, eps=1e-5, momentum=0.1):
        self.eps = eps
        self.momentum = momentum
        self.training = True
        # parameters (trained with backprop)
        self.gamma = torch.ones(dim)
        self.beta = torch.zeros(dim)
        # buffers (trained with a running 'momentum update')
        self.running_mean = torch.zeros(dim)
        self.running_var = torch.ones(dim)

    def __call__(self, x):
        # calculate the forward pass
        if self.training:
            if x.ndim == 2:
                dim = 0
            elif x.ndim == 3:
                dim = (0, 1)
            xmean = x.mean(dim, keepdim=True)  # batch mean
            xvar = x.var(dim, keepdim=True)  # batch variance
        else:
            xmean = self.running_mean
            xvar = self.running_var
        xhat = (x - xmean) / torch.sqrt(xvar + self.eps)  # normalize to unit variance
        self.out = self.gamma * xhat + self.beta
        # update the buffers
        if self.training:
            with torch.no_grad():
                self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * xmean
                self.running_var = (1 - self.momentum) * self.running_var + self.momentum * xvar
        return self.out

    def parameters(self):
        return [self.gamma, self.beta]


class Tanh:
    def __call__(self, x):
        self.out = torch.tanh(x)
        return self.out

    def parameters(self):
        return []


class Embedding:
    def __init__(self, num_embeddings, embedding_dim):
        self.weight = torch.randn((num_embeddings, embedding_dim))

    def __call__(self, IX):
        self.out = self.weight[IX]
        return self.out

    def parameters(self):
        return [self.weight]


class Flatten:
    def __call__(self, x):
        self.out = x.view(x.shape[0], -1)
        return self.out

    def parameters(self):
        return []


class FlattenConsecutive:
    def __init__(self, n):
        self.n = n

    def __call__(self, x):
        B, T, C = x.shape
        x = x.view(B, T // self.n, C * self.n)
        if x.shape[1] == 1:
            x = x.squeeze(1)
        self.out = x
        return self.out

    def parameters(self):
        return []


class Sequential:
    def __init__(self, layers):
        self.layers = layers

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        self.out = x
        return self.out

    def parameters(self):
        # get parameters of all layers and stretch them out into one list
        return [p for layer in self.layers for p in layer.parameters()]


CLASSES = {c.__name__: c for c in (Linear, BatchNorm1d, Tanh, Embedding, Flatten, FlattenConsecutive)}
TENSORS = ("weight", "bias", "gamma", "beta", "running_mean", "running_var")

# ----------------------------------------------------------------------------- building


def build(spec: list, params: dict | None = None) -> Sequential:
    """The lecture's model for spec, its tensors replaced by params' (float32) when given, the
    trained ones with requires_grad as the lecture sets them."""
    layers = [CLASSES[kind](*args, **kw) for kind, args, kw in spec]
    if params is not None:
        for i, layer in enumerate(layers):
            for name in TENSORS:
                if f"{i}.{name}" in params:
                    a = np.array(params[f"{i}.{name}"], dtype=np.float32)
                    setattr(layer, name, torch.from_numpy(a))
    model = Sequential(layers)
    for p in model.parameters():
        p.requires_grad = True
    return model


def get_params(model: Sequential) -> dict:
    """The model's tensors as float32 arrays under the keys of nn.Sequential.get_params()."""
    out = {}
    for i, layer in enumerate(model.layers):
        for name in TENSORS:
            t = getattr(layer, name, None)
            if t is not None:  # the running statistics as (dim,): the lecture's keep the batch's dims
                a = t.detach().numpy().copy()
                out[f"{i}.{name}"] = a.reshape(-1) if name.startswith("running") else a
    return out


def lecture_params(spec: list, seed: int = 42) -> dict:
    """The lecture's initialisation: torch.manual_seed(seed), the classes' own init, then the last
    layer's weight times 0.1 (`with torch.no_grad(): model.layers[-1].weight *= 0.1`)."""
    torch.manual_seed(seed)
    model = Sequential([CLASSES[kind](*args, **kw) for kind, args, kw in spec])
    with torch.no_grad():
        model.layers[-1].weight *= 0.1
    return get_params(model)


def num_params(model: Sequential) -> int:
    return sum(p.nelement() for p in model.parameters())


def set_training(model: Sequential, mode: bool) -> None:
    for layer in model.layers:
        if isinstance(layer, BatchNorm1d):
            layer.training = mode


# ----------------------------------------------------------------------------- the training loop


def lecture_steps(model: Sequential, X: np.ndarray, Y: np.ndarray, batch_size: int = 32, lr: float = 0.1):
    """run(k): k steps of the lecture's loop (part 5), minibatch rows from a seeded generator."""
    Xt, Yt = torch.tensor(X, dtype=torch.long), torch.tensor(Y, dtype=torch.long)
    parameters = model.parameters()
    g = torch.Generator().manual_seed(2147483647)

    def run(k: int, lr_at=None, step0: int = 0) -> None:
        for i in range(step0, step0 + k):
            # minibatch construct
            ix = torch.randint(0, Xt.shape[0], (batch_size,), generator=g)
            Xb, Yb = Xt[ix], Yt[ix]  # batch X,Y
            # forward pass
            logits = model(Xb)
            loss = F.cross_entropy(logits, Yb)  # loss function
            # backward pass
            for p in parameters:
                p.grad = None
            loss.backward()
            # update: simple SGD
            rate = lr if lr_at is None else lr_at(i)
            for p in parameters:
                p.data += -rate * p.grad

    return run


def split_loss(model: Sequential, X: np.ndarray, Y: np.ndarray) -> float:
    """The loss over a split in evaluation mode (running statistics), as the lecture evaluates."""
    set_training(model, False)
    try:
        with torch.no_grad():
            logits = model(torch.tensor(X, dtype=torch.long))
            return float(F.cross_entropy(logits, torch.tensor(Y, dtype=torch.long)))
    finally:
        set_training(model, True)


def lecture_run(spec: list, params: dict, sp: dict, steps: int, drop_at: int) -> dict:
    """The lecture's run: `steps` SGD steps of 32 at 0.1, then 0.01 from `drop_at`; train/dev loss."""
    t0 = time.perf_counter()
    model = build(spec, params)
    Xtr, Ytr = sp["train"]
    run = lecture_steps(model, Xtr, Ytr, 32)
    run(steps, lr_at=lambda i: 0.1 if i < drop_at else 0.01)
    train_seconds = time.perf_counter() - t0
    losses = {name: split_loss(model, *sp[name]) for name in ("train", "dev")}
    return {
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "steps": steps,
        "losses": losses,
        "params": num_params(model),
    }
