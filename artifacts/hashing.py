"""Content hashes (sha256, hex) of files, directories and JSON-able values.

Manifests name their inputs by these hashes, so a stage can tell whether its inputs changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from artifacts.manifest import MANIFEST

_CHUNK = 1 << 20


def hash_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def hash_path(path: str | os.PathLike, exclude: tuple[str, ...] = (MANIFEST,)) -> str:
    """Hash a file, or a directory's files (names and contents, sorted; hidden and tmp files skipped)."""
    path = Path(path)
    if path.is_file():
        return hash_file(path)
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if not p.is_file() or p.name in exclude or p.name.startswith(".") or p.suffix == ".tmp":
            continue
        h.update(rel.encode())
        h.update(hash_file(p).encode())
    return h.hexdigest()


def hash_jsonable(obj: Any) -> str:
    from artifacts.atomic import to_jsonable

    data = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
