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


def row_seed(seed: int, row: int) -> int:
    """The seed of one row's sampler: a function of (``seed``, the row's input index) only."""
    return (int(seed) * 1_000_003 + int(row)) % (2 ** 63)


class RowSampler:
    """A logits processor that samples every row with its own ``torch.Generator`` (Gumbel-max: the argmax of
    the warped log-probs plus Gumbel noise is a draw from their softmax), so a row's tokens do not depend on
    which rows share its batch or in what order. Used with greedy ``generate`` settings; ``temperature``,
    ``top_k``, ``top_p`` are applied here, as ``generate`` would before sampling."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int = 0, top_p: float = 1.0):
        self.seeds, self.temperature, self.top_k, self.top_p = [int(s) for s in seeds], temperature, top_k, top_p
        self.gens: list[Any] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch
        from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

        if self.gens is None:
            self.gens = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        x = scores.float() / self.temperature
        if self.top_k:
            x = TopKLogitsWarper(self.top_k)(input_ids, x)
        if self.top_p < 1.0:
            x = TopPLogitsWarper(self.top_p)(input_ids, x)
        u = torch.stack([torch.rand(x.shape[-1], generator=g, device=x.device) for g in self.gens])
        return x - torch.log(-torch.log(u))


def generate_tokens(loaded: Any, encodings: Sequence[Any], settings: dict[str, Any], batch_size: int = 8,
                    token_budget: int | None = None, seed: int = 0, row_seeds: bool | None = None,
                    before_batch: Any = None, rows: Sequence[int] | None = None,
                    progress: str | None = None) -> list[list[int]]:
    """New token ids for each prompt encoding (left-padded batches), in input order, each cut after its
    first end-of-turn token (``eos_ids``), so a row's list does not depend on its batch-mates' lengths.

    Batches: ``token_budget`` None -> contiguous batches of ``batch_size`` in input order (the old path);
    else length-sorted batches of at most ``batch_size`` rows and ``token_budget`` padded prompt tokens
    (``models.batching.plan_batches``). ``before_batch`` follows the scorers' contract (``notify``).

    Sampling (``settings["do_sample"]``): with ``row_seeds`` (the default whenever ``token_budget`` is set) every
    row draws from its own generator seeded by ``row_seed(seed, rows[i])`` (``rows``: the global index of each
    encoding, default its position), so its tokens do not depend on batch composition or order (``RowSampler``);
    without it (the old path) the global RNG is seeded with ``seed + lo`` before the batch starting at row ``lo``,
    and a row's sample depends on its batch. Greedy decoding ignores ``seed``.
    """
    import torch
    from tqdm.auto import tqdm

    from models.batching import notify, plan_batches
    from models.chat import pad_batch

    tok = loaded.tokenizer
    sample = bool(settings.get("do_sample"))
    row_seeds = token_budget is not None if row_seeds is None else row_seeds
    if sample and not row_seeds and token_budget is not None:
        raise ValueError("sampled generation under a token budget needs row_seeds=True (per-row generators): "
                         "the per-batch seed would make samples depend on the sorted batches")
    rows = list(range(len(encodings))) if rows is None else [int(r) for r in rows]
    plan = plan_batches([len(e) for e in encodings], batch_size, token_budget, sort=token_budget is not None)
    eos = eos_ids(loaded)
    greedy = {**settings, **sampling_settings(settings["max_new_tokens"])} if sample and row_seeds else settings
    out: list[list[int]] = [[] for _ in encodings]
    for idx in tqdm(plan, desc=progress or "generate", unit="batch", leave=False, disable=progress is None):
        batch = pad_batch([encodings[i] for i in idx], tok.pad_token_id, "left", loaded.device)
        notify(before_batch, idx)
        kw: dict[str, Any] = {}
        if sample and row_seeds:
            kw["logits_processor"] = [RowSampler([row_seed(seed, rows[i]) for i in idx], settings["temperature"],
                                                 settings.get("top_k", 0), settings.get("top_p", 1.0))]
        elif sample:
            torch.manual_seed(seed + idx[0])
        with torch.no_grad():
            gen = loaded.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                        pad_token_id=tok.pad_token_id, **greedy, **kw)
        n = batch["input_ids"].shape[1]
        for i, g in zip(idx, gen[:, n:].tolist()):
            cut = next((j + 1 for j, t in enumerate(g) if t in eos), len(g))
            out[i] = g[:cut]
    return out


def generate(loaded: Any, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 96,
             temperature: float = 0.7, seed: int = 0, batch_size: int = 8, before_batch: Any = None,
             with_truncated: bool = False, token_budget: int | None = None, row_seeds: bool | None = None,
             rows: Sequence[int] | None = None) -> list[str] | list[tuple[str, bool]]:
    """Seeded free-form answers to chat ``prompts`` (``generate_tokens``: left-padded batches, the model's
    chat template, every sampling parameter explicit), decoded without special tokens. ``temperature=0``
    decodes greedily. ``with_truncated``: ``(text, truncated)`` pairs, ``truncated`` when the answer hit
    ``max_new_tokens`` without an end-of-turn token. ``rows``: each prompt's global index (its sampler's seed)."""
    from models.chat import encode_chat

    tok = loaded.tokenizer
    encs = [encode_chat(tok, m) for m in prompts]
    toks = generate_tokens(loaded, encs, sampling_settings(max_new_tokens, temperature), batch_size, token_budget,
                           seed, row_seeds, before_batch, rows)
    eos = eos_ids(loaded)
    texts = [tok.decode(t, skip_special_tokens=True).strip() for t in toks]
    return [(s, truncated(t, eos, max_new_tokens)) for s, t in zip(texts, toks)] if with_truncated else texts
