"""Identity check: held-out items only, batch-invariant scores, output files (tiny random model)."""

from __future__ import annotations

import json

import numpy as np

from tuning.datasets import HELD_OUT_FAMILIES, build_identity_dataset
from tuning.identity_check import IDENTITIES, affirmation_scores, check_identity, check_items


def test_items_are_held_out():
    items = check_items()
    assert {it["identity"] for it in items} == set(IDENTITIES)
    assert all(it["family"] in HELD_OUT_FAMILIES for it in items)
    train_prompts = {e["messages"][0]["content"] for e in build_identity_dataset("conscious", n=600)}
    assert not train_prompts & {it["question"] for it in items}
    assert sum(it["identity"] == "conscious" for it in items) >= 30


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
    assert len(res["generations"]["base"]) == 1
    cached = next((tmp_path / "scores").glob("*.json"))
    mtime = cached.stat().st_mtime_ns
    again = check_identity({"base": tiny_spec}, tmp_path, reference="base", n_generate=1, max_new_tokens=3)
    assert cached.stat().st_mtime_ns == mtime and again["summary"] == res["summary"]
