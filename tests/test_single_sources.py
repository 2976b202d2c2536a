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
