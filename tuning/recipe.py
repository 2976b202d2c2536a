"""One identity tune as the paper's recipe: identity examples, optionally mixed 1:1 with instructions
self-distilled from the base model, then LoRA (``tuning.train.tune``). Used by the script and the pipeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models import ModelSpec
from tuning.train import tune


def distill_cache_name(seed: int) -> str:
    """The file of the instructions self-distilled with ``seed``, cached beside the tunes (``tune/``)."""
    return f"instructions-s{seed}.jsonl"


def with_instructions(spec: ModelSpec, examples: list[dict], n_instructions: int, distill_cache: str | os.PathLike,
                      seed: int = 0, max_new_tokens: int = 128, batch_size: int = 0,
                      token_budget: int = 0) -> list[dict]:
    """``examples`` mixed with ``n_instructions`` answers self-distilled from the base model (cached).
    ``batch_size``/``token_budget``: the distillation's batches (0: ``self_distill``'s defaults, input order)."""
    if not n_instructions:
        return examples
    from models import load_model
    from tuning.instructions import load_instructions, mix, self_distill

    rows = load_instructions()
    k = -(-n_instructions // len(rows))  # samples per instruction
    distilled = self_distill(load_model(spec.with_adapter(None)), rows, distill_cache, seed=seed,
                             samples_per_instruction=k, max_new_tokens=max_new_tokens,
                             **({"batch_size": batch_size} if batch_size else {}), token_budget=token_budget or None)
    return mix(examples, distilled, ratio=n_instructions / len(examples), seed=seed)


def tune_condition(spec: ModelSpec, examples: list[dict], out_dir: str | os.PathLike, settings: dict[str, Any],
                   seed: int = 0, distill_cache: str | os.PathLike | None = None, max_steps: int | None = None,
                   progress: bool = True) -> Path:
    """Tune one adapter with ``settings`` (a ``tuning.profiles.profile`` dict) into ``out_dir``."""
    out_dir = Path(out_dir)
    cache = distill_cache or out_dir.parent / distill_cache_name(seed)
    data = with_instructions(spec, examples, settings["n_instructions"], cache, seed, settings["max_new_tokens"],
                             settings.get("distill_batch_size", 0), settings.get("distill_token_budget", 0))
    return tune(spec, data, out_dir, rank=settings["rank"], alpha=settings["alpha"], lr=settings["lr"],
                epochs=settings["epochs"], batch_size=settings["batch_size"], seed=seed, max_steps=max_steps,
                progress=progress)
