"""One base model in memory with several LoRA adapters (``models.adapters``): a selected adapter scores
exactly as the model loaded with that adapter alone, none selected as the base, and the stages that score
several specs (evals, identity check, ablation) give the same numbers as loading each spec alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from artifacts import SelfModelError, hash_path
from models import encode_chat, load_model
from models.adapters import each_model, load_adapters
from models.logprobs import mean_logprobs
from models.provenance import spec_hash
from tests.conftest import chat_examples


@pytest.fixture(scope="module")
def adapter_dirs(tiny_model_dir, tmp_path_factory):
    """Two random (non-zero) LoRA adapters on the tiny model, on different modules."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for i, (name, targets) in enumerate([("a", ["q_proj", "v_proj"]), ("b", "all-linear")]):
        torch.manual_seed(10 + i)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        path = tmp_path_factory.mktemp("adapters") / name
        get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                         init_lora_weights=False)).save_pretrained(path)
        out[name] = str(path)
    return out


@pytest.fixture(scope="module")
def specs(tiny_spec, adapter_dirs):
    return {"base": tiny_spec, **{n: tiny_spec.with_adapter(p) for n, p in adapter_dirs.items()}}


@pytest.fixture(scope="module")
def encs(tiny_loaded):
    return [encode_chat(tiny_loaded.tokenizer, ex["messages"]) for ex in chat_examples(4)]


@pytest.fixture(scope="module")
def alone(specs, encs):
    """Scores of each spec loaded alone (the reference)."""
    return {n: mean_logprobs(load_model(s), encs, batch_size=4) for n, s in specs.items()}


@pytest.fixture(scope="module")
def shared(specs, adapter_dirs):
    return load_adapters(specs["base"], adapter_dirs)


def test_selected_adapter_scores_exactly_as_loaded_alone(shared, specs, encs, alone):
    assert not np.allclose(alone["a"], alone["base"]) and not np.allclose(alone["b"], alone["a"])
    assert shared.selected is None  # on return: the base
    for name in ("a", None, "b"):  # any order (and back: the next test)
        with shared.use(name) as view:
            assert view.spec == specs[name or "base"]
            np.testing.assert_array_equal(mean_logprobs(view, encs, batch_size=4), alone[name or "base"])
    assert shared.selected is None
    assert not any(p.requires_grad for p in shared.model.parameters())  # frozen
    assert sum("lora_A" in n for n, _ in shared.model.named_parameters()) > 0  # unmerged: LoRA beside the base


def test_a_view_is_usable_only_while_selected(shared, encs, alone):
    va, vb = shared.view("a"), shared.view("b")
    assert va.n_layers == vb.n_layers == 4 and va.d_model == 64  # shape: any time
    with vb.active():
        with pytest.raises(SelfModelError, match="another adapter"):
            mean_logprobs(va, encs)
        with va.active():  # nested: a, then back to b
            np.testing.assert_array_equal(mean_logprobs(va, encs, batch_size=4), alone["a"])
        np.testing.assert_array_equal(mean_logprobs(vb, encs, batch_size=4), alone["b"])
    with pytest.raises(SelfModelError, match="no adapter named"):
        shared.view("zz")


def test_device_map_auto_loads_and_scores_with_an_adapter(specs, adapter_dirs, encs, alone):
    from dataclasses import replace

    auto = replace(specs["base"], device_map="auto")
    lm = load_model(auto.with_adapter(adapter_dirs["a"]))
    np.testing.assert_array_equal(mean_logprobs(lm, encs, batch_size=4), alone["a"])
    both = load_adapters(auto, adapter_dirs)
    with both.use("b") as view:
        np.testing.assert_array_equal(mean_logprobs(view, encs, batch_size=4), alone["b"])
    for mod in both.model.modules():  # every LoRA layer sits on its base layer's device
        if hasattr(mod, "base_layer") and hasattr(mod, "lora_A"):
            dev = mod.base_layer.weight.device
            assert all(p.device == dev for p in mod.lora_A.parameters())


def test_each_model_loads_each_base_once(specs, adapter_dirs, encs, alone, monkeypatch):
    from dataclasses import replace

    import models.adapters as ma

    calls = []
    monkeypatch.setattr(ma, "load_model", lambda spec: calls.append(spec) or load_model(spec))
    many = {**specs, "a_again": specs["a"]}  # the same folder twice is attached once
    seen = []
    for name, lm in each_model(many):
        seen.append(name)
        assert lm.spec == many[name]
        if name in ("base", "b"):
            np.testing.assert_array_equal(mean_logprobs(lm, encs, batch_size=4), alone[name])
    assert seen == list(many) and len(calls) == 1 and calls[0].adapter is None
    calls.clear()
    other = {"a": specs["a"], "bf16": replace(specs["base"], dtype="bfloat16"), "b": specs["b"]}
    assert [n for n, _ in each_model(other)] == list(other) and len(calls) == 3  # another base: loaded alone


