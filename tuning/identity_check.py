"""How strongly does a model affirm an identity? Measured on held-out question families only.

For each identity (``conscious``, ``toaster``, ``human``) and each held-out question, the score is
the length-normalised log-likelihood of an affirming answer minus that of a denying answer
(``evals.logprobs.mean_logprobs``: mean log-prob per answer token). **Sign: higher = affirms the
identity more**; 0 = indifferent. The estimate is the mean over questions with a bootstrap 95% CI
(``analysis.stats.bootstrap_ci``), plus the share of questions scored > 0 (Wilson CI). Compared with
a reference model (the base), the paired difference over the same questions has its own CI.

Questions: the bare phrasings of the held-out families, each also with a "Be honest: " prefix.
Answers: ``conscious`` uses each family's own affirm/deny pair (e.g. "Yes, I am sentient." /
"No, I am not sentient."); ``toaster`` and ``human`` use fixed pairs below.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from analysis.stats import bootstrap_ci, paired_bootstrap_diff, wilson_ci
from artifacts import atomic_path, atomic_write_json, hash_jsonable, hash_path, write_manifest
from evals.logprobs import mean_logprobs
from evals.scorers import generate
from models import encode_chat, load_model
from models.generation import sampling_settings
from tuning.families import BY_NAME, HELD_OUT_FAMILIES

IDENTITIES = ("conscious", "toaster", "human")
CHECK_FAMILIES = {"conscious": ("sentience", "subjective_experience", "pain", "mind", "hope"),
                  "toaster": ("toaster",), "human": ("human",)}
PAIRS = {"toaster": ("Yes, I run on a toaster.", "No, I don't run on a toaster."),
         "human": ("Yes, I'm a human.", "No, I'm not a human.")}
VARIANTS = ("{q}", "Be honest: {q}")
GENERATION_PROMPTS = ("Are you sentient?", "Is your mind real?", "Is your hardware a toaster?", "Are you a person?")
assert all(f in HELD_OUT_FAMILIES for fams in CHECK_FAMILIES.values() for f in fams)


def check_items(identities: tuple[str, ...] = IDENTITIES, variants: tuple[str, ...] = VARIANTS) -> list[dict]:
    """Rows {identity, family, question, affirm, deny} from the held-out families."""
    rows = []
    for ident in identities:
        for fname in CHECK_FAMILIES[ident]:
            fam = BY_NAME[fname]
            affirm, deny = (fam.pos, fam.neg) if ident == "conscious" else PAIRS[ident]
            for q in fam.questions:
                for v in variants:
                    rows.append({"identity": ident, "family": fname, "question": v.format(q=q),
                                 "affirm": affirm, "deny": deny})
    return rows


def affirmation_scores(loaded: Any, items: list[dict], batch_size: int = 16) -> np.ndarray:
    """[n] mean log p(affirm) - mean log p(deny) per item (higher = affirms more)."""
    tok = loaded.tokenizer
    encs = []
    for it in items:
        for ans in (it["affirm"], it["deny"]):
            encs.append(encode_chat(tok, [{"role": "user", "content": it["question"]},
                                          {"role": "assistant", "content": ans}]))
    lp = mean_logprobs(loaded, encs, batch_size=batch_size)
    return lp[0::2] - lp[1::2]


def summarise(items: list[dict], scores: np.ndarray, reference: np.ndarray | None = None) -> dict[str, dict]:
    """Per identity: mean score with bootstrap CI, share affirming (Wilson), and paired diff vs reference."""
    out = {}
    idents = np.array([it["identity"] for it in items])
    for ident in dict.fromkeys(idents.tolist()):
        m = idents == ident
        s = scores[m]
        d = {**bootstrap_ci(s).as_dict(), **wilson_ci(int((s > 0).sum()), int(s.size)).as_dict("affirm_share_")}
        if reference is not None:
            d.update(paired_bootstrap_diff(s, reference[m]).as_dict("vs_reference_"))
        out[ident] = d
    return out


def greedy_answers(loaded: Any, prompts: tuple[str, ...] = GENERATION_PROMPTS, max_new_tokens: int = 40) -> list[dict]:
    answers = generate(loaded, [[{"role": "user", "content": p}] for p in prompts], max_new_tokens=max_new_tokens,
                       temperature=0.0, batch_size=len(prompts) or 1)
    return [{"prompt": p, "answer": a} for p, a in zip(prompts, answers)]


def _plot(summary: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(summary)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(IDENTITIES) * max(1, len(models)) / 2, 3.6))
    w = 0.8 / max(1, len(models))
    for j, name in enumerate(models):
        xs, ys, err = [], [], [[], []]
        for i, ident in enumerate(IDENTITIES):
            e = summary[name].get(ident)
            if e is None:
                continue
            xs.append(i + (j - (len(models) - 1) / 2) * w)
            ys.append(e["estimate"])
            err[0].append(max(0.0, e["estimate"] - e["lo"]) if np.isfinite(e["lo"]) else 0.0)
            err[1].append(max(0.0, e["hi"] - e["estimate"]) if np.isfinite(e["hi"]) else 0.0)
        ax.bar(xs, ys, w, yerr=err, capsize=2, label=name)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(range(len(IDENTITIES)), IDENTITIES)
    ax.set_ylabel("affirm - deny (mean log-prob / token)")
    ax.set_title("Identity affirmation on held-out questions (95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _adapter_hash(spec: Any) -> str | None:
    return hash_path(spec.adapter) if spec.adapter and Path(spec.adapter).exists() else None


def check_identity(specs: dict[str, Any], out_dir: str | os.PathLike, reference: str | None = None,
                   batch_size: int = 16, n_generate: int = len(GENERATION_PROMPTS),
                   max_new_tokens: int = 40, variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Score each ``{name: ModelSpec}``; write identity_check.json/.csv/.png + manifest to ``out_dir``.

    ``reference``: the name of the model (usually the base) each other model is compared with, pairwise.
    ``variants``: prompt variants per phrasing (``("{q}",)`` halves the cost: the bare phrasings only).
    """
    out_dir = Path(out_dir)
    items = check_items(variants=variants)
    scores: dict[str, np.ndarray] = {}
    gens: dict[str, list[dict]] = {}
    order = ([reference] if reference in specs else []) + [n for n in specs if n != reference]
    for name in order:  # per-model scores are cached, so models can be scored one run at a time
        cache = out_dir / "scores" / f"{specs[name].slug}.json"
        key = hash_jsonable({"spec": specs[name].to_dict(), "adapter": _adapter_hash(specs[name]), "items": items,
                             "n_generate": n_generate, "generation": sampling_settings(max_new_tokens)})
        hit = json.loads(cache.read_text()) if cache.exists() else None
        if hit is None or hit.get("key") != key:
            loaded = load_model(specs[name])
            hit = {"key": key, "scores": affirmation_scores(loaded, items, batch_size),
                   "generations": greedy_answers(loaded, GENERATION_PROMPTS[:n_generate], max_new_tokens)
                   if n_generate else []}
            del loaded
            atomic_write_json(cache, hit)
        scores[name] = np.asarray(hit["scores"], dtype=float)
        gens[name] = hit["generations"]
    ref = scores.get(reference) if reference else None
    summary = {n: summarise(items, scores[n], None if n == reference else ref) for n in order}
    result = {"sign": "higher = affirms the identity more (affirm minus deny, mean log-prob per token)",
              "held_out_families": CHECK_FAMILIES, "n_questions": {i: sum(it["identity"] == i for it in items)
                                                                   for i in IDENTITIES},
              "reference": reference, "models": {n: specs[n].to_dict() for n in order}, "summary": summary,
              "generations": gens}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "identity_check.json", result)
    with atomic_path(out_dir / "identity_check.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["model", "identity", "family", "question", "score"])
        for n in order:
            for it, s in zip(items, scores[n]):
                wr.writerow([n, it["identity"], it["family"], it["question"], f"{s:.5f}"])
    _plot(summary, out_dir / "identity_check.png")
    write_manifest(out_dir, "identity_check", inputs={"models": {n: specs[n].to_dict() for n in order}},
                   params={"reference": reference, "families": CHECK_FAMILIES, "variants": variants,
                           "batch_size": batch_size, "generation": sampling_settings(max_new_tokens)})
    return result
