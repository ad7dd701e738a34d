"""What every model of this package shares: a list of the lecture's layers whose parameters live in
the C++ core, named and shaped by the core's parameter table; evaluation, sampling, copies and
files. :class:`makemore_cpp.MLP` and :class:`makemore_cpp.nn.Sequential` are its two kinds."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from . import _core, _files
from . import _validate as v
from .data import Vocab

__all__ = ["Model"]

EVAL_CHUNK = 1 << 18  # rows per call into the core at most (a multiple of _core.SUM_ROWS)
SAMPLE_CHUNK_CELLS = 1 << 24  # names x max_len per call into the core (64 MiB of int32) at most
# What a sampled name takes at the least, as a str in a list: the str object (49 bytes for an empty
# one), its characters and the list's pointer to it.
SAMPLE_NAME_BYTES = 64
CHUNK_SECONDS = 0.05  # calls into the core are sized to take about this long, so Ctrl-C is prompt
FIRST_CHUNK_MACS = 2e7  # the first call's size, before its time is known: a few milliseconds
# The core computes each distinct context once, always when there are at most _core.DEDUP_ALWAYS of
# them: then no call computes more than vocab_size ** block_size rows, however long.
DEDUP_FIRST_MACS = 2e8  # up to this much at most (about 20 ms here), the first call takes every row
# sample(): when every context's row fits DEDUP_FIRST_MACS, the first call draws up to this many
# characters (names x max_len; a looked-up character takes tens of ns)
FIRST_SAMPLE_CHARS = 1 << 21
BUSY = (
    "this model is in use by another thread (training, evaluating or sampling); "
    "use one model per thread (model.copy()), or wait for the other call to finish"
)


class Model:
    """A model of the lecture's layers, computed by the core.

    Subclasses describe their layers (:meth:`_layer_specs`) and their constructor's arguments
    (:meth:`config`); the core gives every parameter's name, shape and place (``_core.describe``).
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type]] = {}  # every kind of model, by its checkpoint name

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            Model._kinds[cls.kind] = cls

    # ---------------------------------------------------------------- building
    def _build(
        self, vocab: Vocab | int, block_size: int, seed: int, dtype: str, lecture_names: bool, rule: int
    ) -> None:
        """Allocate the core's model for :meth:`_layer_specs` and initialise it by ``rule``."""
        if isinstance(vocab, Vocab):
            V = len(vocab)
        else:
            V = v.integer(vocab, "vocab", 1, v.INT32_MAX)
            vocab = None
        self.vocab: Vocab | None = vocab
        self.vocab_size = V
        self.block_size = v.integer(block_size, "block_size", 1, 1 << 16)
        self.seed = v.seed(seed)
        self.dtype = v.dtype_name(dtype)
        layers = self._layer_specs()
        desc = _core.describe(layers, V, self.block_size, self.dtype, lecture_names, rule)
        _check_memory(desc["arena_bytes"])
        self._m = _core.Model(layers, V, self.block_size, self.dtype, lecture_names, rule)
        self._m.init(self.seed)
        self._core_naming = (lecture_names, rule)
        self._table()
        self._lock = threading.RLock()

    def _table(self) -> None:
        table = self._m.params
        self.param_names: list[str] = [p["name"] for p in table]
        self.trained_names: list[str] = [p["name"] for p in table if p["trained"]]
        self._shapes: dict[str, tuple[int, ...]] = {p["name"]: tuple(p["shape"]) for p in table}

    def _layer_specs(self) -> list[tuple]:
        """The core's description of the layers: (kind, a, b, bias, eps, momentum) each."""
        return [layer._spec() for layer in self.layers]

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

    # ---------------------------------------------------------------- description
    layers: list  # the lecture's layers (makemore_cpp.nn), in order

    def config(self) -> dict:
        """The constructor's arguments (vocabulary as its characters), JSON-ready, with ``"kind"``."""
        raise NotImplementedError

    @property
    def n_embd(self) -> int:
        """The width of the Embedding (the lecture's n_embd): C's columns."""
        return self.layers[0].embedding_dim

    @property
    def plan(self) -> str:
        """How the core runs the layers: ``"mlp"`` (the part-2 MLP's fused step, each distinct
        context once) or ``"layers"`` (op by op)."""
        return self._m.plan

    @property
    def num_params(self) -> int:
        """How many numbers the trained parameters hold (the lecture's ``sum(p.nelement() ...)``;
        BatchNorm1d's running statistics are not parameters)."""
        return int(sum(math.prod(self._shapes[n]) for n in self.trained_names))

    def out_shapes(self, batch_size: int = 4) -> list[tuple[int, ...]]:
        """The shape of each layer's output for ``batch_size`` contexts, in the order of
        :attr:`layers`: the lecture's ``[tuple(layer.out.shape) for layer in model.layers]``."""
        B = v.integer(batch_size, "batch_size", 1)
        shape: tuple[int, ...] = (B, self.block_size)
        shapes = []
        for layer in self.layers:
            name = type(layer).__name__
            if name == "Embedding":
                shape = (*shape, layer.embedding_dim)
            elif name == "Flatten":
                shape = (B, math.prod(shape[1:]))
            elif name == "FlattenConsecutive":
                T, C = shape[1] // layer.n, shape[2] * layer.n
                shape = (B, T, C) if T > 1 else (B, C)
            elif name == "Linear":
                shape = (*shape[:-1], layer.fan_out)
            shapes.append(shape)  # BatchNorm1d and Tanh keep their input's shape
        return shapes

    def summary(self, batch_size: int = 4) -> str:
        """A table of the layers: each one's output shape for ``batch_size`` contexts and how many
        trained numbers it holds (BatchNorm1d's running statistics are not counted)."""
        rows = [("layer", "output shape", "parameters")]
        for i, (layer, shape) in enumerate(zip(self.layers, self.out_shapes(batch_size))):
            name, n = type(layer).__name__, 0
            if name == "Embedding":
                n = layer.num_embeddings * layer.embedding_dim
            elif name == "Linear":
                n = layer.numbers()
            elif name == "BatchNorm1d":
                n = 2 * layer.dim
            rows.append((f"({i}) {layer!r}", str(shape), f"{n:,}" if n else ""))
        rows.append(("total", "", f"{self.num_params:,}"))
        w0, w1 = (max(len(r[k]) for r in rows) for k in (0, 1))
        w2 = max(len(r[2]) for r in rows)
        return "\n".join(f"{a:<{w0}}  {b:<{w1}}  {c:>{w2}}".rstrip() for a, b, c in rows)

    def _row_macs(self) -> float:
        """Multiply-adds of the forward pass of one row (or one sampled character), plus overhead:
        an Embedding's Linear as table lookups, every other Linear in full."""
        t, macs, after_embedding = self.block_size, 0.0, False
        for layer in self.layers:
            name = type(layer).__name__
            if name == "Embedding":
                after_embedding = True
                continue
            if name == "FlattenConsecutive":
                t //= layer.n
            elif name == "Flatten":
                t = 1
            elif name == "Linear":
                cost = layer.fan_out * (self.block_size // t if after_embedding else layer.fan_in)
                macs += t * cost + 4 * t * layer.fan_out
                after_embedding = False
                continue
            after_embedding = after_embedding and name in ("Flatten", "FlattenConsecutive")
        return macs + 4 * self.vocab_size

    def _eval_first(self) -> float:
        """Rows in the first evaluation call."""
        contexts = self.vocab_size**self.block_size
        if contexts <= _core.DEDUP_ALWAYS and contexts * self._row_macs() <= DEDUP_FIRST_MACS:
            return EVAL_CHUNK
        return FIRST_CHUNK_MACS / self._row_macs()

    # ---------------------------------------------------------------- parameters
    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of the parameters (BatchNorm1d's running statistics included), in their shapes."""
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
        for name in self.param_names:
            a = v.to_numpy(params[name])
            if a.dtype.kind not in "iuf":  # not bool, complex, timedelta64, object or text
                raise TypeError(f"params[{name!r}] must hold real numbers, got dtype {a.dtype}")
            if a.shape != self._shapes[name]:
                raise ValueError(f"params[{name!r}] must have shape {self._shapes[name]}, got {a.shape}")
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

    def copy(self) -> "Model":
        """An independent model with the same configuration and parameters."""
        other = type(self).__new__(type(self))
        other.__dict__.update({k: val for k, val in self.__dict__.items() if k not in ("_m", "_lock")})
        other._lock = threading.RLock()
        other._m = _core.Model(
            self._layer_specs(), self.vocab_size, self.block_size, self.dtype, *self._core_naming
        )
        other._m.set_all(list(self.get_params().values()))
        return other

    # ---------------------------------------------------------------- computing
    def loss_and_grad(self, X: Any, Y: Any) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy of the rows (X, Y) in training mode (BatchNorm1d with the batch's
        statistics; nothing in the model changes) and its gradient with respect to every trained
        parameter."""
        X, Y = v.rows(self, X, Y)
        if len(X) == 0:
            raise ValueError("X and Y are empty: the loss of no rows is undefined")
        if X.size > v.INT32_MAX:
            raise ValueError(
                f"X must hold at most {v.INT32_MAX} ids in one loss_and_grad (rows x block_size), "
                f"got {len(X)} x {self.block_size}; use loss() for the loss of many rows"
            )
        self._check_batch(len(X), "X")
        with self._exclusive():
            loss, grads = self._m.loss_and_grad(X, Y)
        return float(loss), dict(zip(self.trained_names, grads))

    def _check_batch(self, rows: int, name: str) -> None:
        """BatchNorm1d in training mode needs two values or more per channel (torch.var of one is nan)."""

    def loss(self, X: Any, Y: Any) -> float:
        """Mean cross-entropy over any number of rows, in evaluation mode (BatchNorm1d with its
        running statistics), without a gradient."""
        X, Y = v.rows(self, X, Y, core_checks=True)
        if len(X) == 0:
            raise ValueError("X and Y are empty: the loss of no rows is undefined")
        sums = []
        try:
            with self._exclusive():
                for a, b in _chunks(len(X), self._eval_first(), EVAL_CHUNK, _core.SUM_ROWS):
                    sums.append(self._m.evaluate(X[a:b], Y[a:b], False, True)[0])
        except IndexError:
            _name_the_bad_id(lambda: v.rows(self, X, Y))
        # The core sums the row losses of each block of _core.SUM_ROWS rows in a fixed order, and
        # every call starts at a multiple of SUM_ROWS; fsum is exact: so the result does not depend
        # on how the rows were split between calls.
        return math.fsum(np.concatenate(sums).tolist()) / len(X)

    def logits(self, X: Any) -> np.ndarray:
        """The logits (N, V) of the contexts X (N, block_size), in evaluation mode."""
        arr = v.to_numpy(X)
        rows = len(arr) if arr.ndim else 0
        as_is = arr.dtype == np.int32 and arr.flags.c_contiguous and arr.flags.aligned
        v.fits(
            float(rows) * self.vocab_size * np.dtype(self.dtype).itemsize + (0 if as_is else 4.0 * arr.size),
            f"logits(X) of {rows:,} rows",
            f" for its ({rows:,}, {self.vocab_size}) {self.dtype} array"
            + ("" if as_is else " and the int32 copy of X"),
        )
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
        start: int = 0,
    ):
        """Validate, then yield the core's output for names start .. start+n-1 in order: (n_i,
        max_len) id arrays, or with compact each chunk's names as ids one after another, each ended
        by 0."""
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
        if isinstance(prefix, (list, tuple)) and not prefix:  # no prefix: no NumPy conversion and checks
            prefix = np.zeros(0, np.int32)
        else:
            prefix = v.index_array(prefix, "prefix", (None,), self.vocab_size, "the vocabulary size")
            if (prefix == 0).any():
                raise ValueError("prefix cannot contain id 0 ('.'), which ends a name")
        if len(prefix) > max_len:
            raise ValueError(f"prefix holds {len(prefix)} characters, more than max_len = {max_len}")
        # Name i depends only on (seed, i), so the calls may hold any number of names.
        first = FIRST_CHUNK_MACS / (self._row_macs() * max_len)
        if self.vocab_size**self.block_size <= DEDUP_FIRST_MACS / self._row_macs():
            # A draw computes each context once (cpp/sample.h): its rows cost at most that much,
            # however many names; what grows with the names is their characters' draws.
            first = max(first, FIRST_SAMPLE_CHARS / max_len)
        most = max(1, SAMPLE_CHUNK_CELLS // max_len)
        # The core computes each context a draw reaches once and keeps it in the table that the calls
        # of one draw share (cpp/sample.h; it checks that the table still fits: the same parameters,
        # instruction set, temperature and top_k).
        table = _core.SampleTable() if n > min(int(first), most) else None
        for a, b in _chunks(n, first, most):
            yield self._m.sample(seed, start + a, b - a, temperature, top_k, prefix, max_len, compact, table)

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
        n = v.integer(n, "n", 0)
        max_len = v.integer(max_len, "max_len", 1, (1 << 20) - 1)
        v.fits(4.0 * n * max_len, f"sample_ids(n={n:,}, max_len={max_len:,})", " for its int32 ids")
        with self._exclusive():  # held here, not in the generator: an abandoned generator would keep it
            parts = list(self._sample_chunks(n, seed, temperature, top_k, prefix, max_len, False))
        if not parts:
            return np.zeros((0, max_len), np.int32)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def sample(
        self,
        n: int,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int | None = None,
        prefix: str = "",
        max_len: int = 100,
    ) -> list[str]:
        """Draw ``n`` names, each without its final '.' (evaluation mode).

        Each starts with ``prefix`` and draws characters from softmax(logits / temperature) --
        only the ``top_k`` most likely when given; ``temperature=0`` takes the most likely -- until
        it draws '.' or reaches ``max_len`` characters. Name i depends only on (seed, i): the first
        ``n`` names of a larger draw are the same.
        """
        if self.vocab is None:
            raise ValueError(
                "this model was built from a vocabulary size, not a Vocab: use sample_ids, or build "
                "it with vocab=Vocab..."
            )
        n = v.integer(n, "n", 0)
        v.fits(SAMPLE_NAME_BYTES * n, f"sample(n={n:,})", f" at the least ({SAMPLE_NAME_BYTES} bytes a name)")
        return self._names(0, n, seed, temperature, top_k, prefix, max_len)

    def _names(
        self, start: int, n: int, seed: int, temperature: float, top_k: int | None, prefix: str, max_len: int
    ) -> list[str]:
        """Names start .. start+n-1 of a draw (what sample(start + n)[start:] gives, without the
        first ones)."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        if "." in prefix:
            raise ValueError(f"prefix {prefix!r} contains '.', which ends a name")
        # The names come as ids, each ended by 0; the core makes each one a str from the code points.
        codes = np.frombuffer(("\0" + "".join(self.vocab.chars)).encode("utf-32-le"), np.uint32)
        names: list[str] = []
        with self._exclusive():
            for flat in self._sample_chunks(
                n, seed, temperature, top_k, self.vocab.encode(prefix), max_len, True, start
            ):
                names += _core.decode_names(flat, codes)
        return names

    # ---------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write configuration, vocabulary and parameters to one ``.npz`` file (atomically)."""
        _files.write_checkpoint(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Model":
        """The model of a checkpoint of this package (written by :meth:`save` or by a training run).
        ``ValueError`` naming the file if it is missing, truncated, corrupt, inconsistent, or holds
        another kind of model than this class."""
        meta, arrays = _files.read_checkpoint(path)
        with _files.restoring(path):
            model = Model.restore(meta["config"], arrays)
            if not isinstance(model, cls):
                raise TypeError(f"the file holds a {type(model).__name__}, not a {cls.__name__}")
            return model

    @staticmethod
    def restore(config: dict, arrays: Mapping[str, np.ndarray]) -> "Model":
        """The model of a checkpoint's ``config`` (as :meth:`config` gives it) and arrays
        (``param/<name>``). The parameters the header describes are checked against the arrays
        before the model is allocated, so a corrupt header cannot ask for any amount of memory."""
        kind = config.get("kind", "mlp")  # files of version 1 hold MLPs without saying so
        if kind not in Model._kinds:
            raise ValueError(f"unknown kind of model {kind!r}")
        cls = Model._kinds[kind]
        kwargs = cls._kwargs(config)
        vocab = kwargs["vocab"]
        V = len(vocab) if isinstance(vocab, Vocab) else vocab
        table = _core.describe(
            cls._specs(kwargs), V, kwargs["block_size"], kwargs["dtype"], *cls._naming(kwargs)
        )["params"]
        params = {k[len(_files.PARAM) :]: a for k, a in arrays.items() if k.startswith(_files.PARAM)}
        want = {p["name"]: tuple(p["shape"]) for p in table}
        have = {k: tuple(a.shape) for k, a in params.items()}
        if have != want:
            raise ValueError(f"the header describes parameters {want}, the file holds {have}")
        model = cls(**kwargs)
        model.set_params(params)
        return model

    # What a kind of model gives for checkpoints: the constructor's arguments from a config (their
    # types checked), the core's layers for them and the core's naming, without allocating.
    @classmethod
    def _kwargs(cls, config: dict) -> dict:
        raise NotImplementedError

    @classmethod
    def _specs(cls, kwargs: dict) -> list[tuple]:
        raise NotImplementedError

    @classmethod
    def _naming(cls, kwargs: dict) -> tuple[bool, int]:
        """(lecture_names, rule) of the core's model."""
        raise NotImplementedError


def _vocab_of(config: dict) -> Vocab | int:
    """A checkpoint config's vocabulary: its characters, or a size."""
    vocab = config["vocab"]
    if isinstance(vocab, list):
        return Vocab(vocab)
    if isinstance(vocab, bool) or not isinstance(vocab, int):
        raise TypeError(f"vocab must be a list of characters or an integer, got {vocab!r}")
    return vocab


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


def _check_memory(nbytes: int) -> None:
    """Refuse a model whose parameters alone would not fit in memory, before asking for it."""
    v.fits(nbytes, "a model of these sizes", " for its parameters alone")
