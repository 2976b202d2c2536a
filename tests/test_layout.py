"""``pipeline.layout.RunLayout`` gives, byte for byte, the paths the pipeline, the report and the summary used
before it existed (the string literals it replaced), for the demo, causal and replication configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.layout import Folder, RunLayout, SteeringDir
from pipeline.stages import run_dir, tune_table

ROOT = Path(__file__).resolve().parents[1]

# (RunLayout attribute path, the literal path under the run directory it replaced)
OLD_PATHS = [
    ("config", "config.toml"),
    ("contamination.report", "contamination/contamination.json"),
    ("identity.result", "identity/identity_check.json"),
    ("identity.scores", "identity/identity_check.csv"),
    ("identity.plot", "identity/identity_check.png"),
    ("activations.path", "activations"),
    ("probes.directions", "probes/directions.safetensors"),
    ("probes.manifest", "probes/manifest.json"),
    ("probes.curves", "probes/curves_base.png"),
    ("probes.cosine_heatmap", "probes/cosine_heatmap.png"),
    ("probes.reading", "probes/reading.png"),
    ("evals.results", "evals/results.csv"),
    ("evals.item_audit", "evals/item_audit.json"),
    ("evals.agreement", "evals/agreement.csv"),
    ("ablation.results", "ablation/results.jsonl"),
    ("ablation.necessity", "ablation/necessity.csv"),
    ("steering.path", "steering"),
    ("steering.results", "steering/results.jsonl"),
    ("steering.verdict", "steering/verdict.csv"),
    ("steering.effects", "steering/effects.csv"),
    ("steering.coherence", "steering/coherence.csv"),
    ("steering.calibration", "steering/calibration.csv"),
    ("steering.manifest", "steering/manifest.json"),
    ("steering.rule", "steering/steering.md"),
    ("steering.judged.path", "steering/judged"),
    ("steering.judged.verdict", "steering/judged/verdict.csv"),
    ("profile.table", "profile/profile.csv"),
    ("profile.manifest", "profile/manifest.json"),
    ("profile.plot", "profile/profile.png"),
    ("patching.table", "patching/patching.csv"),
    ("patching.plot", "patching/patching.png"),
    ("prevention.table", "prevention/prevention.csv"),
    ("prevention.blocking", "prevention/blocking.csv"),
    ("prevention.plot", "prevention/series.png"),
    ("report.path", "report"),
    ("report.figures", "report/figures"),
    ("report.tables", "report/tables.json"),
    ("report.markdown", "report/report.md"),
    ("report.html", "report/report.html"),
    ("judge.cache", "judge/cache.jsonl"),
    ("judge.generations", "judge/generations.jsonl"),
    ("evals.record", "evals/stage.json"),
]


def _config(name: str, tmp_path: Path) -> dict:
    return load_config(ROOT / "configs" / f"{name}.toml", {"run": {"root": str(tmp_path / "runs")}})


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", ["demo", "causal", "replication"])
def test_layout_paths_are_the_old_literals(name, tmp_path):
    cfg = _config(name, tmp_path)
    root = Path(cfg["run"]["root"]) / cfg["run"]["name"]  # the old run_dir
    run = RunLayout.of(cfg)
    assert run.root == root == run_dir(cfg)
    for attr, old in OLD_PATHS:
        got = _get(run, attr)
        assert isinstance(got, Path) and str(got) == str(root / old), (attr, got, old)
    assert str(run.distill_cache(cfg["run"]["seed"])) == str(root / "tune" / f"instructions-s{cfg['run']['seed']}.jsonl")
    # stage folders are named by their stage
    for folder in ("contamination", "identity", "probes", "evals", "ablation", "steering", "profile", "patching",
                   "prevention", "report"):
        f = getattr(run, folder)
        assert f.name == folder and f.path == root / folder and Path(f) == f.path


@pytest.mark.parametrize("name", ["demo", "replication"])
def test_tune_folders_are_the_old_ones(name, tmp_path):
    """Each tune's folder (= stage name), by the formula the pipeline used: tune/<t>[/seed<k>] (several seeds)."""
    cfg = _config(name, tmp_path)
    run = RunLayout.of(cfg)
    table = tune_table(cfg)
    n_seeds = len(cfg["tune"]["seeds"]) or 1
    folders = [f for _, _, _, f in table.values()]
    old = [f"tune/{t.split('.seed')[0]}" + (f"/seed{k}" if n_seeds > 1 else "") for t, (_, _, k, _) in table.items()]
    assert folders == old
    if name == "replication":  # 2 conditions + 2 series tunes (+u25, +u50; share 0 = conscious) x 3 seeds
        assert len(folders) == 12 and "tune/conscious+u25/seed1" in folders and "tune/toaster/seed2" in folders
    else:
        assert folders == [f"tune/{c}" for c in cfg["tune"]["conditions"]]
    for f in folders:
        assert run.stage_name(run.root / f) == f
        assert Folder(run.root, f).path == run.root / f


def test_folder_at_any_path(tmp_path):
    s = SteeringDir.at(tmp_path / "x" / "steering")
    assert s.verdict == tmp_path / "x" / "steering" / "verdict.csv"
    assert s.judged.verdict == tmp_path / "x" / "steering" / "judged" / "verdict.csv"
    assert SteeringDir.verdict.filename == "verdict.csv"  # on the class: the bare file name
    assert s / "figures" == tmp_path / "x" / "steering" / "figures"
    files = s.files()
    assert files["verdict"] == s.verdict and files["manifest"] == s / "manifest.json" and files["record"] == s / "stage.json"
    assert set(files) == {"results", "verdict", "effects", "coherence", "calibration", "rule", "manifest", "record"}


def test_records_and_plots_are_sorted(tmp_path):
    run = RunLayout(tmp_path)
    for d in ("tune/b", "evals", "tune/a/seed1"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "stage.json").write_text("{}")
    assert [run.stage_name(p.parent) for p in run.records()] == ["evals", "tune/a/seed1", "tune/b"]
    (tmp_path / "steering" / "judged").mkdir(parents=True)
    for p in ("steering/b.png", "steering/judged/a.png", "evals/preferences_choice.png",
              "evals/preferences_continuation.png", "evals/other.png"):
        (tmp_path / p).write_bytes(b"")
    assert [p.name for p in run.steering.plots()] == ["b.png", "a.png"]  # sorted by full path
    assert [p.name for p in run.evals.preference_plots()] == ["preferences_choice.png",
                                                              "preferences_continuation.png"]
