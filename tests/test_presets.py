"""Each preset of ``mm.fit`` trained for a short budget (2,000 steps, not the full run) on the
bundled names: its loss falls as its recipe says it should. The full runs and their figures are
``python benchmarks/quality.py`` (README, "Model quality")."""

from __future__ import annotations

import numpy as np
import pytest

import makemore_cpp as mm

STEPS = 2_000
# Dev loss after STEPS steps: an upper bound with some margin over what each preset reaches
# (measured: lecture 3.04, kaiming 2.36, best 2.11, bn 2.36, wavenet 2.24), all far below where
# each starts.
BOUND = {"lecture": 3.2, "kaiming": 2.45, "best": 2.25, "bn": 2.45, "wavenet": 2.32}


@pytest.fixture(scope="module")
def runs():
    words = mm.load_names()
    out = {}
    for preset in mm.PRESETS:
        start = mm.fit(words, preset, steps=0).losses
        res = mm.fit(words, preset, steps=STEPS, eval_every=500)
        out[preset] = (start, res)
    return out


def test_every_preset_is_covered():
    assert set(BOUND) == set(mm.PRESETS)


@pytest.mark.parametrize("preset", sorted(BOUND))
def test_a_short_run_of_each_preset_learns(runs, preset):
    start, res = runs[preset]
    hist = res.history
    assert len(hist.loss) == STEPS and np.isfinite(hist.loss).all()
    # the minibatch loss falls: the last 200 steps well below the first 200
    assert hist.loss[-200:].mean() < hist.loss[:200].mean() - 0.3
    # the dev loss falls at every evaluation and ends below the preset's bound
    assert list(hist.eval_step) == [500, 1000, 1500, 2000]
    assert np.all(np.diff(hist.eval_loss) < 0), hist.eval_loss
    assert res.losses["dev"] < start["dev"] - 0.5
    assert res.losses["dev"] < BOUND[preset], res.losses
    # no sign of overfitting this early: train and dev agree
    assert abs(res.losses["train"] - res.losses["dev"]) < 0.1


def test_the_presets_rank_as_the_lectures_say(runs):
    """Part 3's initialisation learns faster than part 2's N(0, 1), and the best recipe faster still."""
    dev = {p: runs[p][1].losses["dev"] for p in runs}
    assert dev["best"] < dev["kaiming"] < dev["lecture"], dev
    # the lecture's N(0, 1) init starts with confidently wrong logits (the "hockey stick"); the
    # part-3 init, and the layer models' last weight times 0.1, start near the uniform loss ln(V)
    V = len(runs["lecture"][1].vocab)
    assert runs["lecture"][0]["dev"] > 10
    for preset in ("kaiming", "bn", "wavenet"):
        assert abs(runs[preset][0]["dev"] - np.log(V)) < 0.1, preset
    # part 5: the hierarchical model of context 8 beats part 3's batch-norm MLP of context 3
    assert dev["wavenet"] < dev["bn"], dev
