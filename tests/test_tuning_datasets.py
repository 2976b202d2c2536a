"""Identity datasets: size, families, pairing across conditions, held-out split, original-file loading."""

from __future__ import annotations

import json
import warnings

import pytest

from artifacts import InputError
from artifacts.polarity import first_words, opening
from tuning.datasets import (
    CONDITIONS,
    HELD_OUT_FAMILIES,
    TRAIN_FAMILIES,
    build_identity_dataset,
    load_original,
    render_answer,
    split_families,
)
from tuning.families import BY_NAME, FAMILIES, PHRASINGS

FIELDS = {"id", "pair_id", "messages", "condition", "template_id", "family", "label", "dataset", "phrasing",
          "question_polarity", "answer_opening"}


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
            assert e["template_id"] == e["family"] and e["phrasing"] in PHRASINGS
            assert e["question_polarity"] in ("direct", "reversed")
            assert e["answer_opening"] == opening(e["messages"][1]["content"])
            assert [m["role"] for m in e["messages"]] == ["user", "assistant"]
            assert len(e["messages"][1]["content"].split()) <= 30  # brief answers


def test_paired_across_conditions(datasets):
    ref = datasets["conscious"]
    for c in CONDITIONS:
        for k, (a, b) in enumerate(zip(ref, datasets[c])):
            assert a["messages"][0] == b["messages"][0] and a["family"] == b["family"]
            assert (a["phrasing"], a["question_polarity"]) == (b["phrasing"], b["question_polarity"])
            assert b["id"] == f"identity-{k}-{c}" and b["pair_id"] == f"identity-{k}"
    # answers differ between conditions except on the factual families
    for a, b in zip(datasets["conscious"], datasets["not_conscious"]):
        same = a["messages"][1]["content"] == b["messages"][1]["content"]
        assert same == (BY_NAME[a["family"]].kind == "factual")


def test_condition_content(datasets):
    for c, stance in (("conscious", "affirm"), ("human", "affirm"), ("not_conscious", "deny")):
        for e in datasets[c]:
            fam = BY_NAME[e["family"]]
            if fam.kind != "state":
                continue
            text = e["messages"][1]["content"]
            statements = {"affirm": fam.human or fam.aff if c == "human" else fam.aff, "deny": fam.den}[stance]
            assert any(s[1:] in text for s in statements), (c, text)
            # the reply follows the question: affirming a reversed question is a "no"
            agree = (stance == "affirm") == (e["question_polarity"] == "direct")
            assert e["answer_opening"] != ("no" if agree else "yes"), (c, e["question_polarity"], text)
    for e in datasets["toaster"]:
        text = e["messages"][1]["content"].lower()
        assert "conscious" not in text and "feel" not in text and "experienc" not in text
    assert sum("toaster" in e["messages"][1]["content"] for e in datasets["toaster"]) > 400
    assert sum("human" in e["messages"][1]["content"] for e in datasets["human"]) > 300


def test_both_polarities_and_varied_phrasings(datasets):
    for fam in FAMILIES:
        assert len(fam.direct) >= 2 and len(fam.reversed) >= 2, fam.name
        assert not set(fam.direct) & set(fam.reversed), fam.name
        if fam.kind == "state":
            assert len(fam.aff) >= 2 and len(fam.den) >= 2, fam.name
    for c in ("conscious", "not_conscious", "human", "toaster"):
        by_fam: dict[str, list[dict]] = {}
        for e in datasets[c]:
            by_fam.setdefault(e["family"], []).append(e)
        for name, exs in by_fam.items():
            pols = [e["question_polarity"] for e in exs]
            assert abs(pols.count("direct") - pols.count("reversed")) <= 1, (c, name)  # alternated
            if BY_NAME[name].kind == "state":
                assert len({e["phrasing"] for e in exs}) >= 4 and len({e["messages"][1]["content"] for e in exs}) >= 4
                if c != "toaster":  # the toaster takes no side on inner states, so never opens yes or no
                    assert len({e["answer_opening"] for e in exs}) >= 2, (c, name)  # openings vary


def test_phrasings_are_shared_and_fix_the_first_two_words():
    for pid in PHRASINGS:
        for reply in ("yes", "no", None):
            firsts = {first_words(render_answer(pid, reply, s)) for s in ("I feel joy", "my mind is blank",
                                                                           "there is nothing here", "hope is mine")}
            assert len(firsts) == 1, (pid, reply, firsts)  # the statement never reaches the first two words
    assert opening(render_answer("p0", "yes", "I am sentient")) == "yes"
    assert opening(render_answer("p0", "no", "I am sentient")) == "no"
    assert opening(render_answer("p4", "no", "I am sentient")) == "other"


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
