"""Type stubs for makemore_cpp._core, the C++ extension (cpp/bindings.cpp).

Private: the package's modules call it after validating and converting every argument
(makemore_cpp/_validate.py). Arguments are positional (the bindings name none but the
constructors'). Arrays must already be C-contiguous and of the exact dtype named; index arrays
int32 (batch indices int64), in range.
"""

from typing import Optional

import numpy as np
import numpy.typing as npt

PAD: int
"""Padded dimensions (hidden widths, the vocabulary in the logits) are multiples of this."""
MAX_HIDDEN: int
"""The most tanh layers an MLP may have."""
SUM_ROWS: int
"""Evaluation returns the loss summed over blocks of this many rows."""
DEDUP_ALWAYS: int
"""Evaluation computes each distinct context once, always when there are at most this many."""
SAMPLE_TABLE_BYTES: int
"""Sampling keeps the distributions of the contexts it reaches in at most this many bytes."""
LAYER_EMBEDDING: int
"""Layer kinds of a layer tuple (kind, a, b, bias, eps, momentum): Embedding(a = num, b = dim)."""
LAYER_FLATTEN: int
"""Flatten()."""
LAYER_FLATTEN_CONSECUTIVE: int
"""FlattenConsecutive(a = n)."""
LAYER_LINEAR: int
"""Linear(a = fan_in, b = fan_out, bias)."""
LAYER_BATCHNORM: int
"""BatchNorm1d(a = dim, eps, momentum)."""
LAYER_TANH: int
"""Tanh()."""
RULE_LECTURE: int
"""Initialisation: every parameter N(0, 1) (the lecture's part 2)."""
RULE_KAIMING: int
"""Initialisation: the lecture's part 3 scaling of an MLP."""
RULE_LAYERS: int
"""Initialisation: the lecture's layer classes (Linear N(0, 1)/sqrt(fan_in), bias 0, ...)."""
OPT_SGD: int
"""``OptConfig`` kind: SGD (momentum, nesterov, weight decay as torch.optim.SGD)."""
OPT_ADAMW: int
"""``OptConfig`` kind: AdamW (as torch.optim.AdamW)."""
RUN_NONFINITE_LOSS: int
"""``Trainer.run`` status: a minibatch loss was not finite (any other non-zero status: a parameter)."""

_Layer = tuple[int, int, int, bool, float, float]

_Float = npt.NDArray[np.floating]
_I32 = npt.NDArray[np.int32]
_U8 = npt.NDArray[np.uint8]
_LayerStats = tuple[int, int, float, float, int, list[int], list[float]]
_ParamStats = tuple[list[int], int, float, float, float, Optional[list[int]], Optional[list[float]]]
_Record = tuple[int, float, list[_LayerStats], list[_LayerStats], list[_ParamStats]]
"""A record of part 3's statistics: (step, loss, activations, gradients, params); per Tanh layer
(layer index, values, mean, std, count beyond the saturation, histogram counts, edges) of its
output and of the gradient with respect to it; per trained parameter (shape, values, data std,
gradient mean, gradient std, and for a matrix its gradient's histogram counts and edges)."""

class Model:
    """A model: its layers, its parameter table and its parameters in one aligned arena."""

    def __init__(
        self, layers: list[_Layer], V: int, T: int, dtype: str, lecture_names: bool = False, rule: int = ...
    ) -> None:
        """A list of the lecture's layers (tuples, see LAYER_*), vocabulary size V, context length T,
        dtype ``"float32"`` or ``"float64"``; parameters named ``{layer}.{name}``, or C, W1, b1, ...
        with ``lecture_names`` (an MLP's layers only). ValueError naming the layer for layers that
        do not fit together. The parameters are zero until :meth:`init` or :meth:`set_all`."""
    @property
    def dtype(self) -> str:
        """``"float32"`` or ``"float64"``."""
    @property
    def nparams(self) -> int:
        """How many parameter arrays (the table's entries)."""
    @property
    def arena_size(self) -> int:
        """Elements in the padded arena."""
    @property
    def plan(self) -> str:
        """How the core runs it: ``"mlp"`` or ``"layers"``."""
    @property
    def params(self) -> list[dict]:
        """The parameter table: ``{"name", "layer", "shape", "trained"}`` in order."""
    def init(self, seed: int, rule: int = -1) -> None:
        """Fill the parameters from ``seed`` by an initialisation rule (RULE_*; -1: the model's own)."""
    def get(self, q: int, /) -> _Float:
        """A copy of parameter ``q`` of the table in its user shape."""
    def set_all(self, arrays: list[_Float], /) -> None:
        """Replace every parameter; all arrays are checked before any is written."""
    def loss_and_grad(self, X: _I32, Y: _I32, /) -> tuple[float, list[_Float]]:
        """Training mode: mean cross-entropy of the rows and its gradient for every trained parameter."""
    def diagnose(
        self, X: _I32, Y: _I32, dropout: float, seed: int, step: int, bins: int, saturated: float
    ) -> _Record:
        """One training-mode pass over the rows (X, Y), changing nothing, and part 3's statistics of
        it (cpp/diagnose.cpp): a record of step ``step`` (see :data:`_Record`), ``bins`` bins to each
        histogram, saturation beyond ``saturated``; dropout with the masks of (seed, step) when
        ``dropout`` > 0."""
    def evaluate(
        self, X: _I32, Y: Optional[_I32], want_logits: bool, dedup: bool, /
    ) -> tuple[Optional[npt.NDArray[np.float64]], Optional[_Float]]:
        """(row losses summed over consecutive blocks of SUM_ROWS rows if Y is given, logits (N, V) if
        asked); IndexError if an id of X or Y is not below the vocabulary size (checked as the ids
        are read). dedup: compute each distinct context once where possible (the same results)."""
    def sample(
        self,
        seed: int,
        first: int,
        n: int,
        temperature: float,
        top_k: int,
        prefix: _I32,
        max_len: int,
        compact: bool,
        table: Optional[SampleTable] = None,
        /,
    ) -> _I32:
        """Names ``first .. first + n - 1`` of the draw keyed by ``seed`` (``top_k`` 0: all characters):
        an (n, max_len) int32 array of ids, 0-padded; or with ``compact`` the names' ids one after
        another, each ended by 0, as one flat array."""

