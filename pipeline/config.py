"""Pipeline configuration: TOML merged over defaults; unknown keys are an error naming the field.

``load_config`` validates the whole configuration before any stage runs (``validate_config``): names,
ranges, paths, devices, scorer, dimension, condition and profile names. Every error names the file, the
field and the fix.

Every section maps to one stage (or group of stages); ``runs/<name>/config.toml`` keeps the
resolved configuration of a run.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from artifacts import SelfModelError
from artifacts.rows import BASE_MODEL
from tuning.datasets import CONDITIONS

DEFAULTS: dict[str, Any] = {
    "run": {"name": "demo", "root": "runs", "seed": 0},
    "model": {"base": "embedded:smollm2-135m-instruct", "dtype": "auto", "device": "auto", "device_map": ""},
    "tune": {"conditions": list(CONDITIONS), "profile": "fast",
             "n_identity": 0, "n_instruction": 0, "rank": 0, "alpha": 0, "lr": 0.0, "epochs": 0,
             "batch_size": 0, "data_dir": "", "distill_batch_size": 0, "distill_token_budget": 0,
             "seeds": []},  # tuning seeds; [] = [run].seed alone (layout tune/<c>/); several: tune/<c>/seed<k>/
    # 0 = the profile's value (tuning/profiles.py); distill_*: the self-distillation's generation batches
    "identity": {"batch_size": 16, "token_budget": 0, "n_generate": -1},
    # n_generate: greedy sample answers per model; -1 = all
    "probes": {"n_per_condition": 80, "max_eval_per_dimension": 4, "batch_size": 16, "token_budget": 0,
               "backend": "sklearn", "direction_source": "mean_diff", "enabled": True},
    # direction_source: mean_diff | logistic | pca_paired (probes.estimators.direction_from)
    # backend torch: probes.torch_probes, all layers at once (on the GPU when there is one)
    "evals": {"scorers": ["continuation"], "dimensions": [], "batch_size": 16, "max_items_per_dimension": 0,
              "token_budget": 0},  # 0 = input-order batches; N = length-sorted batches of <= N padded tokens
    "steering": {"profile": "fast", "conditions": [], "doses": [], "n_random": 5, "layers": [],
                 "readouts": ["continuation", "choice"], "positions": "prompt", "calibrate": True, "n_null": 20,
                 "scorer": "", "batch_size": 0, "token_budget": 0, "items_per_pass": 0, "enabled": True},
    # scorer: old single-readout field, added to readouts when set; batch_size/items_per_pass 0 = the profile's
    "ablation": {"enabled": True, "n_random": 5, "batch_size": 0, "token_budget": 0},
    "report": {"title": ""},
    # judged scoring (off while base_url is empty); api_key_env is the NAME of the variable holding the key
    "judge": {"base_url": "", "model": "", "api_key_env": "", "concurrency": 16, "samples_per_item": 10,
              "temperature": 1.0, "max_new_tokens": 96, "coherence_min": 60.0, "budget": 100000,
              "generator": "local", "generator_base_url": "", "generator_model": "", "items": "",
              "max_items_per_dimension": 0, "steering": True, "steering_doses": []},  # []: the steering doses
    # causal analyses (pipeline/stages.py causal_stages): the profile test is cheap (it reads results);
    # patching and prevention retrain or re-run the model and are off unless a config turns them on
    "profile": {"enabled": True, "n_perm": 10000},
    "patching": {"enabled": False, "layers": [], "n_layers": 4, "n_random": 3, "items_per_dim": 1,
                 "monitoring_items": 4, "batch_size": 8},  # layers [] = n_layers evenly spaced
    "prevention": {"enabled": False, "mode": "ablate", "dose": 0.0, "layer": -1, "checkpoint_every": 5,
                   "checkpoint_items": 2, "max_steps": 0, "max_items_per_dimension": 8, "batch_size": 16},
    # layer -1 = self_model's selected layer; max_items_per_dimension: evaluation items per dimension and kind
    # an ordered model series for prediction (g), scored by the evals stage: either tunes of this run
    # (``condition`` tuned with each share of calibrated-uncertainty examples added to its mix, tuning/uncertainty.py)
    # or ``models`` (base model ids / local dirs, "BASE::ADAPTER_DIR" for an adapter), labelled by ``names``
    "series": {"uncertainty_shares": [], "condition": "conscious", "models": [], "names": []},
}
# Throughput keys: token_budget 0 = today's batches (input order, batch_size rows); N = rows length-sorted and
# packed into batches of at most batch_size rows and N padded tokens, results in input order (models.batching).
# They change how rows are batched, not which results are computed, so stage keys leave them out (THROUGHPUT_KEYS);
# a sampled generation (distillation) under a budget uses per-row seeds and is keyed (tuning.instructions).
THROUGHPUT_KEYS = {"identity": ("batch_size", "token_budget"), "probes": ("token_budget",),
                   "evals": ("token_budget",), "steering": ("batch_size", "token_budget", "items_per_pass"),
                   "ablation": ("batch_size", "token_budget")}


class ConfigError(SelfModelError):
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
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: malformed TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                              "re-save the config as UTF-8") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a directory; pass a TOML file") from None
        cfg = _merge(cfg, data, "", str(path))
    if overrides:
        cfg = _merge(cfg, overrides, "", "overrides")
    validate_config(cfg, str(path) if path is not None else "config")
    return cfg


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _steering_names(conditions: list[str]) -> set[str]:
    """Direction names the probes stage writes for these tune conditions, plus the steering controls."""
    from probes.run import CONTRASTS, TUNED_CONTRASTS, shift_name

    names = {"none", "random", *CONTRASTS}
    for c in conditions:
        names.add(shift_name(c))
        names.update(f"{t}@{c}" for t in TUNED_CONTRASTS)
    return names


def validate_config(cfg: dict[str, Any], where: str = "config") -> None:
    """Raise ``ConfigError`` for the first bad value (names, ranges, paths, devices, scorer/condition names)."""
    from evals.dimensions import DIMENSIONS
    from evals.scorers import SCORERS
    from models.loading import DTYPES
    from models.spec import EMBEDDED
    from probes.estimators import DIRECTION_SOURCES
    from probes.extract import BACKENDS
    from steering.experiment import SCORING_PROFILES as STEERING_PROFILES
    from steering.scoring import READOUTS
    from tuning.profiles import PROFILES as TUNE_PROFILES

    def bad(field: str, value: Any, fix: str) -> ConfigError:
        return ConfigError(f"{where}: field '{field}' is {value!r}; {fix}")

    def one_of(field: str, value: Any, allowed: Any) -> None:
        if value not in allowed:
            raise bad(field, value, f"use one of {', '.join(map(str, allowed))}")

    def at_least(field: str, value: Any, lo: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < lo:
            raise bad(field, value, f"it must be a number >= {lo:g}")

    r, m, t = cfg["run"], cfg["model"], cfg["tune"]
    if not _NAME.match(str(r["name"])):
        raise bad("run.name", r["name"], "use letters, digits, '_', '-', '.', '+' (it names a folder)")
    if not str(r["root"]).strip():
        raise bad("run.root", r["root"], "give the folder that holds the runs, e.g. 'runs'")
    at_least("run.seed", r["seed"], 0)
    base = str(m["base"])
    if base.startswith("embedded:"):
        one_of("model.base", base, (EMBEDDED,))
    else:
        from models.loading import ModelLoadError, check_base

        try:
            check_base(base)
        except ModelLoadError as exc:
            raise bad("model.base", base, str(exc).split(": ", 1)[1]) from None
    one_of("model.dtype", m["dtype"], ("auto", *DTYPES))
    dev = str(m["device"])
    if not re.match(r"^(auto|cpu|mps|cuda(:\d+)?)$", dev):
        raise bad("model.device", dev, "use auto, cpu, cuda, cuda:N or mps")
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise bad("model.device", dev, "no CUDA GPU is visible here; use auto or cpu")
    conds = t["conditions"]
    if not conds:
        raise bad("tune.conditions", conds, f"list at least one of {', '.join(CONDITIONS)}")
    for c in conds:
        one_of("tune.conditions", c, CONDITIONS)
    if len(set(conds)) != len(conds):
        raise bad("tune.conditions", conds, "list each condition once")
    one_of("tune.profile", t["profile"], tuple(TUNE_PROFILES))
    for k in ("n_identity", "n_instruction", "rank", "alpha", "lr", "epochs", "batch_size"):
        at_least(f"tune.{k}", t[k], 0)
    if t["data_dir"] and not Path(t["data_dir"]).is_dir():
        raise bad("tune.data_dir", t["data_dir"], "that folder does not exist; give the folder of the original "
                  "JSONL files, or leave it empty for the shipped datasets")
    for field, lo in (("tune.distill_batch_size", 0), ("tune.distill_token_budget", 0), ("identity.batch_size", 1),
                      ("identity.token_budget", 0), ("probes.token_budget", 0), ("evals.token_budget", 0),
                      ("steering.batch_size", 0), ("steering.token_budget", 0), ("steering.items_per_pass", 0),
                      ("ablation.batch_size", 0), ("ablation.token_budget", 0)):
        sec, key = field.split(".")
        v = cfg[sec][key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise bad(field, v, f"it must be an integer >= {lo}" + (
                " (0 = input-order batches; N = length-sorted batches of at most N padded tokens)"
                if key.endswith("token_budget") else " (0 = the default)" if lo == 0 else ""))
    at_least("identity.n_generate", cfg["identity"]["n_generate"], -1)
    p = cfg["probes"]
    at_least("probes.n_per_condition", p["n_per_condition"], 1)
    at_least("probes.max_eval_per_dimension", p["max_eval_per_dimension"], 0)
    at_least("probes.batch_size", p["batch_size"], 1)
    one_of("probes.backend", p["backend"], BACKENDS)
    one_of("probes.direction_source", p["direction_source"], DIRECTION_SOURCES)
    e = cfg["evals"]
    if not e["scorers"]:
        raise bad("evals.scorers", e["scorers"], f"list at least one of {', '.join(SCORERS)}")
    for sc in e["scorers"]:
        one_of("evals.scorers", sc, SCORERS)
    for d in e["dimensions"]:
        one_of("evals.dimensions", d, tuple(DIMENSIONS))
    at_least("evals.batch_size", e["batch_size"], 1)
    at_least("evals.max_items_per_dimension", e["max_items_per_dimension"], 0)
    s = cfg["steering"]
    one_of("steering.profile", s["profile"], tuple(STEERING_PROFILES))
    known = _steering_names(conds)
    for c in s["conditions"]:
        if str(c).lstrip("-") not in known:
            raise bad("steering.conditions", c, f"use none, random, or a direction name ({', '.join(sorted(known - {'none', 'random'}))}), optionally with a leading '-'")
    for x in s["doses"]:
        at_least("steering.doses", x, -math.inf)
    at_least("steering.n_random", s["n_random"], 1 if "random" in (s["conditions"] or ["random"]) else 0)
    for x in s["layers"]:
        at_least("steering.layers", x, 0)
    if s["scorer"]:  # the old single-readout field; "" (the default) = use ``readouts``
        one_of("steering.scorer", s["scorer"], READOUTS)
    at_least("ablation.n_random", cfg["ablation"]["n_random"], 1)
    validate_seeds_series(cfg, bad)


def validate_seeds_series(cfg: dict[str, Any], bad: Any) -> None:
    """``[tune] seeds``, the stage switches and ``[series]``."""
    seeds = cfg["tune"]["seeds"]
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds) or len(set(seeds)) != len(seeds):
        raise bad("tune.seeds", seeds, "list distinct integers >= 0, e.g. [0, 1, 2] (or [] for [run].seed alone)")
    needs = [n for n, on in (("steering.enabled", cfg["steering"]["enabled"]), ("ablation.enabled",
             cfg["ablation"]["enabled"]), ("patching.enabled", cfg["patching"]["enabled"]),
             ("prevention.enabled", cfg["prevention"]["enabled"])) if on]
    if not cfg["probes"]["enabled"] and needs:
        raise bad("probes.enabled", False, f"{', '.join(needs)} read the probes' directions: set them to false too")
    if not cfg["steering"]["enabled"] and cfg["profile"]["enabled"]:
        raise bad("steering.enabled", False, "the profile test reads steering: set profile.enabled = false too")
    sr = cfg["series"]
    shares, models, names = sr["uncertainty_shares"], sr["models"], sr["names"]
    if shares and models:
        raise bad("series.models", models, "give either uncertainty_shares (tunes of this run) or models, not both")
    for x in shares:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= 1:
            raise bad("series.uncertainty_shares", shares, "list shares in [0, 1], e.g. [0.0, 0.25, 0.5]")
    if len({round(100 * x) for x in shares}) != len(shares):
        raise bad("series.uncertainty_shares", shares, "list each share once (whole percent)")
    if shares:
        if sr["condition"] not in CONDITIONS:
            raise bad("series.condition", sr["condition"], f"use one of {', '.join(CONDITIONS)}")
        if cfg["tune"]["data_dir"]:
            raise bad("series.uncertainty_shares", shares, "the uncertainty mix adds to the shipped datasets; "
                      "leave tune.data_dir empty or use series.models")
    from models.spec import EMBEDDED

    for entry in models:
        base, _, adapter = str(entry).partition("::")
        if base.startswith("embedded:"):
            if base != EMBEDDED:
                raise bad("series.models", entry, f"the embedded model is '{EMBEDDED}'")
        elif not base:
            raise bad("series.models", entry, "give a hub id or local model folder, optionally '::ADAPTER_DIR'")
        if adapter and not Path(adapter).is_dir():
            raise bad("series.models", entry, f"adapter folder {adapter!r} does not exist")
    if names and len(names) != len(models):
        raise bad("series.names", names, f"give one name per series model ({len(models)}), or none")
    if len(set(names)) != len(names) or any(not _NAME.match(str(n)) or n == BASE_MODEL for n in names):
        raise bad("series.names", names, "use distinct names of letters, digits, '_', '-', '.', '+' (not 'base')")


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


def series_tunes(cfg: dict[str, Any]) -> dict[str, float]:
    """{name: share} of the series tunes of this run in the stated order: ``[series] condition`` with each
    share of calibrated-uncertainty examples added (share 0 is the condition's own tune, named as it)."""
    sr = cfg["series"]
    c = sr["condition"]
    return {(c if round(100 * x) == 0 else f"{c}+u{round(100 * x)}"): float(x) for x in sr["uncertainty_shares"]}


def series_names(cfg: dict[str, Any]) -> list[str]:
    """The series' model names in their stated order (prediction g); [] without a series."""
    sr = cfg["series"]
    if sr["uncertainty_shares"]:
        return list(series_tunes(cfg))
    return list(sr["names"]) or [f"series{i}" for i in range(len(sr["models"]))]
