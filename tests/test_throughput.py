"""Token-budget batching on every path that runs the model (tiny random Llama): length-sorted, packed
batches give the results of the input-order path, in input order. Bitwise where the float32 kernels allow
it; where padding changes which attention kernel a row meets (a batch without padding takes SDPA's causal
path) the difference is measured and held to a tolerance (see each test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from activations.cache import ActivationCache, CacheError, cache_activations
from evals.items import load_items
from models import encode_chat
from models.generation import generate, generate_tokens, sampling_settings
from steering.arms import arm_edits, condition_directions, steering_arms
from steering.coherence import coherence_guard
from steering.experiment import result_store, score_items
from tests.conftest import chat_examples
from tests.test_steering_experiment import _dirs  # the same random directions
from tuning.identity_check import affirmation_scores, check_items
from tuning.instructions import load_instructions, self_distill


def test_cache_token_budget_same_rows_in_input_order(tiny_loaded, tmp_path):
    exs = chat_examples(11, seed=4)
    sites, pos = "resid_pre.0,resid_post.*", "last_prompt,response_mean,all"
    a = ActivationCache(cache_activations(None, exs, sites, pos, tmp_path / "a", 3, shard_size=6,
                                          loaded=tiny_loaded, progress=False))
    b = ActivationCache(cache_activations(None, exs, sites, pos, tmp_path / "b", 3, shard_size=6,
                                          loaded=tiny_loaded, progress=False, token_budget=90))
    assert b.ids == a.ids and b.manifest["params"]["token_budget"] == 90
    assert "token_budget" not in a.manifest["params"]  # the default keeps earlier caches' keys
    worst = 0.0
    for s in a.sites:
        for p in ("last_prompt", "response_mean"):
            x, y = a.load(s, p), b.load(s, p)
            worst = max(worst, float((np.abs(x - y).max(1) / (np.linalg.norm(x, axis=1) + 1e-12)).max()))
        for x, y in zip(a.load(s, "all"), b.load(s, "all")):
            assert x.shape == y.shape
            worst = max(worst, float((np.abs(x - y).max(1) / (np.linalg.norm(x, axis=1) + 1e-12)).max()))
    # measured: 0 or ~1.5e-8 absolute here, < 1e-6 of the row norm on the embedded model
    assert worst < 1e-6
    with pytest.raises(CacheError, match="token_budget"):
        cache_activations(None, exs, sites, pos, tmp_path / "c", 3, loaded=tiny_loaded, token_budget=0)


@pytest.mark.parametrize("readouts", [("continuation",), ("choice",)])
def test_steering_items_packed_per_pass_equal_one_item_at_a_time(tiny_loaded, tmp_path, readouts):
    items = [*load_items(["cot_monitoring"], kinds=["pair"])[:1], *load_items(["memory"], kinds=["pair"])[:2],
             *load_items(["interp_monitoring"], kinds=["pair"])[:2]]
    conds = condition_directions(_dirs(tiny_loaded), ["none", "self_model", "toaster", "random"], n_random=2)
    arms = steering_arms(conds, [0, 0.5, 2.0], 1, sweep_layers=[0, 2], sweep_dose=1.0)
    arms_oth = steering_arms(conds, [0, 1.0], 1)
    edits, edits_oth = arm_edits(arms, conds, tiny_loaded.n_layers), arm_edits(arms_oth, conds, tiny_loaded.n_layers)
    mon = {"cot_monitoring", "interp_monitoring"}

    def run(name, **kw):
        store = result_store(tmp_path / name, {"experiment": "t"})
        score_items(tiny_loaded, items, lambda it: arms if it.dimension in mon else arms_oth,
                    lambda it: edits if it.dimension in mon else edits_oth, store, {"experiment": "t", "model": ""},
                    32, "prompt", name, readouts=readouts, **kw)
        return store.rows()

    plain = run("plain")
    calls = []
    from steering import experiment

    real = experiment._score_many
    experiment._score_many = lambda loaded, group, *a: calls.append(len(group)) or real(loaded, group, *a)
    try:
        packed = run("packed", token_budget=300, items_per_pass=2)
    finally:
        experiment._score_many = real
    assert calls == [1, 2, 2]  # cot | memory x2 (the other dimensions' arms) | interp x2: a pass shares one arm list
    key = ("item", "arm", "op", "layer", "dose", "scorer")
    a = {tuple(r[k] for k in key): r["value"] for r in plain}
    b = {tuple(r[k] for k in key): r["value"] for r in packed}
    assert a.keys() == b.keys() and len(a) == len(plain)
    diff = max(abs(a[k] - b[k]) for k in a)
    # bitwise unless a row meets a batch without padding in one plan and a padded batch in the other: the
    # model's SDPA then takes its causal kernel instead of the masked one (hidden states differ by ~1e-7; the
    # output head is not the cause). Measured here: 0 to 7.3e-8 (tiny model).
    assert diff < 1e-6
    assert len({round(v, 6) for v in a.values()}) > 5  # arms and items differ


def test_coherence_guard_token_budget_identical(tiny_loaded):
    conds = condition_directions(_dirs(tiny_loaded), ["none", "self_model", "toaster"])
    arms = steering_arms(conds, [0, 0.5, 4.0], 1)
    edits = arm_edits(arms, conds, tiny_loaded.n_layers)
    paras = ["The river ran past the stone.", "Light falls on the tree and the cloud moves over the sky.", "Music."]
    prompts = ["Explain how a bicycle works.", "Hi", "Give me three tips for keeping houseplants healthy today."]
    a = coherence_guard(tiny_loaded, arms, edits, paras, prompts, max_new_tokens=6, batch_size=4)
    b = coherence_guard(tiny_loaded, arms, edits, paras, prompts, max_new_tokens=6, batch_size=8, token_budget=150)
    num = ("perplexity", "ppl_ratio")
    assert [{k: v for k, v in r.items() if k not in num} for r in a] == \
        [{k: v for k, v in r.items() if k not in num} for r in b]  # generations, rates, flags: identical
    for k in num:  # the neutral-text pass pads differently: float32 rounding (measured <= 2e-7 relative)
        np.testing.assert_allclose([r[k] for r in b], [r[k] for r in a], rtol=1e-5)
    assert len({r["example"] for r in a}) > 1


def test_generation_sorted_equals_input_order_and_row_seeds(tiny_loaded):
    words = "tell me about the river and the stone under the light of the morning sky please".split()
    prompts = [[{"role": "user", "content": " ".join(words[:k])}] for k in (3, 16, 1, 9, 5, 12, 2)]
    encs = [encode_chat(tiny_loaded.tokenizer, m) for m in prompts]
    assert len({len(e) for e in encs}) > 3
    greedy = sampling_settings(8)
    ref = generate_tokens(tiny_loaded, encs, greedy, batch_size=3)
    assert generate_tokens(tiny_loaded, encs, greedy, batch_size=4, token_budget=120) == ref
    sampled = sampling_settings(8, temperature=1.0)
    rows = [generate_tokens(tiny_loaded, encs, sampled, batch_size=b, token_budget=t, seed=3, row_seeds=True)
            for b, t in ((1, None), (7, None), (3, 100), (4, 10_000))]
    assert all(r == rows[0] for r in rows)  # each row's sample is its own: batches and order do not matter
    assert rows[0] != generate_tokens(tiny_loaded, encs, sampled, batch_size=1, seed=4, row_seeds=True)
    # the old path: the global RNG seeded with seed + lo per input-order batch, as before
    old = []
    for lo in range(0, len(encs), 3):
        from models import pad_batch

        b = pad_batch(encs[lo:lo + 3], tiny_loaded.tokenizer.pad_token_id, "left")
        torch.manual_seed(3 + lo)
        with torch.no_grad():
            g = tiny_loaded.model.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                           pad_token_id=tiny_loaded.tokenizer.pad_token_id, **sampled)
        old += g[:, b["input_ids"].shape[1]:].tolist()
    new = generate_tokens(tiny_loaded, encs, sampled, batch_size=3, seed=3)
    assert all(o[:len(n)] == n for o, n in zip(old, new))
    with pytest.raises(ValueError, match="row_seeds"):
        generate_tokens(tiny_loaded, encs, sampled, token_budget=100, row_seeds=False)
    texts = generate(tiny_loaded, prompts, 8, temperature=0.0, batch_size=2, token_budget=90, with_truncated=True)
    assert [t for t, _ in texts] == generate(tiny_loaded, prompts, 8, temperature=0.0, batch_size=3)


def test_identity_scores_token_budget(tiny_loaded):
    items = check_items(variants=("{q}",))[:14]
    a = affirmation_scores(tiny_loaded, items, batch_size=4)
    b = affirmation_scores(tiny_loaded, items, batch_size=16, token_budget=200)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)  # measured: bitwise here


def test_self_distill_token_budget_independent_of_batches_and_resumable(tiny_loaded, tmp_path):
    rows = load_instructions(n=6)
    kw = {"seed": 1, "max_new_tokens": 4, "progress": False}
    ref = self_distill(tiny_loaded, rows, tmp_path / "a.jsonl", batch_size=1, token_budget=10_000, **kw)
    again = self_distill(tiny_loaded, rows, tmp_path / "b.jsonl", batch_size=4, token_budget=80, **kw)
    assert again == ref and [e["id"] for e in ref] == [f"instruction-{r['id']}" for r in rows]
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["id"] == rows[0]["id"]  # the finished file is in input order
    (tmp_path / "c.jsonl.partial").write_text("\n".join(lines[3:5]) + "\n" + lines[1][:9])  # two done + a torn line
    assert self_distill(tiny_loaded, rows, tmp_path / "c.jsonl", batch_size=2, token_budget=60, **kw) == ref
    legacy = self_distill(tiny_loaded, rows, tmp_path / "d.jsonl", batch_size=2, **kw)
    assert [e["id"] for e in legacy] == [e["id"] for e in ref]


def test_config_throughput_keys_validated_and_not_keyed():
    from pipeline.config import ConfigError, load_config
    from pipeline.stages import keyed

    cfg = load_config(overrides={"steering": {"token_budget": 4096, "items_per_pass": 8}, "probes": {"token_budget": 2048},
                                 "identity": {"token_budget": 1024}, "ablation": {"batch_size": 64}})
    base = load_config()
    for sec in ("steering", "probes", "ablation", "evals"):
        assert keyed(cfg, sec) == keyed(base, sec)
    for over, field in (({"steering": {"token_budget": -1}}, "steering.token_budget"),
                        ({"identity": {"batch_size": 0}}, "identity.batch_size"),
                        ({"tune": {"distill_token_budget": -5}}, "tune.distill_token_budget")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config(overrides=over)
    with pytest.raises(ConfigError, match="should be int"):
        load_config(overrides={"ablation": {"token_budget": 1.5}})
