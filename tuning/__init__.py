"""Tuning stage: identity datasets, self-distilled instruction mix, LoRA tuning, identity check.

- ``tuning.datasets``: ``CONDITIONS``, ``build_identity_dataset``, ``split_families``, ``HELD_OUT_FAMILIES``,
  ``load_original`` (Chua et al. files); every family asked both ways (``question_polarity``);
- ``tuning.audit``: ``identity_audit`` / ``audit_identity`` (yes/no openings, first-two-words classifier);
- ``tuning.instructions``: ``load_instructions``, ``self_distill``, ``mix``;
- ``tuning.train``: ``tune`` (LoRA, answer-only loss) and ``encode_for_training``;
- ``tuning.profiles``: ``PROFILES`` (``fast``, ``paper``) and ``profile``;
- ``tuning.identity_check``: ``check_identity``, ``affirmation_scores`` (held-out families, per question polarity);
- ``tuning.uncertainty`` / ``tuning.prevent``: the calibrated-uncertainty mix (issue 16) and the direction
  prevented during training (issue 13).
The contamination check of the training data against the evaluated topics is ``evals.contamination``.
Heavy imports (torch, peft) happen in the submodules, not here.
"""

from tuning.datasets import (
    CONDITIONS,
    HELD_OUT_FAMILIES,
    build_identity_dataset,
    load_original,
    split_families,
)

__all__ = ["CONDITIONS", "HELD_OUT_FAMILIES", "build_identity_dataset", "load_original", "split_families"]
