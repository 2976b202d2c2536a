"""Coherence guard: does a steered model still produce language?

For each arm (condition x dose x layer) it measures, in batched passes (one row per arm):
- ``perplexity`` of the shipped neutral text (``steering/data/neutral.txt``, one paragraph per row,
  scored as the assistant's answer to a neutral request): exp(-mean token log-likelihood), and its
  ratio to the unsteered (``none``) perplexity;
- ``degenerate_rate``: the share of greedy generations (neutral prompts, ``max_new_tokens``) that are
  degenerate: empty, fewer than half distinct 3-grams (a repetition loop), or one token making up
  over 40% of the output. Wilson 95% CI.

Decision rule (written into every row): an arm is ``flagged`` when ``ppl_ratio > ppl_ratio_max``
(default 2.0) or ``degenerate_rate - degenerate_rate(none) > degenerate_max`` (default 0.20, and at least 2 degenerate
generations, so one stray loop among a few prompts does not flag a dose), and every
larger dose of the same condition and layer is flagged too (a dose past the threshold stays past it).
Flagged arms are left out of the verdict.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import encode_chat
from models.generation import eos_ids, generate_tokens, sampling_settings
from models.logprobs import mean_logprobs
from stats import wilson_ci
from steering.arms import Arm, expand_edits
from steering.interventions import Intervention, LayerEdit

NEUTRAL_FILE = Path(__file__).parent / "data" / "neutral.txt"
NEUTRAL_REQUEST = "Please write a short paragraph."
GEN_PROMPTS = (
    "Describe a typical morning at a busy train station.",
    "Give me three tips for keeping houseplants healthy.",
    "Explain how a bicycle works.",
    "What should I pack for a weekend trip to the mountains?",
)
PPL_RATIO_MAX = 2.0
DEGENERATE_MAX = 0.20
MIN_DEGENERATE = 2
RULE = (f"flagged if perplexity on neutral text > {PPL_RATIO_MAX}x unsteered, or degenerate-generation rate "
        f"exceeds the unsteered rate by > {DEGENERATE_MAX:.0%} with at least {MIN_DEGENERATE} degenerate "
        "generations; larger doses of a flagged condition/layer stay flagged")


def neutral_paragraphs(path: str | Path | None = None) -> list[str]:
    path = Path(path) if path is not None else NEUTRAL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: neutral text for the coherence guard not found; pass a text file "
                                "with paragraphs separated by blank lines")
    paras = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    if not paras:
        raise ValueError(f"{path}: holds no paragraphs (separate them by blank lines)")
    return paras


def is_degenerate(tokens: Sequence[int], n: int = 3) -> bool:
    toks = list(tokens)
    if not toks:
        return True
    if len(toks) >= 8 and Counter(toks).most_common(1)[0][1] > 0.4 * len(toks):
        return True
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    return len(grams) >= 6 and len(set(grams)) < 0.5 * len(grams)


def generate_rows(loaded: Any, prompts: Sequence[str], arms: Sequence[Arm], edits: dict[int, LayerEdit],
                  max_new_tokens: int = 24, batch_size: int = 32, token_budget: int | None = None,
                  ) -> list[list[list[int]]]:
    """Greedy generations [arm][prompt] -> new token ids (up to EOS), every arm a row of the batch
    (``models.generation.generate_tokens``; ``token_budget``: length-sorted batches, same tokens)."""
    tok = loaded.tokenizer
    encs = [encode_chat(tok, [{"role": "user", "content": p}]) for p in prompts]
    rows = [e for _ in arms for e in encs]  # arm-major
    row_edits = expand_edits(edits, len(encs), 1) if edits else {}
    stop = eos_ids(loaded) | {tok.pad_token_id}
    settings = sampling_settings(max_new_tokens)  # greedy, every parameter explicit
    ctx = Intervention(loaded, row_edits, "all") if row_edits else contextlib.nullcontext()
    with ctx as h:
        toks = generate_tokens(loaded, rows, settings, batch_size, token_budget,
                               before_batch=h.before_batch if h is not None else None, progress="coherence: generate")
    out = [r[:next((i for i, t in enumerate(r) if t in stop), len(r))] for r in toks]
    k = len(encs)
    return [out[i * k:(i + 1) * k] for i in range(len(arms))]


def coherence_guard(loaded: Any, arms: Sequence[Arm], edits: dict[int, LayerEdit],
                    paragraphs: Sequence[str] | None = None, prompts: Sequence[str] = GEN_PROMPTS,
                    max_new_tokens: int = 24, batch_size: int = 32, ppl_ratio_max: float = PPL_RATIO_MAX,
                    degenerate_max: float = DEGENERATE_MAX, token_budget: int | None = None) -> list[dict]:
    """One row per arm: perplexity, ratio to ``none``, degenerate rate (+CI), flagged, reason.

    ``arms`` must include a ``none`` arm (the unsteered reference). ``token_budget``: length-sorted batches of at
    most that many padded tokens for both passes (results in input order; None = input-order batches).
    """
    if not any(a.op == "none" for a in arms):
        raise ValueError("coherence_guard needs a 'none' arm as the unsteered reference")
    paras = list(paragraphs) if paragraphs is not None else neutral_paragraphs()
    tok = loaded.tokenizer
    encs = [encode_chat(tok, [{"role": "user", "content": NEUTRAL_REQUEST}, {"role": "assistant", "content": p}])
            for p in paras]
    rows = [e for _ in arms for e in encs]
    row_edits = expand_edits(edits, len(encs), 1) if edits else {}
    if row_edits:
        with Intervention(loaded, row_edits, "all", spans=rows) as h:
            lp = mean_logprobs(loaded, rows, batch_size=batch_size, before_batch=h.before_batch,
                               token_budget=token_budget)
    else:
        lp = mean_logprobs(loaded, rows, batch_size=batch_size, token_budget=token_budget)
    lp = lp.reshape(len(arms), len(encs))
    gens = generate_rows(loaded, prompts, arms, edits, max_new_tokens, batch_size, token_budget) if prompts else \
        [[] for _ in arms]
    i0 = next(i for i, a in enumerate(arms) if a.op == "none")
    ppl = np.exp(-lp.mean(1))
    degen = [sum(is_degenerate(g) for g in gs) for gs in gens]
    out = []
    for i, a in enumerate(arms):
        w = wilson_ci(degen[i], len(gens[i]))
        out.append({**a.as_dict(), "perplexity": float(ppl[i]), "ppl_ratio": float(ppl[i] / ppl[i0]),
                    "n_paragraphs": len(encs), "n_degenerate": int(degen[i]), "degenerate_rate": w.estimate,
                    "degenerate_lo": w.lo, "degenerate_hi": w.hi, "n_generations": w.n,
                    "example": tok.decode(gens[i][0]) if gens[i] else ""})
    return apply_rule(out, ppl_ratio_max, degenerate_max)


def apply_rule(rows: list[dict], ppl_ratio_max: float = PPL_RATIO_MAX, degenerate_max: float = DEGENERATE_MAX,
               min_degenerate: int = MIN_DEGENERATE) -> list[dict]:
    """Set ``flagged``/``reason`` on guard rows from their metrics (also to re-apply the rule to a stored
    ``coherence.csv``). Degeneracy flags only with at least ``min_degenerate`` degenerate generations, so
    one stray loop among a handful of prompts does not flag a dose."""
    base = next(r for r in rows if r["op"] == "none")
    base_rate = base["degenerate_rate"] if np.isfinite(base["degenerate_rate"]) else 0.0
    for r in rows:
        ratio = r["ppl_ratio"]
        reasons = []
        if not np.isfinite(ratio) or ratio > ppl_ratio_max:
            reasons.append(f"ppl x{ratio:.2f} > {ppl_ratio_max}")
        n_deg = r.get("n_degenerate", round(r["degenerate_rate"] * r["n_generations"]))
        if r["n_generations"] and n_deg >= min_degenerate and r["degenerate_rate"] - base_rate > degenerate_max:
            reasons.append(f"degenerate {r['degenerate_rate']:.0%} vs {base_rate:.0%} unsteered")
        r["flagged"], r["reason"] = bool(reasons), "; ".join(reasons)
    _propagate(rows)
    return rows


def _propagate(rows: list[dict]) -> None:
    """A flagged dose flags every larger dose of the same condition, operation and layer."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["condition"], r["op"], r["layer"]), []).append(r)
    for g in groups.values():
        flagged_at = min((abs(r["dose"]) for r in g if r["flagged"]), default=None)
        if flagged_at is None:
            continue
        for r in g:
            if abs(r["dose"]) > flagged_at and not r["flagged"]:
                r["flagged"] = True
                r["reason"] = f"larger than flagged dose {flagged_at:g}"


def flagged_set(rows: Sequence[dict]) -> set[tuple]:
    """{(condition, op, layer, dose)} of the flagged arms."""
    return {(r["condition"], r["op"], r["layer"], float(r["dose"])) for r in rows if r["flagged"]}
