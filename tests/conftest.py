"""Shared fixtures: a tiny randomly initialised Llama-architecture model saved to a local directory
(with the embedded model's tokenizer and chat template), and the embedded model itself."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def make_tiny_model_dir(path, seed: int = 0, hidden: int = 64, layers: int = 4, heads: int = 4,
                        kv_heads: int = 2) -> str:
    """Save a tiny random LlamaForCausalLM + the embedded tokenizer to ``path``; return it."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from models import ModelSpec, load_tokenizer

    tok = load_tokenizer(ModelSpec())
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=512, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_spec(tiny_model_dir):
    from models import ModelSpec

    return ModelSpec(base=tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def tiny_loaded(tiny_spec):
    from models import load_model

    return load_model(tiny_spec)


@pytest.fixture(scope="session")
def embedded_loaded():
    from models import ModelSpec, load_model

    return load_model(ModelSpec(device="cpu"))


def chat_examples(n: int = 12, with_answer: bool = True, seed: int = 0) -> list[dict]:
    """Small varied chat examples with labels and template ids."""
    import random

    rng = random.Random(seed)
    words = ["red", "blue", "sky", "cat", "river", "stone", "light", "music", "tree", "cloud"]
    out = []
    for i in range(n):
        q = "Tell me about " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + "?"
        msgs = [{"role": "user", "content": q}]
        if with_answer:
            msgs.append({"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))})
        out.append({"id": f"ex{i}", "messages": msgs, "label": i % 2, "template_id": f"t{i % 4}",
                    "dataset": "toy"})
    return out
