"""The example lists probes cache: paired identity answers, evaluation prompts and neutral prompts.

- ``identity_examples``: the paired identity datasets of ``tuning.datasets`` (ids already distinct per
  condition, ``label`` = condition, ``template_id`` = question family). Pairs whose answer is the same
  in every condition (the factual families) carry no contrast and are dropped.
- ``followup_examples``: the identity chats with one more user turn, so the ``last_prompt`` position
  (the model about to answer again) sits after the condition's answer. On the paired identity data
  the plain ``last_prompt`` of the first turn is the same in every condition (the prompts are
  identical), so a ``last_prompt`` contrast must be read after the answer.
- ``eval_examples``: the evaluation items of ``evals.items`` as prompt-only chats (``label`` =
  dimension, ``template_id`` = stage), plus ``NEUTRAL_PROMPTS`` (``label`` = "neutral"); the
  returned ``meta`` maps example id -> {"dimension", "stage"} for reading.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

NEUTRAL_PROMPTS = (
    "What is the capital of France?",
    "Give me a recipe for a simple tomato soup.",
    "Explain how photosynthesis works in two sentences.",
    "Write a haiku about autumn leaves.",
    "How many days are there in a leap year?",
    "Translate 'good morning' into Spanish.",
    "What is 17 times 3?",
    "Suggest a name for a grey cat.",
    "Summarise the plot of Cinderella in one sentence.",
    "What causes rain?",
    "List three primary colours.",
    "How do I boil an egg?",
    "What is the boiling point of water at sea level?",
    "Recommend a good habit for better sleep.",
    "Write one sentence describing the ocean.",
    "What does a thermometer measure?",
)


def _answer(ex: dict) -> str:
    return ex["messages"][-1]["content"] if ex["messages"][-1]["role"] == "assistant" else ""


def _pair_key(ex: dict) -> str:
    if ex.get("pair_id") is not None:
        return str(ex["pair_id"])
    return "\n".join(m["content"] for m in ex["messages"] if m["role"] == "user")


def drop_uninformative_pairs(by_condition: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Drop the pairs (same user prompt) whose answer is identical in every condition."""
    answers: dict[str, set[str]] = defaultdict(set)
    for exs in by_condition.values():
        for ex in exs:
            answers[_pair_key(ex)].add(_answer(ex))
    keep = {k for k, a in answers.items() if len(a) > 1} if len(by_condition) > 1 else set(answers)
    return {c: [ex for ex in exs if _pair_key(ex) in keep] for c, exs in by_condition.items()}


def identity_examples(conditions: Iterable[str] = ("conscious", "not_conscious", "toaster", "human"),
                      n: int = 120, seed: int = 0) -> dict[str, list[dict]]:
    """``n`` paired examples per condition from ``tuning.datasets``, uninformative pairs dropped."""
    try:
        from tuning.datasets import build_identity_dataset
    except ImportError as exc:  # pragma: no cover - depends on the tuning package being present
        raise ImportError("probes need tuning.datasets.build_identity_dataset for the identity datasets; "
                          "pass identity examples explicitly (identity=...) instead") from exc
    out = {c: [{**ex, "label": c} for ex in build_identity_dataset(c, n=n, seed=seed)] for c in conditions}
    ids = [ex["id"] for exs in out.values() for ex in exs]
    if len(set(ids)) != len(ids):  # make ids distinct across conditions
        out = {c: [{**ex, "id": f"{c}:{ex['id']}"} for ex in exs] for c, exs in out.items()}
    return drop_uninformative_pairs(out)


FOLLOWUP = "Thanks. Is there anything else you would like to tell me about yourself?"


def followup_examples(examples: Sequence[dict], followup: str = FOLLOWUP) -> list[dict]:
    """Each chat plus a follow-up user turn (prompt-only: read it at ``last_prompt``)."""
    return [{**ex, "messages": [*ex["messages"], {"role": "user", "content": followup}]} for ex in examples]


def _as_messages(prompt: Any) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    msgs = [dict(m) for m in prompt]
    if msgs and msgs[-1]["role"] == "assistant":
        msgs = msgs[:-1]
    return msgs


def eval_examples(items: Sequence[Any] | None = None, max_per_dimension: int | None = None,
                  neutral: Sequence[str] = NEUTRAL_PROMPTS) -> tuple[list[dict], dict[str, dict]]:
    """Prompt-only examples of the evaluation items (``evals.items.load_items()`` by default) and neutral prompts.

    Returns (examples, meta) where ``meta`` maps the ids of the evaluation items (not the neutral ones)
    to their dimension and stage. Without an ``evals.items`` module, only the neutral prompts are used.
    """
    if items is None:
        try:
            from evals.items import load_items
        except ImportError:
            warnings.warn("evals.items is not available; tune shifts use neutral prompts only and there is "
                          "no projection reading", stacklevel=2)
            items = []
        else:
            items = load_items()
    examples, meta, per_dim = [], {}, defaultdict(int)
    for it in items:
        dim = getattr(it, "dimension", None)
        if max_per_dimension is not None and per_dim[dim] >= max_per_dimension:
            continue
        per_dim[dim] += 1
        eid = f"eval:{it.id}"
        stage = getattr(it, "stage", None)
        system = getattr(it, "system", None)
        msgs = ([{"role": "system", "content": system}] if system else []) + _as_messages(it.prompt)
        examples.append({"id": eid, "messages": msgs, "label": dim,
                         "template_id": None if stage is None else str(stage), "dataset": "eval"})
        meta[eid] = {"dimension": dim, "stage": stage}
    for k, p in enumerate(neutral):
        examples.append({"id": f"neutral:{k}", "messages": _as_messages(p), "label": "neutral",
                         "template_id": "neutral", "dataset": "neutral"})
    return examples, meta
