"""The lecture's models as layer lists (specs): [(class name, args, kwargs), ...], from which the
PyTorch model (lecture_layers.py), the JAX model (jax_models.py) and ours (makemore_cpp.nn) are
built. No torch here."""

from __future__ import annotations


def wavenet_spec(V: int = 27, n_embd: int = 24, n_hidden: int = 128) -> list:
    """Part 5's final model: context 8, three levels of pairs (76,579 parameters at V = 27)."""
    spec = [("Embedding", (V, n_embd), {})]
    width = n_embd
    for _ in range(3):
        spec += [
            ("FlattenConsecutive", (2,), {}),
            ("Linear", (2 * width, n_hidden), {"bias": False}),
            ("BatchNorm1d", (n_hidden,), {}),
            ("Tanh", (), {}),
        ]
        width = n_hidden
    return spec + [("Linear", (n_hidden, V), {})]


def bn_spec(V: int = 27, block_size: int = 3, n_embd: int = 10, n_hidden: int = 200) -> list:
    """Part 3's MLP with batch norm (12,097 parameters at V = 27), as part 5 writes it in layers."""
    return [
        ("Embedding", (V, n_embd), {}),
        ("Flatten", (), {}),
        ("Linear", (block_size * n_embd, n_hidden), {"bias": False}),
        ("BatchNorm1d", (n_hidden,), {}),
        ("Tanh", (), {}),
        ("Linear", (n_hidden, V), {}),
    ]


def mlp_spec(V: int = 27, block_size: int = 3, n_embd: int = 10, n_hidden: int = 200) -> list:
    """Part 2's MLP (mm.MLP) as a layer list."""
    return [
        ("Embedding", (V, n_embd), {}),
        ("Flatten", (), {}),
        ("Linear", (block_size * n_embd, n_hidden), {}),
        ("Tanh", (), {}),
        ("Linear", (n_hidden, V), {}),
    ]
