"""JAX's side: the same models, jitted, the training loop as a `lax.scan` of many steps.

Every function returns None when jax is not installed. XLA's thread count is set by the package's
__init__ (before jax is imported)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    return jax, jnp


def jax_mlp_steps(model, X: np.ndarray, Y: np.ndarray, batch_size: int, lr: float = 0.1):
    """The lecture's MLP step: (jit per step, jit over a lax.scan of k steps) as run(k) functions."""
    if _jax() is None:
        return None
    jax, jnp = _jax()
    params = tuple(jnp.asarray(a) for a in model.get_params().values())
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    N = X.shape[0]

    def loss_fn(p, xb, yb):
        C, W1, b1, W2, b2 = p
        h = jnp.tanh(C[xb].reshape(xb.shape[0], -1) @ W1 + b1)
        logp = jax.nn.log_softmax(h @ W2 + b2)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(p, key):
        key, sub = jax.random.split(key)
        ix = jax.random.randint(sub, (batch_size,), 0, N)
        loss, grads = jax.value_and_grad(loss_fn)(p, Xj[ix], Yj[ix])
        return tuple(a - lr * b for a, b in zip(p, grads)), key, loss

    step_jit = jax.jit(step)
    state = {"p": params, "key": jax.random.PRNGKey(0)}

    def per_step(k: int) -> None:
        p, key = state["p"], state["key"]
        for _ in range(k):
            p, key, loss = step_jit(p, key)
        loss.block_until_ready()
        state["p"], state["key"] = p, key

    scans: dict[int, Callable] = {}

    def scanned(k: int) -> None:
        if k not in scans:

            def body(carry, _):
                p, key, loss = step(*carry)
                return (p, key), loss

            scans[k] = jax.jit(lambda p, key: jax.lax.scan(body, (p, key), None, length=k))
        (p, key), losses = scans[k](state["p"], state["key"])
        losses.block_until_ready()
        state["p"], state["key"] = p, key

    return per_step, scanned


# ----------------------------------------------------------------------------- layer lists

STATS = ("running_mean", "running_var")


def split_params(params: dict) -> tuple[dict, dict]:
    """(trained tensors, running statistics) as float32 jax arrays, statistics flattened to (dim,)."""
    jax, jnp = _jax()
    trained = {
        k: jnp.asarray(np.asarray(v, np.float32)) for k, v in params.items() if k.split(".")[1] not in STATS
    }
    stats = {
        k: jnp.asarray(np.asarray(v, np.float32).reshape(-1))
        for k, v in params.items()
        if k.split(".")[1] in STATS
    }
    return trained, stats


def forward(spec: list, p: dict, stats: dict, x, training: bool = True):
    """The layer list's logits, and in training the running statistics after this batch (the
    lecture's BatchNorm1d: batch mean and unbiased variance over dim 0, or dims (0, 1) for 3-D
    input; the running ones moved by `momentum` towards them, outside the gradient)."""
    jax, jnp = _jax()
    new = dict(stats)
    for i, (kind, args, kw) in enumerate(spec):
        if kind == "Embedding":
            x = p[f"{i}.weight"][x]
        elif kind == "Flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "FlattenConsecutive":
            n = args[0]
            B, T, C = x.shape
            x = x.reshape(B, T // n, C * n)
            if T // n == 1:
                x = x[:, 0]
        elif kind == "Linear":
            x = x @ p[f"{i}.weight"]
            if f"{i}.bias" in p:
                x = x + p[f"{i}.bias"]
        elif kind == "BatchNorm1d":
            eps, momentum = kw.get("eps", 1e-5), kw.get("momentum", 0.1)
            rm, rv = f"{i}.running_mean", f"{i}.running_var"
            if training:
                axes = (0,) if x.ndim == 2 else (0, 1)
                mean, var = x.mean(axes), x.var(axes, ddof=1)
                sg = jax.lax.stop_gradient
                new[rm] = (1 - momentum) * stats[rm] + momentum * sg(mean)
                new[rv] = (1 - momentum) * stats[rv] + momentum * sg(var)
            else:
                mean, var = stats[rm], stats[rv]
            x = p[f"{i}.gamma"] * ((x - mean) / jnp.sqrt(var + eps)) + p[f"{i}.beta"]
        elif kind == "Tanh":
            x = jnp.tanh(x)
        else:
            raise ValueError(f"unknown layer {kind!r}")
    return x, new


def loss_fn(spec: list, p: dict, stats: dict, xb, yb):
    """(mean cross-entropy in training mode, running statistics after the batch)."""
    jax, jnp = _jax()
    logits, new = forward(spec, p, stats, xb, True)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1)), new


def loss_and_grad(spec: list, params: dict, xb: np.ndarray, yb: np.ndarray):
    """(loss, gradients, running statistics after the batch) for one batch, jitted: for tests."""
    jax, jnp = _jax()
    p, stats = split_params(params)
    f = jax.jit(jax.value_and_grad(lambda p, s, x, y: loss_fn(spec, p, s, x, y), has_aux=True))
    (loss, new), grads = f(p, stats, jnp.asarray(xb), jnp.asarray(yb))
    return (
        float(loss),
        {k: np.asarray(v) for k, v in grads.items()},
        {k: np.asarray(v) for k, v in new.items()},
    )


def jax_layer_steps(
    spec: list, params: dict, X: np.ndarray, Y: np.ndarray, batch_size: int = 32, lr: float = 0.1
):
    """run(k): k SGD steps of the layer list, jitted over a lax.scan; the trained tensors, the running
    statistics and the random key are the scan's state. None without jax."""
    if _jax() is None:
        return None
    jax, jnp = _jax()
    p, stats = split_params(params)
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    N = X.shape[0]
    grad = jax.value_and_grad(lambda p, s, x, y: loss_fn(spec, p, s, x, y), has_aux=True)

    def body(carry, _):
        p, stats, key = carry
        key, sub = jax.random.split(key)
        ix = jax.random.randint(sub, (batch_size,), 0, N)
        (loss, stats), g = grad(p, stats, Xj[ix], Yj[ix])
        return ({k: p[k] - lr * g[k] for k in p}, stats, key), loss

    state = {"c": (p, stats, jax.random.PRNGKey(0))}
    scans: dict[int, Callable] = {}

    def scanned(k: int) -> None:
        if k not in scans:
            scans[k] = jax.jit(lambda c: jax.lax.scan(body, c, None, length=k))
        state["c"], losses = scans[k](state["c"])
        losses.block_until_ready()

    return scanned
