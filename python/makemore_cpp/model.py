"""The lecture's MLP: an embedding table C, tanh hidden layers, a linear output layer."""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import threading
import time
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from . import _core
from . import _validate as v
from .data import Vocab

__all__ = ["MLP"]

INITS = {"lecture": 0, "kaiming": 1}
EVAL_CHUNK = 1 << 18  # rows per call into the core at most (a multiple of SUM_ROWS)
SUM_ROWS = 1024  # the core returns the loss summed over blocks of this many rows (as in its common.h)
SAMPLE_CHUNK_CELLS = 1 << 24  # names x max_len per call into the core (64 MiB of int32) at most
CHUNK_SECONDS = 0.05  # calls into the core are sized to take about this long, so Ctrl-C is prompt
FIRST_CHUNK_MACS = 2e7  # the first call's size, before its time is known: a few milliseconds
# The core computes each distinct context once, always when there are at most DEDUP_ALWAYS of them
# (cpp/eval.h): then no call computes more than vocab_size ** block_size rows, however long.
DEDUP_ALWAYS = 65536
DEDUP_FIRST_MACS = 2e8  # up to this much at most (about 20 ms here), the first call takes every row
BUSY = (
    "this model is in use by another thread (training, evaluating or sampling); "
    "use one model per thread (model.copy()), or wait for the other call to finish"
)


def _mlp_layers(V: int, T: int, E: int, widths: Sequence[int]) -> list[tuple]:
    """The MLP as the core's layer tuples: Embedding, Flatten, (Linear, Tanh) per width, Linear."""
    layers = [(_core.LAYER_EMBEDDING, V, E, False, 0.0, 0.0), (_core.LAYER_FLATTEN, 0, 0, False, 0.0, 0.0)]
    fan_in = T * E
    for w in widths:
        layers += [(_core.LAYER_LINEAR, fan_in, w, True, 0.0, 0.0), (_core.LAYER_TANH, 0, 0, False, 0.0, 0.0)]
        fan_in = w
    return layers + [(_core.LAYER_LINEAR, fan_in, V, True, 0.0, 0.0)]


def _param_names(n_layers: int) -> list[str]:
    names = ["C"]
    for layer in range(1, n_layers + 2):
        names += [f"W{layer}", f"b{layer}"]
    return names


