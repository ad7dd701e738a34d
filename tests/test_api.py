"""Small API contracts not covered elsewhere."""

from __future__ import annotations

import os

import numpy as np
import pytest

import makemore_cpp as mm


def test_from_torch_keeps_float64():
    pytest.importorskip("torch")
    m = mm.MLP(27, dtype="float64", seed=3)
    back = mm.MLP.from_torch(m.to_torch())
    assert back.dtype == "float64"
    for k, a in m.get_params().items():
        np.testing.assert_array_equal(back.get_params()[k], a)
    assert mm.MLP.from_torch(mm.MLP(27).to_torch()).dtype == "float32"


def test_checkpoint_gets_the_usual_file_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        mm.MLP(27).save(tmp_path / "m.npz")
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o644