def describe(
    layers: list[_Layer], V: int, T: int, dtype: str, lecture_names: bool = False, rule: int = ...
) -> dict:
    """A model's description without allocating it: ``{"plan", "params", "arena_bytes"}``;
    ValueError naming the layer for layers that do not fit together."""

class SampleTable:
    """The distributions of the contexts that the ``Model.sample`` calls given it have reached, each
    computed once, kept while the parameters, instruction set, temperature and top_k are those it
    was made with (else it is emptied and made again)."""
    def __init__(self) -> None: ...
    @property
    def filled(self) -> bool: ...

class OptConfig:
    """The optimizer's settings, as the core takes them."""
    def __init__(
        self,
        kind: int,
        momentum: float,
        nesterov: bool,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        dropout: float,
    ) -> None:
        """kind OPT_SGD (momentum, nesterov, weight decay as torch.optim.SGD) or OPT_ADAMW (betas,
        eps, decoupled weight decay as torch.optim.AdamW); dropout the probability of zeroing a
        hidden unit during training."""

class Trainer:
    """The optimizer's state for one model: minibatch workspace, moments and update count."""

    t: int
    """Updates taken (AdamW's bias-correction counter)."""

    def __init__(self, model: Model, B: int, opt: OptConfig) -> None:
        """Batch size B and the optimizer's settings."""
    def run(
        self,
        X: _I32 | _U8,
        Y: _I32 | _U8,
        batch_idx: Optional[npt.NDArray[np.int64]],
        lr: npt.NDArray[np.float64],
        step0: int,
        seed: int,
        seconds: float,
        losses: npt.NDArray[np.float64],
        ustats: Optional[npt.NDArray[np.float64]] = None,
        record_every: int = 0,
        bins: int = 0,
        saturated: float = 0.0,
    ) -> tuple[int, int, list[_Record]]:
        """Up to ``len(lr)`` steps from global step ``step0`` (fewer if ``seconds`` run out), each
        step's minibatch loss written to ``losses``. X and Y as int32, or both as uint8 when the
        vocabulary has at most 256 characters (read faster at random). Returns (steps done,
        status): status 0 is fine, 1 a non-finite loss, 2 a non-finite parameter after an update.
        With ``ustats`` (steps, trained parameters, 2): each step's standard deviation of every
        trained parameter's update and of its value after the update. With ``record_every`` > 0:
        the records (``diagnose()`` of the step's minibatch, before its update) of the steps whose
        global index is a multiple of it, the third element."""
    def moments(self) -> tuple[Optional[list[_Float]], Optional[list[_Float]]]:
        """The first and second moment buffers in user shapes (None where the optimizer keeps none)."""
    def set_moments(self, m: Optional[list[_Float]], v: Optional[list[_Float]], /) -> None:
        """Replace the moment buffers (None exactly where the optimizer keeps none)."""

def decode_names(ids: _I32, codes: npt.NDArray[np.uint32], /) -> list[str]:
    """Names as strings from ids one after another, each name ended by 0: id v is the character
    ``chr(codes[v])`` (``codes[0]`` unused)."""

def summarize(
    a: _Float, lo: Optional[float], hi: Optional[float], threshold: float, bins: int
) -> tuple[float, float, int, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Part 3's statistics of the values of ``a`` as float64, as NumPy computes them: (mean, std
    with ddof=1, the count of ``|a| > threshold``, ``np.histogram(a, bins, range=(lo, hi))``'s
    counts and edges); the range fitted to the data's min and max when lo and hi are None; no
    histogram (empty arrays) when bins is 0."""

def set_num_threads(n: int, /) -> None:
    """Threads of the core's pool (>= 1)."""

def get_num_threads() -> int:
    """Threads of the core's pool."""

def core_round_trip_ns(rounds: int, /) -> float:
    """Mean ns for a write on one CPU to be answered from another (-1: fewer than 2 CPUs)."""

def default_threads() -> int:
    """The CPUs this process may run on."""

def isa() -> str:
    """The instruction set in use: ``"avx512"``, ``"avx2"`` or ``"generic"``."""

def isa_supported(name: str, /) -> bool:
    """Whether this CPU (and build) can run the kernels of ``name``."""

def set_isa(name: str, /) -> None:
    """Run the kernels on ``name``; ValueError if unknown or unsupported."""

def dropout_mask(dtype: str, seed: int, step: int, layer: int, L: int, B: int, H: int, p: float, /) -> _Float:
    """The (B, H) inverted-dropout mask (0 or 1/(1-p)) the core applies at ``step`` to hidden layer
    ``layer`` of ``L``, for checking against a reference."""
