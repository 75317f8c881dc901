import math

import pytest

from charter.core.stats import bradley_terry_elo, rate, wilson


def test_wilson_matches_hand_computation():
    lo, hi = wilson(5, 10)
    # z^2 = 3.8416; centre = (0.5 + 0.19208) / 1.38416 = 0.5; half = 1.96*sqrt(0.025 + 0.009604)/1.38416
    half = 1.96 * math.sqrt(0.025 + 3.8416 / 400) / 1.38416
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(3.8416 / 10 / 1.38416)  # = 0.2775
    assert wilson(0, 0) == (0.0, 1.0)
    assert rate(3, 4)["rate"] == 0.75


def test_bradley_terry_elo_two_models_is_the_log_odds():
    games = [("a", "b", 1.0)] * 3 + [("a", "b", 0.0)]
    elo = bradley_terry_elo(games, pseudo_ties=0.0)
    assert elo["a"] == 1000.0
    assert elo["a"] - elo["b"] == pytest.approx(400 * math.log10(3), abs=1e-6)  # 190.85
    # ties count half: 1 win + 1 tie = 1.5 of 2 -> odds 3 again
    elo = bradley_terry_elo([("a", "b", 1.0), ("a", "b", 0.5)], pseudo_ties=0.0)
    assert elo["a"] - elo["b"] == pytest.approx(400 * math.log10(3), abs=1e-6)
    # one pseudo tie: 3.5 of 5 -> odds 7/3
    elo = bradley_terry_elo(games, pseudo_ties=1.0)
    assert elo["a"] - elo["b"] == pytest.approx(400 * math.log10(3.5 / 1.5), abs=1e-6)


def test_bradley_terry_three_models():
    # A beats B twice as often as it loses, B beats C the same, A vs C unplayed:
    # strengths 4:2:1 -> Elo differences of 400*log10(2) each.
    games = [("a", "b", 1.0)] * 2 + [("a", "b", 0.0)] + [("b", "c", 1.0)] * 2 + [("b", "c", 0.0)]
    elo = bradley_terry_elo(games, pseudo_ties=0.0)
    step = 400 * math.log10(2)
    assert elo["a"] - elo["b"] == pytest.approx(step, abs=1e-4)
    assert elo["b"] - elo["c"] == pytest.approx(step, abs=1e-4)
    cyclic = bradley_terry_elo([("a", "b", 1.0), ("b", "c", 1.0), ("c", "a", 1.0)])
    assert max(cyclic.values()) - min(cyclic.values()) == pytest.approx(0.0, abs=1e-6)
    # a model that never wins keeps a finite rating with the default pseudo tie
    assert math.isfinite(bradley_terry_elo([("a", "b", 1.0)] * 5)["b"])
