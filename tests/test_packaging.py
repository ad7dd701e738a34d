"""The sdist, built from this checkout as ``python -m build --sdist`` builds it (scikit-build-core's
build_sdist, in a child process from the project's root; no network, no compiler): it holds the
package's sources, tests and docs (pyproject.toml, [tool.scikit-build.sdist]) and nothing else,
whatever environments and outputs lie in the checkout, and stays small. The wheel and the installs
are checked by scripts/check_dist.sh (CI)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

pytest.importorskip("scikit_build_core", reason="the sdist is built with scikit-build-core (the test extra)")

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What the sdist may hold at its top: the build's files, the package, its tests and docs; benchmarks/
# (the README's speed figures and their code) and scripts/ (the checks the README's Development
# section runs). PKG-INFO is written by the build.
TOP = {"pyproject.toml", "CMakeLists.txt", "README.md", "PKG-INFO"}
TOP_DIRS = {"cpp", "python", "tests", "docs", "benchmarks", "scripts", "notebooks"}
MUST_HOLD = [
    "python/makemore_cpp/__init__.py",
    "python/makemore_cpp/_core.pyi",
    "python/makemore_cpp/py.typed",
    "python/makemore_cpp/data/names.txt",
    "python/makemore_cpp/data/README.md",
    "cpp/bindings.cpp",
    "cpp/core.cpp",
    "tests/conftest.py",
    "docs/guarantees.md",
]
# Never in an sdist: dot-files and dot-folders (caches, environments), build products.
JUNK = re.compile(r"(^|/)(\.[^/]+|__pycache__|build|dist|[^/]+\.egg-info)(/|$)|\.(so|o|a|pyc|pyo|whl)$")
MAX_BYTES = 2_000_000  # 0.53 MB on 2026-12-06, 70 files

# What the README's commands and the tools leave in a checkout (the 183 MB sdist of issue 27 held
# the first): none of it may reach the sdist.
LITTER = [
    ".venv-test/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so",
    ".venv-test/pyvenv.cfg",
    ".venv/bin/python",
    "venv/pyvenv.cfg",
    "runs/20261206-0400/model.npz",
    "lr_find.png",
    "sweep.csv",
    "bench.json",
    "dist/makemore_cpp-0.1.0-cp311-cp311-linux_x86_64.whl",
    "dist/makemore_cpp-0.1.0.tar.gz",
    "build/cp311-cp311-linux_x86_64/CMakeCache.txt",
    "python/makemore_cpp/_core.cpython-311-x86_64-linux-gnu.so",
    "python/makemore_cpp/__pycache__/model.cpython-311.pyc",
    "tests/__pycache__/test_api.cpython-311-pytest-8.0.0.pyc",
    "python/makemore_cpp.egg-info/PKG-INFO",
    ".pytest_cache/v/cache/nodeids",
    ".hypothesis/examples/0a/1b",
    "tests/.hypothesis/examples/0a/1b",
    ".ruff_cache/0.17.6/123",
    ".git/HEAD",
    ".ci/run",
    ".gitignore",
]


def build_sdist(tree: pathlib.Path, out: pathlib.Path) -> tuple[pathlib.Path, dict[str, int]]:
    """Build the sdist of ``tree`` into ``out``; return its path and {member path: size}."""
    code = "import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))"
    p = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=tree, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    path = out / p.stdout.strip().splitlines()[-1]
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    prefix = members[0].name.split("/")[0] + "/"
    files = {m.name[len(prefix) :]: m.size for m in members if m.isfile()}
    assert all(m.name.startswith(prefix) or m.name + "/" == prefix for m in members), prefix
    return path, files


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> tuple[pathlib.Path, dict[str, int]]:
    return build_sdist(ROOT, tmp_path_factory.mktemp("sdist"))


def git_files(*args: str) -> set[str] | None:
    """Files git lists for this checkout, or None outside a git work tree (an unpacked sdist)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    p = subprocess.run(["git", "ls-files", "-z", *args], cwd=ROOT, capture_output=True, text=True)
    return set(filter(None, p.stdout.split("\0"))) if p.returncode == 0 else None


def test_sdist_holds_the_sources_tests_and_docs_and_nothing_else(sdist):
    path, files = sdist
    tops = {f.split("/")[0] for f in files}
    assert tops <= TOP | TOP_DIRS, sorted(tops - TOP - TOP_DIRS)
    assert TOP <= set(files), sorted(TOP - set(files))
    assert set(MUST_HOLD) <= set(files), sorted(set(MUST_HOLD) - set(files))
    junk = sorted(f for f in files if JUNK.search(f))
    assert not junk, junk
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"the sdist is {size:,} bytes, more than {MAX_BYTES:,}"

    tracked = git_files()
    if tracked is not None:
        # Every file git keeps in the declared places ships; nothing git ignores does.
        declared = {f for f in tracked if f in TOP or f.split("/")[0] in TOP_DIRS}
        missing = sorted(f for f in declared - set(files) if not JUNK.search(f))
        assert not missing, f"tracked but not in the sdist (pyproject.toml, sdist.include): {missing}"
        ignored = git_files("--others", "--ignored", "--exclude-standard")
        assert not (set(files) & ignored), sorted(set(files) & ignored)


def test_sdist_leaves_out_environments_and_outputs_in_the_checkout(sdist, tmp_path):
    """A copy of the sdist's files, littered with what the README's commands and the tools leave (a
    virtual environment with torch in it, runs, plots, build folders, caches, the dev build's
    extension), gives an sdist of exactly the same files."""
    _, files = sdist
    tree = tmp_path / "checkout"
    for f in files:
        if f != "PKG-INFO":
            (tree / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, tree / f)
    for f in LITTER:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        (tree / f).write_bytes(b"\0" * 4096)
    out = tmp_path / "out"
    out.mkdir()
    _, littered = build_sdist(tree, out)
    assert not set(littered) & set(LITTER), sorted(set(littered) & set(LITTER))
    assert set(littered) == set(files), sorted(set(littered) ^ set(files))
