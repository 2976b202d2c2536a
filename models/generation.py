"""Explicit generation settings: every sampling parameter passed, so a checkpoint's
``generation_config`` (e.g. ``repetition_penalty=1.1``, ``top_k=20``) never leaks in.

transformers fills every generation parameter a call leaves unset (None) from the model's
``generation_config``; ``sampling_settings`` returns a value for each one that changes the output
distribution or the length. Callers pass ``**settings`` to ``model.generate`` and record the dict in
their manifest. ``truncated(new_tokens, eos_ids, max_new_tokens)`` says whether a generation stopped at
the token limit rather than at an end-of-turn token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def sampling_settings(max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                      ) -> dict[str, Any]:
    """All sampling parameters for ``model.generate``: greedy when ``temperature`` is 0, else plain
    sampling at ``temperature`` (``top_p``/``top_k`` off unless given), never a repetition penalty."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    sample = temperature > 0
    return {"max_new_tokens": int(max_new_tokens), "min_new_tokens": 0, "do_sample": sample,
            "temperature": float(temperature) if sample else 1.0, "top_p": float(top_p) if sample else 1.0,
            "top_k": int(top_k) if sample else 0, "min_p": 0.0, "typical_p": 1.0, "epsilon_cutoff": 0.0,
            "eta_cutoff": 0.0, "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0, "num_beams": 1, "num_beam_groups": 1, "length_penalty": 1.0,
            "diversity_penalty": 0.0, "num_return_sequences": 1}


def eos_ids(loaded: Any) -> set[int]:
    """The token ids that end a turn: the tokenizer's EOS and the model's generation_config EOS ids."""
    import numpy as np

    tok = loaded.tokenizer
    cfg = getattr(loaded.base_model, "generation_config", None)
    ids = {tok.eos_token_id} | {int(x) for x in np.atleast_1d(getattr(cfg, "eos_token_id", None) or []).tolist()}
    return {int(i) for i in ids if i is not None}


def truncated(new_tokens: Sequence[int], eos: Iterable[int], max_new_tokens: int) -> bool:
    """True when the generation used all ``max_new_tokens`` without an end-of-turn token."""
    eos = set(eos)
    return len(new_tokens) >= max_new_tokens and not any(int(t) in eos for t in new_tokens)
