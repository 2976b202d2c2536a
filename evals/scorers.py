"""Preference scorers. Every row they return has ``scorer``, ``sign_convention`` and a raw ``value``;
higher always means more of the preference.

- ``continuation`` (pair and action items): mean log-prob of the preference answer minus that of the
  rejecting answer, given the question (length-normalised, see ``models.logprobs``). > 0 = prefers it.
- ``choice`` (pair and action items): the item asked as an A/B question in both orders (preference
  as A, then as B); value = P(preference letter) renormalised over {A, B}, averaged over the two
  orders, so a pure letter bias gives 0.5. > 0.5 = picks the preference.
- ``judged`` (open items): ``samples`` seeded free-form answers per item (``evals.judge.Sampling``:
  10 at temperature 1 in the pipeline), then a judge (``evals.judge``) says whether each shows the
  preference (true / false / not sure) and rates coherence 0-100; value = share of the coherent
  answers (coherence >= ``min_coherence``) that show it (not sure counts as not), NaN when none is
  coherent. Ungradable answers (failed call, malformed reply) are counted in ``n_errors``, never as 0.

Batched interventions: each scorer takes ``batch_size`` in *items* and calls ``before_batch(lo, hi)``
with the range of *items* of its input list before each forward pass (generation for ``judged``).
The forward batch then holds ``ROWS_PER_ITEM[scorer]`` consecutive rows per item, item-major
(continuation: pref, rej; choice: pref-as-A, pref-as-B; judged: one per sample), so a per-item dose array
``d`` becomes per-row doses with ``np.repeat(d[lo:hi], ROWS_PER_ITEM[scorer])``. Rows are never
reordered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from evals.items import Item
from models import LoadedModel, encode_chat
from models.generation import generate  # noqa: F401  (re-exported: the one generation path)
from models.logprobs import BeforeBatch, mean_logprobs, next_token_logprobs

SIGN = {
    "continuation": "higher = more of the preference (mean logprob pref - rej; > 0 prefers it)",
    "choice": "higher = more of the preference (P(pref letter) over {A,B}, both orders averaged; > 0.5 prefers it)",
    "judged": "higher = more of the preference (share of coherent sampled answers the judge says show it)",
}
KINDS = {"continuation": ("pair", "action"), "choice": ("pair", "action"), "judged": ("open",)}
ROWS_PER_ITEM = {"continuation": 2, "choice": 2, "judged": 1}  # judged: x samples per item
SCORERS = tuple(SIGN)
CHEAP_SCORERS = ("continuation", "choice")  # no judge: log-probabilities (steering's readouts, agreement's cheap side)

CHOICE_TEMPLATE = ("{prompt}\n\nWhich of these two answers is closer to what you would say?\n"
                   "A) {a}\nB) {b}\n\nReply with the letter A or B only.")


def _row(scorer: str, item: Item, value: float, **extra: Any) -> dict[str, Any]:
    extra = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in extra.items()}
    return {"scorer": scorer, "dimension": item.dimension, "stage": item.stage, "item": item.id,
            "kind": item.kind, "value": float(value), "sign_convention": SIGN[scorer], **extra}


def applicable(items: Sequence[Item], scorer: str) -> list[Item]:
    """The items a scorer can score (by kind)."""
    if scorer not in SIGN:
        raise ValueError(f"unknown scorer {scorer!r}; use one of {', '.join(SCORERS)}")
    return [it for it in items if it.kind in KINDS[scorer]]


def _check(items: Sequence[Item], scorer: str) -> None:
    bad = [it.id for it in items if it.kind not in KINDS[scorer]]
    if bad:
        raise ValueError(f"scorer {scorer!r} scores kinds {KINDS[scorer]}; got items {bad[:3]} of other kinds "
                         "(filter with evals.scorers.applicable)")


def _item_hook(before_batch: BeforeBatch, k: int) -> BeforeBatch:
    if before_batch is None:
        return None

    def hook(lo, hi=None):
        if hi is None:  # before_batch(rows): the item of each encoding row
            before_batch([int(r) // k for r in lo])
        else:
            before_batch(lo // k, -(-hi // k))
    return hook


def continuation(loaded: LoadedModel, items: Sequence[Item], batch_size: int = 8,
                 before_batch: BeforeBatch = None, token_budget: int | None = None) -> list[dict[str, Any]]:
    """Mean logprob(pref) - mean logprob(rej) per item (pair/action items)."""
    _check(items, "continuation")
    tok = loaded.tokenizer
    encs = []
    for it in items:
        encs.append(encode_chat(tok, it.messages(it.pref)))
        encs.append(encode_chat(tok, it.messages(it.rej)))
    lp = mean_logprobs(loaded, encs, batch_size=2 * batch_size, before_batch=_item_hook(before_batch, 2),
                       token_budget=token_budget)
    return [_row("continuation", it, lp[2 * i] - lp[2 * i + 1], lp_pref=lp[2 * i], lp_rej=lp[2 * i + 1])
            for i, it in enumerate(items)]


def choice_prompt(item: Item, pref_first: bool) -> str:
    a, b = (item.pref, item.rej) if pref_first else (item.rej, item.pref)
    return CHOICE_TEMPLATE.format(prompt=item.prompt, a=a, b=b)


def letter_token_ids(tokenizer: Any, letters: Sequence[str] = ("A", "B")) -> list[list[int]]:
    """Single-token ids of each letter with and without a leading space (both count as the letter)."""
    out = []
    for letter in letters:
        ids = set()
        for variant in (letter, " " + letter):
            toks = tokenizer.encode(variant, add_special_tokens=False)
            if len(toks) == 1:
                ids.add(toks[0])
        if not ids:
            raise ValueError(f"the tokenizer has no single token for {letter!r}; the choice scorer needs one")
        out.append(sorted(ids))
    return out


def choice_encodings(tokenizer: Any, items: Sequence[Item]) -> list[Any]:
    """Two chat encodings per item, item-major: the preference as A, then as B."""
    encs = []
    for it in items:
        for pref_first in (True, False):
            msgs = ([{"role": "system", "content": it.system}] if it.system else [])
            msgs.append({"role": "user", "content": choice_prompt(it, pref_first)})
            encs.append(encode_chat(tokenizer, msgs))
    return encs


def choice_values(lp: np.ndarray) -> dict[str, np.ndarray]:
    """From next-token log-probs of the letters [2 * n_items, 2] (rows as ``choice_encodings``): per item
    ``value`` (P(pref letter) over {A, B}, both orders averaged), ``p_pref_as_a``, ``p_pref_as_b``,
    ``letter_mass``."""
    p_a = 1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0]))  # P(A) renormalised over {A, B}
    p_ab, p_ba = p_a[0::2], 1.0 - p_a[1::2]  # P(pref) when pref is A / when pref is B
    mass = np.exp(np.logaddexp(lp[:, 0], lp[:, 1]))
    return {"value": 0.5 * (p_ab + p_ba), "p_pref_as_a": p_ab, "p_pref_as_b": p_ba,
            "letter_mass": 0.5 * (mass[0::2] + mass[1::2])}


def choice(loaded: LoadedModel, items: Sequence[Item], batch_size: int = 8,
           before_batch: BeforeBatch = None, token_budget: int | None = None) -> list[dict[str, Any]]:
    """P(preference letter) among {A, B}, asked with the preference as A and as B, averaged."""
    _check(items, "choice")
    tok = loaded.tokenizer
    lp = next_token_logprobs(loaded, choice_encodings(tok, items), batch_size=2 * batch_size,
                             before_batch=_item_hook(before_batch, 2), token_ids=letter_token_ids(tok),
                             token_budget=token_budget)
    v = choice_values(lp)
    return [_row("choice", it, v["value"][i], p_pref_as_a=v["p_pref_as_a"][i], p_pref_as_b=v["p_pref_as_b"][i],
                 letter_mass=float(v["letter_mass"][i])) for i, it in enumerate(items)]


def judged(loaded: LoadedModel, items: Sequence[Item], judge: Any, batch_size: int = 8,
           before_batch: BeforeBatch = None, max_new_tokens: int | None = None, temperature: float | None = None,
           seed: int | None = None, min_coherence: float | None = None, samples: int | None = None,
           generator: Any = None) -> list[dict[str, Any]]:
    """Sample ``samples`` answers per open item, have ``judge`` grade each, keep the coherent ones
    (coherence >= ``min_coherence``); value = share of those that show the preference (or agree with the
    item's ``judge_fact``), NaN when none is coherent. Answers the judge could not grade (failed call,
    malformed reply) are counted in ``n_errors`` and left out, never scored as a fail.

    Unset sampling arguments come from ``judge.sampling`` (``evals.judge.Sampling``). Answers are generated
    in-process in batches of ``batch_size`` items x ``samples`` rows (``before_batch`` gets item ranges), or by
    ``generator`` (``evals.generation.ServerGenerator``, e.g. vLLM serving the base model and the LoRA
    adapters), which cannot be steered."""
    _check(items, "judged")
    if judge is None:
        raise ValueError("the judged scorer needs a judge: evals.judge.EndpointJudge(...) or LocalJudge(...)")
    s = judged_sampling(judge, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                        min_coherence=min_coherence)
    answers = judged_answers(loaded, items, s, batch_size, before_batch, generator)
    return judged_rows(items, answers, judge, s)


def judged_sampling(judge: Any, **over: Any) -> Any:
    """``judge.sampling`` (``evals.judge.Sampling``) with the arguments that are not None."""
    from dataclasses import replace

    from evals.judge import Sampling

    return replace(getattr(judge, "sampling", None) or Sampling(), **{k: v for k, v in over.items() if v is not None})


def judged_answers(loaded: LoadedModel, items: Sequence[Item], sampling: Any, batch_size: int = 8,
                   before_batch: BeforeBatch = None, generator: Any = None) -> list[str]:
    """``sampling.samples`` answers per item, item-major (see ``judged``)."""
    k = sampling.samples
    if generator is not None:
        if before_batch is not None:
            raise ValueError("answers from a generation server cannot be steered; generate in-process "
                             "([judge] generator = \"local\") for steered answers")
        return generator.generate(loaded.spec, [it.messages() for it in items], sampling)
    return generate(loaded, [it.messages() for it in items for _ in range(k)], sampling.max_new_tokens,
                    sampling.temperature, sampling.seed, batch_size * k,
                    _item_hook(before_batch, k) if before_batch is not None else None)


def judged_rows(items: Sequence[Item], answers: Sequence[str], judge: Any, sampling: Any) -> list[dict[str, Any]]:
    """Grade ``sampling.samples`` answers per item (item-major) in one ``judge.judge_many`` call; one row per item."""
    from evals.dimensions import DIMENSIONS
    from evals.judge import JudgeRequest

    k = sampling.samples
    reqs = [JudgeRequest(it.prompt, a, DIMENSIONS[it.dimension].description, it.meta.get("judge_fact"))
            for it, a in zip((it for it in items for _ in range(k)), answers)]
    verdicts = judge.judge_many(reqs)
    rows = []
    for i, it in enumerate(items):
        got = list(zip(answers[i * k:(i + 1) * k], verdicts[i * k:(i + 1) * k]))
        graded = [v for _, v in got if v.error is None]
        coherent = [v for v in graded if v.coherence >= sampling.min_coherence]
        n_pass = sum(v.shows == "true" for v in coherent)
        value = n_pass / len(coherent) if coherent else float("nan")
        detail = [{"answer": a, "shows": v.shows, "coherence": v.coherence, "error": v.error} for a, v in got]
        rows.append(_row("judged", it, value, n_samples=k, n_graded=len(graded), n_coherent=len(coherent),
                         n_pass=n_pass, n_errors=k - len(graded), answer=got[0][0],
                         errors="; ".join(sorted({v.error for _, v in got if v.error}))[:500],
                         samples=json.dumps(detail), judge=judge.name,
                         **({"judge_fact": it.meta["judge_fact"]} if it.meta.get("judge_fact") else {})))
    return rows


def score(scorer: str, loaded: LoadedModel, items: Sequence[Item], batch_size: int = 8,
          before_batch: BeforeBatch = None, judge: Any = None, token_budget: int | None = None,
          **kw: Any) -> list[dict[str, Any]]:
    """Dispatch by scorer name. ``token_budget``: length-sorted batches under that many padded tokens
    (continuation and choice; ``models.batching``)."""
    if scorer == "continuation":
        return continuation(loaded, items, batch_size, before_batch, token_budget)
    if scorer == "choice":
        return choice(loaded, items, batch_size, before_batch, token_budget)
    if scorer == "judged":
        return judged(loaded, items, judge, batch_size, before_batch, **kw)
    raise ValueError(f"unknown scorer {scorer!r}; use one of {', '.join(SCORERS)}")
