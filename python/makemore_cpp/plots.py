"""The lectures' figures, as PNG files or as matplotlib figures to show.

    from makemore_cpp import plots
    plots.loss_curve(hist.loss, "loss.png")                  # log-scale loss, means over 1,000-step windows
    plots.lr_find_plot(lre, losses, "lr_find.png", suggested_lr=0.1)
    plots.embeddings_plot(model, "embeddings.png")           # the scatter of C, PCA when n_embd > 2

Every function takes ``path``: with it, the figure is written there as a PNG and the path is
returned; without it (``path=None``), the ``Figure`` is returned, which Jupyter shows when it is a
cell's value (``display(fig)`` elsewhere, ``fig.savefig(...)`` any time). ``ax=`` draws into an
Axes of one's own instead (side by side: ``fig, (a, b) = plt.subplots(1, 2)``) and returns it.
The backend is left as the session has it when pyplot is imported, under IPython/Jupyter (the
inline backend) or with ``MPLBACKEND`` set; otherwise (the command line, scripts) the figures are
drawn with Agg, which needs no display.

matplotlib is an optional dependency: ``pip install "makemore_cpp[plot]"``. Without it every
function here raises :class:`PlotUnavailable` (an ``ImportError``) saying so.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

__all__ = [
    "PlotUnavailable",
    "INSTALL_HINT",
    "loss_curve",
    "window_means",
    "lr_find_plot",
    "embeddings_plot",
    "pca_2d",
    "activations_plot",
    "gradients_plot",
    "weights_plot",
    "update_ratio_plot",
]

INSTALL_HINT = 'pip install "makemore_cpp[plot]"   (or: pip install matplotlib)'


class PlotUnavailable(ImportError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    if not _backend_chosen():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _backend_chosen() -> bool:
    """Whether the session chose matplotlib's backend: pyplot is imported (a script's or a
    notebook's own figures), this is an IPython session (Jupyter's inline backend) or MPLBACKEND is
    set. Otherwise the figures are drawn off-screen with Agg."""
    if "matplotlib.pyplot" in sys.modules or os.environ.get("MPLBACKEND"):
        return True
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get is not None and get() is not None


def _figure(figsize: tuple[float, float], path: Any, ax: Any) -> tuple[Any, Any]:
    """The figure and Axes to draw on: ``ax``'s, or a new figure of ``figsize``."""
    if ax is not None:
        if path is not None:
            raise ValueError("give path (to write a PNG) or ax (to draw into it), not both")
        return ax.figure, ax
    return _pyplot().subplots(figsize=figsize)


def _finish(fig: Any, path: str | os.PathLike | None, ax: Any) -> Any:
    """Write the PNG and return its path; or return the given ``ax``; or the new Figure. Under an
    inline backend (Jupyter) that Figure is closed in pyplot, so that it is shown once, as the cell's
    value or by display(), not a second time when the cell ends."""
    if ax is not None:
        return ax
    fig.tight_layout()
    if path is not None:
        return _save(fig, path)
    import matplotlib

    if "inline" in matplotlib.get_backend():
        _pyplot().close(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike) -> str:
    """Write ``fig`` as a PNG whose ``Title`` text chunk repeats the plot's title."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    title = fig.axes[0].get_title() if fig.axes else ""
    fig.savefig(path, dpi=100, format="png", metadata={"Title": title, "Software": "makemore_cpp"})
    _pyplot().close(fig)
    return path


def _log_y(ax: Any) -> None:
    """A log-scale y axis labelled with plain numbers (2, 2.5, 3, ...) rather than powers of ten."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _usual_gap(steps: Sequence[int]) -> int:
    gaps, counts = np.unique(np.diff(np.asarray(steps)), return_counts=True)
    return int(gaps[np.argmax(counts)])


