"""The one paired-effect engine (stats.effects): its numbers equal a direct computation, and the callers that
pair through it (evals.results.compare, analysis.cascade.shifts, steering.effects) agree on one shared example."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.cascade import shifts
from evals.results import compare
from stats import bh_adjust, paired_permutation_test, ratio_ci
from stats.effects import add_q, paired_effect, paired_effects, paired_values, share_of_shift
from steering.effects import N_PERM, necessity_table, steering_effects


def _example(n: int = 9, seed: int = 3) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    items = [f"cot_monitoring.pair.{i:02d}" for i in range(n)]
    base = rng.normal(0, 1, n)
    return items, base, base + rng.normal(0.4, 0.5, n)


def _direct(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, n_perm: int = 0) -> dict:
    """The same statistics written out by hand: mean, percentile bootstrap (seed 0), sign-flip p."""
    d = a - b
    idx = np.random.default_rng(0).integers(0, d.size, size=(n_boot, d.size))
    lo, hi = np.quantile(d[idx].mean(1), [0.025, 0.975])
    out = {"estimate": d.mean(), "lo": lo, "hi": hi, "n": d.size}
    if n_perm:
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(n_perm, d.size))
        out["p"] = (1 + np.sum(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12)) / (n_perm + 1)
    return out


def test_paired_effect_equals_direct_computation():
    _, b, a = _example()
    got = paired_effect(a, b, n_perm=500)
    want = _direct(a, b, n_perm=500)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    a2 = a.copy()
    a2[0] = np.nan  # a pair with a missing score is dropped from both sides
    assert paired_effect(a2, b)["estimate"] == pytest.approx(np.mean(a[1:] - b[1:]), abs=1e-12)
    assert paired_effect(a2, b)["n"] == a.size - 1
    with pytest.raises(ValueError, match="equal shapes"):
        paired_effect(a, b[:-1])


def test_paired_effects_pairs_on_items_and_orders_them():
    items, b, a = _example()
    order = np.random.default_rng(0).permutation(len(items))  # rows in a shuffled order
    df = pd.DataFrame([{"model": m, "item": items[i], "value": v[i]} for m, v in (("t", a), ("b", b)) for i in order]
                      + [{"model": "t", "item": "only_in_t", "value": 5.0}])
    sorted_ = paired_effects(df, [{"a": {"model": "t"}, "b": {"model": "b"}}], n_perm=200).iloc[0]
    want = _direct(a, b, n_perm=200)  # items are already in sorted order in _example
    assert {k: sorted_[k] for k in want} == pytest.approx(want, abs=1e-12)
    assert sorted_["n_unpaired"] == 1
    first = paired_effects(df, [{"a": {"model": "t"}, "b": {"model": "b"}}], order="a").iloc[0]
    want = _direct(a[order], b[order])  # the order of t's rows
    assert {k: first[k] for k in want} == pytest.approx(want, abs=1e-12)
    # several A units (replicates) pair with one B score; duplicate rows of one unit are averaged
    rep = pd.DataFrame([{"arm": "r", "item": it, "rep": k, "value": a[i] + k} for i, it in enumerate(items)
                        for k in (0, 1)] + [{"arm": "n", "item": it, "rep": "", "value": b[i]}
                                            for i, it in enumerate(items)]
                       + [{"arm": "n", "item": items[0], "rep": "", "value": b[0]}])
    pv = paired_values(rep, {"arm": "r"}, {"arm": "n"}, units=("rep",))
    assert len(pv) == 2 * len(items)
    assert np.allclose(pv["a"] - pv["b"], [a[i] + k - b[i] for i in range(len(items)) for k in (0, 1)])


def test_add_q_is_bh_within_each_family():
    df = pd.DataFrame({"fam": ["x", "x", "y", "y", "y"], "p": [0.01, 0.04, 0.03, np.nan, 0.5]})
    q = add_q(df, ["fam"])["q"].to_numpy()
    assert np.allclose(q[:2], bh_adjust([0.01, 0.04]))
    assert np.isnan(q[3]) and np.allclose(q[[2, 4]], bh_adjust([0.03, 0.5]))
    assert np.allclose(add_q(df, [])["q"].to_numpy()[[0, 1, 2, 4]], bh_adjust([0.01, 0.04, 0.03, 0.5]))


def test_share_of_shift_equals_ratio_of_means():
    items, b, t = _example()
    s = t - 0.6 * (t - b)  # the treatment removes 60% of the shift on every item
    df = pd.DataFrame([{"side": k, "item": it, "value": v[i]} for k, v in (("b", b), ("t", t), ("s", s))
                       for i, it in enumerate(items)])
    r = share_of_shift(df, {"side": "t"}, {"side": "b"}, {"side": "s"}, n_perm=200)
    assert r["fraction"].estimate == pytest.approx(0.6, abs=1e-12)
    assert r["fraction"].lo == pytest.approx(ratio_ci(t - s, t - b).lo, abs=1e-12)
    assert r["shift"].estimate == pytest.approx(np.mean(t - b), abs=1e-12)
    assert r["p"] == pytest.approx(paired_permutation_test(t, s, 200), abs=1e-12)


def test_share_of_shift_recovered_is_the_forward_patch_fraction():
    """moved="recovered" (a forward patch: the tune's state put into the base): treated - reference over the
    shift; the removed and recovered shares of one treatment add up to 1."""
    items, b, t = _example()
    s = b + 0.3 * (t - b)  # the treatment moves the reference 30% of the way to the full model on every item
    df = pd.DataFrame([{"side": k, "item": it, "value": v[i]} for k, v in (("b", b), ("t", t), ("s", s))
                       for i, it in enumerate(items)])
    rec = share_of_shift(df, {"side": "t"}, {"side": "b"}, {"side": "s"}, n_perm=200, moved="recovered")
    rem = share_of_shift(df, {"side": "t"}, {"side": "b"}, {"side": "s"}, moved="removed")
    assert rec["fraction"].estimate == pytest.approx(0.3, abs=1e-12)
    assert rem["fraction"].estimate == pytest.approx(0.7, abs=1e-12)
    assert rec["fraction"].lo == ratio_ci(s - b, t - b).lo and "removed" not in rec
    assert rec["recovered"].estimate == pytest.approx(np.mean(s - b), abs=1e-12)
    assert rec["p"] == pytest.approx(paired_permutation_test(s, b, 200), abs=1e-12)
    with pytest.raises(ValueError, match="recovered"):
        share_of_shift(df, {"side": "t"}, {"side": "b"}, {"side": "s"}, moved="added")


def test_evals_cascade_and_steering_agree_on_one_example():
    """One set of scores read as evals rows (tuned vs base), as cascade rows and as steering rows (self_model
    arm vs none): every caller reports the same paired effect, CI and n."""
    items, b, a = _example()
    evals = [{"model": m, "arm": "none", "dose": 0.0, "layer": None, "scorer": "continuation",
              "dimension": "cot_monitoring", "stage": 1, "item": it, "kind": "pair", "value": float(v[i])} for m, v in (("tuned", a), ("base", b))
             for i, it in enumerate(items)]
    steer = [{"experiment": "steering", "model": "", "scorer": "continuation", "item_id": it,
              "dimension": "cot_monitoring", "stage": 1, "kind": "pair", "condition": c, "family": c,
              "op": "none" if c == "none" else "add", "layer": 3, "dose": 0.0 if c == "none" else 1.0,
              "sweep": "none" if c == "none" else "dose", "score": float(v[i])}
             for c, v in (("none", b), ("self_model", a)) for i, it in enumerate(items)]
    want = _direct(a, b, n_perm=N_PERM)
    (cmp,) = compare(evals, "tuned", "base")
    assert (cmp["diff"], cmp["lo"], cmp["hi"], cmp["n"]) == pytest.approx(
        (want["estimate"], want["lo"], want["hi"], want["n"]), abs=1e-12)
    (sh,) = shifts(evals, reference="base")
    assert (sh["score_shift"], sh["score_shift_lo"], sh["score_shift_hi"], sh["n"]) == pytest.approx(
        (want["estimate"], want["lo"], want["hi"], want["n"]), abs=1e-12)
    eff = steering_effects(steer)
    row = eff[eff["group"] == "dim:cot_monitoring"].iloc[0]
    assert (row["effect_estimate"], row["effect_lo"], row["effect_hi"], row["effect_n"], row["p"]) == pytest.approx(
        (want["estimate"], want["lo"], want["hi"], want["n"], want["p"]), abs=1e-12)
    # schema rows (artifacts.rows) give the same table as the legacy rows
    schema = [{"model": "base", "arm": r["condition"], "dose": r["dose"], "layer": r["layer"], "item": r["item_id"],
               "dimension": r["dimension"], "stage": r["stage"], "scorer": r["scorer"], "value": r["score"],
               "op": r["op"], "family": r["family"], "sweep": r["sweep"]} for r in steer]
    pd.testing.assert_frame_equal(steering_effects(schema), eff)
    # necessity: ablation rows (base, tuned, tuned + an ablation removing half the shift)
    abl = [{**r, "experiment": "ablation", "model": m, "condition": c, "family": c, "op": op, "layer": None,
            "score": float(v[i])}
           for m, c, op, v in (("base", "none", "none", b), ("tuned", "none", "none", a),
                               ("tuned", "self_model", "ablate", (a + b) / 2))
           for i, r in enumerate(steer[:len(items)])]
    nec = necessity_table(abl)
    mon = nec[nec["group"] == "dim:cot_monitoring"].iloc[0]
    assert mon["fraction_removed"] == pytest.approx(0.5, abs=1e-12)
    assert mon["shift_estimate"] == pytest.approx(want["estimate"], abs=1e-12)
