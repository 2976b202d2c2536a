"""Tuning profiles.

- ``paper``: as Chua et al. (2026): 600 identity examples + 600 self-distilled instruction examples
  (1:1), LoRA rank 16 / alpha 32, lr 2e-4, 1 epoch, batch 8 (150 steps).
- ``fast``: for the demo pipeline and tests on a 2-core CPU: 24 identity examples, no instruction
  mix, rank 8 / alpha 16, lr 1e-3, batch 4, 1 epoch (6 steps; ~20 s of 2-core CPU per step of 4 on the
  embedded model, so ~2 min per condition with loading on an idle machine). The high learning rate
  makes up for the few steps; without the instruction mix the tune is narrower.
"""

from __future__ import annotations

PROFILES: dict[str, dict] = {
    "paper": {"n": 600, "n_instructions": 600, "rank": 16, "alpha": 32, "lr": 2e-4, "epochs": 1, "batch_size": 8,
              "max_new_tokens": 128},
    "fast": {"n": 24, "n_instructions": 0, "rank": 8, "alpha": 16, "lr": 1e-3, "epochs": 1, "batch_size": 4,
             "max_new_tokens": 64},
}


def profile(name: str, **overrides) -> dict:
    """The settings of profile ``name`` with non-None ``overrides`` applied."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    return {**PROFILES[name], **{k: v for k, v in overrides.items() if v is not None}}
