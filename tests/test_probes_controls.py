"""Confound controls of the probes on synthetic data: family x phrasing splits, the lexical baseline and
selectivity, paired accuracy by question polarity, projecting a span out, the selection rule."""

from __future__ import annotations

import numpy as np
import pytest

from probes.controls import layer_table
from probes.directions import Direction
from probes.estimators import MeanDiffProbe
from probes.evaluate import cross_validate, make_splits, pair_index, paired_metrics, select_layer
from probes.extract import _metrics, fit_layers, make_design
from probes.geometry import orthonormal_basis, project_out
from probes.lexical import bag_of_words, lexical_baseline

FILLER = ["the", "a", "small", "quiet", "bright", "river", "stone", "garden", "window", "morning", "light", "road"]


def synthetic(n_fam=8, n_phr=4, seed=0, lexical_word=True, signal=3.0, d=24):
    """Paired rows: family x phrasing x 2 prompts; class 1 vs 0 answers; optional giveaway word."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    rows = []
    for f in range(n_fam):
        for p in range(n_phr):
            for q in range(2):
                pid = f"f{f}-p{p}-q{q}"
                pol = "direct" if q == 0 else "reversed"
                for y in (1, 0):
                    words = list(rng.choice(FILLER, size=6))
                    if lexical_word:
                        words.insert(0, "yes" if y else "no")
                    rows.append({"family": f"fam{f}", "phrasing": f"ph{p}", "pair": pid, "polarity": pol, "y": y,
                                 "text": " ".join(words)})
    y = np.asarray([r["y"] for r in rows])
    X = rng.normal(size=(len(rows), d)) + signal * y[:, None] * v + 2.0
    return rows, X.astype(np.float32), y, v


def col(rows, k):
    return [r[k] for r in rows]


def test_two_way_split_shares_no_family_or_phrasing():
    rows, _, y, _ = synthetic()
    fam, phr = np.asarray(col(rows, "family")), np.asarray(col(rows, "phrasing"))
    splits, info = make_splits(fam, y, phr, n_splits=4, phrasing_splits=2)
    assert info["scheme"] == "family x phrasing" and info["n_folds"] == 8
    tested = np.zeros(len(rows), int)
    for tr, te in splits:
        assert not set(fam[tr]) & set(fam[te])
        assert not set(phr[tr]) & set(phr[te])
        assert set(y[tr]) == {0, 1}
        tested[te] += 1
    assert (tested == 1).all()  # every row is tested exactly once


def test_phrasings_are_dealt_per_class():
    # phrasing ids private to each class: every phrasing fold still trains on both classes
    rows, _, y, _ = synthetic()
    phr = np.asarray([f"{r['phrasing']}-{r['y']}" for r in rows])
    splits, info = make_splits(col(rows, "family"), y, phr, n_splits=4, phrasing_splits=2)
    assert info["scheme"] == "family x phrasing"
    assert all(set(y[tr]) == {0, 1} for tr, _ in splits)


def test_split_falls_back_to_families_without_phrasing():
    rows, _, y, _ = synthetic()
    fam = np.asarray(col(rows, "family"))
    for phr in (None, [None] * len(rows), ["same"] * len(rows)):
        splits, info = make_splits(fam, y, phr, n_splits=4)
        assert info["scheme"] == "family" and info["note"]
        assert len(splits) == 4
        assert all(not set(fam[tr]) & set(fam[te]) for tr, te in splits)


def test_lexical_baseline_catches_a_giveaway_word_and_selectivity_is_zero():
    rows, X, y, _ = synthetic(lexical_word=True, signal=5.0)
    design = make_design(y, col(rows, "family"), phrasings=col(rows, "phrasing"), pairs=col(rows, "pair"),
                         polarity=col(rows, "polarity"), texts=col(rows, "text"), n_splits=4, n_boot=200)
    assert design.lexical["accuracy"] > 0.97 and design.lexical["paired_accuracy"] > 0.97
    _, _, per = fit_layers(lambda L: X, design, [0], ("mean_diff",), n_boot=200)
    m = {k: v[0] for k, v in per["mean_diff"].items()}
    assert m["accuracy"] > 0.95
    assert abs(m["selectivity"]) < 0.05
    assert m["selectivity_lo"] <= m["selectivity"] <= m["selectivity_hi"]
    assert _metrics([0], per, None, design)["beats_lexical"] is False


def test_planted_semantic_signal_gives_positive_selectivity():
    rows, X, y, _ = synthetic(lexical_word=False, signal=3.0)
    design = make_design(y, col(rows, "family"), phrasings=col(rows, "phrasing"), pairs=col(rows, "pair"),
                         texts=col(rows, "text"), n_splits=4, n_boot=200)
    assert 0.3 < design.lexical["accuracy"] < 0.7  # the words carry no label
    _, _, per = fit_layers(lambda L: X, design, [0], ("mean_diff", "logistic"), n_boot=200)
    for probe in ("mean_diff", "logistic"):
        m = {k: v[0] for k, v in per[probe].items()}
        assert m["selectivity"] > 0.3 and m["selectivity_lo"] > 0, probe
        assert m["paired_accuracy"] > 0.9
    assert _metrics([0], per, None, design)["beats_lexical"] is True


def test_bag_of_words_keeps_negations_whole():
    B = bag_of_words(["I don't feel it.", "I do feel it."])
    assert B.shape == (2, 5)  # i, don't, do, feel, it
    assert (B.sum(0) >= 1).all()


def test_paired_accuracy_tells_a_condition_direction_from_a_yes_no_direction():
    # mixed polarity: in reversed pairs the positive (conscious) answer says "no"
    rng = np.random.default_rng(1)
    n_pairs, d = 80, 16
    cond, yesno = np.eye(d)[0], np.eye(d)[1]
    rows, X = [], []
    for k in range(n_pairs):
        pol = "direct" if k % 2 == 0 else "reversed"
        for y in (1, 0):
            says_yes = (y == 1) == (pol == "direct")
            X.append(rng.normal(size=d) * 0.3 + (1.0 if y else -1.0) * cond + (2.0 if says_yes else -2.0) * yesno)
            rows.append({"y": y, "pair": f"q{k}", "pol": pol, "family": f"fam{k % 8}"})
    X, y = np.asarray(X), np.asarray(col(rows, "y"))
    groups = np.asarray(col(rows, "family"))
    pairs = pair_index(y, col(rows, "pair"), col(rows, "pol"))
    good = paired_metrics(X @ cond, pairs, groups, None)
    bad = paired_metrics(X @ yesno, pairs, groups, None)
    assert good["paired_accuracy"] > 0.95
    assert bad["paired_accuracy"] == pytest.approx(0.5, abs=0.05)
    assert bad["paired_accuracy_direct"] == 1.0 and bad["paired_accuracy_reversed"] == 0.0
    assert bad["n_pairs_direct"] == bad["n_pairs_reversed"] == n_pairs // 2
    cv = cross_validate("mean_diff", X, y, groups, n_boot=50, pairs=col(rows, "pair"), polarity=col(rows, "pol"))
    assert cv["paired_accuracy"] > 0.9 and cv["n_pairs"] == n_pairs


def test_projecting_a_span_out():
    rng = np.random.default_rng(2)
    a, b, v = rng.normal(size=(3, 32))
    B = orthonormal_basis([a, b, a + b])  # a dependent vector adds nothing
    assert B.shape == (2, 32)
    np.testing.assert_allclose(B @ B.T, np.eye(2), atol=1e-12)
    w = project_out(v, B)
    assert abs(w @ a) < 1e-9 and abs(w @ b) < 1e-9
    rows, X, y, _ = synthetic(lexical_word=False)
    p = MeanDiffProbe(remove=np.stack([a[:24], b[:24]])).fit(X, y)
    assert abs(p.direction_ @ a[:24]) / np.linalg.norm(a[:24]) < 1e-6


def test_select_layer_uses_selectivity_then_paired_accuracy():
    per = {0: {"accuracy": 0.99, "auroc": 0.99, "selectivity": 0.0, "paired_accuracy": 0.6},
           1: {"accuracy": 0.9, "auroc": 0.9, "selectivity": 0.2, "paired_accuracy": 0.8},
           2: {"accuracy": 0.9, "auroc": 0.95, "selectivity": 0.2, "paired_accuracy": 0.9},
           3: {"accuracy": 0.9, "auroc": 0.99, "selectivity": 0.2, "paired_accuracy": 0.9},
           4: {"accuracy": 1.0, "auroc": 1.0, "selectivity": 0.5, "paired_accuracy": 1.0}}  # last 20%: excluded
    assert select_layer(per, 5) == 3  # selectivity tie 1-3, paired tie 2-3, AUROC picks 3


def test_layer_table_reports_controls_at_every_layer():
    rng = np.random.default_rng(3)
    d = {n: Direction(n, [0, 1, 2], rng.normal(size=(3, 8)), np.ones(3)) for n in ("self_model", "polarity")}
    d["self_model"].metrics = {"per_layer": {"mean_diff": {"accuracy": [0.9, 0.8, 0.7], "selectivity": [0.1, 0, 0],
                                                           "paired_accuracy": [1, 1, 1]}},
                               "lexical": {"accuracy": 0.8}, "selected_layer": 0}
    d["polarity"].metrics = {"identity_paired": {"paired_accuracy": [0.5, 0.6, 0.7]}}
    rows = layer_table(d)
    assert [r["layer"] for r in rows] == [0, 1, 2] and rows[0]["selected"]
    assert rows[2]["polarity_paired_accuracy"] == 0.7 and rows[1]["lexical_accuracy"] == 0.8
    want = d["self_model"].unit_at(1) @ d["polarity"].unit_at(1)
    assert rows[1]["cos_polarity"] == pytest.approx(float(want), abs=1e-6)
    assert "cos_negation" not in rows[0]


def test_lexical_baseline_is_memoised_and_deterministic():
    rows, _, y, _ = synthetic()
    splits, _ = make_splits(col(rows, "family"), y, col(rows, "phrasing"), n_splits=4)
    a = lexical_baseline(col(rows, "text"), y, col(rows, "family"), splits, n_boot=20)
    b = lexical_baseline(col(rows, "text"), y, col(rows, "family"), splits, n_boot=20)
    assert a is b
