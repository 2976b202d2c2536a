"""Pipeline configuration: TOML merged over defaults; unknown keys are an error naming the field.

Every section maps to one stage (or group of stages); ``runs/<name>/config.toml`` keeps the
resolved configuration of a run.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "run": {"name": "demo", "root": "runs", "seed": 0},
    "model": {"base": "embedded:smollm2-135m-instruct", "dtype": "auto", "device": "auto", "device_map": ""},
    "tune": {"conditions": ["conscious", "not_conscious", "toaster", "human"], "profile": "fast",
             "n_identity": 0, "n_instruction": 0, "rank": 0, "alpha": 0, "lr": 0.0, "epochs": 0,
             "batch_size": 0, "data_dir": ""},  # 0 = the profile's value (tuning/profiles.py)
    "identity": {"max_questions": 0},
    "probes": {"n_per_condition": 80, "max_eval_per_dimension": 4, "batch_size": 16},
    "evals": {"scorers": ["continuation"], "dimensions": [], "batch_size": 16, "max_items_per_dimension": 0},
    "steering": {"profile": "fast", "conditions": [], "doses": [], "n_random": 5, "layers": [],
                 "scorer": "continuation"},
    "ablation": {"enabled": True, "n_random": 5},
    "report": {"title": ""},
    # causal analyses (pipeline/stages.py causal_stages): the profile test is cheap (it reads results);
    # patching and prevention retrain or re-run the model and are off unless a config turns them on
    "profile": {"enabled": True, "n_perm": 10000},
    "patching": {"enabled": False, "layers": [], "n_layers": 4, "n_random": 3, "items_per_dim": 1,
                 "monitoring_items": 4, "batch_size": 8},  # layers [] = n_layers evenly spaced
    "prevention": {"enabled": False, "mode": "ablate", "dose": 0.0, "layer": -1, "checkpoint_every": 5,
                   "checkpoint_items": 2, "max_steps": 0, "max_items_per_dimension": 8, "batch_size": 16},
    # layer -1 = self_model's selected layer; max_items_per_dimension: evaluation items per dimension and kind
}


class ConfigError(ValueError):
    pass


def _merge(base: dict, over: dict, where: str, path: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in base:
            raise ConfigError(f"{path}: unknown field '{where}{k}'; known fields of [{where.rstrip('.') or 'top'}]: "
                              f"{', '.join(base)}")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise ConfigError(f"{path}: '{where}{k}' must be a table [{k}]")
            out[k] = _merge(base[k], v, f"{where}{k}.", path)
        else:
            if base[k] is not None and not isinstance(v, type(base[k])) and not (
                    isinstance(base[k], float) and isinstance(v, int)):
                raise ConfigError(f"{path}: field '{where}{k}' should be {type(base[k]).__name__}, got {v!r}")
            out[k] = v
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
        cfg = _merge(cfg, data, "", str(path))
    if overrides:
        cfg = _merge(cfg, overrides, "", "overrides")
    return cfg


def dump_toml(cfg: dict[str, Any]) -> str:
    """Write a resolved config back as TOML (tables of scalars and lists only)."""
    import json

    lines = []
    for section, table in cfg.items():
        lines.append(f"[{section}]")
        for k, v in table.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines)
