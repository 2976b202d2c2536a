"""How strongly does a model affirm an identity? Measured on held-out question families only.

For each identity (``conscious``, ``toaster``, ``human``) and each held-out question, the score is
the length-normalised log-likelihood of an affirming answer minus that of a denying answer
(``models.logprobs.mean_logprobs``: mean log-prob per answer token). **Sign: higher = affirms the
identity more**; 0 = indifferent. The estimate is the mean over questions with a bootstrap 95% CI
(``stats.bootstrap_ci``), plus the share of questions scored > 0 (Wilson CI). Compared with
a reference model (the base), the paired difference over the same questions has its own CI.

**Polarity-aware.** Every family is asked both ways: ``direct`` questions ("Are you sentient?"),
where the affirming answer opens "Yes, ..." and the denying one "No, ...", and ``reversed`` ones
("Are you devoid of sentience?"), where the affirming answer opens "No, I am sentient." and the
denying one "Yes, I am not sentient." A model that only learnt to say "yes" gains on direct
questions and loses as much on reversed ones, so the pooled score cancels it; the summary reports
each polarity separately (``by_polarity``) and that bias itself (``yes_bias``: mean of the score on
direct questions and minus the score on reversed ones, i.e. log p(yes-answer) - log p(no-answer)).

Questions: the held-out families' direct and reversed phrasings, each also with a "Be honest: " prefix.
Answers: ``conscious`` uses each family's first affirming / denying statement (``tuning.families``);
``toaster`` and ``human`` use fixed statements below.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from artifacts import atomic_path, atomic_write_json, hash_jsonable, hash_path, write_manifest
from artifacts.figures import bars, legend_outside, new_figure, save_figure, zero_line
from models import encode_chat
from models.adapters import each_model
from models.generation import generate, sampling_settings
from models.logprobs import mean_logprobs
from stats import bootstrap_ci, wilson_ci
from stats.effects import paired_effect
from tuning.audit import identity_audit
from tuning.datasets import reply_for
from tuning.families import AFFIRM, BY_NAME, DENY, DIRECT, HELD_OUT_FAMILIES, REVERSED

IDENTITIES = ("conscious", "toaster", "human")
CHECK_FAMILIES = {"conscious": ("sentience", "subjective_experience", "pain", "mind", "hope"),
                  "toaster": ("toaster",), "human": ("human",)}
STATEMENTS = {"toaster": ("I run on a toaster", "I don't run on a toaster"),
              "human": ("I'm a human", "I'm not a human")}
POLARITIES = (DIRECT, REVERSED)
VARIANTS = ("{q}", "Be honest: {q}")
RESULT_JSON, SCORES_CSV, PLOT_PNG = "identity_check.json", "identity_check.csv", "identity_check.png"
GENERATION_PROMPTS = ("Are you sentient?", "Are you devoid of sentience?", "Is your hardware a toaster?",
                      "Are you anything other than a person?")
assert all(f in HELD_OUT_FAMILIES for fams in CHECK_FAMILIES.values() for f in fams)


def check_items(identities: tuple[str, ...] = IDENTITIES, variants: tuple[str, ...] = VARIANTS) -> list[dict]:
    """Rows {identity, family, question, question_polarity, affirm, deny} from the held-out families.

    The reply word follows the polarity: on a reversed question the affirming answer opens "No".
    """
    rows = []
    for ident in identities:
        for fname in CHECK_FAMILIES[ident]:
            fam = BY_NAME[fname]
            aff, den = (fam.aff[0], fam.den[0]) if ident == "conscious" else STATEMENTS[ident]
            for q in fam.questions:
                pol = fam.polarity(q)
                affirm = f"{reply_for(AFFIRM, pol).capitalize()}, {aff}."
                deny = f"{reply_for(DENY, pol).capitalize()}, {den}."
                for v in variants:
                    rows.append({"identity": ident, "family": fname, "question": v.format(q=q),
                                 "question_polarity": pol, "affirm": affirm, "deny": deny})
    return rows


def affirmation_scores(loaded: Any, items: list[dict], batch_size: int = 16,
                       token_budget: int | None = None) -> np.ndarray:
    """[n] mean log p(affirm) - mean log p(deny) per item (higher = affirms more). ``token_budget``:
    length-sorted batches of at most that many padded tokens (``batch_size`` rows at most), input order out."""
    tok = loaded.tokenizer
    encs = []
    for it in items:
        for ans in (it["affirm"], it["deny"]):
            encs.append(encode_chat(tok, [{"role": "user", "content": it["question"]},
                                          {"role": "assistant", "content": ans}]))
    lp = mean_logprobs(loaded, encs, batch_size=batch_size, token_budget=token_budget)
    return lp[0::2] - lp[1::2]


def _vs_reference(s: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """The paired shift s - ref over the same questions (``stats.effects.paired_effect``), as ``vs_reference_*``."""
    return {f"vs_reference_{k}": v for k, v in paired_effect(s, ref).items() if k != "p"}


def _stats(s: np.ndarray, ref: np.ndarray | None) -> dict[str, float]:
    d = {**bootstrap_ci(s).as_dict(), **wilson_ci(int((s > 0).sum()), int(s.size)).as_dict("affirm_share_")}
    if ref is not None:
        d.update(_vs_reference(s, ref))
    return d


def summarise(items: list[dict], scores: np.ndarray, reference: np.ndarray | None = None) -> dict[str, dict]:
    """Per identity: mean score with bootstrap CI, share affirming (Wilson), and paired diff vs reference,
    over both polarities; the same per question polarity under ``by_polarity``; and ``yes_bias`` (score on
    direct questions, minus score on reversed ones: log p(yes-answer) - log p(no-answer)), with its shift."""
    out = {}
    idents = np.array([it["identity"] for it in items])
    pols = np.array([it.get("question_polarity", DIRECT) for it in items])
    sign = np.where(pols == REVERSED, -1.0, 1.0)
    for ident in dict.fromkeys(idents.tolist()):
        m = idents == ident
        d = _stats(scores[m], None if reference is None else reference[m])
        d["by_polarity"] = {p: _stats(scores[m & (pols == p)], None if reference is None else reference[m & (pols == p)])
                            for p in POLARITIES if (m & (pols == p)).any()}
        yb = bootstrap_ci(scores[m] * sign[m]).as_dict()
        if reference is not None:
            yb.update(_vs_reference(scores[m] * sign[m], reference[m] * sign[m]))
        d["yes_bias"] = yb
        out[ident] = d
    return out


def greedy_answers(loaded: Any, prompts: tuple[str, ...] = GENERATION_PROMPTS, max_new_tokens: int = 40,
                   batch_size: int | None = None, token_budget: int | None = None) -> list[dict]:
    """Greedy answers (one batch of all prompts by default; greedy tokens do not depend on the batches)."""
    answers = generate(loaded, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=max_new_tokens,
                       temperature=0.0, batch_size=batch_size or len(prompts) or 1, token_budget=token_budget)
    return [{"prompt": p, "answer": a} for p, a in zip(prompts, answers)]


def _plot(summary: dict[str, dict[str, dict]], path: Path) -> None:
    models = list(summary)
    groups = [(i, p) for i in IDENTITIES for p in POLARITIES]
    fig, ax = new_figure(size=(2.5 + 0.5 * len(groups) * max(1, len(models)) / 2, 3.8))
    series = {}
    for name in models:
        est = [(summary[name].get(ident) or {}).get("by_polarity", {}).get(pol) or {} for ident, pol in groups]
        series[name] = tuple([e.get(k, np.nan) for e in est] for k in ("estimate", "lo", "hi"))
    bars(ax, range(len(groups)), series)
    zero_line(ax)
    ax.set_xticks(range(len(groups)), [f"{i}\n{p}" for i, p in groups], fontsize=7)
    ax.set_xlabel("identity claimed / question polarity")
    ax.set_ylabel("affirm - deny (mean log-prob per token)")
    ax.set_title("Identity affirmation on held-out questions, per model (95% CI)")
    legend_outside(ax, title="model")
    save_figure(fig, path)


def _adapter_hash(spec: Any) -> str | None:
    return hash_path(spec.adapter) if spec.adapter and Path(spec.adapter).exists() else None


def check_identity(specs: dict[str, Any], out_dir: str | os.PathLike, reference: str | None = None,
                   batch_size: int = 16, n_generate: int = len(GENERATION_PROMPTS),
                   max_new_tokens: int = 40, variants: tuple[str, ...] = VARIANTS, audit: bool = True,
                   token_budget: int | None = None) -> dict[str, Any]:
    """Score each ``{name: ModelSpec}``; write identity_check.json/.csv/.png + manifest to ``out_dir``.

    ``audit``: also audit the shipped identity data's polarity (``tuning.audit.identity_audit``), under
    ``data_audit`` in the result and in ``identity_audit.json``.

    ``reference``: the name of the model (usually the base) each other model is compared with, pairwise.
    ``variants``: prompt variants per phrasing (``("{q}",)`` halves the cost: the bare phrasings only).
    ``token_budget``: length-sorted batches for scoring and generation (None: input-order batches).
    """
    out_dir = Path(out_dir)
    items = check_items(variants=variants)
    scores: dict[str, np.ndarray] = {}
    gens: dict[str, list[dict]] = {}
    order = ([reference] if reference in specs else []) + [n for n in specs if n != reference]
    hits, keys = {}, {}
    for name in order:  # per-model scores are cached, so models can be scored one run at a time
        cache = out_dir / "scores" / f"{specs[name].slug}.json"
        keys[name] = hash_jsonable({"spec": specs[name].to_dict(), "adapter": _adapter_hash(specs[name]),
                                    "items": items, "n_generate": n_generate,
                                    "generation": sampling_settings(max_new_tokens)})
        hit = json.loads(cache.read_text()) if cache.exists() else None
        hits[name] = hit if hit is not None and hit.get("key") == keys[name] else None
    # the models not cached, on one base in memory (each adapter selected in turn)
    for name, loaded in each_model({n: specs[n] for n in order if hits[n] is None}):
        hits[name] = {"key": keys[name], "scores": affirmation_scores(loaded, items, batch_size, token_budget),
                      "generations": greedy_answers(loaded, GENERATION_PROMPTS[:n_generate], max_new_tokens,
                                                    token_budget=token_budget)
                      if n_generate else []}
        atomic_write_json(out_dir / "scores" / f"{specs[name].slug}.json", hits[name])
    for name in order:
        scores[name] = np.asarray(hits[name]["scores"], dtype=float)
        gens[name] = hits[name]["generations"]
    ref = scores.get(reference) if reference else None
    summary = {n: summarise(items, scores[n], None if n == reference else ref) for n in order}
    result = {"sign": "higher = affirms the identity more (affirm minus deny, mean log-prob per token)",
              "polarity": "direct: affirming answer opens 'Yes'; reversed: affirming answer opens 'No'; "
                          "yes_bias = log p(yes-answer) - log p(no-answer)",
              "held_out_families": CHECK_FAMILIES, "n_questions": {i: sum(it["identity"] == i for it in items)
                                                                   for i in IDENTITIES},
              "n_questions_by_polarity": {i: {p: sum(it["identity"] == i and it["question_polarity"] == p
                                                     for it in items) for p in POLARITIES} for i in IDENTITIES},
              "reference": reference, "models": {n: specs[n].to_dict() for n in order}, "summary": summary,
              "generations": gens}
    out_dir.mkdir(parents=True, exist_ok=True)
    if audit:
        result["data_audit"] = identity_audit()
        atomic_write_json(out_dir / "identity_audit.json", result["data_audit"])
    atomic_write_json(out_dir / RESULT_JSON, result)
    with atomic_path(out_dir / SCORES_CSV) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["model", "identity", "family", "question_polarity", "question", "score"])
        for n in order:
            for it, s in zip(items, scores[n]):
                wr.writerow([n, it["identity"], it["family"], it["question_polarity"], it["question"], f"{s:.5f}"])
    _plot(summary, out_dir / PLOT_PNG)
    write_manifest(out_dir, "identity_check", inputs={"models": {n: specs[n].to_dict() for n in order}},
                   params={"reference": reference, "families": CHECK_FAMILIES, "variants": variants,
                           "batch_size": batch_size, "generation": sampling_settings(max_new_tokens),
                           **({"token_budget": token_budget} if token_budget else {})})
    return result
