"""The paired statistics: calibrated when two models are equal by construction (the interval
covers 0 about 95% of the time, the test fires at no more than its rate), powerful when they
differ, Holm's adjustment, and figures equal to the evaluator's."""

from __future__ import annotations

import numpy as np

from hybridrs.evaluation.stats import Contributions, holm, paired_difference, perms_for


def _model(rng, base, noise, shift=0.0):
    """Per-id contributions: base[id, lang] (shared by both models: the question's
    difficulty, the same in every translation) + this model's noise."""
    n_ids, n_l = base.shape
    values = np.clip(base + shift + noise * rng.standard_normal((n_ids, n_l)), 0, 1)
    return Contributions([str(i) for i in range(n_ids)], values, np.ones((n_ids, n_l)))


def _trial(rng, shift, seeds=3, n_ids=150, n_l=4):
    base = rng.beta(2, 2, size=(n_ids, 1)) + 0.1 * rng.standard_normal((n_ids, n_l))
    a = [_model(rng, base, 0.15, shift) for _ in range(seeds)]
    b = [_model(rng, base, 0.15) for _ in range(seeds)]
    return paired_difference(a, b, n_boot=400, n_perm=400, seed=int(rng.integers(1 << 30)))


def test_calibrated_when_equal_by_construction():
    # 600 trials: the binomial standard error of a 95% rate is about 0.009 (1,000 trials with
    # another seed gave coverage 0.947 and a false-positive rate of 0.048)
    rng = np.random.default_rng(12345)
    trials = [_trial(rng, 0.0) for _ in range(600)]
    coverage = np.mean([t["low"] <= 0 <= t["high"] for t in trials])
    fired = np.mean([t["p"] < 0.05 for t in trials])
    assert 0.92 <= coverage <= 0.975, coverage
    assert fired <= 0.07, fired


def test_detects_a_real_difference():
    rng = np.random.default_rng(7)
    trials = [_trial(rng, 0.03) for _ in range(50)]
    assert np.mean([t["p"] < 0.05 and t["low"] > 0 for t in trials]) >= 0.9
    assert all(abs(t["diff"] - 0.03) < 0.02 for t in trials)


def test_clusters_move_together():
    """Duplicating every question (as if each had a translation that tells nothing new) must
    not narrow the interval: the id is the unit resampled."""
    rng = np.random.default_rng(3)
    base = rng.beta(2, 2, size=(100, 1))
    a = _model(rng, base, 0.1, 0.01)
    b = _model(rng, base, 0.1)
    one = paired_difference([a], [b], n_boot=1000, n_perm=200, seed=1)
    twice = paired_difference(
        [Contributions(a.ids, 2 * a.values, 2 * a.counts)],
        [Contributions(b.ids, 2 * b.values, 2 * b.counts)],
        n_boot=1000,
        n_perm=200,
        seed=1,
    )
    assert abs(one["diff"] - twice["diff"]) < 1e-12
    assert abs((one["high"] - one["low"]) - (twice["high"] - twice["low"])) < 1e-9


def test_holm():
    assert holm([0.01, 0.04, 0.03, 0.5]) == [0.04, 0.09, 0.09, 0.5]
    assert holm([]) == []


def test_holm_can_fire_in_a_large_table():
    """A randomisation p-value is at least 1 / (1 + n_perm): with 2,000 sign flips Holm over
    the techniques grid's 495 tests could never reach 0.05. The table takes enough flips, drawn
    in chunks, so a clear difference gets the smallest p the flips allow."""
    assert perms_for(90, 2000) == 2000  # issue 11's table: unchanged (smallest Holm p 0.045)
    assert perms_for(495, 2000) == 19800
    rng = np.random.default_rng(5)
    base = rng.beta(2, 2, size=(200, 1)) + 0.1 * rng.standard_normal((200, 3))
    a, b = _model(rng, base, 0.05, 0.05), _model(rng, base, 0.05)
    n = perms_for(495, 2000)
    r = paired_difference([a], [b], n_boot=200, n_perm=n, seed=0)
    assert r["p"] == 1 / (1 + n)
    assert holm([r["p"]] * 495)[0] < 0.05
    # up to one chunk the draws are those of one call, as before the chunking
    small = paired_difference([a], [b], n_boot=200, n_perm=300, seed=0)
    assert small["p"] == 1 / 301 and small["low"] == r["low"] and small["high"] == r["high"]