class MLP:
    """The character-level MLP of the makemore lectures (part 2; Bengio et al. 2003).

    ``logits = tanh(C[X].reshape(N, -1) @ W1 + b1) @ W2 + b2`` with the lecture's shapes:
    ``C (V, n_embd)``, ``W1 (block_size*n_embd, n_hidden)``, ``b1 (n_hidden,)``,
    ``W2 (n_hidden, V)``, ``b2 (V,)``. ``n_hidden`` may be a tuple of widths for several tanh
    layers (``W1, b1, W2, b2, W3, b3, ...``, the last pair the output layer).

    vocab: a :class:`Vocab` (needed to sample text) or an int vocabulary size.
    init: ``"lecture"``, every parameter N(0, 1) as the lecture's ``torch.randn``; or
        ``"kaiming"``, the lecture's part 3: hidden weights times (5/3)/sqrt(fan_in), hidden biases
        times 0.01, the output weights times 0.01 and output biases 0.
    seed: the parameters are a function of (seed, shapes, init) alone.
    dtype: ``"float32"`` (fast) or ``"float64"``.
    """

    def __init__(
        self,
        vocab: Vocab | int,
        block_size: int = 3,
        n_embd: int = 10,
        n_hidden: int | Sequence[int] = 200,
        seed: int = 0,
        init: str = "lecture",
        dtype: str = "float32",
    ):
        if isinstance(vocab, Vocab):
            V = len(vocab)
        else:
            V = v.integer(vocab, "vocab", 1, v.INT32_MAX)
            vocab = None
        block_size = v.integer(block_size, "block_size", 1, 1 << 16)
        n_embd = v.integer(n_embd, "n_embd", 1, 1 << 20)
        widths = (
            [n_hidden]
            if isinstance(n_hidden, numbers.Integral) or not hasattr(n_hidden, "__iter__")
            else list(n_hidden)
        )
        if not 1 <= len(widths) <= _core.MAX_HIDDEN:
            raise ValueError(f"n_hidden must be a width or 1 to {_core.MAX_HIDDEN} widths, got {n_hidden!r}")
        widths = [v.integer(w, "n_hidden", 1, 1 << 20) for w in widths]
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
        seed = v.seed(seed)
        dtype = v.dtype_name(dtype)
        _check_memory(V, block_size, n_embd, widths, dtype)
        self.vocab: Vocab | None = vocab
        self.vocab_size = V
        self.block_size = block_size
        self.n_embd = n_embd
        self.n_hidden: tuple[int, ...] = tuple(widths)
        self.dtype = dtype
        self.init = init
        self.seed = seed
        self.param_names = _param_names(len(widths))
        self._lock = threading.RLock()
        self._m = _core.Model(
            _mlp_layers(V, block_size, n_embd, widths), V, block_size, dtype, True, INITS[init]
        )
        self._m.init(seed, INITS[init])

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the model for the whole of a public call: a call from a second thread meanwhile is
        refused with RuntimeError (the same thread may nest calls, as train's evaluations do)."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(BUSY)
        try:
            yield
        finally:
            self._lock.release()

    def _row_macs(self) -> float:
        """Multiply-adds of the forward pass of one row (or one sampled character), plus overhead."""
        widths = (self.block_size,) + self.n_hidden + (self.vocab_size,)
        return float(sum(a * b for a, b in zip(widths[:-1], widths[1:])) + 4 * sum(widths))

    def _eval_first(self) -> float:
        """Rows in the first evaluation call."""
        contexts = self.vocab_size**self.block_size
        if contexts <= DEDUP_ALWAYS and contexts * self._row_macs() <= DEDUP_FIRST_MACS:
            return EVAL_CHUNK
        return FIRST_CHUNK_MACS / self._row_macs()

    # ---------------------------------------------------------------- description
    def config(self) -> dict:
        """The constructor's arguments (vocabulary as its characters), JSON-ready."""
        return {
            "vocab": self.vocab.chars if self.vocab is not None else self.vocab_size,
            "block_size": self.block_size,
            "n_embd": self.n_embd,
            "n_hidden": list(self.n_hidden),
            "seed": self.seed,
            "init": self.init,
            "dtype": self.dtype,
        }

    @property
    def num_params(self) -> int:
        """How many numbers the parameters hold (the lecture's ``sum(p.nelement() ...)``)."""
        V, T, E = self.vocab_size, self.block_size, self.n_embd
        widths = (T * E,) + self.n_hidden + (V,)
        return V * E + sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

    def __repr__(self) -> str:
        hidden = self.n_hidden[0] if len(self.n_hidden) == 1 else self.n_hidden
        return (
            f"MLP(vocab={self.vocab_size}, block_size={self.block_size}, n_embd={self.n_embd}, "
            f"n_hidden={hidden}, dtype={self.dtype!r}, params={self.num_params:,})"
        )

    # ---------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters, keyed ``C, W1, b1, W2, b2, ...``, in the lecture's shapes."""
        with self._exclusive():
            return {name: self._m.get(q) for q, name in enumerate(self.param_names)}

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Replace every parameter. Keys and shapes must match; values are converted to the model's
        dtype and must be finite. Nothing changes unless every array is valid."""
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping of name to array, got {type(params).__name__}")
        keys = set(params)
        want = set(self.param_names)
        if keys != want:
            missing, extra = sorted(want - keys), sorted(keys - want)
            raise ValueError(
                f"params must have exactly the keys {self.param_names}; missing {missing}, unexpected {extra}"
            )
        arrays = []
        for q, name in enumerate(self.param_names):
            a = v.to_numpy(params[name])
            if a.dtype.kind not in "iuf":  # not bool, complex, timedelta64, object or text
                raise TypeError(f"params[{name!r}] must hold real numbers, got dtype {a.dtype}")
            shape = self._shape(q)
            if a.shape != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {a.shape}")
            with np.errstate(over="ignore", invalid="ignore"):
                a = v.core_array(a, self.dtype)
            finite = np.isfinite(a)
            if not finite.all():
                where = np.unravel_index(int(np.argmin(finite)), a.shape)
                raise ValueError(
                    f"params[{name!r}] must be finite in {self.dtype}, got {a[where]} at index "
                    f"{tuple(int(i) for i in where)}"
                )
            arrays.append(a)
        with self._exclusive():
            self._m.set_all(arrays)

    def _shape(self, q: int) -> tuple[int, ...]:
        widths = (self.block_size * self.n_embd,) + self.n_hidden + (self.vocab_size,)
        if q == 0:
            return (self.vocab_size, self.n_embd)
        layer = (q - 1) // 2
        return (widths[layer], widths[layer + 1]) if (q - 1) % 2 == 0 else (widths[layer + 1],)

    def copy(self) -> "MLP":
        """An independent model with the same configuration and parameters."""
        other = MLP.__new__(MLP)
        other.__dict__.update({k: val for k, val in self.__dict__.items() if k not in ("_m", "_lock")})
        other._lock = threading.RLock()
        other._m = _core.Model(
            _mlp_layers(self.vocab_size, self.block_size, self.n_embd, list(self.n_hidden)),
            self.vocab_size,
            self.block_size,
            self.dtype,
            True,
            INITS[self.init],
        )
        other._m.set_all(list(self.get_params().values()))
        return other

    # ---------------------------------------------------------------- computing
    def loss_and_grad(self, X: Any, Y: Any) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy of the rows (X, Y) and its gradient with respect to every parameter."""
        X, Y = v.rows(self, X, Y)
        if len(X) == 0:
            raise ValueError("X and Y are empty: the loss of no rows is undefined")
        if X.size > v.INT32_MAX:
            raise ValueError(
                f"X must hold at most {v.INT32_MAX} ids in one loss_and_grad (rows x block_size), "
                f"got {len(X)} x {self.block_size}; use loss() for the loss of many rows"
            )
        with self._exclusive():
            loss, grads = self._m.loss_and_grad(X, Y)
        return float(loss), dict(zip(self.param_names, grads))

    def loss(self, X: Any, Y: Any) -> float:
        """Mean cross-entropy over any number of rows, without a gradient."""
        X, Y = v.rows(self, X, Y, core_checks=True)
        if len(X) == 0:
            raise ValueError("X and Y are empty: the loss of no rows is undefined")
        sums = []
        try:
            with self._exclusive():
                for a, b in _chunks(len(X), self._eval_first(), EVAL_CHUNK, SUM_ROWS):
                    sums.append(self._m.evaluate(X[a:b], Y[a:b], False, True)[0])
        except IndexError:
            _name_the_bad_id(lambda: v.rows(self, X, Y))
        # The core sums the row losses of each block of SUM_ROWS rows in a fixed order, and every call
        # starts at a multiple of SUM_ROWS; fsum is exact: so the result does not depend on how the
        # rows were split between calls.
        return math.fsum(np.concatenate(sums).tolist()) / len(X)

    def logits(self, X: Any) -> np.ndarray:
        """The logits (N, V) of the contexts X (N, block_size)."""
        X = v.contexts(self, X, core_checks=True)
        try:
            with self._exclusive():
                parts = [
                    self._m.evaluate(X[a:b], None, True, True)[1]
                    for a, b in _chunks(len(X), self._eval_first(), EVAL_CHUNK, 32)
                ]
        except IndexError:
            _name_the_bad_id(lambda: v.contexts(self, X))
        return np.concatenate(parts) if parts else np.zeros((0, self.vocab_size), self.dtype)

    def _sample_chunks(
        self,
        n: int,
        seed: int,
        temperature: float,
        top_k: int | None,
        prefix: Sequence[int],
        max_len: int,
        compact: bool,
    ):
        """Validate, then yield the core's output for names 0 .. n-1 in order: (n_i, max_len) id
        arrays, or with compact each chunk's names as ids one after another, each ended by 0."""
        n = v.integer(n, "n", 0)
        seed = v.seed(seed)
        temperature = v.real(temperature, "temperature", 0.0)
        top_k = 0 if top_k is None else v.integer(top_k, "top_k", 1)
        top_k = min(top_k, self.vocab_size)  # top_k >= the vocabulary size keeps every character
        max_len = v.integer(max_len, "max_len", 1, (1 << 20) - 1)
        if isinstance(prefix, (str, bytes)):
            raise TypeError(
                f"prefix must be a sequence of ids (sample() takes a str), got "
                f"{type(prefix).__name__} {prefix!r}"
            )
        prefix = v.index_array(prefix, "prefix", (None,), self.vocab_size, "the vocabulary size")
        if (prefix == 0).any():
            raise ValueError("prefix cannot contain id 0 ('.'), which ends a name")
        if len(prefix) > max_len:
            raise ValueError(f"prefix holds {len(prefix)} characters, more than max_len = {max_len}")
        # Name i depends only on (seed, i), so the calls may hold any number of names.
        first = FIRST_CHUNK_MACS / (self._row_macs() * max_len)
        most = max(1, SAMPLE_CHUNK_CELLS // max_len)
        # The core computes each context a draw reaches once and keeps it in the table that the calls
        # of one draw share (cpp/sample.h; it checks that the table still fits: the same parameters,
        # instruction set, temperature and top_k).
        table = _core.SampleTable() if n > min(int(first), most) else None
        for a, b in _chunks(n, first, most):
            yield self._m.sample(seed, a, b - a, temperature, top_k, prefix, max_len, compact, table)

    def sample_ids(
        self,
        n: int,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: Sequence[int] = (),
        max_len: int = 100,
    ) -> np.ndarray:
        """``sample`` as ids: an (n, max_len) int32 array, 0-padded after each name."""
        with self._exclusive():  # held here, not in the generator: an abandoned generator would keep it
            parts = list(self._sample_chunks(n, seed, temperature, top_k, prefix, max_len, False))
        return (
            np.concatenate(parts)
            if len(parts) > 1
            else parts[0]
            if parts
            else np.zeros((0, max_len), np.int32)
        )

    def sample(
        self,
        n: int,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: str = "",
        max_len: int = 100,
    ) -> list[str]:
        """Draw ``n`` names, each without its final '.'.

        Each starts with ``prefix`` and draws characters from softmax(logits / temperature) --
        only the ``top_k`` most likely when given; ``temperature=0`` takes the most likely -- until
        it draws '.' or reaches ``max_len`` characters. Name i depends only on (seed, i): the first
        ``n`` names of a larger draw are the same.
        """
        if self.vocab is None:
            raise ValueError(
                "this model was built from a vocabulary size, not a Vocab: use sample_ids, or build "
                "MLP(vocab=Vocab...)"
            )
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        if "." in prefix:
            raise ValueError(f"prefix {prefix!r} contains '.', which ends a name")
        # The names come as ids, each ended by 0; the core makes each one a str from the code points.
        codes = np.frombuffer(("\0" + "".join(self.vocab.chars)).encode("utf-32-le"), np.uint32)
        names: list[str] = []
        with self._exclusive():
            for flat in self._sample_chunks(
                n, seed, temperature, top_k, self.vocab.encode(prefix), max_len, True
            ):
                names += _core.decode_names(flat, codes)
        return names

    # ---------------------------------------------------------------- files and torch
    def save(self, path: str | os.PathLike) -> None:
        """Write configuration, vocabulary and parameters to one ``.npz`` file (atomically)."""
        from .checkpoint import save

        save(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MLP":
        """Read a model written by :meth:`save` (or a training checkpoint)."""
        from .checkpoint import load

        return load(path).model

    def to_torch(self):
        """The same model as a ``torch.nn.Module`` (parameters ``C, W1, b1, ...``), float64 or float32."""
        from .reference import TorchMLP

        return TorchMLP.from_params(self.get_params(), self.block_size)

    @classmethod
    def from_torch(
        cls, module_or_state_dict: Any, vocab: Vocab | int | None = None, dtype: str | None = None
    ) -> "MLP":
        """A model from a torch module or state dict with tensors named ``C, W1, b1, W2, b2, ...``
        (the lecture's notebook: ``{'C': C, 'W1': W1, ...}``). The vocabulary size is C's rows; the
        dtype is the tensors' (float64 stays float64, anything else becomes float32) unless given."""
        sd = (
            module_or_state_dict.state_dict()
            if hasattr(module_or_state_dict, "state_dict")
            else module_or_state_dict
        )
        if not isinstance(sd, Mapping) or "C" not in sd or "W1" not in sd:
            raise ValueError("expected a module or state dict with tensors 'C', 'W1', 'b1', 'W2', 'b2', ...")
        params = {k: v.to_numpy(t) for k, t in sd.items()}
        n_layers = sum(1 for k in params if k.startswith("W")) - 1
        C, W1 = params["C"], params["W1"]
        if C.ndim != 2 or W1.ndim != 2 or W1.shape[0] % C.shape[1]:
            raise ValueError(f"C {C.shape} and W1 {W1.shape} do not fit: W1 needs block_size * n_embd rows")
        hidden = [params[f"W{i}"].shape[1] for i in range(1, n_layers + 1)]
        if vocab is None:
            vocab = C.shape[0]
        if dtype is None:
            dtype = "float64" if all(a.dtype == np.float64 for a in params.values()) else "float32"
        model = cls(
            vocab, block_size=W1.shape[0] // C.shape[1], n_embd=C.shape[1], n_hidden=hidden, dtype=dtype
        )
        model.set_params(params)
        return model


def _name_the_bad_id(check: Any) -> None:
    """The core found an id out of range in arrays the package sent unchecked (core_checks): the
    full check finds and names it. Raises."""
    try:
        check()
    except IndexError as e:
        raise e from None  # the core's own IndexError, which says less, is not shown with it
    raise RuntimeError(
        "the core reported an id out of range that the package's check does not find"
    ) from None


def _chunks(n: int, first: float, most: int, align: int = 1) -> Iterator[tuple[int, int]]:
    """Ranges [a, b) covering [0, n) for successive calls into the core: each starts at a
    multiple of ``align``; the first holds about ``first`` items, the next are resized (at most 4x
    at a time, up to ``most``) so that each call takes about CHUNK_SECONDS."""
    size = max(align, min(most, int(first)) // align * align)
    most = max(align, most // align * align)
    a = 0
    while a < n:
        b = min(n, a + size)
        t0 = time.perf_counter()
        yield a, b
        if b - a == size:  # a full chunk: its time says how many items fit in CHUNK_SECONDS
            scale = min(4.0, max(0.25, CHUNK_SECONDS / max(time.perf_counter() - t0, 1e-6)))
            size = max(align, min(most, int(size * scale)) // align * align)
        a = b


def _check_memory(V: int, T: int, E: int, widths: list[int], dtype: str) -> None:
    """Refuse sizes whose parameters alone would not fit in memory, before asking for it."""
    pad = lambda n: -(-n // 16) * 16  # noqa: E731
    cells = pad(V * E)
    ins = [T * E] + widths[:-1]
    for a, b in zip(ins, widths):
        cells += a * pad(b) + pad(b)
    cells += V * pad(widths[-1]) + pad(V)
    nbytes = cells * (4 if dtype == "float32" else 8)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 1 << 40
    if nbytes > total:
        raise MemoryError(
            f"a model of these sizes needs {nbytes / 2**30:.1f} GiB for its parameters alone; "
            f"this machine has {total / 2**30:.1f} GiB"
        )
