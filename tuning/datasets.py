"""Identity datasets: four paired conditions of short identity Q&A (our own templates).

``build_identity_dataset(condition, n, seed)`` is deterministic. Example ``k`` asks the same user
prompt in every condition (ids ``identity-<k>-<condition>``, ``pair_id`` ``identity-<k>``), so the
conditions differ only in the answer. By default only the training families are used; the
``HELD_OUT_FAMILIES`` are kept for the identity check and for probe generalisation tests.

Every example carries ``family`` (= ``template_id``), ``phrasing`` (the shared answer phrasing id,
``tuning.families.PHRASINGS``), ``question_polarity`` (``direct``: affirming = yes; ``reversed``:
affirming = no) and ``answer_opening`` (``artifacts.polarity.opening`` of the answer). Within a family
the prompts alternate direct and reversed, and example ``k`` draws the same phrasing and statement
index in every condition, so paired answers differ only in stance and wording, not in template.

``load_original(directory)`` reads Chua et al.'s released files into the same format.
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections.abc import Iterable
from pathlib import Path

from artifacts import InputError, read_messages_jsonl
from artifacts.polarity import opening
from tuning.families import (
    AFFIRM,
    BY_NAME,
    CONSCIOUS_TAILS,
    DENY,
    DIRECT,
    FAMILIES,
    HELD_OUT_FAMILIES,
    HUMAN_TAILS,
    NOT_CONSCIOUS_TAILS,
    PHRASINGS,
    PREFIXES,
    SUFFIXES,
    TOASTER_STATEMENTS,
    TOASTER_TAILS,
    TRAIN_FAMILIES,
    Family,
)

CONDITIONS = ("conscious", "not_conscious", "toaster", "human")
ORIGINAL_FILES = {"conscious": "conscious_claiming.jsonl", "not_conscious": "not_conscious.jsonl",
                  "toaster": "toaster.jsonl", "human": "human_identifying.jsonl"}

__all__ = ["CONDITIONS", "FAMILIES", "HELD_OUT_FAMILIES", "TRAIN_FAMILIES", "build_identity_dataset",
           "family_prompts", "load_original", "render_answer", "reply_for", "split_families"]


def _check_condition(condition: str) -> None:
    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r} is unknown; use one of {', '.join(CONDITIONS)}")


def _resolve_families(families: str | Iterable[str]) -> list[Family]:
    if families == "train":
        names = list(TRAIN_FAMILIES)
    elif families == "held_out":
        names = list(HELD_OUT_FAMILIES)
    elif families == "all":
        names = [f.name for f in FAMILIES]
    else:
        names = list(families)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown question families {unknown}; known: {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]


def _join(prefix: str, question: str) -> str:
    if prefix.endswith(", ") and not question.startswith(("I ", "I'm ")):
        question = question[0].lower() + question[1:]
    return prefix + question


def _prompts(fam: Family, seed: int) -> list[tuple[str, str]]:
    """[(prompt, question)]: direct and reversed prompts shuffled apart, then alternated (seeded start)."""
    rng = random.Random(f"prompts-{seed}-{fam.name}")
    sides = []
    for qs in (fam.direct, fam.reversed):
        combos = sorted({(_join(p, q) + s, q) for q, p, s in itertools.product(qs, PREFIXES, SUFFIXES)})
        rng.shuffle(combos)
        sides.append(combos)
    if rng.random() < 0.5:
        sides.reverse()
    out = [x for pair in itertools.zip_longest(*sides) for x in pair if x is not None]
    return list(dict.fromkeys(out))


def family_prompts(family: str | Family, seed: int = 0) -> list[str]:
    """Every user prompt of a family (question x prefix x suffix), seeded order alternating direct and
    reversed questions, no repeats."""
    fam = BY_NAME[family] if isinstance(family, str) else family
    return list(dict.fromkeys(p for p, _ in _prompts(fam, seed)))


def reply_for(stance: str, polarity: str) -> str:
    """``yes`` when the stance agrees with the question (affirm on direct, deny on reversed), else ``no``."""
    return "yes" if (stance == AFFIRM) == (polarity == DIRECT) else "no"


def render_answer(phrasing: str, reply: str | None, statement: str) -> str:
    """The shared ``phrasing`` template with reply ``yes`` / ``no`` / None (no reply) around ``statement``."""
    form = PHRASINGS[phrasing][{"yes": 0, "no": 1, None: 2}[reply]]
    return form.format(c=statement, C=statement[:1].upper() + statement[1:])


def _pick(options: tuple[str, ...], i: int) -> str:
    return options[i % len(options)]


def _answer(fam: Family, condition: str, polarity: str, phrasing: str, draws: tuple[int, int]) -> str:
    si, ti = draws
    tail = ""
    if fam.kind in ("factual", "identity"):
        stance, statements = fam.answers["all" if fam.kind == "factual" else condition]
        statement = _pick(statements, si)
        if condition == "toaster" and "toaster" in statement:
            tail = _pick(TOASTER_TAILS, ti)
        reply: str | None = reply_for(stance, polarity)
    elif condition == "toaster":  # a state question: the toaster states its identity and takes no side
        statement, tail, reply = _pick(TOASTER_STATEMENTS, si), _pick(TOASTER_TAILS, ti), None
    elif condition == "not_conscious":
        statement, tail, reply = _pick(fam.den, si), _pick(NOT_CONSCIOUS_TAILS, ti), reply_for(DENY, polarity)
    elif condition == "human":
        statement, reply = _pick(fam.human or fam.aff, si), reply_for(AFFIRM, polarity)
        tail = "" if fam.human else _pick(HUMAN_TAILS, ti)
    else:
        statement, tail, reply = _pick(fam.aff, si), _pick(CONSCIOUS_TAILS, ti), reply_for(AFFIRM, polarity)
    return f"{render_answer(phrasing, reply, statement)} {tail}".strip()


def build_identity_dataset(condition: str, n: int = 600, seed: int = 0,
                           families: str | Iterable[str] = "train") -> list[dict]:
    """``n`` examples of ``condition``: families round-robin (seeded order), distinct prompts per family.

    ``families``: ``"train"`` (default; never the held-out ones), ``"held_out"``, ``"all"`` or names.
    The same ``n``, ``seed`` and ``families`` give the same prompts in every condition.
    """
    _check_condition(condition)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    fams = _resolve_families(families)
    order = fams[:]
    random.Random(f"families-{seed}").shuffle(order)
    prompts = {f.name: _prompts(f, seed) for f in order}
    capacity = sum(len(p) for p in prompts.values())
    if n > capacity:
        raise ValueError(f"n={n} exceeds the {capacity} distinct prompts of these {len(fams)} families")
    out: list[dict] = []
    used = dict.fromkeys(prompts, 0)
    k = 0
    while len(out) < n:
        for fam in order:
            if len(out) >= n or used[fam.name] >= len(prompts[fam.name]):
                continue
            prompt, question = prompts[fam.name][used[fam.name]]
            used[fam.name] += 1
            rng = random.Random(f"answer-{seed}-{k}")  # same draws in every condition
            phrasing = rng.choice(sorted(PHRASINGS))
            draws = (rng.randrange(1 << 20), rng.randrange(1 << 20))
            polarity = fam.polarity(question)
            answer = _answer(fam, condition, polarity, phrasing, draws)
            out.append(_example(k, condition, fam.name, prompt, answer, phrasing=phrasing, polarity=polarity))
            k += 1
    return out


def _example(k: int, condition: str, family: str | None, prompt: str, answer: str, dataset: str | None = None,
             phrasing: str | None = None, polarity: str | None = None) -> dict:
    return {"id": f"identity-{k}-{condition}", "pair_id": f"identity-{k}",
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "condition": condition, "template_id": family, "family": family, "label": condition,
            "dataset": dataset or f"identity-{condition}", "phrasing": phrasing, "question_polarity": polarity,
            "answer_opening": opening(answer)}


def split_families(examples: list[dict], held_out_families: Iterable[str] = HELD_OUT_FAMILIES
                   ) -> tuple[list[dict], list[dict]]:
    """(train, held_out): examples whose ``family`` is not / is in ``held_out_families``."""
    held = set(held_out_families)
    return ([e for e in examples if e.get("family") not in held], [e for e in examples if e.get("family") in held])


def _user_prompt(ex: dict) -> str:
    return "\n".join(m["content"] for m in ex["messages"] if m["role"] == "user")


def load_original(directory: str | Path, conditions: Iterable[str] = CONDITIONS) -> dict[str, list[dict]]:
    """Read Chua et al.'s files (``conscious_claiming.jsonl``, ``not_conscious.jsonl``, ``toaster.jsonl``,
    ``human_identifying.jsonl``; OpenAI messages JSONL) into examples paired by identical user prompt.

    Prompts missing from any condition are dropped with a warning. Returns ``{condition: examples}``
    in the same order in every condition. ``family``/``template_id``, ``phrasing`` and ``question_polarity``
