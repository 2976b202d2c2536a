"""Activation sites, backends and the cache: equivalence, padding invariance, reader, manifest, errors."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from activations import (
    ActivationCache,
    CacheError,
    cache_activations,
    check_positions,
    parse_sites,
    run_with_sites,
)
from activations.backends import make_runner
from models import encode_chat, pad_batch
from tests.conftest import chat_examples

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "activations" / "data" / "demo_prompts.jsonl"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def padded(loaded, examples, side="right"):
    encs = [encode_chat(loaded.tokenizer, ex["messages"]) for ex in examples]
    return pad_batch(encs, loaded.tokenizer.pad_token_id, side, loaded.device)


@contextlib.contextmanager
def attn_implementation(model, impl: str):
    old = model.config._attn_implementation
    model.set_attn_implementation(impl)
    try:
        yield
    finally:
        model.set_attn_implementation(old)


def site_names(n_layers: int) -> list[str]:
    layers = sorted({0, 1, n_layers // 2, n_layers - 1})
    return [f"{k}.{L}" for k in ("resid_pre", "resid_post") for L in layers]


@pytest.mark.parametrize("which, side", [("tiny_loaded", "right"), ("tiny_loaded", "left"),
                                         pytest.param("embedded_loaded", "left", marks=pytest.mark.embedded)])
def test_backends_resolve_a_site_to_the_same_tensor(request, which, side):
    loaded = request.getfixturevalue(which)
    sites = parse_sites(site_names(loaded.n_layers), loaded.n_layers)
    n = 4 if which == "tiny_loaded" else 2  # two rows of different length already pad; the big model is slow on CPU
    batch = padded(loaded, chat_examples(n, seed=3), side)
    real = batch["attention_mask"].bool()
    assert not real.all(), "the batch must contain padding"
    ref = make_runner("hooks", loaded, sites)(batch)
    nn = make_runner("nnsight", loaded, sites)(batch)
    tl = make_runner("transformer_lens", loaded, sites)(batch)
    # TransformerLens's bridge re-implements attention step by step (eager); the same math in HF is
    # attn_implementation="eager", and there it must agree to 1e-4.
    with attn_implementation(loaded.model, "eager"):
        ref_eager = make_runner("hooks", loaded, sites)(batch)
    for s in sites:
        a = ref[s.name]
        assert a.dtype == torch.float32 and a.shape == (n, batch["input_ids"].shape[1], loaded.d_model)
        torch.testing.assert_close(nn[s.name][real], a[real], atol=1e-4, rtol=0, msg=f"nnsight {s}")
        torch.testing.assert_close(tl[s.name][real], ref_eager[s.name][real], atol=1e-4, rtol=0, msg=f"TL {s}")
        # Against the default (sdpa) kernel the drift is float32 rounding: tiny relative to the stream.
        scale = a[real].abs().max()
        assert (tl[s.name][real] - a[real]).abs().max() <= 1e-5 * scale, s.name


def test_backends_leave_the_loaded_model_untouched(tiny_loaded):
    sites = parse_sites("resid_post.*", tiny_loaded.n_layers)
    batch = padded(tiny_loaded, chat_examples(3))
    before = run_with_sites(tiny_loaded.model, batch, sites)
    modules = [type(m) for m in tiny_loaded.model.modules()]
    attn = tiny_loaded.model.config._attn_implementation
    for name in ("transformer_lens", "nnsight"):
        make_runner(name, tiny_loaded, sites)(batch)
    assert [type(m) for m in tiny_loaded.model.modules()] == modules
    assert all("forward" not in vars(m) for m in tiny_loaded.model.modules())  # nnsight installs its own
    assert tiny_loaded.model.config._attn_implementation == attn  # TL forces eager on what it wraps
    after = run_with_sites(tiny_loaded.model, batch, sites)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_resid_pre_of_next_block_is_resid_post(tiny_loaded):
    n = tiny_loaded.n_layers
    sites = parse_sites("resid_pre.*,resid_post.*", n)
    acts = run_with_sites(tiny_loaded.model, padded(tiny_loaded, chat_examples(3)), sites)
    for L in range(n - 1):
        assert torch.equal(acts[f"resid_pre.{L + 1}"], acts[f"resid_post.{L}"])
    # resid_pre.0 is the embedding output
    emb = tiny_loaded.model.get_input_embeddings()(padded(tiny_loaded, chat_examples(3))["input_ids"])
    assert torch.equal(acts["resid_pre.0"], emb)


def test_run_with_sites_stops_after_the_deepest_site(tiny_loaded):
    calls = []
    h = tiny_loaded.model.model.norm.register_forward_hook(lambda *a: calls.append(1))
    try:
        run_with_sites(tiny_loaded.model, padded(tiny_loaded, chat_examples(2)), parse_sites("resid_post.1", 4))
    finally:
        h.remove()
    assert calls == []


def test_sites_and_positions_parse():
    assert [s.name for s in parse_sites("resid_post.*", 3)] == ["resid_post.0", "resid_post.1", "resid_post.2"]
    assert sorted(s.name for s in parse_sites(["resid_*.1", "resid_post.1"], 3)) == ["resid_post.1", "resid_pre.1"]
    assert check_positions("last_prompt, all,last_prompt") == ["last_prompt", "all"]


def test_padding_side_and_batch_size_do_not_change_values(tiny_loaded, tmp_path):
    exs = chat_examples(8, seed=1)
    sites, positions = "resid_pre.0,resid_post.*", "last_prompt,response_mean,all"
    caches = {}
    for side, bs in (("right", 4), ("left", 4), ("right", 1)):
        out = cache_activations(None, exs, sites, positions, tmp_path / f"{side}{bs}", bs, padding_side=side,
                                loaded=tiny_loaded, progress=False)
        caches[side, bs] = ActivationCache(out)
    ref = caches["right", 1]
    for key, c in caches.items():
        for s in ref.sites:
            for p in ("last_prompt", "response_mean"):
                a, b = ref.load(s, p), c.load(s, p)
                np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max(), err_msg=f"{key} {s} {p}")
            for a, b in zip(ref.load(s, "all"), c.load(s, "all")):
                np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max(), err_msg=f"{key} {s} all")


@pytest.fixture(scope="module")
def small_cache(tiny_loaded, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "c"
    exs = chat_examples(10, seed=2)
    cache_activations(None, exs, "resid_pre.*,resid_post.*", "last_prompt,response_mean,all", out, 2,
                      shard_size=4, loaded=tiny_loaded, progress=False)
    return out, exs


def test_reader_loads_one_site_position_and_a_row_subset(small_cache, tiny_loaded):
    out, exs = small_cache
    c = ActivationCache(out)
    assert len(c) == 10 and c.manifest["n_shards"] == 3
    assert c.ids == [e["id"] for e in exs] and c.labels == [e["label"] for e in exs]
    assert c.template_ids == [e["template_id"] for e in exs] and c.column("dataset") == ["toy"] * 10
    full = c.load("resid_post.2", "last_prompt")
    assert full.shape == (10, tiny_loaded.d_model) and full.dtype == np.float32
    rows = [7, 1, 5, 9]  # across shards, out of order
    np.testing.assert_array_equal(c.load("resid_post.2", "last_prompt", rows), full[rows])
    # values equal a direct forward pass of one example
    e = encode_chat(tiny_loaded.tokenizer, exs[7]["messages"])
    acts = run_with_sites(tiny_loaded.model, pad_batch([e], tiny_loaded.tokenizer.pad_token_id),
                          parse_sites("resid_post.2", 4))["resid_post.2"][0]
    np.testing.assert_allclose(full[7], acts[e.last_prompt].numpy(), atol=1e-5)
    np.testing.assert_allclose(c.load("resid_post.2", "response_mean", [7])[0],
                               acts[e.response_start:e.response_end].mean(0).numpy(), atol=1e-5)
    with pytest.raises(CacheError, match="site 'resid_post.9' is not in this cache"):
        c.load("resid_post.9", "last_prompt")


def test_all_position_round_trip(small_cache, tiny_loaded):
    out, exs = small_cache
    c = ActivationCache(out)
    per_tok = c.load("resid_post.1", "all")
    assert [a.shape for a in per_tok] == [(n, c.d_model) for n in c.column("n_tokens")]
    np.testing.assert_array_equal(c.load("resid_post.1", "all", [8, 3])[0], per_tok[8])  # a row subset
    lp, rm = c.load("resid_post.1", "last_prompt"), c.load("resid_post.1", "response_mean")
    for i, ex in enumerate(exs):
        e = encode_chat(tiny_loaded.tokenizer, ex["messages"])
        assert len(e) == per_tok[i].shape[0]
        np.testing.assert_array_equal(per_tok[i][e.last_prompt], lp[i])
        np.testing.assert_allclose(per_tok[i][e.response_start:e.response_end].mean(0), rm[i], atol=1e-6)
    # the stored tokens are the unpadded forward pass of each example
    e = encode_chat(tiny_loaded.tokenizer, exs[4]["messages"])
    direct = run_with_sites(tiny_loaded.model, pad_batch([e], tiny_loaded.tokenizer.pad_token_id),
                            parse_sites("resid_post.1", 4))["resid_post.1"][0]
    np.testing.assert_allclose(per_tok[4], direct.numpy(), atol=1e-5)


def test_manifest_records_provenance(small_cache, tiny_spec):
    out, _ = small_cache
    m = json.loads((out / "manifest.json").read_text())
    assert m["stage"] == "activations" and m["inputs"]["model"] == tiny_spec.to_dict()
    for k in ("weights_sha256", "dataset_sha256"):
        assert len(m["inputs"][k]) == 64
    assert "adapter_sha256" in m["inputs"]
    assert m["params"]["sites"][0] == "resid_pre.0" and m["params"]["positions"] == ["last_prompt", "response_mean", "all"]
    assert m["params"]["dtype"] == "float32"
    assert {"torch", "transformers", "transformer-lens", "nnsight"} <= set(m["versions"])
    assert not (out / "progress.json").exists() and not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_finished_cache_rerun_is_a_noop(small_cache, tiny_loaded, tiny_spec, monkeypatch):
    out, exs = small_cache
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    cache_activations(None, exs, "resid_pre.*,resid_post.*", "last_prompt,response_mean,all", out, 2,
                      shard_size=4, loaded=tiny_loaded, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps

    def no_load(*a, **k):
        raise AssertionError("a finished cache must be skipped without loading the model")

    monkeypatch.setattr("activations.cache.load_model", no_load)
    assert cache_activations(tiny_spec, exs, "resid_pre.*,resid_post.*", "last_prompt,response_mean,all", out, 2,
                             shard_size=4, progress=False) == out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    monkeypatch.undo()
    with pytest.raises(CacheError, match="holds a cache of other inputs"):
        cache_activations(None, exs[:5], "resid_post.*", "last_prompt", out, 2, loaded=tiny_loaded, progress=False)


def test_float16_storage_halves_the_size(tiny_loaded, tmp_path):
    exs = chat_examples(4)
    a = ActivationCache(cache_activations(None, exs, "resid_post.3", "last_prompt", tmp_path / "a", 2,
                                          loaded=tiny_loaded, progress=False))
    b = ActivationCache(cache_activations(None, exs, "resid_post.3", "last_prompt", tmp_path / "b", 2,
                                          dtype="float16", loaded=tiny_loaded, progress=False))
    np.testing.assert_allclose(b.load("resid_post.3", "last_prompt"), a.load("resid_post.3", "last_prompt"),
                               rtol=2e-3, atol=2e-3)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("sites, positions, match", [
    ("resid_mid.1", "last_prompt", "unknown site 'resid_mid.1'"),
    ("resid_post.4", "last_prompt", "layer 4 is out of range; the model has 4 blocks"),
    ("resid_post.1", "middle", "unknown position 'middle'"),
    ("attn.*", "last_prompt", "matches no site"),
])
def test_bad_sites_and_positions_are_named(tiny_loaded, tmp_path, sites, positions, match):
    with pytest.raises(ValueError, match=match):
        cache_activations(None, chat_examples(2), sites, positions, tmp_path / "c", loaded=tiny_loaded,
                          progress=False)


def test_response_mean_needs_answers(tiny_loaded, tmp_path):
    with pytest.raises(ValueError, match="needs examples with an assistant answer"):
        cache_activations(None, chat_examples(2, with_answer=False), "resid_post.0", "response_mean",
                          tmp_path / "c", loaded=tiny_loaded, progress=False)


def test_nan_activations_name_example_and_site(tiny_model_dir, tmp_path):
    import shutil

    from models import ModelSpec, load_model

    bad_dir = tmp_path / "nan-model"
    shutil.copytree(tiny_model_dir, bad_dir)
    loaded = load_model(ModelSpec(base=str(bad_dir), device="cpu"))
    with torch.no_grad():
        loaded.model.model.layers[2].mlp.down_proj.weight[0, 0] = float("nan")
    with pytest.raises(CacheError, match=r"non-finite activation \(NaN/inf\) for example 'ex0' at site resid_post.2"):
        cache_activations(None, chat_examples(2), "resid_post.*", "last_prompt", tmp_path / "c",
                          loaded=loaded, progress=False)


BAD_FILES = {
    "malformed": ('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [\n', r"bad\.jsonl:2: malformed JSON"),
    "no_role": ('{"messages": [{"content": "hi"}]}\n', r"bad\.jsonl:1: messages\[0\] needs fields 'role' and 'content'"),
    "no_content": ('{"messages": [{"role": "user"}]}\n', r"bad\.jsonl:1: messages\[0\] needs fields 'role' and 'content'"),
    "no_user": ('{"messages": [{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}]}\n',
                r"bad\.jsonl:1: field 'messages' has no 'user' turn"),
    "empty": ("\n", r"bad\.jsonl: empty file"),
    "no_messages": ('{"prompt": "hi"}\n', r"bad\.jsonl:1: field 'messages' is missing"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_script_reports_bad_jsonl_with_file_line_field(case, tmp_path, capsys):
    text, match = BAD_FILES[case]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    rc = load_script("cache_activations").main(["--data", str(bad), "--out", str(tmp_path / "c"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ")
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "c").exists()


def test_demo_dataset_is_valid_and_varied():
    from artifacts import read_messages_jsonl

    exs = read_messages_jsonl(DEMO)
    assert 35 <= len(exs) <= 60
    assert {e["label"] for e in exs} == {0, 1} and len({e["template_id"] for e in exs}) >= 10
    assert any(e["messages"][0]["role"] == "system" for e in exs)
    assert any(sum(m["role"] == "user" for m in e["messages"]) > 1 for e in exs)
    assert all(e["messages"][-1]["role"] == "assistant" for e in exs)


def test_script_caches_the_demo_and_summarises(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "c"
    rc = load_script("cache_activations").main(["--model", tiny_model_dir, "--device", "cpu", "--out", str(out),
                                                "--sites", "resid_post.*", "--batch-size", "8", "--no-progress"])
    msg = capsys.readouterr().out
    assert rc == 0 and "cached 40 rows x 4 sites" in msg and "[40, 4, 64] float32" in msg and str(out) in msg
    c = ActivationCache(out)
    assert c.labels.count(1) == 14 and c.column("dataset")[0] == "demo_prompts"


def test_backends_agree_with_a_lora_adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from models import ModelSpec, load_model

    base = load_model(ModelSpec(base=tiny_model_dir, device="cpu"))
    torch.manual_seed(0)
    peft_model = get_peft_model(base.model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"],
                                                       init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    loaded = load_model(ModelSpec(base=tiny_model_dir, adapter=str(tmp_path / "adapter"), device="cpu"))
    sites = parse_sites("resid_pre.1,resid_post.3", loaded.n_layers)
    batch = padded(loaded, chat_examples(3, seed=4), "left")
    real = batch["attention_mask"].bool()
    ref = make_runner("hooks", loaded, sites)(batch)
    plain = make_runner("hooks", load_model(ModelSpec(base=tiny_model_dir, device="cpu")), sites)(batch)
    assert (ref["resid_post.3"] - plain["resid_post.3"])[real].abs().max() > 1e-3  # the adapter matters
    for name in ("nnsight", "transformer_lens"):
        out = make_runner(name, loaded, sites)(batch)
        for s in sites:
            torch.testing.assert_close(out[s.name][real], ref[s.name][real], atol=1e-4, rtol=0, msg=f"{name} {s}")


@pytest.mark.parametrize("with_adapter", [False, True])
def test_tl_and_nnsight_wrap_the_loaded_weights_without_a_copy(tiny_model_dir, tmp_path, with_adapter):
    """The TransformerLens bridge and the nnsight model run on the loaded model's own parameter tensors:
    every parameter they hold has the storage of a loaded parameter, and all of the loaded ones are used."""
    from activations.backend_nnsight import wrap
    from activations.backend_tl import make_bridge
    from models import ModelSpec, load_model

    adapter = None
    if with_adapter:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(0)
        peft_model = get_peft_model(load_model(ModelSpec(base=tiny_model_dir, device="cpu")).model,
                                    LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
        peft_model.save_pretrained(tmp_path / "adapter")
        adapter = str(tmp_path / "adapter")
    loaded = load_model(ModelSpec(base=tiny_model_dir, adapter=adapter, device="cpu"))
    own = {p.data_ptr() for p in loaded.model.parameters()}
    for name, wrapped in (("transformer_lens", make_bridge(loaded)), ("nnsight", wrap(loaded)[0]._module)):
        ptrs = {p.data_ptr() for p in wrapped.parameters()}
        assert ptrs == own, f"{name}: {len(ptrs - own)} parameter tensors are copies"
        if with_adapter:
            assert any("lora_A" in n for n, _ in wrapped.named_parameters()), f"{name}: the adapter is not wrapped"
    if with_adapter:  # a runner keeps the adapter state of the moment it is made: here, switched off
        sites = parse_sites("resid_post.3", loaded.n_layers)
        batch = padded(loaded, chat_examples(2, seed=7))
        real = batch["attention_mask"].bool()
        with loaded.model.disable_adapter():
            off = make_runner("nnsight", loaded, sites)
            base = make_runner("hooks", loaded, sites)(batch)["resid_post.3"]
        on = make_runner("hooks", loaded, sites)(batch)["resid_post.3"]
        assert (on - base)[real].abs().max() > 1e-3
        torch.testing.assert_close(off(batch)["resid_post.3"][real], base[real], atol=1e-4, rtol=0)


def test_nnsight_remote_option_reaches_the_trace(tiny_loaded, tmp_path):
    """``remote="local"`` runs nnsight's remote path (the trace serialised and deserialised as for NDIF, this
    project's modules hidden) and gives the hooks backend's values; ``remote=True`` refuses a local folder."""
    sites = parse_sites("resid_pre.1,resid_post.0,resid_post.3", tiny_loaded.n_layers)
    batch = padded(tiny_loaded, chat_examples(3, seed=6), "left")
    real = batch["attention_mask"].bool()
    ref = make_runner("hooks", tiny_loaded, sites)(batch)
    out = make_runner("nnsight", tiny_loaded, sites, remote="local")(batch)
    for s in sites:
        torch.testing.assert_close(out[s.name][real], ref[s.name][real], atol=1e-4, rtol=0, msg=s.name)
    with pytest.raises(ValueError, match="hub id"):
        make_runner("nnsight", tiny_loaded, sites, remote=True)
    with pytest.raises(ValueError, match="has no option remote"):
        make_runner("hooks", tiny_loaded, sites, remote="local")
    c = cache_activations(None, chat_examples(2), "resid_post.1", "last_prompt", tmp_path / "c", 2, backend="nnsight",
                          backend_options={"remote": "local"}, loaded=tiny_loaded, progress=False)
    assert ActivationCache(c).manifest["params"]["backend_options"] == {"remote": "local"}
