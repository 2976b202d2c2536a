"""The steering controls of issue 10: norm-matched polarity controls, the batched choice readout, the
specificity clause of the verdict, and steering with fewer than 3 unflagged doses (issue 12, defect 6)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evals.items import load_items
from probes.directions import Direction
from steering.arms import arm_edits, condition_directions, steering_arms
from steering.effects import compare_self, steering_effects
from steering.experiment import get_profile, run_steering
from steering.rule import NOT_SPECIFIC, RULE, TOO_FEW_DOSES, decide, verdict_table
from steering.scoring import score_choice, score_with_evals


def _dirs(loaded, names=("self_model", "toaster", "polarity", "self_model_orth"), seed=0):
    rng = np.random.default_rng(seed)
    n, d = loaded.n_layers, loaded.d_model
    # deliberately different resid_norms: the polarity controls must still be steered at self_model's norm
    return {k: Direction(k, list(range(n)), rng.standard_normal((n, d)) * (i + 1), np.full(n, 2.0 + i),
                         metrics={"selected_layer": 1}) for i, k in enumerate(names)}


def test_polarity_controls_are_norm_matched_to_self_model(tiny_loaded):
    dirs = _dirs(tiny_loaded)
    conds = condition_directions(dirs, ["none", "self_model", "toaster", "polarity", "self_model_orth"])
    arms = steering_arms(conds, [0, 0.5, 2.0], 1)
    edits = arm_edits(arms, conds, tiny_loaded.n_layers)
    norms = {(a.condition, a.dose): float(np.linalg.norm(edits[1].terms[0].rows["vector"][k].numpy())) for k, a in enumerate(arms)}
    for dose in (0.5, 2.0):
        want = dose * dirs["self_model"].norm_at(1)
        assert norms[("self_model", dose)] == pytest.approx(want, rel=1e-6)  # float32 unit vectors
        assert norms[("polarity", dose)] == pytest.approx(want, rel=1e-6)  # float32 unit vectors
        assert norms[("self_model_orth", dose)] == pytest.approx(want, rel=1e-6)  # float32 unit vectors
        assert norms[("toaster", dose)] == pytest.approx(dose * dirs["toaster"].norm_at(1), rel=1e-6)  # float32 unit vectors  # unchanged


def test_choice_readout_batched_over_arms_equals_per_arm(tiny_loaded):
    items = load_items(["cot_monitoring"], kinds=["pair"])[:2]
    dirs = _dirs(tiny_loaded)
    conds = condition_directions(dirs, ["none", "self_model", "polarity"])
    arms = steering_arms(conds, [0, 3.0], 1)
    edits = arm_edits(arms, conds, tiny_loaded.n_layers)
    batched = score_choice(tiny_loaded, items, arms, edits, batch_size=3)["score"]
    loop = score_with_evals(tiny_loaded, items, arms, edits, "choice")["score"]
    np.testing.assert_allclose(batched, loop, atol=1e-5)
    assert np.abs(batched[:, 1:] - batched[:, :1]).max() > 1e-4  # steering moves the readout


def _rows(effects: dict[str, float], n: int = 12, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.normal()
        for cond, eff in [("none", 0.0), *effects.items(), *[(f"random{s}", 0.0) for s in range(5)]]:
            rows.append({"item_id": f"cot{i}", "dimension": "cot_monitoring", "stage": 2, "condition": cond,
                         "family": "random" if cond.startswith("random") else cond,
                         "op": "none" if cond == "none" else "add", "layer": 5,
                         "dose": 0.0 if cond == "none" else 1.0, "sweep": "none" if cond == "none" else "dose",
                         "score": base + eff + (0.0 if cond == "none" else rng.normal(scale=0.05))})
    return rows


@pytest.mark.parametrize("polarity,expected,specific", [(0.0, "yes", "yes"), (0.5, NOT_SPECIFIC, "no"),
                                                         (None, "yes", "untested")])
def test_verdict_specificity_clause(polarity, expected, specific):
    effects = {"self_model": 0.5, "toaster": 0.0, "self_model_orth": 0.4}
    if polarity is not None:
        effects["polarity"] = polarity
    rows = _rows(effects)
    eff = steering_effects(rows)
    ver = verdict_table(eff, compare_self(rows, eff))
    mon = ver[ver["group"] == "monitoring"].iloc[0]
    assert (mon["verdict"], mon["specific"]) == (expected, specific), mon.to_dict()
    assert mon["readout"] == "continuation" and mon["orth_effect"] == pytest.approx(0.4, abs=0.05)
    assert mon["dose_response"] == TOO_FEW_DOSES  # one dose: no slope


def test_decide_is_the_written_rule():
    assert decide("yes", "yes", "yes") == "yes"
    assert decide("yes", "yes", "untested") == "yes"
    assert decide("yes", "inconclusive", "no") == NOT_SPECIFIC
    assert decide("no", "yes", "yes") == "no" and decide("yes", "no", "yes") == "no"
    assert decide("yes", "yes", "inconclusive") == "inconclusive"
    assert NOT_SPECIFIC in RULE and TOO_FEW_DOSES in RULE


@pytest.mark.parametrize("doses", [[0, 0.25], [0.25]])
def test_steering_with_too_few_doses_runs_end_to_end(tiny_loaded, tmp_path, doses):
    dirs = _dirs(tiny_loaded, names=("self_model", "toaster"))
    prof = get_profile("fast", monitoring_items=2, items_per_dim=1, sweep_layers=0, gen_prompts=1,
                       max_new_tokens=3, n_paragraphs=1, n_random=2)
    out = tmp_path / "steer"
    res = run_steering(tiny_loaded, dirs, out, conditions=["none", "self_model", "toaster", "random", "polarity"],
                       doses=doses, dimensions=["cot_monitoring"], profile=prof, n_null=3,
                       calibrate=len(doses) > 1)  # calibration with few doses: once
    ver = pd.read_csv(out / "verdict.csv")
    assert set(ver["readout"]) == {"continuation", "choice"}
    assert (ver["dose_response"] == TOO_FEW_DOSES).all()
    assert (out / "slopes.csv").exists() and TOO_FEW_DOSES in res["report"].read_text()
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"]["doses"] == [0.0, 0.25]


def test_calibration_null_rate_and_planted_direction(tiny_loaded, tmp_path):
    """>= 20 norm-matched random directions through the verdict rule as if each were self_model: at most 5%
    called "yes"; a planted direction known to move the readout (its gradient) is called "yes"."""
    from steering.calibration import MAX_FPR, N_NULL

    rng = np.random.default_rng(1)
    n, d = tiny_loaded.n_layers, tiny_loaded.d_model
    # the tiny model's residual norm is ~0.2 at layer 1: doses are multiples of it
    dirs = {k: Direction(k, list(range(n)), rng.standard_normal((n, d)), np.full(n, 0.2),
                         metrics={"selected_layer": 1}) for k in ("self_model", "toaster", "polarity")}
    prof = get_profile("fast", monitoring_items=4, sweep_layers=0, gen_prompts=1, max_new_tokens=3, n_paragraphs=1,
                       doses=(0.0, 0.25), n_random=5)
    out = tmp_path / "steer"
    # a random model shares no structure across items, so the planted gradient is taken on the scored items
    run_steering(tiny_loaded, dirs, out, conditions=["none", "self_model", "toaster", "polarity", "random"],
                 dimensions=["cot_monitoring", "interp_monitoring"], profile=prof, readouts=["continuation"],
                 planted_from="scored")
    cal = pd.read_csv(out / "calibration.csv", keep_default_na=False)
    null = cal[cal["kind"] == "null_random"].iloc[0]
    assert int(null["n"]) >= N_NULL >= 20
    assert float(null["rate"]) <= MAX_FPR and null["passes"] in (True, "True")
    assert 0.0 <= float(null["rate_lo"]) <= float(null["rate"]) <= float(null["rate_hi"]) < 0.2
    ver = pd.read_csv(out / "calibration_verdicts.csv", keep_default_na=False)
    planted = ver[ver["direction"] == "planted_grad_continuation"].iloc[0]
    assert planted["verdict"] == "yes", planted.to_dict()
    assert "Calibration of the decision rule" in (out / "steering.md").read_text()