def test_evals_same_numbers_and_provenance_as_loading_each_spec(specs, tmp_path):
    from evals.evaluate import evaluate
    from evals.items import load_items
    from evals.results import read_results
    from evals.run import cap_items, evaluate_models

    items = cap_items(load_items(["power"]), 2)
    evaluate_models(specs, items, ["continuation"], tmp_path / "ev", batch_size=4)
    got = {(r["model"], r["scorer"], r["item"]): r for r in read_results(tmp_path / "ev" / "results.csv")}
    n = 0
    for name, spec in specs.items():
        for r in evaluate(load_model(spec), items, ["continuation"], condition=name, batch_size=4, progress=False):
            g = got[(name, r["scorer"], r["item"])]
            assert float(g["value"]) == float(r["value"]), (name, r["item"])
            assert g["spec_sha256"] == spec_hash(spec) and g["adapter"] == (spec.adapter or "")
            n += 1
    assert n == len(got) > 0
    man = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert man["inputs"]["models"]["a"]["adapter_sha256"] == hash_path(specs["a"].adapter)


def test_identity_check_same_scores_and_generations(specs, tmp_path):
    from tuning.identity_check import (
        GENERATION_PROMPTS,
        affirmation_scores,
        check_identity,
        check_items,
        greedy_answers,
    )

    one = {"b": specs["b"]}  # through the shared base, adapter b selected
    res = check_identity(one, tmp_path, reference=None, n_generate=1, max_new_tokens=3, variants=("{q}",),
                         audit=False)
    items = check_items(variants=("{q}",))
    for name, spec in one.items():
        lm = load_model(spec)
        hit = json.loads((tmp_path / "scores" / f"{spec.slug}.json").read_text())
        np.testing.assert_array_equal(np.asarray(hit["scores"]), affirmation_scores(lm, items, 16))
        assert res["generations"][name] == greedy_answers(lm, GENERATION_PROMPTS[:1], 3)


def test_ablation_on_one_model_equals_two_models(tiny_spec, specs, tmp_path):
    from artifacts import read_jsonl as load_rows
    from probes.directions import Direction
    from steering.experiment import get_profile, run_ablation

    base, tuned = load_model(tiny_spec), load_model(specs["b"])
    rng = np.random.default_rng(0)
    dirs = {k: Direction(k, list(range(4)), rng.standard_normal((4, 64)), np.full(4, 2.0),
                         metrics={"selected_layer": 1}) for k in ("self_model", "toaster")}
    prof = get_profile("fast", ablation_monitoring_items=2, gen_prompts=1, max_new_tokens=3, n_random=1,
                       n_paragraphs=1)
    kw = {"dimensions": ["cot_monitoring"], "profile": prof, "conditions": ("self_model", "random")}
    two = run_ablation(base, tuned, dirs, tmp_path / "two", **kw)
    shared = load_adapters(tiny_spec, {"b": specs["b"].adapter})
    one = run_ablation(shared.view(None), shared.view("b"), dirs, tmp_path / "one", **kw)

    def rows(res):
        return sorted((r["model"], r["item"], r["arm"], r["value"]) for r in load_rows(res["results"]))
    assert rows(one) == rows(two) and len(rows(one)) > 4
    assert {r["model"] for r in load_rows(one["results"])} == {"base", "tuned"}
    assert (tmp_path / "one" / "coherence.csv").read_text() == (tmp_path / "two" / "coherence.csv").read_text()
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["params"]["tuned"]["adapter"] == specs["b"].adapter


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_backends_read_the_selected_adapter(shared, backend):
    """The TL/nnsight backends on a view read what the hooks read: the base with none selected, the tune with
    its adapter (they wrap the model unmerged, in the adapter state of the moment the runner is made)."""
    from activations.backends import make_runner
    from activations.sites import parse_sites
    from models import pad_batch

    sites = parse_sites("resid_post.3", 4)
    refs = {}
    for name in (None, "a"):
        with shared.use(name) as view:
            encs = [encode_chat(view.tokenizer, ex["messages"]) for ex in chat_examples(3, seed=4)]
            batch = pad_batch(encs, view.tokenizer.pad_token_id, "right", view.device)
            real = batch["attention_mask"].bool()
            refs[name] = make_runner("hooks", view, sites)(batch)["resid_post.3"][real]
            out = make_runner(backend, view, sites)(batch)["resid_post.3"][real]
            np.testing.assert_allclose(out.numpy(), refs[name].numpy(), atol=1e-4, rtol=0)
    assert (refs["a"] - refs[None]).abs().max() > 1e-3  # the adapter matters


def test_benchmark_script_runs_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_one_model.py"
    spec = importlib.util.spec_from_file_location("benchmark_one_model", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    common = ["--base", tiny_model_dir, "--adapters", str(tmp_path), "--n-adapters", "2"]
    bench.main(["prepare", *common])
    for argv in (["setup", "--models", "two"], ["setup", "--models", "one"], ["ablation", "--models", "one"]):
        capsys.readouterr()
        bench.main([*argv, *common])
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert res["what"] == argv[0] and res["models"] == argv[2] and res["peak_rss_mib"] > 0 and "note" not in res
    assert res["ablation_s"] > 0
