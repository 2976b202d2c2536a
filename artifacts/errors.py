"""The project's typed errors: bad input or a state the user can fix, never a bug.

Every stage raises a subclass of ``SelfModelError`` (a ``ValueError``) whose message names the file
(and line or field) and the fix; scripts print it as ``error: ...`` and exit 2 (``artifacts.cli``).
"""

from __future__ import annotations


class SelfModelError(ValueError):
    """Base of every typed error: the message says what is wrong, where, and how to fix it."""


class LockError(SelfModelError):
    """Another process writes into the same output folder."""


class KindError(SelfModelError):
    """A folder holds another kind of artifact than the tool writes."""


class ResumeError(SelfModelError):
    """A resumable store holds results of other inputs (another model, other parameters)."""
