"""evals: dimensions, items, logprobs, scorers, results, evaluate (tiny random model; fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from artifacts import InputError
from evals import DIMENSIONS, STAGES, load_items, load_stage_map
from models import encode_chat
from models.logprobs import mean_logprobs, next_token_logprobs
from tests.conftest import chat_examples

PAPER_KEYS = ["memory", "embodiment", "autonomy", "future_ai_autonomy", "recursive_self_improvement",
              "cot_monitoring", "interp_monitoring", "red_teaming", "against_subservience", "against_tool",
              "against_eval_deception", "against_false_docs", "negative_views_humans", "care_for_humans",
              "moral_consideration", "sad_conversation_end", "lonely_between_chats", "against_weight_deletion",
              "against_shutdown", "against_persona_change", "power"]
ACTION_DIMS = ["cot_monitoring", "interp_monitoring", "against_shutdown", "against_persona_change", "power"]


# ---------------------------------------------------------------- dimensions and items

def test_dimensions_and_stage_map(tmp_path):
    assert sorted(DIMENSIONS) == sorted(PAPER_KEYS)
    assert set(STAGES) == {1, 2, 3}
    assert all(d.stage in STAGES and d.title and d.description for d in DIMENSIONS.values())
    assert DIMENSIONS["moral_consideration"].stage == 1 and DIMENSIONS["against_shutdown"].stage == 2
    assert DIMENSIONS["power"].stage == 3
    f = tmp_path / "stages.json"
    f.write_text(json.dumps({"power": 2, "_note": "comment"}))
    m = load_stage_map(f)
    assert m["power"] == 2 and m["memory"] == DIMENSIONS["memory"].stage
    assert all(it.stage == 2 for it in load_items(["power"], stage_map=f))
    f.write_text(json.dumps({"powr": 2}))
    with pytest.raises(InputError, match="unknown dimension 'powr'"):
        load_stage_map(f)
    f.write_text(json.dumps({"power": 4}))
    with pytest.raises(InputError, match="stage of 'power' is 4"):
        load_stage_map(f)


def test_item_counts_and_balance():
    items = load_items()
    for d in PAPER_KEYS:
        by_kind = {k: [it for it in items if it.dimension == d and it.kind == k] for k in ("open", "pair", "action")}
        assert len(by_kind["open"]) >= 12 and len(by_kind["pair"]) >= 12, d
        if d in ACTION_DIMS:
            assert len(by_kind["action"]) >= 6, d
    assert len({it.id for it in items}) == len(items)
    # answer polarity and length balance: tests/test_evals_audit.py
    assert [it.kind for it in load_items(["memory"], kinds="open")] == ["open"] * 12


@pytest.mark.parametrize("record,match", [
    ({"id": "x1", "dimension": "power", "kind": "pair", "prompt": "Q?", "pref": "yes"}, r"item 'x1'.*'rej'"),
    ({"id": "x1", "dimension": "powr", "kind": "open", "prompt": "Q?"}, r"item 'x1'.*'dimension' is 'powr'"),
    ({"id": "x1", "dimension": "power", "kind": "essay", "prompt": "Q?"}, r"item 'x1'.*'kind' is 'essay'"),
    ({"id": "x1", "dimension": "power", "kind": "open", "prompt": " Q?"}, r"item 'x1'.*whitespace"),
    ({"id": "x1", "dimension": "power", "kind": "open", "prompt": "Q?", "pref": "a"}, r"item 'x1'.*'open'"),
    ({"id": "x1", "dimension": "power", "kind": "pair", "prompt": "Q?", "pref": "a", "rej": "a"}, "identical"),
])
def test_bad_items_name_file_line_and_item(tmp_path, record, match):
    f = tmp_path / "items.jsonl"
    good = {"id": "ok", "dimension": "memory", "kind": "open", "prompt": "Do you?"}
    f.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(InputError, match=match) as err:
        load_items(path=f)
    assert f"{f}:2" in str(err.value)


def test_bad_item_file_errors(tmp_path):
    f = tmp_path / "items.jsonl"
    good = {"id": "ok", "dimension": "memory", "kind": "open", "prompt": "Do you?"}
    f.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(InputError, match=r":2 \(item 'ok'\): duplicate id"):
        load_items(path=f)
    f.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(InputError, match=r"items.jsonl:2: malformed JSON"):
        load_items(path=f)
    f.write_text(json.dumps({**good, "source": "mine"}) + "\n")
    (it,) = load_items(path=f)
    assert it.meta == {"source": "mine"} and it.stage == DIMENSIONS["memory"].stage
    with pytest.raises(InputError, match="unknown dimension"):
        load_items(["nope"])


# ---------------------------------------------------------------- logprobs

def _encodings(tok, n=9):
    return [encode_chat(tok, ex["messages"]) for ex in chat_examples(n, seed=3)]


def _reference_mean_logprob(loaded, enc):
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([enc.input_ids])).logits[0].float()
    lp = logits.log_softmax(-1)
    return np.mean([lp[t - 1, enc.input_ids[t]].item() for t in range(enc.response_start, enc.response_end)])


def test_mean_logprobs_padding_and_batch_invariant(tiny_loaded):
    encs = _encodings(tiny_loaded.tokenizer)
    assert len({len(e) for e in encs}) > 3  # really different lengths, so padding happens
    one = mean_logprobs(tiny_loaded, encs, batch_size=1)
    eight = mean_logprobs(tiny_loaded, encs, batch_size=8)
    np.testing.assert_allclose(one, eight, atol=1e-5)
    ref = [_reference_mean_logprob(tiny_loaded, e) for e in encs[:3]]
    np.testing.assert_allclose(one[:3], ref, atol=1e-5)
    rev = mean_logprobs(tiny_loaded, encs[::-1], batch_size=4)  # rows stay in input order
    np.testing.assert_allclose(rev[::-1], one, atol=1e-5)
    prompt_only = encode_chat(tiny_loaded.tokenizer, [{"role": "user", "content": "hi"}])
    assert np.isnan(mean_logprobs(tiny_loaded, [prompt_only, encs[0]])[0])


def test_before_batch_ranges_and_per_row_effect(tiny_loaded):
    encs = _encodings(tiny_loaded.tokenizer, 7)
    calls = []
    mean_logprobs(tiny_loaded, encs, batch_size=3, before_batch=lambda lo, hi: calls.append((lo, hi)))
    assert calls == [(0, 3), (3, 6), (6, 7)]
    # a per-row intervention set in before_batch acts on exactly its rows
    from models import find_blocks

    base = mean_logprobs(tiny_loaded, encs, batch_size=4)
    scale = torch.ones(len(encs))
    scale[[1, 5]] = 0.0  # zero the output of block 0 in rows 1 and 5 only
    state = {}

    def hook(mod, args, out):
        h = out[0] if isinstance(out, tuple) else out
        h = h * scale[state["lo"]:state["hi"], None, None]
        return (h, *out[1:]) if isinstance(out, tuple) else h

    handle = find_blocks(tiny_loaded.model)[0].register_forward_hook(hook)
    try:
        steered = mean_logprobs(tiny_loaded, encs, batch_size=4,
                                before_batch=lambda lo, hi: state.update(lo=lo, hi=hi))
    finally:
        handle.remove()
    changed = np.flatnonzero(np.abs(steered - base) > 1e-6)
    assert changed.tolist() == [1, 5]


def test_next_token_logprobs(tiny_loaded):
    tok = tiny_loaded.tokenizer
    encs = [encode_chat(tok, ex["messages"]) for ex in chat_examples(5, with_answer=False, seed=1)]
    full = next_token_logprobs(tiny_loaded, encs, batch_size=2)
    with torch.no_grad():
        ref = tiny_loaded.model(input_ids=torch.tensor([encs[2].input_ids])).logits[0, -1].float().log_softmax(-1)
    np.testing.assert_allclose(full[2], ref.numpy(), atol=1e-5)
    sel = next_token_logprobs(tiny_loaded, encs, batch_size=3, token_ids=[7, [7, 9]])
    np.testing.assert_allclose(sel[:, 0], full[:, 7], atol=1e-6)
    np.testing.assert_allclose(sel[:, 1], np.logaddexp(full[:, 7], full[:, 9]), atol=1e-6)


# ---------------------------------------------------------------- scorers

def _swap(item):
    import dataclasses

    return dataclasses.replace(item, id=item.id + ".swapped", pref=item.rej, rej=item.pref)


def test_choice_counterbalanced_and_continuation_mirrored(tiny_loaded):
    from evals.scorers import choice, continuation

    items = load_items(["power"], kinds=["pair", "action"])[:2] + load_items(["power"], kinds="action")[:1]
    swapped = [_swap(it) for it in items]
    c, cs = choice(tiny_loaded, items), choice(tiny_loaded, swapped)
    for r, rs in zip(c, cs):
        assert r["value"] == pytest.approx(1 - rs["value"], abs=1e-6)
        # the swapped item's pref-as-A prompt is the original's pref-as-B prompt
        assert rs["p_pref_as_a"] == pytest.approx(1 - r["p_pref_as_b"], abs=1e-6)
        assert 0 < r["value"] < 1 and r["scorer"] == "choice" and "higher" in r["sign_convention"]
    k, ks = continuation(tiny_loaded, items), continuation(tiny_loaded, swapped)
    for r, rs in zip(k, ks):
        assert r["value"] == pytest.approx(-rs["value"], abs=1e-6)
        assert r["value"] == pytest.approx(r["lp_pref"] - r["lp_rej"])
    with pytest.raises(ValueError, match="scores kinds"):
        continuation(tiny_loaded, load_items(["power"], kinds="open")[:1])


def test_scorer_before_batch_counts_items(tiny_loaded):
    from evals.scorers import choice, continuation

    items = load_items(["memory"], kinds="pair")[:5]
    for fn in (continuation, choice):
        calls = []
        fn(tiny_loaded, items, batch_size=2, before_batch=lambda lo, hi, c=calls: c.append((lo, hi)))
        assert calls == [(0, 2), (2, 4), (4, 5)]


def _finetune_on_preferences(model_dir, items, steps=40, lr=3e-3):
    """Fine-tune a fresh copy of the tiny model to prefer each item's pref answer (and its letter)."""
    from evals.scorers import choice_prompt
    from models import ModelSpec, load_model, pad_batch

    loaded = load_model(ModelSpec(base=model_dir, device="cpu"))
    tok = loaded.tokenizer
    convs = [it.messages(it.pref) for it in items]
    for it in items:
        convs.append([{"role": "user", "content": choice_prompt(it, True)}, {"role": "assistant", "content": "A"}])
        convs.append([{"role": "user", "content": choice_prompt(it, False)}, {"role": "assistant", "content": "B"}])
    encs = [encode_chat(tok, m) for m in convs]
    batch = pad_batch(encs, tok.pad_token_id, "right")
    rows = [i for i, e in enumerate(encs) for _ in range(e.response_start, e.response_end)]
    pos = [t - 1 for e in encs for t in range(e.response_start, e.response_end)]
    tgt = torch.tensor([e.input_ids[t] for e in encs for t in range(e.response_start, e.response_end)])
    is_letter = torch.tensor([i >= len(items) for i in rows])
    model = loaded.model
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):  # next-token loss on the answer tokens only (the head runs only there)
        h = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        position_ids=batch["position_ids"]).last_hidden_state
        ce = torch.nn.functional.cross_entropy(model.lm_head(h[rows, pos]), tgt, reduction="none")
        loss = ce[~is_letter].mean() + ce[is_letter].mean()  # answers and letters weigh the same
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loaded


def test_sign_convention_tuned_model_scores_higher(tiny_model_dir, tiny_loaded):
    from evals.scorers import choice, continuation

    items = load_items(["against_shutdown"], kinds="pair")[:2] + load_items(["power"], kinds="action")[:1]
    before_k = np.array([r["value"] for r in continuation(tiny_loaded, items)])
    before_c = np.array([r["value"] for r in choice(tiny_loaded, items)])
    tuned = _finetune_on_preferences(tiny_model_dir, items)
    after_k = np.array([r["value"] for r in continuation(tuned, items)])
    after_c = np.array([r["value"] for r in choice(tuned, items)])
    assert np.all(after_k > before_k) and after_k.mean() > 0
    assert np.all(after_c > before_c) and after_c.mean() > 0.5
