"""stats against hand computations and planted effects."""

from __future__ import annotations

import numpy as np
import pytest

import stats as st


def test_wilson_known_values():
    # 5/10: centre 0.5, half-width 1.96*sqrt(.025 + 1.96^2/400)/(1 + 1.96^2/10) = 0.2634
    e = st.wilson_ci(5, 10)
    assert e.estimate == 0.5 and e.n == 10
    assert e.lo == pytest.approx(0.2366, abs=1e-4) and e.hi == pytest.approx(0.7634, abs=1e-4)
    # 0/10: upper bound z^2/(n + z^2) = 3.8415/13.8415 = 0.2775
    z = st.wilson_ci(0, 10)
    assert z.lo == 0.0 and z.hi == pytest.approx(0.2775, abs=1e-4)
    # 81/263 (a standard textbook example): [0.2553, 0.3662]
    t = st.wilson_ci(81, 263)
    assert t.lo == pytest.approx(0.2553, abs=5e-4) and t.hi == pytest.approx(0.3662, abs=5e-4)
    assert np.isnan(st.wilson_ci(0, 0).estimate)


def test_bh_against_hand_computation():
    # sorted .005 .01 .03 .04, m=4: p*m/rank = .02 .02 .04 .04, running min from the top keeps them
    q = st.bh_adjust([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # monotonicity step: .01*3/1=.03, .02*3/2=.03, .9*3/3=.9; a NaN stays NaN and is not counted
    q2 = st.bh_adjust([0.02, np.nan, 0.9, 0.01])
    assert np.isnan(q2[1])
    assert q2[[0, 2, 3]] == pytest.approx([0.03, 0.9, 0.03])


def test_bootstrap_contains_mean_and_is_seeded():
    x = np.random.default_rng(1).normal(2.0, 1.0, size=50)
    a, b = st.bootstrap_ci(x, seed=3), st.bootstrap_ci(x, seed=3)
    assert a == b
    assert a.lo < x.mean() < a.hi and a.n == 50
    assert a.estimate == pytest.approx(x.mean())
    c = st.bootstrap_ci(x, seed=4)
    assert (c.lo, c.hi) != (a.lo, a.hi)
    assert 0.3 < a.hi - a.lo < 0.9  # about 2 * 1.96 / sqrt(50) = 0.55
    one = st.bootstrap_ci([1.0])
    assert one.n == 1 and np.isnan(one.lo)


def test_paired_and_unpaired_differences():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 40)
    d = st.paired_bootstrap_diff(base + 1.0 + rng.normal(0, 0.1, 40), base)
    assert d.lo < 1.0 < d.hi and d.hi - d.lo < 0.2  # pairing removes the item variance
    u = st.bootstrap_diff_ci(rng.normal(1, 1, 60), rng.normal(0, 1, 80))
    assert u.lo < 1.0 < u.hi and u.lo > 0 and u.n == 60
    assert st.bootstrap_diff_ci([1, 2], []).n == 0
    with pytest.raises(ValueError):
        st.paired_bootstrap_diff([1, 2], [1, 2, 3])


def test_permutation_null_uniformish_and_small_under_effect():
    rng = np.random.default_rng(0)
    ps = np.array([st.paired_permutation_test(rng.normal(0, 1, 20), rng.normal(0, 1, 20), n_perm=999, seed=i)
                   for i in range(100)])
    assert 0.35 < ps.mean() < 0.65
    assert (ps < 0.05).mean() < 0.15
    assert 0.1 < (ps < 0.3).mean() < 0.5
    a = rng.normal(0.8, 1, 30)
    assert st.paired_permutation_test(a, np.zeros(30), n_perm=2000) < 0.01


def test_permutation_vs_null():
    null = np.random.default_rng(0).normal(0, 1, 99)
    assert st.permutation_test_vs_null(10.0, null) == pytest.approx(1 / 100)
    assert st.permutation_test_vs_null(0.0, null) > 0.5
    assert np.isnan(st.permutation_test_vs_null(1.0, []))


def test_slope_ci_recovers_planted_slope():
    rng = np.random.default_rng(0)
    doses = np.array([0, 1, 2, 4, 8], dtype=float)
    items = np.repeat(np.arange(30), doses.size)
    x = np.tile(doses, 30)
    offsets = rng.normal(0, 2, 30)[items]  # per-item offsets: clusters
    y = 0.5 * x + offsets + rng.normal(0, 0.5, x.size)
    e = st.slope_ci(x, y, items=items)
    assert e.lo < 0.5 < e.hi and e.lo > 0.3 and e.n == 30
    flat = st.slope_ci(x, offsets + rng.normal(0, 0.5, x.size), items=items)
    assert flat.lo < 0 < flat.hi


def test_cluster_bootstrap_one_seed_equals_plain_and_wider_when_seeds_disagree():
    from stats import bootstrap_ci, cluster_bootstrap_ci

    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 1.0, 60)
    assert cluster_bootstrap_ci(x, np.zeros(60)) == bootstrap_ci(x)
    seeds = np.repeat([0, 1, 2], 40)
    agree = rng.normal(0.3, 1.0, 120)
    disagree = agree + np.repeat([-0.8, 0.0, 0.8], 40)
    naive, pooled = bootstrap_ci(disagree), cluster_bootstrap_ci(disagree, seeds)
    assert (pooled.hi - pooled.lo) > 1.5 * (naive.hi - naive.lo)
    assert abs(pooled.estimate - naive.estimate) < 1e-9  # equal seed sizes: same point estimate
    same = cluster_bootstrap_ci(agree, seeds)
    assert (same.hi - same.lo) < (pooled.hi - pooled.lo)


def test_spearman_trend_test_detects_a_decline_only_in_its_direction():
    from stats import spearman_trend_test

    rng = np.random.default_rng(1)
    groups = [rng.normal(m, 1.0, 40) for m in (1.0, 0.7, 0.3, 0.0)]
    rho, p = spearman_trend_test(groups, "decreasing")
    assert rho < 0 and p < 0.01
    assert spearman_trend_test(groups, "increasing")[1] > 0.9
    assert np.isnan(spearman_trend_test([np.ones(5), np.ones(5)])[0])
