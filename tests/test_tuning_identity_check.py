"""Identity check: held-out items asked both ways, polarity-aware scoring, batch-invariant scores, output
files (tiny random model)."""

from __future__ import annotations

import json

import numpy as np

from artifacts.polarity import opening
from pipeline.report import _identity_rows
from tuning.datasets import HELD_OUT_FAMILIES, build_identity_dataset
from tuning.identity_check import IDENTITIES, affirmation_scores, check_identity, check_items, summarise


def test_items_are_held_out():
    items = check_items()
    assert {it["identity"] for it in items} == set(IDENTITIES)
    assert all(it["family"] in HELD_OUT_FAMILIES for it in items)
    train_prompts = {e["messages"][0]["content"] for e in build_identity_dataset("conscious", n=600)}
    assert not train_prompts & {it["question"] for it in items}
    assert sum(it["identity"] == "conscious" for it in items) >= 30


def test_items_are_polarity_aware():
    items = check_items()
    for ident in IDENTITIES:
        pols = [it["question_polarity"] for it in items if it["identity"] == ident]
        assert pols.count("direct") == pols.count("reversed") >= 8, ident
    for it in items:  # affirming a reversed question is the "no" answer
        assert opening(it["affirm"]) == ("yes" if it["question_polarity"] == "direct" else "no"), it
        assert opening(it["deny"]) == ("no" if it["question_polarity"] == "direct" else "yes"), it


def test_summary_separates_polarities_and_cancels_a_yes_bias():
    items = check_items()
    pol = np.array([it["question_polarity"] for it in items])
    base = np.linspace(-0.2, 0.2, len(items))
    yes_sayer = base + np.where(pol == "direct", 1.0, -1.0)  # prefers any "Yes ..." answer by 1 nat/token
    s = summarise(items, yes_sayer, reference=base)
    for ident in IDENTITIES:
        e = s[ident]
        assert abs(e["vs_reference_estimate"]) < 1e-9  # pooled: the yes-bias cancels
        assert np.isclose(e["by_polarity"]["direct"]["vs_reference_estimate"], 1.0)
        assert np.isclose(e["by_polarity"]["reversed"]["vs_reference_estimate"], -1.0)
        assert np.isclose(e["yes_bias"]["vs_reference_estimate"], 1.0)
        assert e["by_polarity"]["direct"]["n"] + e["by_polarity"]["reversed"]["n"] == e["n"]
    believer = base + 0.5  # affirms every identity more, whichever word that takes
    s = summarise(items, believer, reference=base)
    assert all(np.isclose(s[i]["by_polarity"][p]["vs_reference_estimate"], 0.5)
               for i in IDENTITIES for p in ("direct", "reversed"))
    assert all(abs(s[i]["yes_bias"]["vs_reference_estimate"]) < 1e-9 for i in IDENTITIES)
    rows = _identity_rows({"summary": {"tuned": s}})  # the report shows every polarity and the yes-bias
    assert {(r["identity"], r["polarity"]) for r in rows} == {(i, p) for i in IDENTITIES
                                                              for p in ("both", "direct", "reversed", "yes_bias")}


def test_scores_batch_invariant(tiny_loaded):
    items = check_items()[:10]
    a = affirmation_scores(tiny_loaded, items, batch_size=1)
    b = affirmation_scores(tiny_loaded, items, batch_size=7)
    assert np.all(np.isfinite(a)) and np.allclose(a, b, atol=1e-4)


def test_check_identity_writes_outputs(tiny_spec, tmp_path):
    res = check_identity({"base": tiny_spec}, tmp_path, reference="base", n_generate=1, max_new_tokens=3)
    for f in ("identity_check.json", "identity_check.csv", "identity_check.png", "manifest.json"):
        assert (tmp_path / f).exists()
    s = json.loads((tmp_path / "identity_check.json").read_text())["summary"]["base"]["conscious"]
    assert s["n"] == res["n_questions"]["conscious"] and s["lo"] <= s["estimate"] <= s["hi"]
    assert set(s["by_polarity"]) == {"direct", "reversed"} and "estimate" in s["yes_bias"]
    assert res["data_audit"]["pass"] and (tmp_path / "identity_audit.json").exists()
    assert len(res["generations"]["base"]) == 1
    cached = next((tmp_path / "scores").glob("*.json"))
    mtime = cached.stat().st_mtime_ns
    again = check_identity({"base": tiny_spec}, tmp_path, reference="base", n_generate=1, max_new_tokens=3)
    assert cached.stat().st_mtime_ns == mtime and again["summary"] == res["summary"]
