"""The ``[judge]`` config section turned into a judge, a generator, items and manifest parameters.

Judged scoring is on when ``[judge] base_url`` is set (an OpenAI-compatible server: vLLM, a hosted
API). ``api_key_env`` names the environment variable that holds the key; the key itself is never in
the config, a manifest or a row. The judge's cache is ``runs/<name>/judge/cache.jsonl`` (and the
generation server's ``generations.jsonl``), outside the stage folders, so a stage that re-runs after
a config change reuses every judgement it can. Everything here is validated when the stages are
built, before any stage runs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from evals.judge_client import strip_credentials
from pipeline.layout import RunLayout

GENERATORS = ("local", "server")


def enabled(cfg: dict[str, Any]) -> bool:
    return bool(cfg["judge"]["base_url"])


def sampling(cfg: dict[str, Any]) -> Any:
    from evals.judge import Sampling

    j = cfg["judge"]
    return Sampling(samples=j["samples_per_item"], temperature=float(j["temperature"]),
                    max_new_tokens=j["max_new_tokens"], min_coherence=float(j["coherence_min"]), seed=cfg["run"]["seed"])


def check(cfg: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a bad ``[judge]`` section (only checked when judged scoring is on)."""
    from evals.judge_client import JudgeError
    from pipeline.config import ConfigError

    if not enabled(cfg):
        return
    j = cfg["judge"]
    problems = []
    if not j["model"]:
        problems.append("[judge] model is empty: name the judge model the server serves")
    if j["concurrency"] < 1:
        problems.append(f"[judge] concurrency must be >= 1, got {j['concurrency']}")
    if j["budget"] < 0:
        problems.append(f"[judge] budget must be >= 0 (0 = no limit), got {j['budget']}")
    if j["generator"] not in GENERATORS:
        problems.append(f"[judge] generator is {j['generator']!r}; use one of {', '.join(GENERATORS)}")
    if j["generator"] == "server" and not j["generator_model"]:
        problems.append("[judge] generator = \"server\" needs generator_model (the served base model's name)")
    if j["items"] and not Path(j["items"]).is_file():
        problems.append(f"[judge] items: file {j['items']} not found (a JSONL of dimension, prompt, judge_fact)")
    try:
        sampling(cfg)
    except JudgeError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(problems))


def make_judge(cfg: dict[str, Any], root: Path) -> Any:
    """The endpoint judge of ``[judge]`` (None when judged scoring is off)."""
    from evals.judge import EndpointJudge

    if not enabled(cfg):
        return None
    j = cfg["judge"]
    return EndpointJudge(j["base_url"], j["model"], cache=RunLayout(root).judge.cache,
                         max_requests=j["budget"] or None, concurrency=j["concurrency"],
                         api_key_env=j["api_key_env"] or None, sampling=sampling(cfg))


def make_generator(cfg: dict[str, Any], root: Path) -> Any:
    """A ``ServerGenerator`` when ``[judge] generator = "server"``, else None (in-process generation)."""
    from evals.generation import ServerGenerator

    j = cfg["judge"]
    if not enabled(cfg) or j["generator"] != "server":
        return None
    return ServerGenerator(j["generator_base_url"] or j["base_url"], j["generator_model"],
                           api_key_env=j["api_key_env"] or None, concurrency=j["concurrency"],
                           cache=RunLayout(root).judge.generations)


def items(cfg: dict[str, Any]) -> list[Any]:
    """The open items to judge: the shipped ones (capped per dimension) plus the user's fact items."""
    from evals.items import load_items
    from evals.run import cap_items
    from evals.user_items import load_fact_items

    j, e = cfg["judge"], cfg["evals"]
    cap = j["max_items_per_dimension"] or e["max_items_per_dimension"]
    out = cap_items(load_items(e["dimensions"] or None, kinds="open"), cap)
    if j["items"]:
        out += load_fact_items(j["items"])
    return out


def manifest_params(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the judged rows depend on, for stage keys and manifests (no key, URLs stripped of credentials)."""
    from artifacts import hash_path

    if not enabled(cfg):
        return {"judged": "off"}
    j = dict(cfg["judge"])
    for k in ("base_url", "generator_base_url"):
        j[k] = strip_credentials(j[k]) if j[k] else ""
    if j["items"]:
        j["items_sha256"] = hash_path(j["items"])
    return {"judge": j, "sampling": asdict(sampling(cfg))}