def window_means(values: Sequence[float], window: int) -> tuple[np.ndarray, np.ndarray]:
    """The lecture's smoothing, ``torch.tensor(lossi).view(-1, window).mean(1)``: the mean of each
    whole window of ``window`` consecutive values (a shorter last window is averaged too). Returns
    (the step at the middle of each window, the means)."""
    a = np.asarray(values, dtype=np.float64)
    window = max(1, int(window))
    n = len(a)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    starts = np.arange(0, n, window)
    sums = np.add.reduceat(a, starts)
    counts = np.minimum(starts + window, n) - starts
    return starts + (counts - 1) / 2.0, sums / counts


def loss_curve(
    losses: Any,
    path: str | os.PathLike | None = None,
    window: int | None = None,
    *,
    step0: int = 0,
    eval_steps: Sequence[int] | None = None,
    eval_losses: Sequence[float] | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """The training loss per step on a log scale: every minibatch loss (faint) and their means over
    windows of ``window`` steps (the lecture's ``view(-1, 1000).mean(1)``; default about 1/200 of
    the run, at least 1). ``eval_steps``/``eval_losses`` add the dev loss measured during training.
    ``step0`` is the global step of ``losses[0]``. ``losses`` may be a :class:`History`, which gives
    all of these. Returns the path written, or the Figure (``path=None``), or ``ax``."""
    if hasattr(losses, "loss") and hasattr(losses, "step0"):  # a History
        hist = losses
        losses, step0 = hist.loss, hist.step0
        if eval_steps is None and getattr(hist, "eval_step", None):
            eval_steps, eval_losses = hist.eval_step, hist.eval_loss
    y = np.asarray(losses, dtype=np.float64)
    given = ax
    if window is None:
        window = max(1, len(y) // 200)
    if window > 1 and len(y) >= window:
        window = min(window, len(y))
    steps = step0 + np.arange(len(y))
    fig, ax = _figure((9, 5), path, ax)
    finite = np.isfinite(y) & (y > 0)
    if len(y) > 1:
        ax.plot(steps[finite], y[finite], color="tab:blue", alpha=0.15, lw=0.5, label="minibatch loss")
    mid, means = window_means(y, window)
    ax.plot(step0 + mid, means, color="tab:blue", lw=2, label=f"mean over {window:,}-step windows")
    if eval_steps is not None and eval_losses is not None and len(eval_steps):
        ax.plot(
            list(eval_steps),
            list(eval_losses),
            "o-",
            color="tab:orange",
            ms=4,
            lw=1.2,
            label="dev loss" + (f" (every {_usual_gap(eval_steps):,} steps)" if len(eval_steps) > 1 else ""),
        )
    _log_y(ax)
    from matplotlib.ticker import FuncFormatter

    # steps in thousands past 10,000 ("150k"), short enough not to run together on a narrow Axes
    thousands = len(steps) > 0 and steps[-1] >= 10_000
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda x, _: f"{x / 1000:g}k" if thousands and x else f"{x:,.0f}")
    )
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (log scale)")
    if len(means):
        lo = min(
            np.nanmin(means),
            np.nanmin(eval_losses) if eval_losses is not None and len(eval_losses) else np.inf,
        )
        hi = np.nanmax(means)
        if np.isfinite(lo) and np.isfinite(hi) and lo > 0:
            ax.set_ylim(lo * 0.9, max(hi * 1.15, lo * 1.5))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title or f"Training loss over {len(y):,} steps")
    return _finish(fig, path, given)


