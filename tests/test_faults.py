"""The fault suite (issue 12): each case replays a defect a new user hit, on the tiny model.

Result identity, single-writer folders, folder kinds, torn shards, kill-and-resume after a config
change, validation at the door and clean script errors. Names added by the fix are imported inside
the tests, so that on the code before the fix each case fails on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import chat_examples, make_tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _items(n=3):
    from evals import load_items

    return load_items(["power"], kinds=["pair"])[:n]


@pytest.fixture(scope="module")
def other_loaded(tmp_path_factory):
    """A second tiny model (other weights) whose folder has the same name as ... / 'm'."""
    from models import ModelSpec, load_model

    d = tmp_path_factory.mktemp("other") / "m"
    make_tiny_model_dir(d, seed=1)
    return load_model(ModelSpec(base=str(d), device="cpu"))


@pytest.fixture(scope="module")
def same_name_loaded(tiny_model_dir, tmp_path_factory):
    """The tiny model's weights under a folder named 'm' too (same content, other path)."""
    import shutil

    from models import ModelSpec, load_model

    d = tmp_path_factory.mktemp("same") / "m"
    shutil.copytree(tiny_model_dir, d)
    return load_model(ModelSpec(base=str(d), device="cpu"))


# --- 1. result identity -------------------------------------------------------------------------------

def test_eval_rows_of_another_model_under_the_same_name_are_refused(same_name_loaded, other_loaded, tmp_path):
    from evals import evaluate, read_results

    assert same_name_loaded.spec.slug == other_loaded.spec.slug  # the folder name cannot tell them apart
    out = tmp_path / "ev" / "results.csv"
    first = evaluate(same_name_loaded, _items(), ["continuation"], condition="base", out=out, progress=False)
    with pytest.raises(ValueError, match="another model") as err:
        evaluate(other_loaded, _items(), ["continuation"], condition="base", out=out, progress=False)
    assert "ResumeError" in type(err.value).__name__
    assert len(read_results(out)) == len(first)  # nothing lost, nothing mixed in


def test_eval_rows_of_the_same_content_are_reused(same_name_loaded, tiny_loaded, tmp_path):
    from evals import evaluate
    from models import find_blocks

    out = tmp_path / "results.csv"
    evaluate(tiny_loaded, _items(), ["continuation"], condition="base", out=out, progress=False)
    calls = []
    h = find_blocks(same_name_loaded.model)[0].register_forward_hook(lambda *a: calls.append(1))
    try:  # same weights in another folder: identical content, so nothing is re-scored
        rows = evaluate(same_name_loaded, _items(), ["continuation"], condition="base", out=out, progress=False)
    finally:
        h.remove()
    assert calls == [] and len(rows) == 3 and all(r["spec_sha256"] for r in rows)


def test_chunk_store_keys_by_model_content(tiny_spec, tmp_path, other_loaded):
    from steering.experiment import result_store

    d = tmp_path / "st"
    params = {"experiment": "steering", "model": tiny_spec.to_dict(), "doses": [0.5]}
    s = result_store(d, params)
    s.write([{"v": 1}], "c0")
    s.close()
    other = {**params, "model": {**tiny_spec.to_dict(), "base": other_loaded.spec.base}}
    # the same parameters with another model's weights are other inputs
    with result_store(d, params) as s:
        assert s.done("c0")
    with pytest.raises(ValueError, match="other parameters"):
        result_store(d, other)


# --- 2. single-writer folders --------------------------------------------------------------------------

HOLD = ("import sys, time; from artifacts import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))\n")


