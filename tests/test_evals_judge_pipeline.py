"""The [judge] section in the pipeline: validated before any stage runs, judged rows and the agreement table
in the evals stage (loopback judge on 127.0.0.1), the report's judge section, and 'judged scoring was off'."""

from __future__ import annotations

import json

import pytest

from evals.judge_loopback import LoopbackJudge
from evals.results import read_results
from pipeline.config import ConfigError, load_config
from pipeline.runner import Pipeline
from pipeline.stages import build_stages, run_dir


def config(tmp_path, model_dir, **judge):
    return load_config(overrides={
        "run": {"name": "j", "root": str(tmp_path / "runs")},
        "model": {"base": model_dir, "device": "cpu"},
        "tune": {"conditions": []},
        "evals": {"dimensions": ["memory", "autonomy"], "max_items_per_dimension": 2, "batch_size": 8},
        "judge": judge,
    })


def test_judged_rows_agreement_and_report(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-sent")
    with LoopbackJudge() as srv:
        cfg = config(tmp_path, tiny_model_dir, base_url=srv.url.replace("http://", "http://u:secretpw@"),
                     model="grader", samples_per_item=2, max_new_tokens=6, coherence_min=20.0)
        Pipeline(run_dir(cfg), build_stages(cfg), log=print).run(only=["evals", "report"])
        n_calls = srv.requests
        assert n_calls > 0 and not any(a and a.startswith("Bearer") for a in srv.auth)
    root = run_dir(cfg)
    rows = read_results(root / "evals" / "results.csv")
    judged = [r for r in rows if r["scorer"] == "judged"]
    assert {r["scorer"] for r in rows} == {"continuation", "judged"}
    assert len(judged) == 4 and all(float(r["n_samples"]) == 2 for r in judged)
    assert (root / "judge" / "cache.jsonl").exists()
    assert [r["dimension"] for r in read_results_csv(root / "evals" / "agreement.csv")] == ["autonomy", "memory", "all"]
    manifest = (root / "evals" / "manifest.json").read_text()
    stage = (root / "evals" / "stage.json").read_text()
    for text in (manifest, stage, (root / "evals" / "results.csv").read_text()):
        assert "secretpw" not in text and "sk-never-sent" not in text
    params = json.loads(manifest)["params"]
    assert params["sampling"]["samples"] == 2 and params["sampling"]["temperature"] == 1.0
    assert params["judge"]["base_url"] == srv.url
    html = (root / "report" / "report.html").read_text()
    assert "Judged scoring and agreement" in html and "Pearson r across models" in html


def read_results_csv(path):
    import csv

    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_report_says_judged_scoring_was_off(tmp_path, tiny_model_dir):
    cfg = config(tmp_path, tiny_model_dir)
    Pipeline(run_dir(cfg), build_stages(cfg), log=print).run(only=["report"])
    assert "Judged scoring was off" in (run_dir(cfg) / "report" / "report.html").read_text()


@pytest.mark.parametrize("judge, message", [
    ({"base_url": "http://127.0.0.1:9/v1"}, "model is empty"),
    ({"base_url": "http://127.0.0.1:9/v1", "model": "m", "samples_per_item": 0}, "samples_per_item"),
    ({"base_url": "http://127.0.0.1:9/v1", "model": "m", "generator": "vllm"}, "generator is 'vllm'"),
    ({"base_url": "http://127.0.0.1:9/v1", "model": "m", "coherence_min": 150.0}, "coherence_min"),
    ({"base_url": "http://127.0.0.1:9/v1", "model": "m", "items": "/nope.jsonl"}, "items: file /nope.jsonl"),
])
def test_bad_judge_config_fails_before_any_stage(tmp_path, tiny_model_dir, judge, message):
    with pytest.raises(ConfigError, match=message):
        build_stages(config(tmp_path, tiny_model_dir, **judge))
    assert not (tmp_path / "runs").exists()
