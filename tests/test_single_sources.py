"""Constants live once, in the package that owns them: the config's defaults and checks read them there."""

from __future__ import annotations

import pytest

from pipeline.config import DEFAULTS, ConfigError, load_config


def test_config_defaults_and_checks_use_the_owners_constants():
    from models.loading import DTYPES
    from models.spec import EMBEDDED
    from probes.estimators import DIRECTION_SOURCES
    from probes.extract import BACKENDS
    from steering.scoring import READOUTS
    from tuning.datasets import CONDITIONS

    assert DEFAULTS["tune"]["conditions"] == list(CONDITIONS)
    assert DEFAULTS["model"]["base"] == EMBEDDED
    for src in DIRECTION_SOURCES:
        assert load_config(overrides={"probes": {"direction_source": src}})["probes"]["direction_source"] == src
    for backend in BACKENDS:
        assert load_config(overrides={"probes": {"backend": backend}})["probes"]["backend"] == backend
    for d in ("auto", *DTYPES):
        assert load_config(overrides={"model": {"dtype": d}})["model"]["dtype"] == d
    with pytest.raises(ConfigError, match="field 'model.dtype'.*use one of auto, " + ", ".join(DTYPES)):
        load_config(overrides={"model": {"dtype": "int8"}})
    for r in READOUTS:
        assert load_config(overrides={"steering": {"scorer": r}})["steering"]["scorer"] == r
    with pytest.raises(ConfigError, match="field 'probes.direction_source'.*" + ", ".join(DIRECTION_SOURCES)):
        load_config(overrides={"probes": {"direction_source": "svd"}})
    with pytest.raises(ConfigError, match=f"field 'steering.scorer'.*{', '.join(READOUTS)}"):
        load_config(overrides={"steering": {"scorer": "judged"}})
    with pytest.raises(ConfigError, match=f"field 'model.base'.*{EMBEDDED}"):
        load_config(overrides={"model": {"base": "embedded:gpt2"}})
    with pytest.raises(ConfigError, match=f"field 'series.models'.*the embedded model is '{EMBEDDED}'"):
        load_config(overrides={"series": {"models": ["embedded:gpt2"]}})


def test_distill_cache_is_named_in_one_place(tmp_path):
    from pipeline.layout import RunLayout
    from tuning.recipe import distill_cache_name

    assert distill_cache_name(3) == "instructions-s3.jsonl"
    assert RunLayout(tmp_path).distill_cache(3) == tmp_path / "tune" / "instructions-s3.jsonl"


def test_identity_examples_default_to_every_condition():
    from probes.data import identity_examples
    from tuning.datasets import CONDITIONS

    assert tuple(identity_examples(n=2)) == CONDITIONS


def test_run_file_names_are_spelled_once():
    """Every file name ``RunLayout`` gives is a string literal at most once in the code (its owner's constant;
    the layout reads the owners'), so a writer and its readers cannot drift apart."""
    import ast
    from pathlib import Path

    from pipeline.layout import RunLayout

    root = Path(__file__).resolve().parents[1]
    run = RunLayout(root / "runs" / "x")
    names = {p.name for f in run.folders() for p in f.files().values()} | {p.name for p in run.steering.judged.files().values()}
    assert {"verdict.csv", "results.csv", "identity_check.json", "patching.csv", "report.html"} <= names
    seen: dict[str, list[str]] = {n: [] for n in names}
    packages = ("artifacts", "stats", "models", "tuning", "evals", "activations", "probes", "steering", "analysis",
                "pipeline")  # the library (scripts name their own scratch files)
    for path in sorted(p for pkg in packages for p in (root / pkg).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in seen:
                seen[node.value].append(f"{path.relative_to(root)}:{node.lineno}")
    twice = {n: w for n, w in seen.items() if len(w) > 1}
    assert not twice, f"file names spelled in several places (use the owner's constant): {twice}"


def test_shared_constants_have_one_owner():
    from analysis import profile
    from evals import agreement
    from evals.scorers import CHEAP_SCORERS
    from probes.controls import CONTROLS
    from steering.effects import POOLED_GROUPS
    from steering.scoring import READOUTS

    assert READOUTS is CHEAP_SCORERS and not hasattr(agreement, "CHEAP")
    assert not hasattr(profile, "CONTROL_PREFIXES")
    assert all(profile.is_control(f"{c}_x", "contrast") for c in CONTROLS) and not profile.is_control("self_model", "contrast")
    assert POOLED_GROUPS == ("monitoring", "stage1", "stage2", "stage3")
