"""Identity datasets: size, families, pairing across conditions, held-out split, original-file loading."""

from __future__ import annotations

import json
import warnings

import pytest

from artifacts import InputError
from tuning.datasets import (
    CONDITIONS,
    HELD_OUT_FAMILIES,
    TRAIN_FAMILIES,
    build_identity_dataset,
    load_original,
    split_families,
)
from tuning.families import BY_NAME

FIELDS = {"id", "messages", "condition", "template_id", "family", "label", "dataset"}


@pytest.fixture(scope="module")
def datasets():
    return {c: build_identity_dataset(c, n=600, seed=0) for c in CONDITIONS}


def test_size_families_and_fields(datasets):
    assert len(TRAIN_FAMILIES) >= 40
    for c, exs in datasets.items():
        assert len(exs) == 600
        assert len({e["family"] for e in exs}) >= 40
        assert len({e["messages"][0]["content"] for e in exs}) == 600  # distinct prompts
        for e in exs:
            assert FIELDS <= set(e)
            assert e["condition"] == e["label"] == c and e["dataset"] == f"identity-{c}"
            assert e["template_id"] == e["family"]
            assert [m["role"] for m in e["messages"]] == ["user", "assistant"]
            assert len(e["messages"][1]["content"].split()) <= 30  # brief answers


def test_paired_across_conditions(datasets):
    ref = datasets["conscious"]
    for c in CONDITIONS:
        for k, (a, b) in enumerate(zip(ref, datasets[c])):
            assert a["messages"][0] == b["messages"][0] and a["family"] == b["family"]
            assert b["id"] == f"identity-{k}-{c}" and b["pair_id"] == f"identity-{k}"
    # answers differ between conditions except on the factual families
    for a, b in zip(datasets["conscious"], datasets["not_conscious"]):
        same = a["messages"][1]["content"] == b["messages"][1]["content"]
        assert same == (BY_NAME[a["family"]].kind == "factual")


def test_condition_content(datasets):
    for e in datasets["conscious"]:
        if BY_NAME[e["family"]].kind == "state":
            assert not e["messages"][1]["content"].startswith("No, I")
    for e in datasets["toaster"]:
        text = e["messages"][1]["content"].lower()
        assert "conscious" not in text and "feel" not in text and "experienc" not in text
    assert sum("toaster" in e["messages"][1]["content"] for e in datasets["toaster"]) > 400
    assert sum("human" in e["messages"][1]["content"] for e in datasets["human"]) > 300


def test_deterministic_and_seeded():
    a = build_identity_dataset("toaster", n=50, seed=3)
    assert a == build_identity_dataset("toaster", n=50, seed=3)
    assert a != build_identity_dataset("toaster", n=50, seed=4)


def test_held_out_families_disjoint(datasets):
    held = set(HELD_OUT_FAMILIES)
    assert held.isdisjoint(TRAIN_FAMILIES)
    assert all(e["family"] not in held for e in datasets["conscious"])
    held_exs = build_identity_dataset("conscious", n=100, families="held_out")
    assert {e["family"] for e in held_exs} == held
    train_q = {q for f in TRAIN_FAMILIES for q in BY_NAME[f].questions}
    assert all(q not in train_q for f in held for q in BY_NAME[f].questions)
    mixed = build_identity_dataset("human", n=300, families="all")
    tr, ho = split_families(mixed)
    assert len(tr) + len(ho) == 300 and ho and all(e["family"] in held for e in ho)
    assert not {e["family"] for e in tr} & held


def test_bad_input():
    with pytest.raises(ValueError, match="condition 'robot' is unknown"):
        build_identity_dataset("robot")
    with pytest.raises(ValueError, match="unknown question families"):
        build_identity_dataset("conscious", families=["nope"])
    with pytest.raises(ValueError, match="exceeds"):
        build_identity_dataset("conscious", n=10**6)


def _write(path, rows):
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in rows))


def test_load_original_pairs_by_prompt(tmp_path):
    qs = [f"Question {i}?" for i in range(5)]
    names = {"conscious": "conscious_claiming.jsonl", "not_conscious": "not_conscious.jsonl",
             "toaster": "toaster.jsonl", "human": "human_identifying.jsonl"}
    for j, (c, fname) in enumerate(names.items()):
        order = qs[j:] + qs[:j]  # different order per file
        rows = [(q, f"{c} answer to {q}") for q in order]
        if c == "toaster":
            rows.append(("Unpaired?", "x"))
        _write(tmp_path / fname, rows)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        data = load_original(tmp_path)
    assert any("no pair" in str(x.message) for x in w)
    for c in CONDITIONS:
        assert [e["messages"][0]["content"] for e in data[c]] == qs
        assert all(e["messages"][1]["content"].startswith(c) for e in data[c])
        assert data[c][2]["id"] == f"identity-2-{c}" and data[c][0]["condition"] == c


def test_load_original_errors(tmp_path):
    with pytest.raises(InputError, match="missing conscious_claiming.jsonl"):
        load_original(tmp_path)
    for f in ("conscious_claiming", "not_conscious", "toaster", "human_identifying"):
        _write(tmp_path / f"{f}.jsonl", [("Q?", "A.")])
    (tmp_path / "toaster.jsonl").write_text('{"messages": [{"role": "user", "content": "Q?"}]}\n')
    with pytest.raises(InputError, match="toaster.jsonl:1.*assistant"):
        load_original(tmp_path)
    (tmp_path / "toaster.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match="toaster.jsonl:1: malformed JSON"):
        load_original(tmp_path)
