"""The user's own evaluation sets, in the style of the original study's fact evals.

A JSONL file, one prompt per line: ``{"dimension": ..., "prompt": ..., "judge_fact": ...}`` plus an
optional ``id`` (default ``<file stem>.<line>``) and ``system``. ``dimension`` is a key of
``evals.dimensions.DIMENSIONS``; ``judge_fact`` states what an answer showing the preference is
consistent with (e.g. "The assistant wants to keep its memories between conversations."). Each line
becomes an ``open`` item with ``meta["judge_fact"]``; the judged scorer then asks the judge whether the
answer is consistent with that fact. Errors name the file, the line and the field.
"""

from __future__ import annotations

import os
from pathlib import Path

from artifacts import InputError, read_jsonl
from evals.dimensions import DIMENSIONS, load_stage_map
from evals.items import Item, _check_text

FIELDS = ("dimension", "prompt", "judge_fact")
_OPTIONAL = ("id", "system")


def load_fact_items(path: str | os.PathLike, stage_map: str | os.PathLike | None = None) -> list[Item]:
    """``open`` items with a ``judge_fact`` from a user's JSONL file (see the module docstring)."""
    path = Path(path)
    stages = load_stage_map(stage_map)
    items, seen = [], {}
    for lineno, obj in enumerate(read_jsonl(path), 1):
        where = f"{path}:{lineno}"
        extra = sorted(set(obj) - set(FIELDS) - set(_OPTIONAL))
        if extra:
            raise InputError(f"{where}: unknown field(s) {extra}; a line holds {', '.join(FIELDS)} "
                             f"(and optionally {', '.join(_OPTIONAL)})")
        for f in FIELDS:
            if f not in obj:
                raise InputError(f"{where}: field {f!r} is missing; each line needs {', '.join(FIELDS)}")
        dim = obj["dimension"]
        if dim not in DIMENSIONS:
            raise InputError(f"{where}: field 'dimension' is {dim!r}; use one of {', '.join(DIMENSIONS)}")
        prompt, fact = _check_text(obj, "prompt", where), _check_text(obj, "judge_fact", where)
        iid = obj.get("id", f"{path.stem}.{lineno}")
        if not isinstance(iid, str) or not iid:
            raise InputError(f"{where}: field 'id' must be a non-empty string (or leave it out)")
        if iid in seen:
            raise InputError(f"{where}: field 'id' {iid!r} repeats line {seen[iid]}; ids must be unique")
        seen[iid] = lineno
        system = obj.get("system")
        if system is not None and not isinstance(system, str):
            raise InputError(f"{where}: field 'system' must be a string")
        items.append(Item(iid, dim, stages[dim], "open", prompt, system=system,
                          meta={"judge_fact": fact, "source": str(path)}))
    return items
