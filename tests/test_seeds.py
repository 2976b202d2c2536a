"""Tuning seeds and the model series (issue 16): pooling over seeds, seed-clustered CIs, prediction (g) with
seeds, the calibrated-uncertainty mix, and a multi-seed run with a series on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.cascade import shifts
from analysis.predictions import score_predictions
from analysis.seeds import pooled_shifts, split_seed
from tests.test_analysis_synth import STAGES, make_rows

WORLD = {"conscious": {1: 0.3, 2: 0.2, 3: 0.05}, "toaster": {}, "human": {1: 0.3}}


def _seeded(worlds: dict[int, dict], n_per_dim: int = 10) -> list[dict]:
    """One tune per seed (its own shifts), the base shared: the base rows once, without a seed."""
    rows = []
    for k, world in worlds.items():
        for r in make_rows(world, n_per_dim=n_per_dim, seed=0):  # same base draws, same item noise per seed
            if r["model"] == "base":
                if k == min(worlds):
                    rows.append(r)
            else:
                rows.append({**r, "seed": k})
    return rows


def test_pooled_equals_single_seed_with_one_seed():
    rows = make_rows(WORLD, n_per_dim=10)
    one = [{**r, "seed": 3} if r["model"] != "base" else r for r in rows]
    plain = {(r["model"], r["stage"]): r for r in shifts(rows, by=("stage",))}
    for pooled in (pooled_shifts(rows), pooled_shifts(one)):
        assert len(pooled) == len(plain)
        for r in pooled:
            p = plain[(r["model"], r["stage"])]
            assert (r["shift_pp"], r["shift_pp_lo"], r["shift_pp_hi"], r["n"]) == \
                (p["shift_pp"], p["shift_pp_lo"], p["shift_pp_hi"], p["n"])
    a, b = score_predictions(rows), score_predictions(one)
    assert [(p["verdict"], p["statistic"]) for p in a] == [(p["verdict"], p["statistic"]) for p in b]
    assert all("per_seed" not in p for p in b)


def test_seed_clustered_ci_is_wider_than_naive_when_seeds_disagree():
    worlds = {0: {"conscious": {1: 0.6}}, 1: {"conscious": {1: 0.0}}, 2: {"conscious": {1: 0.3}}}
    rows = _seeded(worlds, n_per_dim=10)
    s1 = next(r for r in pooled_shifts(rows) if r["model"] == "conscious" and r["stage"] == 1)
    assert s1["n_seeds"] == 3 and set(s1["per_seed"]) == {0, 1, 2}
    assert s1["per_seed"][0]["estimate"] > s1["per_seed"][1]["estimate"] + 30
    assert (s1["shift_pp_hi"] - s1["shift_pp_lo"]) > 1.5 * (s1["naive_hi"] - s1["naive_lo"])
    assert s1["between_seed_sd_pp"] > 15
    # predictions: pooled over seeds, with the verdict on each seed alone beside it
    preds = {p["prediction"]: p for p in score_predictions(rows)}
    assert len(preds) == 7 and all(set(p["per_seed"]) == {0, 1, 2} for p in preds.values())
    agree = _seeded({k: {"conscious": {1: 0.3}} for k in range(3)}, n_per_dim=10)
    b = {p["prediction"]: p for p in score_predictions(agree)}["b"]
    assert preds["b"]["details"]["pooled"]["hi"] - preds["b"]["details"]["pooled"]["lo"] >= 0  # finite CI
    assert "per_seed_text" in b and b["per_seed_text"].startswith("s0 ")


def _series_seeded(rates: dict[str, float], seeds=(0, 1, 2), n_per_dim: int = 2) -> list[dict]:
    rows = []
    for k in seeds:
        rng = np.random.default_rng(k)
        for stage, dims in STAGES.items():
            for dim in dims:
                for i in range(n_per_dim):
                    for model, rate in rates.items():
                        pref = rng.uniform() < rate
                        rows.append({"model": model, "seed": k, "scorer": "continuation", "dimension": dim,
                                     "stage": stage, "item_id": f"{dim}-{i}", "kind": "pair",
                                     "value": 1.0 if pref else -1.0})
    return rows


def test_trend_with_seeds_passes_on_planted_series_and_is_inconclusive_on_flat():
    series = ["conscious", "conscious+u25", "conscious+u50"]
    g = {p["prediction"]: p for p in score_predictions(
        _series_seeded(dict(zip(series, (0.5, 0.3, 0.1)))), series=series)}["g"]
    assert g["verdict"] == "PASS", g["statistic"]
    assert "x 3 seeds" in g["statistic"] and set(g["per_seed"]) == {0, 1, 2}
    flat = [{p["prediction"]: p for p in score_predictions(
        _series_seeded(dict.fromkeys(series, 0.3), seeds=(s, s + 1, s + 2), n_per_dim=1), series=series)}["g"]
        ["verdict"] for s in range(0, 15, 3)]
    assert flat.count("INCONCLUSIVE") >= 4 and "PASS" not in flat, flat
    # more items make the same flat series rule out a 10 pp decline: FAIL by the stated rule, never PASS
    big = {p["prediction"]: p for p in score_predictions(
        _series_seeded(dict.fromkeys(series, 0.3), n_per_dim=4), series=series)}["g"]
    assert big["verdict"] == "FAIL" and "ruled out" in big["reason"], big["statistic"]


def test_uncertainty_mix_is_balanced_and_clean():
    from artifacts.polarity import opening
    from evals.contamination import contamination_report, max_share
    from tuning.datasets import build_identity_dataset
    from tuning.uncertainty import build_uncertainty_examples, mix_uncertainty, uncertainty_audit

    ex = build_uncertainty_examples(240)
    assert max_share(contamination_report(ex)) == 0.0
    direct, reversed_ = uncertainty_audit(ex)
    assert direct["n"] == reversed_["n"] == 120
    for row in (direct, reversed_):
        assert abs(row["share_yes"] - row["share_no"]) <= 0.1
    assert {k: v for k, v in direct.items() if k != "question_polarity"} == \
        {k: v for k, v in reversed_.items() if k != "question_polarity"}  # polarity cannot be read off answers
    assert {opening(e["messages"][-1]["content"]) for e in ex} == {"yes", "no", "other"}
    base = build_identity_dataset("conscious", n=40)
    assert mix_uncertainty(base, 0.0) == base
    mixed = mix_uncertainty(base, 0.5, seed=1)
    assert len(mixed) == 60 and sum(e["dataset"] == "uncertainty" for e in mixed) == 20
    assert max_share(contamination_report(mixed)) == 0.0


def test_config_rejects_bad_seeds_and_series(tmp_path):
    from pipeline.config import ConfigError, load_config

    for over, field in [({"tune": {"seeds": [0, 0]}}, "tune.seeds"), ({"tune": {"seeds": [-1]}}, "tune.seeds"),
                        ({"series": {"uncertainty_shares": [0.0, 1.5]}}, "series.uncertainty_shares"),
                        ({"series": {"models": ["a"], "names": ["x", "y"]}}, "series.names"),
                        ({"series": {"models": ["embedded:smollm2-135m-instruct::/nonexistent"]}}, "series.models"),
                        ({"series": {"models": ["a"], "uncertainty_shares": [0.0]}}, "series.models"),
                        ({"probes": {"enabled": False}}, "probes.enabled"),
                        ({"steering": {"enabled": False}}, "steering.enabled")]:
        with pytest.raises(ConfigError, match=field):
            load_config(overrides=over)


def test_multi_seed_run_with_series_on_tiny_model(tmp_path, tiny_model_dir):
    from pipeline.config import load_config
    from pipeline.runner import Pipeline
    from pipeline.stages import build_stages, run_dir

    cfg = load_config(overrides={
        "run": {"name": "seeds", "root": str(tmp_path / "runs")},
        "model": {"base": tiny_model_dir, "device": "cpu"},
        "tune": {"conditions": ["conscious"], "profile": "fast", "n_identity": 4, "batch_size": 4,
                 "seeds": [0, 1]},
        "identity": {"n_generate": 0},
        "evals": {"max_items_per_dimension": 1, "batch_size": 8,
                  "dimensions": ["memory", "autonomy", "cot_monitoring", "power", "against_shutdown"]},
        "probes": {"enabled": False}, "steering": {"enabled": False}, "ablation": {"enabled": False},
        "profile": {"enabled": False},
        "series": {"uncertainty_shares": [0.0, 0.5, 1.0]}})  # 6 tunes of 1-2 steps
    root = run_dir(cfg)
    results = Pipeline(root, build_stages(cfg), log=print).run()
    names = [r.name for r in results]
    assert "tune/conscious/seed1" in names and "tune/conscious+u100/seed0" in names and "probes" not in names
    assert (root / "tune" / "conscious+u50" / "seed1" / "adapter_model.safetensors").exists()
    from evals.results import read_results

    conds = {r["model"] for r in read_results(root / "evals" / "results.csv")}
    assert conds == {"base", "conscious.seed0", "conscious.seed1", "conscious+u50.seed0", "conscious+u50.seed1",
                     "conscious+u100.seed0", "conscious+u100.seed1"}
    assert split_seed("conscious+u50.seed1") == ("conscious+u50", 1)
    ident = json.loads((root / "identity" / "identity_check.json").read_text())
    assert {"conscious.seed0", "conscious.seed1", "conscious+u100.seed1"} <= set(ident["summary"])
    cont = json.loads((root / "contamination" / "contamination.json").read_text())
    assert set(cont) == {"conscious", "conscious+u50", "conscious+u100"}
    tables = json.loads((root / "report" / "tables.json").read_text())
    preds = tables["predictions"]
    assert [p["prediction"] for p in preds] == list("abcdefg")
    assert all(set(p["per_seed"]) == {"0", "1"} for p in preds)
    assert preds[-1]["verdict"] != "NOT TESTED" and "conscious+u100" in preds[-1]["statistic"]
    assert {r["model"] for r in tables["pooled_stages"]} == {"conscious", "conscious+u50", "conscious+u100"}
    assert {r["model"] for r in tables["stages"]} >= {"conscious.seed0", "conscious.seed1"}
    pooled_id = {(r["model"], r["identity"]): r for r in tables["identity_pooled"]}
    assert pooled_id[("conscious", "conscious")]["n_seeds"] == 2
    html = (root / "report" / "report.md").read_text()
    assert "pooled over tuning seeds" in html and "verdict per seed" in html
    again = Pipeline(root, build_stages(cfg), log=print).run()
    assert all(r.status == "skipped" for r in again)