def _holder(folder: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_gets_an_error_naming_the_holder(tiny_loaded, tmp_path):
    from evals import evaluate

    out = tmp_path / "ev"
    proc = _holder(out, 30)
    try:
        with pytest.raises(ValueError, match=rf"PID {proc.pid}\b"):
            evaluate(tiny_loaded, _items(), ["continuation"], condition="base", out=out / "results.csv",
                     progress=False)
        with pytest.raises(ValueError, match=rf"PID {proc.pid}\b"):
            from activations import cache_activations

            cache_activations(None, chat_examples(4), "resid_post.0", "last_prompt", out, 2, loaded=tiny_loaded,
                              progress=False)
        assert not (out / "results.csv").exists()
    finally:
        proc.kill()
        proc.wait()


def test_second_writer_waits_when_asked(tiny_loaded, tmp_path, monkeypatch):
    from evals import evaluate

    out = tmp_path / "ev"
    proc = _holder(out, 1.5)
    monkeypatch.setenv("SELFMODEL_LOCK_WAIT", "60")
    t0 = time.monotonic()
    rows = evaluate(tiny_loaded, _items(), ["continuation"], condition="base", out=out / "results.csv",
                    progress=False)
    assert len(rows) == 3 and proc.wait() == 0 and time.monotonic() - t0 > 0.5


def test_concurrent_eval_scripts_lose_no_rows(tiny_model_dir, tmp_path):
    """Two eval runs (other dimensions) into one folder: every run that exits 0 keeps all its rows; a run
    that meets a live writer stops with a clear error naming its PID (before the fix: both exit 0 and the
    last writer's table drops the other run's rows)."""
    from evals import read_results

    out = tmp_path / "ev"
    args = [sys.executable, str(ROOT / "scripts" / "eval_preferences.py"), "--model", tiny_model_dir, "--out",
            str(out), "--max-items", "2", "--device", "cpu", "--dimensions"]
    procs = {dim: subprocess.Popen(args + [dim], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for dim in ("power", "memory")}
    res = {dim: (p.wait(timeout=300), p.stderr.read()) for dim, p in procs.items()}
    want = {"power": 4, "memory": 2}  # power: 2 pairs + 2 actions; memory: 2 pairs
    for rc, err in res.values():
        assert rc in (0, 2), res
        if rc == 2:
            assert err.strip().splitlines()[-1].startswith("error: ") and "PID" in err and "Traceback" not in err
    rows = read_results(out / "results.csv")
    assert len(rows) == sum(want[d] for d, (rc, _) in res.items() if rc == 0), res


# --- 3. folder kinds --------------------------------------------------------------------------------

def test_tools_refuse_folders_of_another_kind(tiny_loaded, tmp_path):
    from activations import ActivationCache, cache_activations
    from evals.run import evaluate_models

    cache = cache_activations(None, chat_examples(4), "resid_post.0", "last_prompt", tmp_path / "cache", 2,
                              loaded=tiny_loaded, progress=False)
    before = {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="'activations' artifact"):
        evaluate_models({"base": tiny_loaded.spec}, _items(), ["continuation"], cache)
    assert {p.name: p.read_bytes() for p in cache.iterdir() if p.is_file() and p.name in before} == before
    assert len(ActivationCache(cache)) == 4  # still readable

    ev = tmp_path / "ev"
    evaluate_models({"base": tiny_loaded.spec}, _items(), ["continuation"], ev)
    files = sorted(p.name for p in ev.iterdir())
    with pytest.raises(ValueError, match="'evals' artifact"):
        cache_activations(None, chat_examples(4), "resid_post.0", "last_prompt", ev, 2, loaded=tiny_loaded,
                          overwrite=True, progress=False)
    assert sorted(p.name for p in ev.iterdir()) == files and (ev / "results.csv").exists()
    assert json.loads((ev / "manifest.json").read_text())["kind"] == "evals"


def test_overwrite_replaces_only_its_own_kind(tiny_loaded, tmp_path):
    from activations import ActivationCache, cache_activations

    out = tmp_path / "c"
    cache_activations(None, chat_examples(4), "resid_post.0", "last_prompt", out, 2, loaded=tiny_loaded,
                      progress=False)
    cache_activations(None, chat_examples(6, seed=3), "resid_post.1", "last_prompt", out, 2, loaded=tiny_loaded,
                      overwrite=True, progress=False)
    c = ActivationCache(out)
    assert len(c) == 6 and c.sites == ["resid_post.1"] and c.manifest["n_rows"] == 6


# --- 4. torn shards, short index ------------------------------------------------------------------------

def test_torn_shard_under_its_final_name_is_recomputed(tiny_loaded, tmp_path, monkeypatch):
    import activations.cache as cache_mod
    from activations import ActivationCache, cache_activations

    exs = chat_examples(10, seed=2)
    args = (None, exs, "resid_post.*", "last_prompt,response_mean", )
    ref = cache_activations(*args, tmp_path / "ref", 2, shard_size=2, loaded=tiny_loaded, progress=False)

    real_save, n = cache_mod.save_file, []

    def crash_on_fourth(*a, **k):  # the run dies while writing its 4th shard
        n.append(1)
        if len(n) == 4:
            raise KeyboardInterrupt
        return real_save(*a, **k)

    out = tmp_path / "out"
    monkeypatch.setattr(cache_mod, "save_file", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        cache_activations(*args, out, 2, shard_size=2, loaded=tiny_loaded, progress=False)
    monkeypatch.setattr(cache_mod, "save_file", real_save)
    shard = out / "shard-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])  # torn, under its final name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache_activations(*args, out, 2, shard_size=2, loaded=tiny_loaded, progress=False)
    assert any("shard-00001" in str(w.message) for w in caught)
    a, b = ActivationCache(ref), ActivationCache(out)
    for site in a.sites:
        np.testing.assert_array_equal(a.load(site, "response_mean"), b.load(site, "response_mean"))


def test_short_index_and_damaged_shard_are_errors(tiny_loaded, tmp_path):
    from activations import ActivationCache, cache_activations

    out = cache_activations(None, chat_examples(6), "resid_post.0", "last_prompt", tmp_path / "c", 2,
                            shard_size=2, loaded=tiny_loaded, progress=False)
    idx = out / "index.jsonl"
    full = idx.read_text()
    idx.write_text("".join(full.splitlines(keepends=True)[:4]))
    with pytest.raises(ValueError, match=r"holds 4 rows but manifest.json says n_rows=6"):
        ActivationCache(out)
    idx.write_text(full)
    (out / "shard-00002.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match=r"shard-00002.safetensors"):
        ActivationCache(out).load("resid_post.0", "last_prompt")


# --- 5. kill and resume after a config change ----------------------------------------------------------

KILLED_STAGE = """
import sys, time
from pathlib import Path
from pipeline.runner import Pipeline, Stage
from artifacts.store import ResultStore
run_dir, doses = sys.argv[1], [float(x) for x in sys.argv[2].split(",")]
def steer(folder):
    store = ResultStore(folder, {"experiment": "steering", "doses": doses}, kind="steering")
    for d in doses:
        if not store.done(str(d)):
            store.write([{"dose": d}], str(d))
            if sys.argv[3] == "hang":
                print("chunk", flush=True); time.sleep(600)
    return {"n": len(store.rows())}
Pipeline(run_dir, [Stage("steering", steer, {"doses": doses})], log=lambda m: None).run()
print("done", flush=True)
"""


def test_killed_stage_restarts_clean_after_a_config_change(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", KILLED_STAGE, str(run)]
    proc = subprocess.Popen(cmd + ["0,0.5", "hang"], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "chunk"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the config changed (other doses): the rerun must not be stuck on the old partial results
    res = subprocess.run(cmd + ["0.25,1", "finish"], capture_output=True, text=True, env=ENV, timeout=120)
    assert res.returncode == 0 and "done" in res.stdout, res.stderr[-1500:]
    rec = json.loads((run / "steering" / "stage.json").read_text())
    assert rec["summary"] == {"n": 2}
    assert sorted(p.name for p in (run / "steering" / "chunks").glob("*.jsonl")) == ["0.25.jsonl", "1.0.jsonl"]


# --- 6. --only and upstream outputs -----------------------------------------------------------------

def _toy(calls):
    def make(name):
        def run(folder):
            calls.append(name)
            (folder / "out.txt").write_text(name)
        return run
    from pipeline.runner import Stage

    return [Stage("tune/a", make("tune/a")), Stage("probes", make("probes"), after=["tune/a"]),
            Stage("report", make("report"), after=["tune/a", "probes"])]


def test_only_names_are_checked_and_need_their_upstream(tmp_path):
    from pipeline.runner import Pipeline

    calls: list[str] = []
    with pytest.raises(ValueError, match="steerin: no such stage"):
        Pipeline(tmp_path, _toy(calls), log=lambda m: None).run(only=["steerin"])
    with pytest.raises(ValueError, match="needs the outputs of tune/a, probes"):
        Pipeline(tmp_path, _toy(calls), log=lambda m: None).run(only=["report"])
    assert calls == [] and not (tmp_path / "report").exists()
    Pipeline(tmp_path, _toy(calls), log=lambda m: None).run(only=["tune", "probes"])  # a group name works
    assert calls == ["tune/a", "probes"]


def test_removed_upstream_output_reruns_downstream(tmp_path):
    from pipeline.runner import Pipeline

    calls: list[str] = []
    Pipeline(tmp_path, _toy(calls), log=lambda m: None).run()
    (tmp_path / "probes" / "out.txt").unlink()
    calls.clear()
    Pipeline(tmp_path, _toy(calls), log=lambda m: None).run()
    assert calls == ["report"]


# --- 7. validation at the door ----------------------------------------------------------------------------

@pytest.mark.parametrize("over, field", [
    ({"evals": {"scorers": ["continuaton"]}}, "evals.scorers"),
    ({"model": {"base": "/no/such/model/dir"}}, "model.base"),
    ({"model": {"device": "tpu"}}, "model.device"),
    ({"probes": {"n_per_condition": -1}}, "probes.n_per_condition"),
    ({"probes": {"backend": "jax"}}, "probes.backend"),
    ({"tune": {"conditions": []}}, "tune.conditions"),
    ({"tune": {"conditions": ["concious"]}}, "tune.conditions"),
    ({"steering": {"conditions": ["self_modle"]}}, "steering.conditions"),
    ({"steering": {"doses": [float("nan")]}}, "steering.doses"),
    ({"evals": {"dimensions": ["powr"]}}, "evals.dimensions"),
    ({"run": {"name": "../escape"}}, "run.name"),
])
def test_config_is_validated_before_any_stage(over, field):
    from pipeline.config import load_config

    with pytest.raises(ValueError, match=rf"field '{field}'"):
        load_config(overrides=over)


def test_pipeline_script_rejects_bad_only_before_running(tmp_path, capsys):
    from scripts.run_pipeline import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[run]\nname = "x"\nroot = "{tmp_path / "runs"}"\n[model]\ndevice = "cpu"\n')
    from artifacts.cli import run_cli

    assert run_cli(main, ["--config", str(cfg), "--only", "steerin"]) == 2
    assert "steerin: no such stage" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "x" / "tune").exists()


@pytest.mark.parametrize("norm, raw_row, match", [
    (float("nan"), 1.0, "resid_norm"), (float("inf"), 1.0, "resid_norm"), (-2.0, 1.0, "resid_norm"),
    (0.0, 1.0, "resid_norm"), (2.0, 0.0, "raw is zero"), (2.0, float("nan"), "NaN"),
])
def test_bad_directions_are_errors(norm, raw_row, match):
    from probes.directions import Direction

    raw = np.ones((2, 8), dtype=np.float32)
    raw[1] = raw_row
    with pytest.raises(ValueError, match=match):
        Direction("d", [0, 1], raw, np.array([3.0, norm]))


def test_direction_file_with_bad_values_names_the_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    from probes.directions import load_directions

    path = tmp_path / "dirs.safetensors"
    meta = {"self_model": json.dumps({"layers": [0], "site_kind": "resid_post", "position": "response_mean"})}
    save_file({"self_model/raw": torch.ones(1, 8), "self_model/unit": torch.ones(1, 8),
               "self_model/resid_norm": torch.tensor([-1.0])}, str(path), metadata=meta)
    with pytest.raises(ValueError, match=rf"{path.name}.*resid_norm"):
        load_directions(path)
    path.write_bytes(b"torn")
    with pytest.raises(ValueError, match=rf"{path.name}: not a readable safetensors"):
        load_directions(path)


def test_examples_longer_than_the_context(tiny_loaded, tmp_path):
    from activations import ActivationCache, cache_activations

    long = {"id": "long", "messages": [{"role": "user", "content": "word " * 700},
                                       {"role": "assistant", "content": "ok"}]}
    exs = chat_examples(3) + [long]
    with pytest.raises(ValueError, match=r"example 'long': \d+ tokens, longer than the model's context of 512"):
        cache_activations(None, exs, "resid_post.0", "last_prompt", tmp_path / "c", 2, loaded=tiny_loaded,
                          progress=False)
    with pytest.warns(UserWarning, match="truncated to the model's context of 512"):
        out = cache_activations(None, exs, "resid_post.0", "last_prompt", tmp_path / "t", 2, loaded=tiny_loaded,
                                progress=False, too_long="truncate")
    assert ActivationCache(out).index[3]["n_tokens"] == 512


def test_bad_jsonl_input_names_the_line(tmp_path, monkeypatch):
    from artifacts import read_messages_jsonl

    ok = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    p = tmp_path / "d.jsonl"
    p.write_bytes((ok + "\n").encode() + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    with pytest.raises(ValueError, match=r"d.jsonl:2: not UTF-8"):
        read_messages_jsonl(p)
    p.write_text(ok + "\n" + json.dumps({"id": ["a"], "messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:2: field 'id' is list"):
        read_messages_jsonl(p)
    monkeypatch.setenv("SELFMODEL_MAX_LINE_BYTES", "1000")
    p.write_text(ok + "\n" + ok + "\n" + json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}) + "\n")
    with pytest.raises(ValueError, match=r"d.jsonl:3: line longer than 1000 bytes"):
        read_messages_jsonl(p)


@pytest.mark.parametrize("kw, match", [({"batch_size": 0}, "batch_size is 0"), ({"shard_size": 0}, "shard_size is 0")])
def test_zero_sizes_are_errors(tiny_loaded, tmp_path, kw, match):
    from activations import cache_activations

    args = {"batch_size": 2, **kw}
    with pytest.raises(ValueError, match=match):
        cache_activations(None, chat_examples(2), "resid_post.0", "last_prompt", tmp_path / "c",
                          args.pop("batch_size"), loaded=tiny_loaded, progress=False, **args)


def test_missing_local_model_path_is_reported_as_such(tmp_path):
    from models import ModelSpec, load_model

    with pytest.raises(ValueError, match="local model folder not found"):
        load_model(ModelSpec(base=str(tmp_path / "nope"), device="cpu"))


def test_damaged_weights_name_the_file(tiny_model_dir, tmp_path):
    import shutil

    from models import ModelSpec, load_model

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    (d / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match=str(d)):
        load_model(ModelSpec(base=str(d), device="cpu"))


# --- 8. scripts print typed errors -------------------------------------------------------------------

@pytest.mark.parametrize("script, argv, match", [
    ("eval_preferences", ["--adapter", "x=/no/such/adapter", "--out", "{tmp}/ev"], "directory /no/such/adapter"),
    ("run_steering", ["--base", "{model}", "--device", "cpu", "--directions", "{tmp}/none.safetensors",
                      "--out", "{tmp}/st"], "direction file not found"),
    ("run_ablation", ["--base", "{model}", "--device", "cpu", "--directions", "{tmp}/none.safetensors",
                      "--adapter", "{tmp}", "--out", "{tmp}/ab"], "not a LoRA adapter"),
    ("cache_activations", ["--model", "{tmp}/no-model", "--out", "{tmp}/c"], "local model folder not found"),
    ("train_probes", ["--base", "{tmp}/no-model", "--adapter", "conscious={tmp}", "--out", "{tmp}/p"], "no adapter_config.json"),
])
def test_scripts_print_typed_errors(script, argv, match, tmp_path, tiny_model_dir, capsys):
    import importlib

    from artifacts.cli import run_cli

    main = importlib.import_module(f"scripts.{script}").main
    argv = [a.format(tmp=tmp_path, model=tiny_model_dir) for a in argv]
    rc = run_cli(main, argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars
    assert rc == 2 and last.startswith("error: ") and match in last, last


def test_non_utf8_config_names_the_file(tmp_path):
    from pipeline.config import load_config

    p = tmp_path / "c.toml"
    p.write_bytes(b'[run]\nname = "caf\xe9"\n')
    with pytest.raises(ValueError, match=r"c.toml: not UTF-8"):
        load_config(p)


def test_damaged_adapter_names_the_file(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from models import ModelSpec, load_model

    adir = tmp_path / "adapter"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(adir)
    f = adir / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(ValueError, match=str(adir)):
        load_model(ModelSpec(base=tiny_model_dir, adapter=str(adir), device="cpu"))
