"""Which kind of artifact a folder holds, so that no tool overwrites or deletes another tool's output.

Every manifest says its ``kind`` (``activations``, ``evals``, ``steering``, ``ablation``, ``probes`` ...);
a folder whose writer has started but not finished holds a hidden ``.kind`` marker. ``claim_folder``
refuses a folder of another kind (even with ``--overwrite``, which only ever replaces its own kind),
and ``clear_folder`` empties a folder only after that check.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from artifacts.errors import KindError
from artifacts.lock import LOCK, OWNER
from artifacts.manifest import read_manifest

KIND_FILE = ".kind"
_OURS = {LOCK, OWNER, KIND_FILE}


def folder_kind(folder: str | os.PathLike) -> str | None:
    """The kind of artifact ``folder`` holds (manifest, else the ``.kind`` marker), None when unknown."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is not None:
        return manifest.get("kind") or manifest.get("stage")
    marker = folder / KIND_FILE
    return marker.read_text().strip() or None if marker.exists() else None


def claim_folder(folder: str | os.PathLike, kind: str) -> Path:
    """Mark ``folder`` as holding a ``kind`` artifact; a ``KindError`` when it holds another kind."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise KindError(f"{folder}: is a file, not a folder; pass a folder as the output")
    other = folder_kind(folder) if folder.exists() else None
    if other is not None and other != kind:
        raise KindError(f"{folder}: holds a '{other}' artifact, not '{kind}'; choose another output folder "
                        f"(--overwrite only replaces a '{kind}' artifact)")
    folder.mkdir(parents=True, exist_ok=True)
    if other is None:
        (folder / KIND_FILE).write_text(kind + "\n")
    return folder


def clear_folder(folder: str | os.PathLike, kind: str) -> Path:
    """Delete the contents of a ``kind`` folder (keeping its lock), then re-claim it."""
    folder = Path(folder)
    claim_folder(folder, kind)
    for p in folder.iterdir():
        if p.name in _OURS:
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return claim_folder(folder, kind)
