"""Named presets with overrides: the one mechanism behind every ``profile`` setting.

Two stages have profiles, and they are different things: the *tuning profile* (``tuning.profiles``,
``[tune] profile``) is the training recipe (data size, LoRA rank, learning rate ...), a plain dict that
enters the tune's cache key; the *scoring profile* (``steering.experiment.ScoringProfile``,
``[steering] profile``) is how much the steering and ablation experiments score. Both are looked up and
overridden here, so a name means the same kind of thing everywhere: a preset, and keyword overrides where
``None`` means "keep the preset's value".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def preset(presets: Mapping[str, T], choice: str | T, what: str, **overrides: Any) -> T:
    """The preset named ``choice`` (or ``choice`` itself when it is already a preset value) with the
    non-None ``overrides`` applied: ``dataclasses.replace`` for a dataclass, a new dict for a dict.
    ``what`` names the setting in the error for an unknown name."""
    if isinstance(choice, str):
        if choice not in presets:
            raise ValueError(f"unknown profile {choice!r} for {what}; use one of {', '.join(presets)}")
        base = presets[choice]
    else:
        base = choice
    kept = {k: v for k, v in overrides.items() if v is not None}
    if dataclasses.is_dataclass(base) and not isinstance(base, type):
        return dataclasses.replace(base, **kept)
    return {**base, **kept}
