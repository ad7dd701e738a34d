"""Shared fixtures: the lecture's names file (skipped when absent) and the instruction sets."""

from __future__ import annotations

import os
import pathlib

import pytest

import makemore_cpp as mm

# ../shared/data/names.txt beside the project's root, or the file MAKEMORE_NAMES_TXT names (a
# checkout elsewhere, such as a git worktree)
SHARED_NAMES = pathlib.Path(
    os.environ.get("MAKEMORE_NAMES_TXT")
    or pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "names.txt"
)
# Every instruction set this CPU has; MAKEMORE_TEST_ISAS=generic,avx512 keeps only those of them
# (the sanitizer job: the narrowest and the widest vectors).
ISAS = [name for name in ("generic", "avx2", "avx512") if mm._core.isa_supported(name)]
if os.environ.get("MAKEMORE_TEST_ISAS"):
    ISAS = [name for name in ISAS if name in os.environ["MAKEMORE_TEST_ISAS"].split(",")] or ISAS[-1:]


@pytest.fixture(scope="session")
def lecture_words() -> list[str]:
    """The lecture's 32,033 names from ../shared/data/names.txt (beside the project's root)."""
    if not SHARED_NAMES.exists():
        pytest.skip(
            f"the lecture's names file is not at {SHARED_NAMES} (it is only on the project's machines)"
        )
    return mm.load_words(SHARED_NAMES)


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once on every instruction set this CPU has, then restore the default."""
    before = mm.get_isa()
    mm.set_isa(request.param)
    yield request.param
    mm.set_isa(before)