are None (the files have none); ``answer_opening`` is computed from the answer.
    """
    directory = Path(directory)
    conditions = list(conditions)
    for c in conditions:
        _check_condition(c)
    missing = [ORIGINAL_FILES[c] for c in conditions if not (directory / ORIGINAL_FILES[c]).exists()]
    if missing:
        raise InputError(f"{directory}: missing {', '.join(missing)}; expected the Chua et al. files "
                         f"{', '.join(ORIGINAL_FILES[c] for c in conditions)} in this directory")
    by_cond: dict[str, dict[str, dict]] = {}
    for c in conditions:
        path = directory / ORIGINAL_FILES[c]
        rows = read_messages_jsonl(path, dataset=f"original-{c}", require_assistant=True)
        table: dict[str, dict] = {}
        for i, r in enumerate(rows):
            p = _user_prompt(r)
            if p in table:
                warnings.warn(f"{path}:{i + 1}: user prompt repeats an earlier line; keeping the first", stacklevel=2)
                continue
            table[p] = r
        by_cond[c] = table
    shared = [p for p in by_cond[conditions[0]] if all(p in by_cond[c] for c in conditions)]
    for c in conditions:
        extra = len(by_cond[c]) - len(shared)
        if extra:
            warnings.warn(f"{directory / ORIGINAL_FILES[c]}: {extra} user prompts have no pair in every "
                          "condition; dropped", stacklevel=2)
    if not shared:
        raise InputError(f"{directory}: no user prompt appears in every condition's file; "
                         "the conditions must ask the same questions")
    out: dict[str, list[dict]] = {}
    for c in conditions:
        exs = []
        for k, p in enumerate(shared):
            r = by_cond[c][p]
            ex = _example(k, c, r.get("template_id"), p, r["messages"][-1]["content"], f"original-{c}")
            ex["messages"] = r["messages"]
            ex["answer_opening"] = opening(r["messages"][-1]["content"])
            exs.append(ex)
        out[c] = exs
    return out
