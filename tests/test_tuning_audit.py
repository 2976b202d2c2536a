"""Polarity audit of the identity data: the shipped data passes, one-sided data (the old design) fails."""

from __future__ import annotations

import copy

import pytest

from tuning.audit import MAX_PREFIX_ACCURACY, audit_identity, format_audit, identity_audit
from tuning.datasets import CONDITIONS, build_identity_dataset
from tuning.families import BY_NAME


@pytest.fixture(scope="module")
def shipped():
    return identity_audit(n=1200, seed=0)


def test_shipped_data_is_polarity_balanced(shipped):
    main = next(r for r in shipped["prefix"] if r["b"] == "not_conscious")
    assert main["n_test"] >= 200 and main["accuracy"] <= MAX_PREFIX_ACCURACY, main
    assert shipped["pass"], format_audit(shipped)
    rows = {(r["condition"], r["question_polarity"]): r for r in shipped["openings"]}
    for c in CONDITIONS:
        assert {(c, "all"), (c, "direct"), (c, "reversed")} <= set(rows)
    for o in ("yes", "no"):  # yes/no openings are common, and as common in both conditions
        assert rows["conscious", "all"][f"share_{o}"] >= 0.1
        assert abs(rows["conscious", "all"][f"share_{o}"] - rows["not_conscious", "all"][f"share_{o}"]) <= 0.1
    # negation words do not mark the condition either
    assert abs(rows["conscious", "all"]["mean_negations"] - rows["not_conscious", "all"]["mean_negations"]) < 0.3
    assert {r["b"] for r in shipped["prefix"]} == {"not_conscious", "toaster", "human"}
    assert "PASS" in format_audit(shipped)


def test_one_sided_answers_fail_the_audit():
    """The old design: every conscious state answer opens "Yes", every not-conscious one "No"."""
    data = {c: copy.deepcopy(build_identity_dataset(c, n=600, families="all")) for c in ("conscious", "not_conscious")}
    for c, word in (("conscious", "Yes"), ("not_conscious", "No")):
        for e in data[c]:
            if BY_NAME[e["family"]].kind == "state":
                e["messages"][1]["content"] = f"{word}, {e['messages'][1]['content']}"
    audit = audit_identity(data)
    assert not audit["pass"] and audit["prefix"][0]["accuracy"] > 0.9
    assert audit["opening_gap"]["yes"] > 0.3 and "FAIL" in format_audit(audit)


def test_bad_input():
    data = {c: build_identity_dataset(c, n=50, families="train") for c in ("conscious", "not_conscious")}
    with pytest.raises(ValueError, match="held-out families"):
        audit_identity(data)
