"""Ablation in bfloat16: the projection is computed in float32 and cast back, so a residual of norm ~1e3
keeps less than 1e-3 of its norm along the ablated direction at every hooked site (in bf16 arithmetic it
keeps several times that)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from models import ModelSpec, encode_chat, find_blocks, load_model, pad_batch
from probes.directions import Direction
from steering.interventions import ablate
from tests.conftest import chat_examples, make_tiny_model_dir


@pytest.fixture(scope="module")
def bf16_loaded(tmp_path_factory):
    """A tiny Llama in bf16 whose residual stream has norm ~1e3 (embeddings scaled up), as in a 7B model."""
    path = make_tiny_model_dir(tmp_path_factory.mktemp("tiny-bf16"), seed=3, hidden=256, layers=3, heads=4,
                               kv_heads=2)
    loaded = load_model(ModelSpec(base=path, device="cpu", dtype="bfloat16"))
    with torch.no_grad():
        loaded.base_model.get_input_embeddings().weight.normal_(0.0, 60.0)  # also the (zero) padding row
    return loaded


def _residuals(loaded, encs):
    """One forward over the padded batch; returns the batch."""
    b = pad_batch(encs, loaded.tokenizer.pad_token_id)
    with torch.no_grad():
        loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                     position_ids=b["position_ids"], use_cache=False)
    return b


def _direction(loaded, encs):
    """A direction with a large share of the residual (its mean at each layer plus noise)."""
    blocks = find_blocks(loaded.model)
    store = {}
    hs = [blk.register_forward_hook(lambda m, a, o, L=L: store.__setitem__(L, o[0] if isinstance(o, tuple) else o))
          for L, blk in enumerate(blocks)]
    try:
        _residuals(loaded, encs)
    finally:
        for h in hs:
            h.remove()
    rng = np.random.default_rng(0)
    raw = np.stack([store[L].float().mean((0, 1)).numpy() for L in range(len(blocks))])
    raw = raw + rng.standard_normal(raw.shape) * 0.3 * np.abs(raw).mean()
    return Direction("d", list(range(len(blocks))), raw, np.ones(len(blocks)))


def _edited_ratio(loaded, d, encs, ctx) -> float:
    """max over sites and tokens of |h_edited . u| / ||h_before_edit|| at the hooked blocks."""
    blocks = find_blocks(loaded.model)
    before, after = {}, {}
    grab = lambda st, L: (lambda m, a, o: st.__setitem__(L, (o[0] if isinstance(o, tuple) else o).float()))  # noqa: E731
    hs = [blk.register_forward_hook(grab(before, L)) for L, blk in enumerate(blocks)]  # fires before the edit
    try:
        with ctx:
            hs += [blk.register_forward_hook(grab(after, L)) for L, blk in enumerate(blocks)]  # after it
            real = _residuals(loaded, encs)["attention_mask"].bool()  # padding excluded
    finally:
        for h in hs:
            h.remove()
    worst = 0.0
    for L in range(len(blocks)):
        u = torch.as_tensor(d.unit_at(L), dtype=torch.float32)
        norm = before[L].norm(dim=-1)[real]
        assert norm.min() > 500  # a residual as large as a 7B model's
        worst = max(worst, float(((after[L] @ u).abs()[real] / norm).max()))
    return worst


def test_bf16_ablation_removes_projection(bf16_loaded):
    loaded = bf16_loaded
    assert loaded.dtype == torch.bfloat16
    encs = [encode_chat(loaded.tokenizer, ex["messages"]) for ex in chat_examples(6)]
    d = _direction(loaded, encs)
    assert _edited_ratio(loaded, d, encs, contextlib.nullcontext()) > 0.1  # a large share before ablation
    assert _edited_ratio(loaded, d, encs, ablate(loaded, d)) < 1e-3
