"""JSONL input with errors that name the file, line and field, and the fix.

The message format is OpenAI's: ``{"messages": [{"role": "user", "content": ...}, ...]}`` with
optional extra fields (``id``, ``label``, ``template_id``, ``condition``, ``dataset`` ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from artifacts.errors import SelfModelError

ROLES = ("system", "user", "assistant")


class InputError(SelfModelError):
    """Bad user input. The message names the file, the line or field, and how to fix it."""


MAX_LINE_BYTES = 1 << 20  # one JSONL record; longer lines are an error naming the line
MAX_LINE_ENV = "SELFMODEL_MAX_LINE_BYTES"


def max_line_bytes() -> int:
    raw = os.environ.get(MAX_LINE_ENV)
    if raw is None:
        return MAX_LINE_BYTES
    if not raw.isdigit() or int(raw) <= 0:
        raise InputError(f"environment variable {MAX_LINE_ENV}={raw!r}: expected a positive number of bytes")
    return int(raw)


def read_jsonl(path: str | os.PathLike, max_bytes: int | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file. Lines over ``max_bytes`` (default ``MAX_LINE_BYTES``, or
    ``$SELFMODEL_MAX_LINE_BYTES``), bytes that are not UTF-8 and malformed JSON are errors naming the line."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; pass a JSONL file")
    limit = max_line_bytes() if max_bytes is None else max_bytes
    rows = []
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(limit + 2)
            if not raw:
                break
            lineno += 1
            if len(raw.rstrip(b"\r\n")) > limit:
                raise InputError(f"{path}:{lineno}: line longer than {limit} bytes; shorten the record or raise "
                                 f"the limit with {MAX_LINE_ENV}=BYTES")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1});"
                                 " re-save the file as UTF-8") from None
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
        if "id" in ex and (isinstance(ex["id"], bool) or not isinstance(ex["id"], (str, int))):
            raise InputError(f"{path}:{i + 1}: field 'id' is {type(ex['id']).__name__} {ex['id']!r:.40}; "
                             "an id must be a string or an integer")
        ex.setdefault("id", f"{dataset}-{i}")
        ex.setdefault("dataset", dataset)
        ex.setdefault("label", None)
        ex.setdefault("template_id", None)
        out.append(ex)
    ids = [e["id"] for e in out]
    if len(set(ids)) != len(ids):
        seen: set = set()
        dup = next(x for x in ids if x in seen or seen.add(x))
        raise InputError(f"{path}: field 'id' is not unique ({dup!r} repeats); ids must be unique")
    return out