def lr_find_plot(
    lre: Sequence[float],
    losses: Sequence[float],
    path: str | os.PathLike | None = None,
    *,
    suggested_lr: float | None = None,
    smoothed: Sequence[float] | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """The lecture's learning-rate sweep: the minibatch loss of each step against log10 of its
    learning rate (``plt.plot(lri, lossi)``), with a smoothed curve and the suggested rate marked.
    Returns the path written, or the Figure (``path=None``), or ``ax``."""
    x = np.asarray(lre, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    given = ax
    fig, ax = _figure((9, 5), path, ax)
    ax.plot(x[: len(y)], y, color="tab:blue", lw=0.6, alpha=0.4, label="minibatch loss at that step")
    if smoothed is not None:
        ax.plot(x[: len(smoothed)], smoothed, color="tab:blue", lw=2, label="smoothed")
    if suggested_lr is not None:
        ax.axvline(
            np.log10(suggested_lr),
            color="tab:red",
            ls="--",
            lw=1.5,
            label=f"suggested lr = {suggested_lr:.3g} (log10 = {np.log10(suggested_lr):.2f})",
        )
    finite = y[np.isfinite(y)]
    if len(finite):
        # the whole smoothed curve, unless it explodes past 1.5 times where it started
        top = (
            min(np.nanmax(smoothed), 1.5 * smoothed[0]) * 1.08
            if smoothed is not None and len(smoothed)
            else finite.max()
        )
        ax.set_ylim(max(0.0, finite.min() - 0.3), min(finite.max(), top) + 0.3)
    ax.set_xlabel("log10(learning rate)")
    ax.set_ylabel("minibatch loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or f"Learning-rate sweep: one step at each of {len(y):,} rates")
    return _finish(fig, path, given)


def pca_2d(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project the rows of ``E`` on its first two principal components. Returns (points (N, 2),
    fraction of the variance each component explains)."""
    E = np.asarray(E, dtype=np.float64)
    centred = E - E.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((s**2).sum()) or 1.0
    return centred @ vt[:2].T, (s[:2] ** 2) / total


def embeddings_plot(
    model: Any, path: str | os.PathLike | None = None, *, title: str | None = None, ax: Any = None
) -> Any:
    """The lecture's figure of the embedding table ``C``: one point per character with the
    character drawn on it. With ``n_embd == 2`` the axes are C's two columns; otherwise the points
    are C projected on its first two principal components (the plot says so). Returns the path
    written, or the Figure (``path=None``), or ``ax``."""
    C = np.asarray(model.get_params()[model.param_names[0]], dtype=np.float64)  # the Embedding's table
    vocab = getattr(model, "vocab", None)
    labels = [vocab.itos[i] for i in range(len(C))] if vocab is not None else [str(i) for i in range(len(C))]
    if C.shape[1] == 1:
        pts = np.column_stack([C[:, 0], np.zeros(len(C))])
        xlabel, ylabel, how = "C[:, 0]", "", "n_embd = 1"
    elif C.shape[1] == 2:
        pts = C
        xlabel, ylabel, how = "C[:, 0]", "C[:, 1]", "n_embd = 2: the two columns of C"
    else:
        pts, frac = pca_2d(C)
        xlabel = f"principal component 1 ({frac[0]:.0%} of variance)"
        ylabel = f"principal component 2 ({frac[1]:.0%} of variance)"
        how = f"n_embd = {C.shape[1]}, projected to 2-D with PCA"
    given = ax
    fig, ax = _figure((8, 8), path, ax)
    ax.scatter(pts[:, 0], pts[:, 1], s=200)
    for (x, y), ch in zip(pts, labels):
        ax.text(x, y, ch, ha="center", va="center", color="white", fontsize=10, fontweight="bold")
    ax.grid(True, which="both", alpha=0.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Character embeddings C ({how})")
    return _finish(fig, path, given)


# ---------------------------------------------------------------------------------------------
# Part 3's diagnostics (makemore_cpp.diagnostics): the lecture's four figures.


def _density(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """A histogram record's bin centres and densities (torch.histogram(..., density=True))."""
    counts = np.asarray(entry["hist"], dtype=np.float64)
    edges = np.asarray(entry["edges"], dtype=np.float64)
    widths = np.diff(edges)
    total = counts.sum()
    dens = counts / (total * widths) if total > 0 else counts
    return (edges[:-1] + edges[1:]) / 2, dens


def activations_plot(
    stats: dict, path: str | os.PathLike | None = None, *, title: str | None = None, ax: Any = None
) -> Any:
    """The lecture's "activation distribution": each Tanh layer's output histogram, its mean, std
    and the fraction saturated (|t| > 0.97) in the legend. ``stats`` is a
    :func:`makemore_cpp.diagnose` result. Returns
    the path written, or the Figure (``path=None``), or ``ax``."""
    given = ax
    fig, ax = _figure((10, 4), path, ax)
    for a in stats["activations"]:
        x, y = _density(a)
        ax.plot(
            x,
            y,
            label=f"layer {a['layer']} (Tanh): mean {a['mean']:+.2f}, std {a['std']:.2f}, "
            f"saturated {a['saturated']:.2%}",
        )
    ax.set_xlabel("Tanh output")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(title or "activation distribution")
    return _finish(fig, path, given)


def gradients_plot(
    stats: dict, path: str | os.PathLike | None = None, *, title: str | None = None, ax: Any = None
) -> Any:
    """The lecture's "gradient distribution": the histogram of the loss's gradient with respect to
    each Tanh layer's output, its mean and std in the legend. Returns
    the path written, or the Figure (``path=None``), or ``ax``."""
    given = ax
    fig, ax = _figure((10, 4), path, ax)
    for g in stats["gradients"]:
        x, y = _density(g)
        ax.plot(x, y, label=f"layer {g['layer']} (Tanh): mean {g['mean']:+.2e}, std {g['std']:.2e}")
    ax.set_xlabel("gradient with respect to the Tanh output")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(title or "gradient distribution")
    return _finish(fig, path, given)


def weights_plot(
    stats: dict, path: str | os.PathLike | None = None, *, title: str | None = None, ax: Any = None
) -> Any:
    """The lecture's "weights gradient distribution": each 2-D weight's gradient histogram, its
    shape, gradient std and grad:data ratio in the legend. Returns
    the path written, or the Figure (``path=None``), or ``ax``."""
    given = ax
    fig, ax = _figure((10, 4), path, ax)
    for name, p in stats["params"].items():
        if len(p["shape"]) != 2:
            continue
        x, y = _density(p)
        ax.plot(
            x,
            y,
            label=f"{name} {tuple(p['shape'])}: std {p['grad_std']:.2e}, "
            f"grad:data ratio {p['grad_data_ratio']:.2e}",
        )
    ax.set_xlabel("gradient")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(title or "weights gradient distribution")
    return _finish(fig, path, given)


def update_ratio_plot(
    diagnostics: Any,
    path: str | os.PathLike | None = None,
    *,
    window: int | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """The lecture's update:data ratio over time: log10(std(update) / std(param)) of each 2-D
    weight at every step (means over ``window`` steps for long runs), against the line at -3 that
    the lecture reads as a healthy rate. ``diagnostics`` is a ``History.diagnostics``. Returns
    the path written, or the Figure (``path=None``), or ``ax``."""
    d = diagnostics
    steps = np.asarray(d.steps)
    last = d.records[-1][1]["params"] if d.records else {}
    two_d = {n for n, p in last.items() if len(p["shape"]) == 2} if last else set(d.names)
    given = ax
    fig, ax = _figure((10, 4), path, ax)
    if window is None:
        window = max(1, len(steps) // 1000)
    for j, name in enumerate(d.names):
        if name not in two_d:
            continue
        r = np.asarray(d.update_ratio[:, j], dtype=np.float64)
        r = np.where(np.isfinite(r), r, np.nan)
        mid, means = window_means(r, window)
        ax.plot(steps[0] + mid if len(steps) else mid, means, label=name)
    if len(steps):
        ax.plot([steps[0], steps[-1]], [-3, -3], "k", lw=1, label="-3 (the lecture's rule of thumb)")
    ax.set_xlabel("step")
    ax.set_ylabel("log10(update std / data std)")
    ax.legend(fontsize=8)
    ax.set_title(
        title or "update:data ratio over time" + (f" (means over {window:,} steps)" if window > 1 else "")
    )
    return _finish(fig, path, given)
