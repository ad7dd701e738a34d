"""What a notebook user sees of the package, without a kernel (tests/test_notebooks.py runs one):
figures returned (plots without a path) or drawn into one's own Axes, matplotlib's backend left as
the session chose it, short reprs, and the shapes through a model's layers."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

import makemore_cpp as mm
from makemore_cpp.experiments import lr_find
from makemore_cpp.fitting import build_model, resolve

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def run():
    words = mm.load_names()[:3000]
    vocab = mm.Vocab.from_words(words)
    X, Y = mm.build_dataset(words, vocab, 3)
    model = mm.MLP(vocab, n_embd=4, n_hidden=32, seed=1)
    hist = mm.train(model, X, Y, 300, X_val=X[:500], Y_val=Y[:500], eval_every=100, diagnostics_every=100)
    sweep = lr_find(mm.MLP(vocab, n_embd=2, n_hidden=16), X, Y, steps=200)
    return model, hist, sweep, mm.diagnose(model, X[:64], Y[:64]), (X, Y)


def figures(run, **kw):
    from makemore_cpp import plots

    model, hist, sweep, stats, _ = run
    return {
        "loss_curve": plots.loss_curve(hist, **kw),
        "lr_find_plot": plots.lr_find_plot(sweep.lre, sweep.losses, suggested_lr=sweep.suggested_lr, **kw),
        "embeddings_plot": plots.embeddings_plot(model, **kw),
        "activations_plot": plots.activations_plot(stats, **kw),
        "gradients_plot": plots.gradients_plot(stats, **kw),
        "weights_plot": plots.weights_plot(stats, **kw),
        "update_ratio_plot": plots.update_ratio_plot(hist.diagnostics, **kw),
    }


def test_plots_without_a_path_return_the_figure(run):
    from matplotlib.figure import Figure

    for name, fig in figures(run).items():
        assert isinstance(fig, Figure), name
        assert fig.axes[0].get_title() and (fig.axes[0].lines or fig.axes[0].collections), name
        png = io.BytesIO()
        fig.savefig(png, format="png")
        assert png.getvalue()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_plots_draw_into_a_given_axes(run):
    import matplotlib.pyplot as plt

    from makemore_cpp import plots

    for name in figures(run):
        fig, ax = plt.subplots()
        out = figures(run, ax=ax)[name]
        assert out is ax and (ax.lines or ax.collections), name
        plt.close(fig)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="not both"):
        plots.loss_curve(run[1], "x.png", ax=ax)
    plt.close(fig)


def test_loss_curve_of_a_history_shows_its_evaluations(run):
    from makemore_cpp import plots

    fig = plots.loss_curve(run[1])
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert any(label.startswith("dev loss") for label in labels), labels


needs_plain_python = pytest.mark.skipif(
    os.environ.get("MAKEMORE_SANITIZE_RUN") == "1",
    reason="matplotlib's backends in child interpreters: no C++ of this package to check under the sanitizer",
)


def backend_after(code: str, **env: str) -> str:
    child = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    child.update(env)
    src = os.path.dirname(os.path.dirname(os.path.abspath(mm.__file__)))
    child["PYTHONPATH"] = src + (os.pathsep + child["PYTHONPATH"] if child.get("PYTHONPATH") else "")
    prog = f"import matplotlib\n{code}\nfrom makemore_cpp import plots\n"
    prog += "fig = plots.loss_curve([3.0, 2.0, 1.5])\n"
    prog += (
        "import matplotlib.pyplot as plt\nprint(matplotlib.get_backend().lower(), len(plt.get_fignums()))\n"
    )
    p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=child, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


@needs_plain_python
def test_the_backend_is_the_sessions_and_agg_otherwise():
    # a script or the command line: Agg, which needs no display
    assert backend_after("")[0] == "agg"
    # a session that chose its backend keeps it (the plots once forced Agg on everyone)
    assert backend_after("matplotlib.use('pdf')\nimport matplotlib.pyplot")[0] == "pdf"
    assert backend_after("", MPLBACKEND="svg")[0] == "svg"


@needs_plain_python
def test_under_the_inline_backend_a_returned_figure_is_shown_once():
    pytest.importorskip("matplotlib_inline")
    backend, open_figures = backend_after("", MPLBACKEND="module://matplotlib_inline.backend_inline")
    assert "inline" in backend
    # closed in pyplot: Jupyter shows it as the cell's value, not a second time at the cell's end
    assert open_figures == "0"


def test_reprs_are_one_short_line(run):
    model, hist, sweep, _, (X, Y) = run
    res = mm.fit(mm.load_names()[:2000], "bn", steps=50, eval_every=25)
    for obj, has in [
        (hist, ["300 steps", "last loss", "val loss", "diagnostics every 100"]),
        (hist.state, ["step=300", "sgd", "MLP of"]),
        (hist.diagnostics, ["every=100", "3 records", "300 steps"]),
        (sweep, ["200 steps", "suggested_lr="]),
        (res, ["preset='bn'", "Sequential(", "50 steps", "dev "]),
        (res.history, ["50 steps", "best"]),
        (model, ["n_hidden=32", "params="]),
        (model.vocab, ["27 symbols"]),
    ]:
        text = repr(obj)
        assert "\n" not in text and len(text) < 320, text
        for part in has:
            assert part in text, (part, text)


def test_out_shapes_and_summary_match_torch():
    torch = pytest.importorskip("torch")
    vocab = mm.Vocab.from_words(mm.load_names())
    for preset in ("lecture", "bn", "wavenet"):
        model = build_model(resolve(preset), vocab)
        x = torch.zeros((5, model.block_size), dtype=torch.long)
        shapes = []
        with torch.no_grad():
            for layer in model.to_torch() if preset != "lecture" else []:
                x = layer(x)
                shapes.append(tuple(x.shape))
        if preset == "lecture":
            shapes = [(5, 3, 10), (5, 30), (5, 200), (5, 200), (5, 27)]
        assert model.out_shapes(5) == shapes, preset
        table = model.summary(5).splitlines()
        assert len(table) == len(model.layers) + 2 and table[-1].split()[-1] == f"{model.num_params:,}"
        per_layer = sum(
            int(line.split()[-1].replace(",", "")) for line in table[1:-1] if not line.endswith(")")
        )
        assert per_layer == model.num_params, preset


def test_training_interrupted_is_a_keyboard_interrupt():
    # (its behaviour: tests/test_interrupt.py, and under a kernel tests/test_notebooks.py)
    assert issubclass(mm.TrainingInterrupted, KeyboardInterrupt)
