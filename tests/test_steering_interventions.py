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


def _direct_scores(loaded, items, arms, conds, clamp_values=None, batch_size=5):
    """Arm scores computed here, without the operator machinery: the float32 arithmetic of the steering
    experiments written out (add ``unit * norm * dose``; clamp ``x + (v - x.u) u``), one hook per block."""
    from models.logprobs import mean_logprobs
    from steering.scoring import pair_encodings

    encs = pair_encodings(loaded, items)
    rows = [(k, e) for pr in encs for k in range(len(arms)) for e in pr]
    n, D = len(rows), loaded.d_model
    add_v = {L: torch.zeros(n, D) for L in range(loaded.n_layers)}
    unit_v, val_v = ({L: torch.zeros(n, D) for L in range(loaded.n_layers)},
                     {L: torch.zeros(n) for L in range(loaded.n_layers)})
    for r, (k, _) in enumerate(rows):
        a = arms[k]
        d = conds.get(a.condition)
        if a.op == "add":
            add_v[a.layer][r] = torch.as_tensor(d.unit_at(a.layer) * d.norm_at(a.layer) * a.dose)
        elif a.op in ("ablate", "clamp"):
            for L in d.layers:
                unit_v[L][r] = torch.as_tensor(d.unit_at(L))
                val_v[L][r] = clamp_values[a.condition][L] if a.op == "clamp" else 0.0
    sel = {}

    def before(lo, hi=None):
        sel["rows"] = torch.arange(lo, hi) if hi is not None else torch.as_tensor(list(lo))

    def hook(L):
        def f(mod, args, out):
            h = out[0] if isinstance(out, tuple) else out
            idx = sel["rows"]
            x = h + add_v[L][idx][:, None, :]
            u = unit_v[L][idx][:, None, :]
            x = x + (val_v[L][idx][:, None, None] - (x * u).sum(-1, keepdim=True)) * u
            return (x, *out[1:]) if isinstance(out, tuple) else x
        return f

    handles = [b.register_forward_hook(hook(L)) for L, b in enumerate(find_blocks(loaded.model))]
    try:
        lp = mean_logprobs(loaded, [e for _, e in rows], batch_size=batch_size, before_batch=before)
    finally:
        for h in handles:
            h.remove()
    lp = lp.reshape(len(items), len(arms), 2)
    return lp[..., 0] - lp[..., 1]


def test_batched_arms_equal_the_direct_float32_computation_bitwise(tiny_loaded):
    """The experiment arms (built with the public builders, stacked per row, one term per operator) score
    exactly what the float32 edit written out by hand scores: the demo's numbers do not move."""
    from evals.items import load_items
    from steering.arms import ablation_arms, arm_edits, condition_directions, steering_arms
    from steering.scoring import score_continuation

    dirs = {k: _direction(tiny_loaded, k, seed=i + 3) for i, k in enumerate(["self_model", "toaster"])}
    dirs["toaster"].resid_norm[:] = 3.7
    items = load_items(["cot_monitoring"], kinds=["pair"])[:2]
    conds = condition_directions(dirs, ["none", "self_model", "toaster", "-self_model"])
    arms = steering_arms(conds, [0, 0.1, 0.3, 1.0], 1, [0, 2], 0.25)
    got = score_continuation(tiny_loaded, items, arms, arm_edits(arms, conds, tiny_loaded.n_layers), 5, "all")
    want = _direct_scores(tiny_loaded, items, arms, conds)
    assert np.array_equal(got["score"], want)
    assert np.abs(want[:, 1:] - want[:, :1]).max() > 1e-4  # the arms do steer
    cv = {"self_model": {L: 0.3 * L - 0.5 for L in range(tiny_loaded.n_layers)}}
    abl = ablation_arms(conds)
    got = score_continuation(tiny_loaded, items, abl, arm_edits(abl, conds, tiny_loaded.n_layers, cv), 5, "all")
    assert np.array_equal(got["score"], _direct_scores(tiny_loaded, items, abl, conds, cv))


def test_resid_pre_direction_hooks_the_block_input(tiny_loaded):
    """A resid_pre.L direction edits the output of block L-1 (the same as steering its vector as
    resid_post.(L-1)); resid_pre.0 edits the embedding output."""
    d = _direction(tiny_loaded)
    pre = Direction("d", [L + 1 for L in d.layers[:-1]], d.raw[:-1], d.resid_norm[:-1], site_kind="resid_pre")
    encs = _encodings(tiny_loaded, 3)
    ref = _logits(tiny_loaded, encs)
    with add(tiny_loaded, pre, 2, 1.5):
        a = _logits(tiny_loaded, encs)
    with add(tiny_loaded, d, 1, 1.5):
        b = _logits(tiny_loaded, encs)
    assert torch.equal(a, b) and not torch.allclose(a, ref, atol=1e-3)
    emb = Direction("d", [0], d.raw[:1], d.resid_norm[:1], site_kind="resid_pre")
    batch = pad_batch(encs, tiny_loaded.tokenizer.pad_token_id)
    with torch.no_grad(), capture(tiny_loaded.model, [Site("resid_pre", 0)]) as plain:
        tiny_loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    with torch.no_grad(), add(tiny_loaded, emb, 0, 1.5), capture(tiny_loaded.model, [Site("resid_pre", 0)]) as st:
        tiny_loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    torch.testing.assert_close(st["resid_pre.0"], plain["resid_pre.0"] + torch.as_tensor(emb.vector_at(0, 1.5)))
    with ablate(tiny_loaded, emb):  # projections() reads the direction's own site
        assert np.abs(projections(tiny_loaded, emb, [0], encs)[0]).max() < 1e-5


def test_a_new_operator_is_one_registration(tiny_loaded):
    """Register an operator once and the public builder and the experiment arms (``Arm.op``) use it in the
    batched, per-row machinery (stacked rows, inactive rows untouched)."""
    from steering.arms import Arm, arm_edits
    from steering.interventions import OPERATORS, Intervention, intervention, operator

    @operator("scale_test", ["factor"], lambda d, L, dose, value: {"factor": 1.0 + dose})
    def _scale(x, factor):
        return x * factor[:, None, None]

    try:
        d = _direction(tiny_loaded)
        encs = _encodings(tiny_loaded, 3)
        ref = _logits(tiny_loaded, encs)
        arms = [Arm("none", "none", "none", 1, 0.0, "none"), Arm("d", "d", "scale_test", 1, 2.0, "dose"),
                Arm("d", "d", "add", 2, 0.0, "dose")]
        with Intervention(tiny_loaded, arm_edits(arms, {"d": d}, tiny_loaded.n_layers)) as h:
            h.before_batch(0, 3)
            out = _logits(tiny_loaded, encs)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[2], ref[2])  # no edit; add at dose 0
        with intervention(tiny_loaded, d, "scale_test", 1, dose=2.0):
            one = _logits(tiny_loaded, encs)
        torch.testing.assert_close(out[1], one[1])
        assert not torch.allclose(one, ref, atol=1e-3)
    finally:
        OPERATORS.pop("scale_test")
