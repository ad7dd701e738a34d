"""The thread pool's hand-out of parts, under stress: tests/native/pool_stress.cpp, compiled here
against cpp/threadpool.cpp, once with random pauses between the steps of the pool's claim protocol
(which widen its races), once under ThreadSanitizer when the compiler has it. A part that runs
with another job's function or arguments, twice, never, or after its job returned aborts the
program. (ThreadSanitizer does not model the protocol's fences, and says so at compile time; it
checks the data the parts touch.)"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "tests" / "native" / "pool_stress.cpp", ROOT / "cpp" / "threadpool.cpp"]
CXX = shutil.which("g++") or shutil.which("c++")

pytestmark = pytest.mark.skipif(
    CXX is None or not all(p.exists() for p in SOURCES),
    reason="needs a C++ compiler and the project's sources",
)


def build(tmp_path, flags):
    exe = tmp_path / "pool_stress"
    p = subprocess.run(
        [
            CXX,
            "-std=c++17",
            "-g",
            *flags,
            f"-I{ROOT / 'cpp'}",
            *map(str, SOURCES),
            "-o",
            str(exe),
            "-lpthread",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return exe, p


@pytest.mark.parametrize(
    "flags", [["-O2", "-DMM_POOL_TEST_DELAY"], ["-O1", "-fsanitize=thread"]], ids=["pauses", "tsan"]
)
def test_every_part_of_every_job_runs_once(tmp_path, flags):
    exe, p = build(tmp_path, flags)
    if p.returncode != 0:
        if "-fsanitize=thread" in flags:
            pytest.skip(f"this compiler cannot build with ThreadSanitizer: {p.stderr[-300:]}")
        raise AssertionError(p.stderr[-3000:])
    for _ in range(3):
        r = subprocess.run(
            [str(exe)],
            capture_output=True,
            text=True,
            timeout=300,
            env={"TSAN_OPTIONS": "halt_on_error=1 exitcode=66"},
        )
        if "unexpected memory mapping" in r.stderr:  # an older ThreadSanitizer runtime on a newer kernel
            pytest.skip("this system's ThreadSanitizer runtime cannot run here")
        assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-4000:])
