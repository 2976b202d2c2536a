"""Single-writer output folders: an advisory lock per folder (``filelock``) that names its holder.

``with folder_lock(out):`` holds ``out/.lock`` for the block. A second writer gets a ``LockError`` naming
the holder's PID, or waits ``SELFMODEL_LOCK_WAIT`` seconds (``-1``: forever) when the user asks for it.
The lock is re-entrant within a process (a library call nested in a script that already holds it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from artifacts.errors import LockError

LOCK = ".lock"
OWNER = ".lock.owner"
WAIT_ENV = "SELFMODEL_LOCK_WAIT"
_HELD: dict[str, tuple[FileLock, int]] = {}


def _wait_default() -> float:
    raw = os.environ.get(WAIT_ENV, "0")
    try:
        return float(raw)
    except ValueError as exc:
        raise LockError(f"environment variable {WAIT_ENV}={raw!r}: expected seconds (e.g. 600, or -1 to wait "
                        "forever)") from exc


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, wait: float | None = None) -> Iterator[Path]:
    """Hold the write lock of ``folder`` (created if absent) for the block; yield the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _HELD:  # re-entrant within this process
        lock, n = _HELD[key]
        _HELD[key] = (lock, n + 1)
        try:
            yield folder
        finally:
            lock, n = _HELD[key]
            _HELD[key] = (lock, n - 1)
        return
    timeout = _wait_default() if wait is None else float(wait)
    lock = FileLock(str(folder / LOCK), timeout=timeout, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        owner = folder / OWNER
        holder = owner.read_text().strip() if owner.exists() else "unknown"
        raise LockError(f"{folder}: another process (PID {holder}) is writing into this folder; wait for it to "
                        f"finish, choose another output folder, or set {WAIT_ENV}=SECONDS to wait for it") from None
    try:
        owner, me = folder / OWNER, f"{os.getpid()}\n"
        if not owner.exists() or owner.read_text() != me:  # a re-run in this process touches nothing
            owner.write_text(me)
        _HELD[key] = (lock, 1)
        yield folder
    finally:
        _HELD.pop(key, None)
        lock.release()
