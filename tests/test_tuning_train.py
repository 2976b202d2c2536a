"""LoRA tuning on the tiny random model: answer-only labels, determinism, skip, manifest, bad input."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from artifacts import InputError, read_manifest
from models import ModelSpec, load_model
from tests.conftest import chat_examples, make_tiny_model_dir
from tuning.datasets import build_identity_dataset
from tuning.train import encode_for_training, tune


def _tensors(d):
    return load_file(str(d / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def tuned(tiny_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    exs = build_identity_dataset("conscious", n=16)
    a = tune(tiny_spec, exs, out / "a", rank=4, alpha=8, lr=1e-2, batch_size=4, max_steps=3, progress=False)
    b = tune(tiny_spec, exs, out / "b", rank=4, alpha=8, lr=1e-2, batch_size=4, max_steps=3, progress=False)
    c = tune(tiny_spec, exs, out / "c", rank=4, alpha=8, lr=1e-2, batch_size=4, max_steps=3, seed=1, progress=False)
    return exs, a, b, c


def test_labels_only_on_answer_tokens(tiny_loaded):
    tok = tiny_loaded.tokenizer
    exs = build_identity_dataset("toaster", n=6)
    for ex, (ids, labels) in zip(exs, encode_for_training(tok, exs)):
        assert len(ids) == len(labels)
        kept = [t for t, lab in zip(ids, labels) if lab != -100]
        assert all(lab in (-100, t) for t, lab in zip(ids, labels))
        assert tok.decode(kept) == ex["messages"][1]["content"] + "<|im_end|>"
        first = next(i for i, lab in enumerate(labels) if lab != -100)
        assert all(lab != -100 for lab in labels[first:first + len(kept)])  # one contiguous span


def test_same_seed_same_adapter(tuned):
    _, a, b, c = tuned
    ta, tb, tc = _tensors(a), _tensors(b), _tensors(c)
    assert ta.keys() == tb.keys() and len(ta) > 0
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(not torch.equal(ta[k], tc[k]) for k in ta)


def test_outputs_manifest_and_loading(tuned, tiny_spec, tiny_loaded):
    exs, a, _, _ = tuned
    for f in ("adapter_config.json", "adapter_model.safetensors", "train_log.jsonl", "loss.png", "manifest.json"):
        assert (a / f).exists(), f
    m = read_manifest(a)
    assert m["params"]["base"] == tiny_spec.base and m["params"]["d_model"] == tiny_loaded.d_model
    assert m["outputs"]["steps"] == 3 and m["inputs"]["n_examples"] == 16
    assert len((a / "train_log.jsonl").read_text().splitlines()) == 3
    assert not list(a.parent.glob(".*tmp"))
    loaded = load_model(tiny_spec.with_adapter(str(a)))
    x = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(loaded.model(x).logits, tiny_loaded.model(x).logits)


def test_finished_adapter_is_skipped(tuned, tiny_spec):
    exs, a, _, _ = tuned
    before = (a / "adapter_model.safetensors").stat().st_mtime_ns
    again = tune(tiny_spec, exs, a, rank=4, alpha=8, lr=1e-2, batch_size=4, max_steps=3, progress=False)
    assert again == a and (a / "adapter_model.safetensors").stat().st_mtime_ns == before


def test_adapter_on_other_base_is_refused(tuned, tmp_path):
    _, a, _, _ = tuned
    wider = make_tiny_model_dir(tmp_path / "wide", hidden=96, layers=2)
    with pytest.raises(ValueError, match="adapter was trained on a model of width 64"):
        load_model(ModelSpec(base=wider, adapter=str(a), device="cpu"))
    shallower = make_tiny_model_dir(tmp_path / "shallow", hidden=64, layers=2)
    with pytest.raises(ValueError, match="4 layers"):
        load_model(ModelSpec(base=shallower, adapter=str(a), device="cpu"))


def test_bad_input(tiny_spec, tmp_path):
    with pytest.raises(InputError, match="dataset is empty"):
        tune(tiny_spec, [], tmp_path / "x", progress=False)
    no_answer = chat_examples(3, with_answer=False)
    with pytest.raises(InputError, match="example 0 .*no assistant turn"):
        tune(tiny_spec, no_answer, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="already has adapter"):
        tune(tiny_spec.with_adapter("somewhere"), chat_examples(3), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_profiles():
    from tuning.profiles import PROFILES, profile

    assert profile("paper")["n"] == 600 and profile("paper")["n_instructions"] == 600
    assert profile("paper")["rank"] == 16 and profile("paper")["epochs"] == 1
    assert profile("fast", lr=0.5, rank=None)["lr"] == 0.5 and profile("fast")["rank"] == PROFILES["fast"]["rank"]
    with pytest.raises(ValueError, match="unknown profile"):
        profile("slow")



def test_steering_scoring_profiles_use_the_same_preset_mechanism():
    """The steering experiments' scoring profile is a dataclass preset looked up like the tuning profile
    (``artifacts.presets.preset``): None overrides keep the preset, unknown names name the setting."""
    from steering.experiment import SCORING_PROFILES, ScoringProfile, get_profile

    fast = get_profile("fast", n_random=None, batch_size=7)
    assert isinstance(fast, ScoringProfile) and fast.n_random == SCORING_PROFILES["fast"].n_random == 5
    assert fast.batch_size == 7 and SCORING_PROFILES["fast"].batch_size == 32  # the preset is not mutated
    assert get_profile(fast, gen_prompts=1).gen_prompts == 1 and get_profile("full").monitoring_items is None
    with pytest.raises(ValueError, match=r"unknown profile 'slow' for steering scoring \(\[steering\] profile\)"):
        get_profile("slow")


def test_script_bad_data(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    script = Path(__file__).resolve().parents[1] / "scripts" / "tune_identity.py"
    r = subprocess.run([sys.executable, str(script), "--data", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "bad.jsonl:1" in r.stderr and "assistant" in r.stderr
