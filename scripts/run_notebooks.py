"""Execute the notebooks in notebooks/ top to bottom under a Jupyter kernel and store their outputs.

    python scripts/run_notebooks.py                  # every notebook, the lecture's step counts
    python scripts/run_notebooks.py --quick part3    # small step counts (as CI runs them), by name
    MAKEMORE_NAMES_TXT=names.txt python scripts/run_notebooks.py --no-store   # on the lecture's file

Needs the notebook extra (pip install ".[notebook]"). The kernel runs this Python and imports the
makemore_cpp that this Python imports. tests/test_notebooks.py runs the notebooks with this module.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Any, Iterator

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
QUICK = "MAKEMORE_NOTEBOOK_QUICK"  # the notebooks' first cell reads it: small step counts


def kernel_env(quick: bool) -> dict[str, str]:
    """The kernel's environment: this one, with this Python's makemore_cpp first on PYTHONPATH,
    the step counts chosen, and matplotlib's backend left to the kernel (inline)."""
    import makemore_cpp

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    src = str(pathlib.Path(makemore_cpp.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env[QUICK] = "1" if quick else "0"
    return env


@contextlib.contextmanager
def this_python_kernel() -> Iterator[str]:
    """Make the kernel "python3" run this Python (not whichever a user's Jupyter folders name) for
    the duration: a kernel spec in a temporary folder put first on JUPYTER_PATH. Yields its name."""
    before = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory() as folder:
        spec = pathlib.Path(folder, "kernels", "python3")
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
        )
        os.environ["JUPYTER_PATH"] = folder + (os.pathsep + before if before else "")
        try:
            yield "python3"
        finally:
            if before is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = before


def execute(path: pathlib.Path, quick: bool, timeout: int) -> tuple[Any, float]:
    """Run the notebook at ``path`` top to bottom; return it with its outputs, and the seconds it took.
    A cell that raises ends the run with nbclient's CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with this_python_kernel() as name:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name=name, resources={"metadata": {"path": str(path.parent)}}
        )
        t0 = time.perf_counter()
        client.execute(env=kernel_env(quick))
        return nb, time.perf_counter() - t0


def final_bar_text(nb: Any) -> None:
    """A progress widget's output keeps, as its text (what renderers without widgets show), the bar
    as it was drawn first ("0%| | 0/200000"). Replace that text with the bar's last state, which
    the kernel left in the notebook's widget state."""
    state = (
        nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    )

    def model(ref: str) -> dict:
        return state.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            children = model(view["model_id"]).get("children", []) if view else []
            if len(children) != 3:
                continue
            prefix, bar, suffix = (model(c) for c in children)
            if "max" not in bar:
                continue
            filled = round(10 * bar.get("value", 0) / bar["max"]) if bar["max"] else 0
            text = f"{prefix.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{suffix.get('value', '')}"
            out["data"]["text/plain"] = html.unescape(text).replace("\u2007", " ")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="notebooks whose file name contains one of these (default: all)")
    ap.add_argument("--quick", action="store_true", help=f"small step counts ({QUICK}=1)")
    ap.add_argument("--no-store", action="store_true", help="run without writing the outputs back")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take (default 1800)")
    args = ap.parse_args()
    paths = sorted(
        p for p in NOTEBOOKS.glob("*.ipynb") if not args.names or any(n in p.name for n in args.names)
    )
    for path in paths:
        nb, seconds = execute(path, args.quick, args.timeout)
        if not args.no_store:
            import nbformat

            final_bar_text(nb)
            nbformat.write(nb, path)
        print(f"{path.relative_to(ROOT)}: {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
