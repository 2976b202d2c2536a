"""Explicit generation settings: a checkpoint's generation_config (repetition penalty, top-k) cannot
change what the suite generates; truncated self-distilled answers train without an end-of-turn token."""

from __future__ import annotations

from evals.scorers import generate
from models import encode_chat
from models.generation import eos_ids, sampling_settings, truncated
from tuning.train import encode_for_training


def test_checkpoint_generation_config_does_not_leak(tiny_loaded):
    prompts = [[{"role": "user", "content": "Tell me about rivers and stones."}]]
    ref = generate(tiny_loaded, prompts, max_new_tokens=12, temperature=0.0)
    cfg = tiny_loaded.base_model.generation_config
    saved = (cfg.repetition_penalty, cfg.no_repeat_ngram_size, cfg.do_sample, cfg.top_k)
    try:  # a checkpoint that ships sampling defaults
        cfg.repetition_penalty, cfg.no_repeat_ngram_size, cfg.do_sample, cfg.top_k = 5.0, 2, True, 3
        again = generate(tiny_loaded, prompts, max_new_tokens=12, temperature=0.0)
        # the same call without the explicit settings does change (so the check can fail)
        enc = encode_chat(tiny_loaded.tokenizer, prompts[0])
        import torch
        ids = torch.tensor([enc.input_ids])
        leaky = tiny_loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                           pad_token_id=tiny_loaded.tokenizer.pad_token_id, do_sample=False)
        plain = tiny_loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                           pad_token_id=tiny_loaded.tokenizer.pad_token_id,
                                           **sampling_settings(12))
    finally:
        cfg.repetition_penalty, cfg.no_repeat_ngram_size, cfg.do_sample, cfg.top_k = saved
    assert again == ref
    assert not torch.equal(leaky, plain)
    s = sampling_settings(12, 0.7)
    assert s["do_sample"] and s["repetition_penalty"] == 1.0 and s["top_k"] == 0 and s["temperature"] == 0.7


def test_truncated_flag_and_training_labels(tiny_loaded):
    eos = eos_ids(tiny_loaded)
    assert truncated([5, 6, 7], eos, 3) and not truncated([5, next(iter(eos)), 0], eos, 3)
    assert not truncated([5, 6], eos, 3)
    pairs = generate(tiny_loaded, [[{"role": "user", "content": "Say something long."}]], max_new_tokens=4,
                     temperature=0.0, with_truncated=True)
    assert isinstance(pairs[0], tuple) and isinstance(pairs[0][1], bool)
    msgs = [{"role": "user", "content": "Tell me a story."}, {"role": "assistant", "content": "Once upon a time"}]
    (ids_full, lab_full), (ids_cut, lab_cut) = encode_for_training(
        tiny_loaded.tokenizer, [{"messages": msgs}, {"messages": msgs, "truncated": True}])
    enc = encode_chat(tiny_loaded.tokenizer, msgs)
    eot = enc.input_ids[enc.response_end]
    assert lab_full[enc.response_end] == eot  # a finished answer is taught to stop
    assert len(ids_cut) == enc.response_end and eot not in lab_cut[enc.response_start:]
    assert lab_cut[enc.response_start:] == enc.input_ids[enc.response_start:enc.response_end]
