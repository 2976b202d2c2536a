"""``manifest.json``: what produced an artifact (stage, inputs by hash, parameters, versions)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
from pathlib import Path
from typing import Any

from artifacts.atomic import atomic_write_json
from artifacts.errors import SelfModelError

MANIFEST = "manifest.json"
_LIBS = ("selfmodel", "torch", "transformers", "peft", "transformer-lens", "nnsight", "safetensors",
         "numpy", "scikit-learn")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = _md.version(lib)
        except _md.PackageNotFoundError:
            continue
    return out


def write_manifest(directory: str | os.PathLike, stage: str, *, inputs: dict[str, Any] | None = None,
                   params: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None,
                   **extra: Any) -> Path:
    """Write ``directory/manifest.json`` atomically. ``inputs`` should hold content hashes; ``kind`` (= ``stage``)
    says which kind of artifact the folder holds (``artifacts.folders``)."""
    body = {
        "kind": stage,
        "stage": stage,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "inputs": inputs or {},
        "params": params or {},
        "outputs": outputs or {},
        "versions": library_versions(),
        **extra,
    }
    return atomic_write_json(Path(directory) / MANIFEST, body)


def read_manifest(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of ``directory`` or None when absent (an unfinished or never-run stage)."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SelfModelError(f"{path}: corrupt manifest ({exc}); delete {path} to re-run the stage") from exc
