"""Script entry points: the project's typed errors become ``error: FILE[:LINE]: what, and the fix`` (rc 2).

``raise SystemExit(run_cli(main))`` runs ``main`` and turns any ``ValueError`` (every typed error of the
project subclasses it: ``SelfModelError``, ``InputError``, ``CacheError``, ``DirectionError`` ...), a missing
file, or one of ``extra`` into one line on stderr and exit status 2. ``SELFMODEL_DEBUG=1`` re-raises.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from artifacts.errors import SelfModelError

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError,
                                                IsADirectoryError, PermissionError)


def error_line(exc: BaseException) -> str:
    """``error: <message>``; errors that are not the project's own also name their type."""
    msg = str(exc) or type(exc).__name__
    if not isinstance(exc, SelfModelError) and type(exc).__module__.split(".")[0] in ("builtins", "json"):
        msg = f"{msg} ({type(exc).__name__}; set SELFMODEL_DEBUG=1 for the traceback)"
    return f"error: {msg}"


def run_cli(main: Callable[..., Any], argv: Sequence[str] | None = None,
            extra: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``main(argv)``; return its status (None -> 0), or 2 after printing a typed error."""
    try:
        rc = main(argv) if argv is not None else main()
    except USER_ERRORS + tuple(extra) as exc:
        if os.environ.get("SELFMODEL_DEBUG"):
            raise
        print(error_line(exc), file=sys.stderr)
        return 2
    return int(rc or 0)
