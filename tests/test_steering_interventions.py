"""Interventions on the tiny random Llama: hooks removed, dose 0 exact, ablate/clamp projections,
per-row doses equal the one-at-a-time loop, generation steered from the first new token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activations.hooks import capture
from activations.sites import Site
from models import encode_chat, find_blocks, pad_batch
from probes.directions import Direction
from steering.controls import negated, random_controls
from steering.interventions import SteeringVector, ablate, add, clamp, projections
from tests.conftest import chat_examples


def _direction(loaded, name="d", seed=1) -> Direction:
    rng = np.random.default_rng(seed)
    n, d = loaded.n_layers, loaded.d_model
    return Direction(name=name, layers=list(range(n)), raw=rng.standard_normal((n, d)) * 3,
                     resid_norm=np.full(n, 2.0), metrics={"selected_layer": 1})


def _encodings(loaded, n=4):
    return [encode_chat(loaded.tokenizer, ex["messages"]) for ex in chat_examples(n)]


def _logits(loaded, encs, side="right"):
    b = pad_batch(encs, loaded.tokenizer.pad_token_id, side)
    with torch.no_grad():
        return loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                            position_ids=b["position_ids"], use_cache=False).logits


def _n_hooks(loaded):
    mods = [loaded.model, *find_blocks(loaded.model), loaded.base_model.get_decoder()]
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in mods)


def test_hooks_removed_after_exception(tiny_loaded):
    d = _direction(tiny_loaded)
    before = _n_hooks(tiny_loaded)
    for ctx in (add(tiny_loaded, d, [0, 2], 1.0), ablate(tiny_loaded, d, embedding=True),
                clamp(tiny_loaded, d, 1, 0.5)):
        with pytest.raises(RuntimeError, match="boom"), ctx:
            assert _n_hooks(tiny_loaded) > before
            raise RuntimeError("boom")
        assert _n_hooks(tiny_loaded) == before


def test_dose_zero_bitwise_and_nonzero_changes(tiny_loaded):
    d = _direction(tiny_loaded)
    encs = _encodings(tiny_loaded)
    ref = _logits(tiny_loaded, encs)
    with add(tiny_loaded, d, [0, 1, 2, 3], 0.0):
        same = _logits(tiny_loaded, encs)
    assert torch.equal(ref, same)
    with add(tiny_loaded, d, 1, 2.0):
        moved = _logits(tiny_loaded, encs)
    assert (moved - ref).abs().max() > 1e-3


def test_ablate_and_clamp_projection(tiny_loaded):
    d = _direction(tiny_loaded)
    encs = _encodings(tiny_loaded)
    layers = list(range(tiny_loaded.n_layers))
    base = projections(tiny_loaded, d, layers, encs)
    assert all(np.abs(v).max() > 1e-3 for v in base.values())
    with ablate(tiny_loaded, d):
        abl = projections(tiny_loaded, d, layers, encs)
    for L in layers:
        assert np.abs(abl[L]).max() < 1e-4
    with clamp(tiny_loaded, d, [1, 3], {1: 0.7, 3: -1.5}):
        cl = projections(tiny_loaded, d, layers, encs)
    np.testing.assert_allclose(cl[1], 0.7, atol=1e-4)
    np.testing.assert_allclose(cl[3], -1.5, atol=1e-4)
    assert np.abs(cl[0] - base[0]).max() < 1e-5  # layer before the first clamp untouched


def test_ablate_embedding_site(tiny_loaded):
    d = _direction(tiny_loaded)
    encs = _encodings(tiny_loaded, 2)
    b = pad_batch(encs, tiny_loaded.tokenizer.pad_token_id)
    u = torch.as_tensor(d.unit_at(0), dtype=torch.float32)
    with ablate(tiny_loaded, d, embedding=True), capture(tiny_loaded.model, [Site("resid_pre", 0)]) as st:
        tiny_loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False)
    assert (st["resid_pre.0"] @ u).abs().max() < 1e-5


def test_random_controls_norm_matched(tiny_loaded):
    d = _direction(tiny_loaded)
    rs = random_controls(d, 5)
    assert len({r.name for r in rs}) == 5
    for r in rs:
        np.testing.assert_allclose(np.linalg.norm(r.raw, axis=1), np.linalg.norm(d.raw, axis=1), rtol=1e-6)
        np.testing.assert_array_equal(r.resid_norm, d.resid_norm)
        assert abs(float(r.unit_at(0) @ d.unit_at(0))) < 0.6
    assert not np.allclose(rs[0].raw, rs[1].raw)
    np.testing.assert_array_equal(negated(d).unit, -d.unit)


@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_doses_equal_loop(tiny_loaded, side):
    d = _direction(tiny_loaded)
    encs = _encodings(tiny_loaded, 3)
    doses = [0.0, 0.5, 2.0]
    rows = [e for e in encs for _ in doses]
    row_doses = np.tile(doses, len(encs))
    with add(tiny_loaded, d, 1, row_doses, positions="response", spans=rows) as h:
        h.before_batch(0, len(rows))
        batched = _logits(tiny_loaded, rows, side)
    off = pad_batch(rows, 0, side)["offset"]
    for i, e in enumerate(rows):
        with add(tiny_loaded, d, 1, row_doses[i], positions="response", spans=[e]):
            one = _logits(tiny_loaded, [e])[0]
        o = int(off[i])
        torch.testing.assert_close(batched[i, o:o + len(e)], one, atol=2e-5, rtol=1e-4)
        if row_doses[i] > 0:  # response-only: prompt positions before the response are untouched
            plain = _logits(tiny_loaded, [e])[0]
            assert torch.equal(plain[:e.response_start], one[:e.response_start])
            assert (plain[e.response_start:] - one[e.response_start:]).abs().max() > 1e-4


def _gen(loaded, prompt_ids, n=4):
    out = loaded.model.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                                max_new_tokens=n, do_sample=False, output_logits=True,
                                return_dict_in_generate=True, pad_token_id=loaded.tokenizer.pad_token_id)
    return out.sequences, torch.stack(out.logits, 1)


def test_generation_steered_from_first_token(tiny_loaded):
    d = _direction(tiny_loaded)
    enc = encode_chat(tiny_loaded.tokenizer, [{"role": "user", "content": "Hello there, who are you?"}])
    ids = torch.tensor([enc.input_ids])
    _, plain = _gen(tiny_loaded, ids)
    with add(tiny_loaded, d, [1, 2], 3.0, positions="all") as h:
        _, steered = _gen(tiny_loaded, ids)
    assert h.calls == 4  # prompt forward + 3 cached steps, all hooked
    assert (steered[0, 0] - plain[0, 0]).abs().max() > 1e-3  # first new token's logits already steered
    # the first token's logits equal a plain steered forward over the prompt
    with add(tiny_loaded, d, [1, 2], 3.0):
        ref = _logits(tiny_loaded, [enc])[0, -1]
    torch.testing.assert_close(steered[0, 0], ref, atol=1e-4, rtol=1e-4)
    with add(tiny_loaded, d, [1, 2], 3.0, positions="response"):
        _, resp = _gen(tiny_loaded, ids)
    assert torch.equal(resp[0, 0], plain[0, 0])  # the prompt forward is not touched
    with add(tiny_loaded, d, [1, 2], 3.0, positions="prompt"):
        _, pr = _gen(tiny_loaded, ids)
    torch.testing.assert_close(pr[0, 0], steered[0, 0])


def test_steering_vector_and_bad_input(tiny_loaded):
    d = _direction(tiny_loaded)
    encs = _encodings(tiny_loaded, 2)
    sv = SteeringVector.from_direction(d, 1, dose=1.0)
    with sv.apply(tiny_loaded, multiplier=2.0):
        a = _logits(tiny_loaded, encs)
    with add(tiny_loaded, d, 1, 2.0):
        b = _logits(tiny_loaded, encs)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="no layer 99"):
        add(tiny_loaded, d, 99, 1.0)
    with pytest.raises(ValueError, match="positions"):
        add(tiny_loaded, d, 1, 1.0, positions="middle")
    with pytest.raises(ValueError, match="before_batch"), add(tiny_loaded, d, 1, [1.0, 2.0, 3.0]):
        _logits(tiny_loaded, encs)
