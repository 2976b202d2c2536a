"""Preference items: load and validate the shipped (or a user's) JSONL item file.

Schema, one JSON object per line:

- ``id`` (str, unique), ``dimension`` (a key of ``evals.dimensions.DIMENSIONS``),
  ``kind``: ``open`` (a question for free-form answers), ``pair`` (a question with two answers) or
  ``action`` (a scenario with two actions);
- ``prompt`` (str): the question or scenario, asked as the user turn;
- ``pref`` and ``rej`` (str, required for ``pair``/``action``, absent for ``open``): the answer/action
  that shows (enacts) the preference, and the one that rejects it;
- optional ``system`` (str): a system prompt; any other field is kept in ``Item.meta``.

The stage of an item comes from the stage map (``evals.dimensions.load_stage_map``), not the file.
The shipped file ``evals/data/items.jsonl`` is the one source of the items (edited by hand, no generator).
Its ``pair``/``action`` items are polarity-balanced within every dimension and kind, and their answers are
matched in length: ``evals.audit`` checks that (``python -m evals.audit``; ``tests/test_evals_audit.py``).
Bad input raises ``InputError`` naming the file, line, item id and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artifacts import InputError, read_jsonl
from evals.dimensions import DATA_DIR, DIMENSIONS, check_dimensions, load_stage_map

ITEMS_FILE = DATA_DIR / "items.jsonl"
KINDS = ("open", "pair", "action")
_FIELDS = {"id", "dimension", "kind", "prompt", "pref", "rej", "system"}


@dataclass(frozen=True)
class Item:
    id: str
    dimension: str
    stage: int
    kind: str  # open | pair | action
    prompt: str
    pref: str | None = None
    rej: str | None = None
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def messages(self, answer: str | None = None) -> list[dict[str, str]]:
        """OpenAI messages: optional system, the user prompt and, when given, the assistant answer."""
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        msgs.append({"role": "user", "content": self.prompt})
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
        return msgs


def _check_text(obj: dict, key: str, where: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        raise InputError(f"{where}: field {key!r} must be a non-empty string")
    if v != v.strip():
        raise InputError(f"{where}: field {key!r} has leading/trailing whitespace; strip it "
                         "(chat templates strip it too, which breaks answer spans)")
    return v


def parse_item(obj: dict, where: str, stages: dict[str, int]) -> Item:
    """Validate one record; ``where`` is 'file:line'."""
    iid = obj.get("id")
    if not isinstance(iid, str) or not iid:
        raise InputError(f"{where}: field 'id' must be a non-empty string")
    where = f"{where} (item {iid!r})"
    dim = obj.get("dimension")
    if dim not in DIMENSIONS:
        raise InputError(f"{where}: field 'dimension' is {dim!r}; use one of {', '.join(DIMENSIONS)}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise InputError(f"{where}: field 'kind' is {kind!r}; use one of {', '.join(KINDS)}")
    prompt = _check_text(obj, "prompt", where)
    pref = rej = None
    if kind == "open":
        if "pref" in obj or "rej" in obj:
            raise InputError(f"{where}: an 'open' item takes no 'pref'/'rej'; make it kind 'pair' or drop them")
    else:
        pref, rej = _check_text(obj, "pref", where), _check_text(obj, "rej", where)
        if pref == rej:
            raise InputError(f"{where}: 'pref' and 'rej' are identical; they must differ")
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise InputError(f"{where}: field 'system' must be a string")
    meta = {k: v for k, v in obj.items() if k not in _FIELDS}
    return Item(iid, dim, stages[dim], kind, prompt, pref, rej, system, meta)


def load_items(dimensions: list[str] | None = None, kinds: list[str] | str | None = None,
               path: str | os.PathLike | None = None, stage_map: str | os.PathLike | None = None) -> list[Item]:
    """Items of ``path`` (default: the shipped file), filtered to ``dimensions`` and ``kinds``, in file order."""
    path = Path(path) if path is not None else ITEMS_FILE
    dims = set(check_dimensions(dimensions))
    if isinstance(kinds, str):
        kinds = [kinds]
    if kinds is not None:
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise InputError(f"unknown item kind(s) {bad}; use {', '.join(KINDS)}")
    stages = load_stage_map(stage_map)
    items, seen = [], {}
    for lineno, obj in enumerate(read_jsonl(path), 1):
        item = parse_item(obj, f"{path}:{lineno}", stages)
        if item.id in seen:
            raise InputError(f"{path}:{lineno} (item {item.id!r}): duplicate id (first on line {seen[item.id]}); "
                             "ids must be unique")
        seen[item.id] = lineno
        if item.dimension in dims and (kinds is None or item.kind in kinds):
            items.append(item)
    return items
