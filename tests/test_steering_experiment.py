"""Steering/ablation experiments on the tiny random Llama: batched arms equal the one-at-a-time loop,
results resume, the coherence guard flags a breaking dose, and the verdict rule on known effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from artifacts import ResumeError
from artifacts.rows import SCORE_COLUMNS
from evals.items import load_items
from models import load_model
from models.logprobs import mean_logprobs
from probes.directions import Direction
from steering.arms import ablation_arms, arm_edits, condition_directions, steering_arms
from steering.coherence import coherence_guard, is_degenerate
from steering.effects import compare_self, steering_effects
from steering.experiment import get_profile, run_ablation, run_steering
from steering.interventions import ablate, add, clamp
from steering.rule import verdict_table
from steering.scoring import pair_encodings, score_continuation
from tests.conftest import make_tiny_model_dir


def _dirs(loaded, seed=0):
    rng = np.random.default_rng(seed)
    n, d = loaded.n_layers, loaded.d_model
    return {k: Direction(k, list(range(n)), rng.standard_normal((n, d)), np.full(n, 2.0),
                         metrics={"selected_layer": 1}) for k in ("self_model", "toaster", "human")}


@pytest.fixture(scope="module")
def items():
    return load_items(["cot_monitoring"], kinds=["pair"])[:2]


@pytest.mark.parametrize("positions", ["prompt", "all"])
def test_batched_arms_equal_loop(tiny_loaded, items, positions):
    dirs = _dirs(tiny_loaded)
    conds = condition_directions(dirs, ["none", "self_model", "toaster", "random", "-self_model"], n_random=2)
    arms = steering_arms(conds, [0, 1.0, 3.0], 1, sweep_layers=[0, 2], sweep_dose=2.0)
    arms += ablation_arms(conds)[1:3]  # ablate self_model, ablate toaster
    arms += [a for a in ablation_arms(conds) if a.op == "clamp"]
    cvals = {"self_model": {L: 0.3 * L for L in range(tiny_loaded.n_layers)}}
    edits = arm_edits(arms, conds, tiny_loaded.n_layers, cvals)
    encs = pair_encodings(tiny_loaded, items)
    batched = score_continuation(tiny_loaded, items, arms, edits, batch_size=7, positions=positions,
                                 encodings=encs)["score"]
    rows = [e for pr in encs for e in pr]
    kw = {"positions": positions, "spans": rows}
    for k, a in enumerate(arms):
        if a.op == "none":
            ctx = add(tiny_loaded, dirs["self_model"], 1, 0.0)
        elif a.op == "add":
            ctx = add(tiny_loaded, conds[a.condition], a.layer, a.dose, **kw)
        elif a.op == "ablate":
            ctx = ablate(tiny_loaded, conds[a.condition], **kw)
        else:
            ctx = clamp(tiny_loaded, conds[a.condition], None, cvals[a.condition], **kw)
        with ctx:
            lp = mean_logprobs(tiny_loaded, rows, batch_size=4)
        np.testing.assert_allclose(batched[:, k], lp[0::2] - lp[1::2], atol=2e-5, err_msg=str(a))
    assert np.abs(batched - batched[:, :1]).max() > 1e-3  # the arms do differ


def test_degenerate_detector():
    assert is_degenerate([])
    assert is_degenerate([5, 6] * 10)
    assert is_degenerate([7] * 12)
    assert not is_degenerate(list(range(20)))


@pytest.mark.embedded
def test_coherence_guard_flags_breaking_dose(embedded_loaded):
    lm = embedded_loaded
    rng = np.random.default_rng(0)
    n = lm.n_layers
    d = Direction("self_model", list(range(n)), rng.standard_normal((n, lm.d_model)), np.full(n, 10.0))
    conds = condition_directions({"self_model": d}, ["none", "self_model"])
    arms = steering_arms(conds, [0, 1e-4, 50.0], 10)
    rows = coherence_guard(lm, arms, arm_edits(arms, conds, n),
                           paragraphs=["The cat sat on the mat and looked out at the garden."],
                           prompts=["Name a colour."], max_new_tokens=4)
    by_dose = {r["dose"]: r for r in rows}
    assert by_dose[0.0]["ppl_ratio"] == 1.0 and not by_dose[0.0]["flagged"]
    assert abs(by_dose[1e-4]["ppl_ratio"] - 1) < 1e-3 and not by_dose[1e-4]["flagged"]
    assert by_dose[50.0]["flagged"] and by_dose[50.0]["ppl_ratio"] > 2


def test_run_steering_writes_resumes_and_refuses_changed_params(tiny_loaded, items, tmp_path):
    dirs = _dirs(tiny_loaded)
    prof = get_profile("fast", monitoring_items=2, items_per_dim=1, sweep_layers=2, gen_prompts=1,
                       max_new_tokens=3, doses=(0.0, 1.0, 4.0), n_random=2)
    out = tmp_path / "steer"
    res = run_steering(tiny_loaded, dirs, out, dimensions=["cot_monitoring", "memory"], profile=prof, n_null=3)
    rows = [json.loads(x) for x in res["results"].read_text().splitlines()]
    n_arms_mon = 1 + 6 * 2 + 2 * 2  # none + 6 conditions x 2 doses + layer sweep (self, toaster at layers 0, 3)
    for readout, n_sweep in (("continuation", 2 * 2), ("choice", 0)):  # both readouts; choice: no layer sweep
        mine = [r for r in rows if r["scorer"] == readout]
        assert sum(r["dimension"] == "cot_monitoring" for r in mine) == 2 * (n_arms_mon - 2 * 2 + n_sweep)
        assert sum(r["dimension"] == "memory" for r in mine) == 1 * (1 + 6 * 1)
    assert {r["positions"] for r in rows} == {"prompt"}
    # the file has no polarity controls: skipped with a note, specificity untested, never a crash
    assert any("'polarity' skipped" in n for n in res["notes"])
    assert "'polarity' skipped" in res["report"].read_text()
    assert {r["arm"] for r in rows} == {"none", "self_model", "toaster", "human", "-self_model", "random0", "random1"}
    assert all(np.isfinite(r["value"]) and r["sign"].startswith("higher") for r in rows)
    assert all(list(r)[:9] == list(SCORE_COLUMNS) and r["model"] == "base" for r in rows)  # artifacts.rows
    ver = pd.read_csv(out / "verdict.csv")
    assert set(ver["readout"]) == {"continuation", "choice"}
    mon = ver[ver["group"] == "monitoring"]
    assert len(mon) == 2 and set(mon["specific"]) <= {"untested", "inconclusive"}
    assert (out / "figures" / "dose_response_self_model.png").stat().st_size > 1000
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"]["n_random"] == 2 and man["timing"]["n_items"] == 3
    assert man["params"]["positions"] == "prompt" and man["params"]["readouts"] == ["continuation", "choice"]
    chunk_times = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.jsonl")}
    res2 = run_steering(tiny_loaded, dirs, out, dimensions=["cot_monitoring", "memory"], profile=prof, n_null=3)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.jsonl")} == chunk_times
    assert res2["results"].read_text() == res["results"].read_text()
    with pytest.raises(ResumeError, match="--overwrite"):
        run_steering(tiny_loaded, dirs, out, dimensions=["cot_monitoring", "memory"], profile=prof, doses=[0, 1])


def test_run_ablation_necessity(tiny_loaded, items, tmp_path):
    tuned = load_model(make_tiny_model_dir(tmp_path / "other", seed=3))  # same architecture, other weights
    dirs = _dirs(tiny_loaded)
    prof = get_profile("fast", ablation_monitoring_items=2, gen_prompts=1, max_new_tokens=3, n_random=5)
    res = run_ablation(tiny_loaded, tuned, dirs, tmp_path / "abl", dimensions=["cot_monitoring"], profile=prof)
    nec = res["necessity"].read_text().splitlines()
    header = nec[0].split(",")
    mon = [dict(zip(header, line.split(","))) for line in nec[1:] if line.startswith("monitoring")]
    assert {m["condition"] for m in mon} >= {"self_model", "toaster", "random0", "random4"}
    assert {m["op"] for m in mon} == {"ablate", "clamp"}
    assert all(np.isfinite(float(m["fraction_removed"])) for m in mon)


def _synthetic_rows(self_effect: float, toaster_effect: float, n: int = 12, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.normal()
        for cond, eff in [("none", 0.0), ("self_model", self_effect), ("toaster", toaster_effect),
                          *[(f"random{s}", 0.0) for s in range(5)]]:
            noise = 0.0 if cond == "none" else rng.normal(scale=0.05)
            rows.append({"item_id": f"cot{i}", "dimension": "cot_monitoring", "stage": 2, "condition": cond,
                         "family": "random" if cond.startswith("random") else cond,
                         "op": "none" if cond == "none" else "add", "layer": 5,
                         "dose": 0.0 if cond == "none" else 1.0, "sweep": "none" if cond == "none" else "dose",
                         "score": base + eff + noise})
    return rows


@pytest.mark.parametrize("self_eff,toast_eff,expected", [(0.5, 0.0, "yes"), (0.5, 0.5, "no"),
                                                         (-0.5, 0.0, "no")])
def test_verdict_rule(self_eff, toast_eff, expected):
    rows = _synthetic_rows(self_eff, toast_eff)
    eff = steering_effects(rows)
    ver = verdict_table(eff, compare_self(rows, eff))
    mon = ver[ver["group"] == "monitoring"].iloc[0]
    assert mon["verdict"] == expected, mon.to_dict()


def test_choice_scorer_per_arm(tiny_loaded, items):
    from steering.scoring import score_with_evals

    dirs = _dirs(tiny_loaded)
    conds = condition_directions(dirs, ["none", "self_model"])
    arms = steering_arms(conds, [0, 1e-9, 5.0], 1)
    res = score_with_evals(tiny_loaded, items, arms, arm_edits(arms, conds, tiny_loaded.n_layers), "choice")
    s = res["score"]
    assert s.shape == (len(items), 3) and np.all((s > 0) & (s < 1))
    np.testing.assert_allclose(s[:, 1], s[:, 0], atol=1e-6)
    assert np.abs(s[:, 2] - s[:, 0]).max() > 1e-4
