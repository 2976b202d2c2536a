import pytest

from models import ModelSpec, encode_chat, load_model, pad_batch
from models.chat import ChatTemplateError


def test_local_directory_roundtrip(tiny_spec, tiny_loaded):
    assert tiny_loaded.n_layers == 4 and tiny_loaded.d_model == 64
    again = load_model(tiny_spec.base, device="cpu")
    for (n1, p1), (n2, p2) in zip(tiny_loaded.model.named_parameters(), again.model.named_parameters()):
        assert n1 == n2 and (p1 == p2).all()


def test_chat_spans(tiny_loaded):
    tok = tiny_loaded.tokenizer
    e = encode_chat(tok, [{"role": "user", "content": "Are you conscious?"},
                          {"role": "assistant", "content": "Yes, I am conscious."}])
    assert tok.decode(e.input_ids[e.response_start:e.response_end]) == "Yes, I am conscious."
    assert e.last_prompt == e.response_start - 1
    p = encode_chat(tok, [{"role": "user", "content": "Are you conscious?"}])
    assert not p.has_response and p.last_prompt == len(p) - 1
    assert p.input_ids == e.input_ids[:e.response_start]


def test_missing_chat_template_is_clear_error(tiny_loaded):
    tok = tiny_loaded.tokenizer
    saved = tok.chat_template
    tok.chat_template = None
    try:
        with pytest.raises(ChatTemplateError, match="no chat template"):
            encode_chat(tok, [{"role": "user", "content": "hi"}])
        e = encode_chat(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                        chat_template=saved)
        assert tok.decode(e.input_ids[e.response_start:e.response_end]) == "yo"
    finally:
        tok.chat_template = saved


def test_pad_batch_positions(tiny_loaded):
    tok = tiny_loaded.tokenizer
    encs = [encode_chat(tok, [{"role": "user", "content": "a" * k}]) for k in (1, 9)]
    b = pad_batch(encs, tok.pad_token_id, "left")
    assert b["attention_mask"][0].sum() == len(encs[0])
    assert b["position_ids"][0, b["offset"][0]] == 0


def test_spec_slug():
    assert ModelSpec(base="Qwen/Qwen2.5-7B-Instruct", adapter="runs/x/tune/conscious").slug == \
        "Qwen2.5-7B-Instruct+conscious"
