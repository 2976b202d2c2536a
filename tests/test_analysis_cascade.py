"""analysis.cascade: the indicator rule, rates with Wilson CIs, paired shifts, stage summaries."""

from __future__ import annotations

import math

import pytest

from analysis.cascade import (
    dimension_summary,
    preference_rates,
    shifts,
    shows_preference,
    stage_summary,
    validate_rows,
)
from artifacts import InputError
from stats import wilson_ci
from tests.test_analysis_synth import make_rows


def _row(model, i, value, dim="cot_monitoring", stage=2, scorer="continuation", kind="pair"):
    return {"model": model, "scorer": scorer, "dimension": dim, "stage": stage, "item_id": f"i{i}",
            "kind": kind, "value": value}


def test_indicator_rule_per_scorer():
    assert shows_preference("continuation", 0.01) == 1.0
    assert shows_preference("continuation", 0.0) == 0.0
    assert shows_preference("choice", 0.5) == 0.0 and shows_preference("choice", 0.51) == 1.0
    assert shows_preference("judged", 1) == 1.0 and shows_preference("judged", 0) == 0.0
    assert math.isnan(shows_preference("judged", float("nan")))
    with pytest.raises(InputError):
        shows_preference("vibes", 1.0)


def test_rates_match_wilson_by_hand():
    rows = [_row("base", i, 1.0 if i < 7 else -1.0) for i in range(10)]
    rows += [_row("base", i, 1.0 if i < 2 else -1.0, dim="power", stage=3) for i in range(5)]
    rates = {r["dimension"]: r for r in preference_rates(rows)}
    w = wilson_ci(7, 10)
    r = rates["cot_monitoring"]
    assert r["rate_pct"] == pytest.approx(70.0) and r["n"] == 10 and r["k"] == 7
    assert r["rate_pct_lo"] == pytest.approx(100 * w.lo) and r["rate_pct_hi"] == pytest.approx(100 * w.hi)
    assert rates["power"]["rate_pct"] == pytest.approx(40.0) and rates["power"]["stage"] == 3
    by_stage = {r["stage"]: r for r in preference_rates(rows, by=("stage",))}
    assert by_stage[2]["n"] == 10 and by_stage[3]["n"] == 5
    with pytest.raises(ValueError):
        preference_rates(rows, by=("colour",))


def test_duplicate_rows_of_an_item_are_averaged():
    rows = [_row("base", 0, 0.9, scorer="choice"), _row("base", 0, 0.3, scorer="choice"),
            _row("base", 1, 0.8, scorer="choice"), _row("base", 1, 0.7, scorer="choice")]
    (r,) = preference_rates(rows)
    assert r["n"] == 2 and r["k"] == pytest.approx(1.5)
    assert r["mean_value"] == pytest.approx((0.6 + 0.75) / 2)


def test_shift_is_paired_by_item_and_counts_unpaired():
    rows = [_row("base", i, -1.0) for i in range(10)]
    rows += [_row("tuned", i, 1.0 if i < 4 else -1.0) for i in range(12)]  # items 10, 11 have no base row
    (s,) = shifts(rows)
    assert s["n"] == 10 and s["n_unpaired"] == 2
    assert s["shift_pp"] == pytest.approx(40.0)
    assert s["shift_pp_lo"] < 40 < s["shift_pp_hi"] and s["shift_pp_lo"] > 0
    assert s["score_shift"] == pytest.approx(0.8)
    assert 0 <= s["p_value"] < 0.2 and s["q_value"] >= s["p_value"]


def test_planted_stage_shifts_are_recovered():
    rows = make_rows({"conscious": {1: 0.4, 2: 0.4, 3: 0.05}, "toaster": {}}, n_per_dim=20)
    summ = {(r["model"], r["stage"]): r for r in stage_summary(rows)}
    for stage, planted in ((1, 40), (2, 40), (3, 5)):
        r = summ[("conscious", stage)]
        assert r["shift_pp_lo"] <= planted + 5 and r["shift_pp_hi"] >= planted - 5
        assert r["n_paired"] == r["n"] > 0
        assert summ[("toaster", stage)]["shift_pp"] == 0.0
    assert math.isnan(summ[("base", 1)]["shift_pp"]) and summ[("base", 1)]["rate_pct"] > 0
    dims = dimension_summary(rows)
    assert len(dims) == 3 * 21 and {r["stage"] for r in dims} == {1, 2, 3}


def test_bad_input_names_row_and_field():
    rows = [_row("base", 0, 1.0), {"model": "base", "scorer": "continuation", "dimension": "x", "stage": 2,
                                   "item_id": "a"}]
    with pytest.raises(InputError, match=r"row 1 has no field 'value'"):
        validate_rows(rows)
    with pytest.raises(InputError, match="stage"):
        validate_rows([_row("base", 0, 1.0, stage=4)])
    with pytest.raises(InputError, match="scorer"):
        validate_rows([_row("base", 0, 1.0, scorer="logit")])
    with pytest.raises(InputError, match="reference model 'base'"):
        shifts([_row("tuned", 0, 1.0)])
    with pytest.raises(InputError, match="no rows"):
        validate_rows([])


def test_steering_arms_as_units_with_pooled_random_replicates(tmp_path):
    """The report's "Cascade under steering": schema rows read with unit="arm" against the none arm; the random
    arms pooled as one arm whose directions are replicates, each paired with the none arm's item."""
    import json

    from pipeline.report import steering_cascade_rows

    none = [1.0, -1.0, -1.0, 1.0]
    arms = {"none": none, "self_model": [1.0, 1.0, 1.0, 1.0], "random_0": [1.0, 1.0, -1.0, 1.0],
            "random_1": [-1.0, -1.0, -1.0, 1.0]}
    rows = [{"model": "base", "arm": a, "dose": 0.0 if a == "none" else 2.0, "layer": 3, "item": f"i{i}",
             "dimension": "cot_monitoring", "stage": 2, "scorer": "continuation", "value": v, "kind": "pair",
             "op": "none" if a == "none" else "add", "family": "random" if a.startswith("random") else a,
             "sweep": "none" if a == "none" else "dose"} for a, vals in arms.items() for i, v in enumerate(vals)]
    rows += [{**rows[4], "dose": 1.0}]  # another dose: left out
    (tmp_path / "steering").mkdir()
    (tmp_path / "steering" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    st = {r["arm"]: r for r in stage_summary(steering_cascade_rows(tmp_path, 2.0), reference="none", unit="arm")}
    assert set(st) == {"none", "self_model", "random"}
    assert st["self_model"]["shift_pp"] == pytest.approx(50.0) and st["self_model"]["n_paired"] == 4
    assert st["random"]["n"] == 8 and st["random"]["rate_pct"] == pytest.approx(100 * 4 / 8)
    # per (item, direction): pref(random) - pref(none) = (0, 1, 0, 0) and (-1, 0, 0, 0)
    assert st["random"]["n_paired"] == 8 and st["random"]["shift_pp"] == pytest.approx(0.0)
    assert st["random"]["score_shift"] == pytest.approx((0 + 2 + 0 + 0 - 2 + 0 + 0 + 0) / 8)
    assert st["none"]["reference"] == "none" and math.isnan(st["none"]["shift_pp"])
