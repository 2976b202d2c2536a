"""Probes on synthetic activations with a planted direction, grouped CV, layer selection, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from probes.estimators import DIRECTION_SOURCES, LogisticProbe, MeanDiffProbe, ProbeError, direction_from
from probes.evaluate import auroc, cross_validate, eligible_layers, group_splits, select_layer


def planted(n=3000, d=32, strength=2.0, seed=0, n_groups=12):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d)) + strength * y[:, None] * v + 3.0  # offset: the probe must not rely on 0-mean
    groups = np.asarray([f"fam{i % n_groups}" for i in range(n)])
    return X.astype(np.float32), y, groups, v


@pytest.mark.parametrize("probe", [MeanDiffProbe, LogisticProbe])
def test_planted_direction_is_recovered(probe):
    X, y, _, v = planted()
    p = probe().fit(X, y)
    assert abs(float(p.direction_ @ v)) > 0.99
    assert float(p.direction_ @ v) > 0  # points from class 0 towards class 1
    assert p.score(X, y) > 0.8
    np.testing.assert_array_equal(p.predict(X), (p.decision_function(X) > 0).astype(int))


def test_mean_diff_threshold_is_midpoint():
    X, y, _, _ = planted(n=400)
    p = MeanDiffProbe().fit(X, y)
    mid = 0.5 * (X[y == 1].mean(0) + X[y == 0].mean(0))
    assert p.decision_function(mid[None])[0] == pytest.approx(0.0, abs=1e-3)
    np.testing.assert_allclose(p.diff_, X[y == 1].mean(0) - X[y == 0].mean(0), atol=1e-4)


def test_logistic_threshold_matches_raw_coefficients():
    X, y, g, _ = planted(n=600)
    p = LogisticProbe().fit(X, y, groups=g)
    np.testing.assert_allclose(p.decision_function(X), X @ p.coef_raw_ - p.threshold_, rtol=1e-3, atol=1e-3)
    assert p.C_ in p.Cs


@pytest.mark.parametrize("probe", ["mean_diff", "logistic"])
def test_shuffled_labels_give_chance(probe):
    X, y, g, _ = planted(n=1200, seed=1)
    y = np.random.default_rng(5).permutation(y)
    m = cross_validate(probe, X, y, g, n_boot=100)
    assert 0.35 <= m["accuracy"] <= 0.65
    assert 0.35 <= m["auroc"] <= 0.65
    assert m["accuracy_lo"] <= m["accuracy"] <= m["accuracy_hi"]


def test_planted_direction_cross_validates_well():
    X, y, g, _ = planted(n=1200, seed=2, strength=3.0)
    m = cross_validate("mean_diff", X, y, g, n_boot=100)
    assert m["accuracy"] > 0.85 and m["auroc"] > 0.9
    assert m["n"] == 1200 and m["n_families"] == 12 and m["n_folds"] == 5


def test_group_cv_never_shares_a_family():
    groups = [f"t{i % 7}" for i in range(70)]
    splits = group_splits(groups, 5)
    assert len(splits) == 5
    g = np.asarray(groups)
    seen = set()
    for tr, te in splits:
        assert not set(g[tr]) & set(g[te])
        seen |= set(te.tolist())
    assert seen == set(range(70))  # every row tested exactly once overall


def test_memorised_phrasing_is_caught_by_family_cv():
    # the label is decodable only through a per-family offset: random CV would look good, family CV does not
    rng = np.random.default_rng(3)
    n_fam, per = 20, 40
    fam = np.repeat(np.arange(n_fam), per)
    y = np.repeat(rng.integers(0, 2, n_fam), per)
    X = rng.normal(size=(n_fam * per, 16)) * 0.3 + rng.normal(size=(n_fam, 16))[fam] * 3
    m = cross_validate("logistic", X, y, fam, n_boot=50)
    assert m["accuracy"] < 0.75


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    s[:20] = 0.5  # ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_select_layer_rule():
    per = {0: {"accuracy": 0.9, "auroc": 0.9}, 1: {"accuracy": 0.95, "auroc": 0.96},
           2: {"accuracy": 0.95, "auroc": 0.97}, 3: {"accuracy": 0.95, "auroc": 0.97},
           4: {"accuracy": 0.99, "auroc": 0.99}}  # layer 4 is in the last 20% of a 5-layer model
    assert eligible_layers(list(per), 5) == [0, 1, 2, 3]
    assert select_layer(per, 5) == 2  # accuracy tie 1-3, AUROC tie 2-3, earlier layer wins


def test_one_class_labels_are_refused():
    X = np.zeros((10, 4), np.float32)
    with pytest.raises(ProbeError, match="exactly two classes"):
        MeanDiffProbe().fit(X, np.ones(10))
    with pytest.raises(ProbeError, match="at least 2 template families"):
        group_splits(["a"] * 10)
    with pytest.raises(ProbeError, match="labels for"):
        LogisticProbe().fit(X, np.arange(3) % 2)


@pytest.mark.parametrize("probe", [MeanDiffProbe, LogisticProbe])
def test_probes_follow_sklearn_estimator_conventions(probe):
    from sklearn.base import clone

    X, y, g, v = planted(n=400)
    names = np.where(y == 1, "conscious", "toaster")  # string labels: the larger in sorted order is positive
    p = probe(Cs=[0.01, 1]) if probe is LogisticProbe else probe(remove=None)
    assert clone(p).get_params() == p.get_params()  # parameters stored untouched (a list stays a list)
    if probe is LogisticProbe:
        assert p.get_params()["Cs"] == [0.01, 1]
    p.fit(X, names, groups=g)
    assert list(p.classes_) == ["conscious", "toaster"]
    assert set(p.predict(X)) <= {"conscious", "toaster"}  # predict returns the original labels
    assert p.score(X, names) > 0.8
    assert float(p.direction_ @ v) < 0  # towards classes_[1] = toaster, i.e. away from y == 1
    assert not hasattr(probe(), "direction_")  # fitted attributes appear only after fit


def test_direction_sources_recover_a_planted_direction():
    rng = np.random.default_rng(3)
    n_pairs, d = 200, 24
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    base = rng.normal(size=(n_pairs, d)) * 2.0
    X = np.concatenate([base + 1.5 * v + rng.normal(size=(n_pairs, d)) * 0.3,
                        base + rng.normal(size=(n_pairs, d)) * 0.3]).astype(np.float32)
    y = np.r_[np.ones(n_pairs, int), np.zeros(n_pairs, int)]
    pairs = np.r_[np.arange(n_pairs), np.arange(n_pairs)]
    groups = pairs % 10
    md = direction_from("mean_diff", X, y)
    for src in DIRECTION_SOURCES:
        raw = direction_from(src, X, y, pairs=pairs, groups=groups)
        assert float(raw @ v) / np.linalg.norm(raw) > 0.9, src  # found, and signed towards the positive class
        assert np.linalg.norm(raw) == pytest.approx(np.linalg.norm(md), rel=1e-5)  # one scale for every source
    removed = direction_from("pca_paired", X, y, pairs=pairs, remove=v[None])
    assert abs(float(removed @ v)) < 1e-4  # the removed span is projected out
    with pytest.raises(ProbeError, match="pair"):
        direction_from("pca_paired", X, y)
    with pytest.raises(ProbeError, match="unknown direction source"):
        direction_from("svd", X, y)
