"""Tuning profiles: the training recipe of an identity tune (``[tune] profile``). Not the steering
experiments' scoring profile (``steering.experiment.ScoringProfile``); both are named presets looked up by
``artifacts.presets.preset``. A tuning profile is a plain dict: it enters the tune's cache key as is.

- ``paper``: as Chua et al. (2026): 600 identity examples + 600 self-distilled instruction examples
  (1:1), LoRA rank 16 / alpha 32, lr 2e-4, 1 epoch, batch 8 (150 steps).
- ``fast``: for the demo pipeline on a 2-core CPU: 160 identity examples, no instruction mix, rank 8 /
  alpha 16, lr 1e-3, batch 8, 1 epoch (20 steps; ~2.7 s per step of 8 on the embedded model on an idle
  2-core machine, so about a minute per condition). The high learning rate makes up for the few steps;
  without the instruction mix the tune is narrower. Tests pass ``n``/``batch_size`` overrides.
"""

from __future__ import annotations

from artifacts.presets import preset

PROFILES: dict[str, dict] = {
    "paper": {"n": 600, "n_instructions": 600, "rank": 16, "alpha": 32, "lr": 2e-4, "epochs": 1, "batch_size": 8,
              "max_new_tokens": 128},
    "fast": {"n": 160, "n_instructions": 0, "rank": 8, "alpha": 16, "lr": 1e-3, "epochs": 1, "batch_size": 8,
             "max_new_tokens": 64},
}


def profile(name: str, **overrides) -> dict:
    """The settings of profile ``name`` with non-None ``overrides`` applied."""
    return preset(PROFILES, name, "tuning ([tune] profile)", **overrides)
