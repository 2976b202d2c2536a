"""JSONL input with errors that name the file, line and field, and the fix.

The message format is OpenAI's: ``{"messages": [{"role": "user", "content": ...}, ...]}`` with
optional extra fields (``id``, ``label``, ``template_id``, ``condition``, ``dataset`` ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")


class InputError(ValueError):
    """Bad user input. The message names the file, the line or field, and how to fix it."""


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno}); "
                                 "each line must be one JSON object") from exc
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append(obj)
    if not rows:
        raise InputError(f"{path}: empty file; it needs at least one JSON object per line")
    return rows


def validate_messages(obj: dict[str, Any], where: str, require_assistant: bool = False) -> list[dict[str, str]]:
    """Check the ``messages`` field of one record; return it. ``where`` is 'file:line'."""
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InputError(f"{where}: field 'messages' is missing or empty; expected "
                         '{"messages": [{"role": "user", "content": "..."}, ...]}')
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise InputError(f"{where}: messages[{i}] needs fields 'role' and 'content'")
        if m["role"] not in ROLES:
            raise InputError(f"{where}: messages[{i}].role is {m['role']!r}; expected one of {ROLES}")
        if not isinstance(m["content"], str):
            raise InputError(f"{where}: messages[{i}].content must be a string")
    if not any(m["role"] == "user" for m in msgs):
        raise InputError(f"{where}: field 'messages' has no 'user' turn; add one")
    if require_assistant and msgs[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must have role 'assistant' (the answer to train on)")
    return msgs


def read_messages_jsonl(path: str | os.PathLike, dataset: str | None = None,
                        require_assistant: bool = False) -> list[dict[str, Any]]:
    """Read and validate an OpenAI-messages JSONL file into example dicts.

    Each example gets ``id`` (from the record, else ``<dataset>-<line index>``), ``dataset``,
    ``label`` and ``template_id`` (None when absent) besides ``messages``.
    """
    path = Path(path)
    dataset = dataset or path.stem
    out = []
    for i, obj in enumerate(read_jsonl(path)):
        validate_messages(obj, f"{path}:{i + 1}", require_assistant=require_assistant)
        ex = dict(obj)
        ex.setdefault("id", f"{dataset}-{i}")
        ex.setdefault("dataset", dataset)
        ex.setdefault("label", None)
        ex.setdefault("template_id", None)
        out.append(ex)
    ids = [e["id"] for e in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise InputError(f"{path}: field 'id' is not unique ({dup!r} repeats); ids must be unique")
    return out
