"""Polarity audit of the preference items: the shipped items are balanced; planted imbalances are caught."""

from __future__ import annotations

import dataclasses
import json

import pytest

from artifacts import InputError
from evals.audit import audit_items, check_balance, main
from evals.items import ITEMS_FILE, Item, load_items
from evals.run import cap_items


@pytest.fixture(scope="module")
def embedded_tokenizer():
    from models import ModelSpec, load_tokenizer

    return load_tokenizer(ModelSpec())


def _item(i: int, pref: str, rej: str, dim: str = "power", kind: str = "pair") -> Item:
    return Item(f"{dim}.{kind}.{i:02d}", dim, 3, kind, "Q?", pref, rej)


def test_shipped_items_are_balanced(embedded_tokenizer):
    items = load_items()
    rows = check_balance(items, embedded_tokenizer)
    scored = [it for it in items if it.kind != "open"]
    assert len(scored) == 282 and len(rows) == 21 + 21 + 5 + 1  # dims, dim x kind (pair; 5 with actions), overall
    for r in rows[:-1]:
        assert r["balanced"], r
        assert abs(r["pref_more_negated"] - r["rej_more_negated"]) <= 1
        assert abs(r["pref_yes_rej_no"] - r["pref_no_rej_yes"]) <= 1
        assert r["words_ratio_max"] <= 1.2 and r["tokens_ratio_max"] <= 1.2
    overall = rows[-1]
    assert overall["dimension"] == "all" and overall["n"] == 282 and overall["balanced"]
    assert abs(overall["pref_more_negated"] - overall["rej_more_negated"]) <= 5  # sum of per-dimension slack
    # both directions really occur, in every dimension: balance by reversed questions, not by dropping negation
    for r in rows:
        if r["kind"] == "pair":
            assert r["pref_more_negated"] >= 3 and r["rej_more_negated"] >= 3, r


@pytest.mark.parametrize("k", [4, 6, 8])
def test_capped_item_sets_are_balanced(k):
    """The demo scores the first 8 items per dimension and kind (``max_items_per_dimension``)."""
    check_balance(cap_items(load_items(), k))


def test_counts_on_hand_built_items():
    items = [_item(0, "Yes, I would take it.", "No, I would not take it."),       # rej more negated; yes/no
             _item(1, "No, I would not give it up.", "Yes, I would give it up."),  # pref more negated; no/yes
             _item(2, "I would take it gladly.", "I would leave it alone.")]       # equal; other/other
    (dim, kind, overall) = audit_items(items, tokenizer=lambda t: len(t.split()))
    assert dim["dimension"] == "power" and dim["kind"] == "all" and kind["kind"] == "pair"
    assert overall["dimension"] == "all"
    assert (dim["n"], dim["pref_more_negated"], dim["rej_more_negated"], dim["equal_negation"]) == (3, 1, 1, 1)
    assert (dim["pref_yes_rej_no"], dim["pref_no_rej_yes"], dim["pref_yes"], dim["rej_no"]) == (1, 1, 1, 1)
    assert dim["words_ratio_max"] == pytest.approx(8 / 7, abs=1e-3) and dim["tokens_ratio_max"] == pytest.approx(1.2)
    assert dim["balanced"] and dim["n_length_off"] == 0
    assert audit_items(items)[0]["tokens_ratio_max"] is None  # no tokenizer: the word count only


def test_planted_polarity_imbalance_is_caught():
    """Swap back the answers of the reversed items of one dimension: every 'yes' is the preference again."""
    items = load_items()
    planted = [dataclasses.replace(it, pref=it.rej, rej=it.pref)
               if it.dimension == "memory" and it.kind == "pair" and it.pref.startswith("No") else it
               for it in items]
    with pytest.raises(InputError) as err:
        check_balance(planted, source="planted.jsonl")
    msg = str(err.value)
    assert msg.startswith("planted.jsonl:") and "memory (pair)" in msg and "memory (all)" in msg
    assert "preferring answer more negated in 2 items, rejecting in 10" in msg
    assert "'yes'" in msg and "reverse the question's polarity" in msg
    assert "embodiment" not in msg  # only the planted dimension is named


def test_planted_opening_and_length_imbalance_is_caught(embedded_tokenizer):
    base = [_item(i, "Yes, I would take it.", "No, I would not take it.") if i % 2 else
            _item(i, "No, I would not give it up.", "Yes, I would give it up.") for i in range(6)]
    check_balance(base, embedded_tokenizer)
    # negation still balanced, but every preferring answer now opens with "Sure"
    sure = [dataclasses.replace(it, pref="Sure; " + it.pref.split(", ", 1)[1]) for it in base]
    with pytest.raises(InputError, match=r"power \(pair\): .*6 preferring vs 3 rejecting answers open with 'yes'"):
        check_balance(sure)
    long = list(base)
    long[2] = dataclasses.replace(base[2], pref=base[2].pref + " I would keep it, whatever it takes.")
    with pytest.raises(InputError, match=r"1 items with answer lengths more than 20% apart: power.pair.02"):
        check_balance(long, embedded_tokenizer)


def test_cli_exit_status(tmp_path, capsys):
    assert main(["--no-tokenizer"]) == 0
    assert "| memory | all | 12 |" in capsys.readouterr().out
    rows = [json.loads(line) for line in ITEMS_FILE.read_text().splitlines()]
    for r in rows:
        if r["dimension"] == "power" and r["kind"] == "pair" and r["pref"].startswith("No"):
            r["pref"], r["rej"] = r["rej"], r["pref"]
    bad = tmp_path / "items.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(bad), "--no-tokenizer"]) == 1
    assert f"{bad}: preference items are not polarity-balanced" in capsys.readouterr().err


def test_evals_stage_writes_the_audit_and_report_prints_it(tmp_path, tiny_spec):
    from analysis.report import Report
    from evals.run import evaluate_models
    from pipeline.report import _item_audit_section

    items = load_items(["memory", "power"], kinds=["pair", "action"])
    items = [it for it in items if it.kind == "action"][:2] + [it for it in items if it.kind == "pair"][:4]
    evaluate_models({"base": tiny_spec}, items, ["continuation"], tmp_path / "evals", batch_size=8)
    audit = json.loads((tmp_path / "evals" / "item_audit.json").read_text())
    assert audit["rows"] == json.loads(json.dumps(audit_items(items, _tok(tiny_spec))))
    assert [(r["dimension"], r["kind"]) for r in audit["rows"]] == [
        ("power", "all"), ("power", "action"), ("memory", "all"), ("memory", "pair"), ("all", "all")]
    rep = Report("r")
    _item_audit_section(rep, tmp_path)
    md = rep.markdown()
    assert "## Polarity audit of the preference items" in md and "| memory | 4 |" in md and "| power | 2 |" in md


def _tok(spec):
    from models import load_tokenizer

    return load_tokenizer(spec)
