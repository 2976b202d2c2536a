"""Batched log-likelihoods for the scorers, computed only where they are needed.

``mean_logprobs``: for each ``ChatEncoding`` with a response, the mean over the response tokens of
log p(token | everything before it) (length-normalised log-likelihood). ``next_token_logprobs``:
log-probabilities of the token after the prompt (``last_prompt``), for A/B letter choices.

Both run the model's own forward (adapters, hooks and steering apply as usual) with
``logits_to_keep=1``, capture the final hidden states of the decoder with a hook, and apply the
output head + log-softmax only at the positions that are read. Rows are right-padded with
``models.pad_batch`` (explicit position ids and attention mask), so values do not depend on the
batch size. By default rows are batched in input order and ``before_batch(lo, hi)`` is called before
the forward over rows ``[lo, hi)`` of the input list, so an intervention can set per-row doses. With
``token_budget`` (or ``sort=True``) rows are sorted by length and packed under the budget
(``models.batching.plan_batches``); a batch that is not a contiguous range then calls
``before_batch(rows)`` with its input-row indices. Results are always returned in input order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from models.batching import notify, plan_batches
from models.chat import ChatEncoding, pad_batch
from models.loading import LoadedModel

BeforeBatch = Callable[..., None] | None  # before_batch(lo, hi) or before_batch(rows)


@contextlib.contextmanager
def _final_hidden(loaded: LoadedModel) -> Iterator[dict[str, torch.Tensor]]:
    """Capture the decoder's last hidden state (after the final norm) on each forward."""
    decoder = loaded.base_model.get_decoder()
    store: dict[str, torch.Tensor] = {}

    def hook(mod, args, out):
        store["h"] = out[0] if isinstance(out, (tuple, list)) else out.last_hidden_state

    handle = decoder.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _head_logprobs(loaded: LoadedModel, h: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the vocabulary of the output head applied to hidden states ``h`` [..., D]."""
    base = loaded.base_model
    logits = base.get_output_embeddings()(h).float()
    cap = getattr(base.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


def _batches(loaded: LoadedModel, encodings: Sequence[ChatEncoding], batch_size: int, before_batch: BeforeBatch,
             token_budget: int | None = None, sort: bool | None = None,
             ) -> Iterator[tuple[list[int], list[ChatEncoding], torch.Tensor]]:
    """Yield (input-row indices, encodings, final hidden [B, T, D]) per right-padded batch."""
    pad_id = loaded.tokenizer.pad_token_id
    sort = token_budget is not None if sort is None else sort
    plan = plan_batches([len(e) for e in encodings], batch_size, token_budget, sort)
    with torch.no_grad(), _final_hidden(loaded) as store:
        for idx in plan:
            encs = [encodings[i] for i in idx]
            batch = pad_batch(encs, pad_id, "right", loaded.device)
            notify(before_batch, idx)
            kw = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "position_ids": batch["position_ids"], "use_cache": False}
            try:
                loaded.model(**kw, logits_to_keep=1)
            except TypeError:  # an architecture without logits_to_keep: full logits, same hidden states
                loaded.model(**kw)
            yield idx, encs, store.pop("h")


def mean_logprobs(loaded: LoadedModel, encodings: Sequence[ChatEncoding], batch_size: int = 16,
                  before_batch: BeforeBatch = None, token_budget: int | None = None,
                  sort: bool | None = None) -> np.ndarray:
    """[n] mean log-probability of each encoding's response tokens given what precedes them.

    NaN for an encoding without a response. ``before_batch(lo, hi)`` runs before each forward.
    """
    out = np.full(len(encodings), np.nan, dtype=np.float64)
    for idx, encs, h in _batches(loaded, encodings, batch_size, before_batch, token_budget, sort):
        rows, pos, tgt, seg = [], [], [], []
        for j, e in enumerate(encs):
            if not e.has_response:
                continue
            r = range(e.response_start - 1, e.response_end - 1)
            rows.extend([j] * len(r))
            pos.extend(r)
            tgt.extend(e.input_ids[e.response_start:e.response_end])
            seg.extend([j] * len(r))
        if not rows:
            continue
        lp = _head_logprobs(loaded, h[torch.tensor(rows), torch.tensor(pos)])
        tok_lp = lp.gather(1, torch.tensor(tgt, device=lp.device)[:, None])[:, 0].double().cpu()
        seg_t = torch.tensor(seg)
        sums = torch.zeros(len(encs), dtype=torch.float64).index_add_(0, seg_t, tok_lp)
        counts = torch.bincount(seg_t, minlength=len(encs)).double()
        ok = counts > 0
        vals = (sums[ok] / counts[ok]).numpy()
        out[np.asarray(idx)[ok.numpy()]] = vals
    return out


def next_token_logprobs(loaded: LoadedModel, encodings: Sequence[ChatEncoding], batch_size: int = 16,
                        before_batch: BeforeBatch = None,
                        token_ids: Sequence[int | Sequence[int]] | None = None, token_budget: int | None = None,
                        sort: bool | None = None) -> np.ndarray:
    """Log-probabilities of the token following each encoding's prompt (at ``last_prompt``).

    Returns [n, vocab], or [n, len(token_ids)] when ``token_ids`` is given; an entry of ``token_ids``
    that is a list of ids gets the log of their summed probability (e.g. "A" and " A").
    """
    groups = None
    if token_ids is not None:
        groups = [[int(t)] if isinstance(t, (int, np.integer)) else [int(x) for x in t] for t in token_ids]
    chunks, order = [], []
    for idx, encs, h in _batches(loaded, encodings, batch_size, before_batch, token_budget, sort):
        order.extend(idx)
        idx = torch.tensor([e.last_prompt for e in encs], device=h.device)
        lp = _head_logprobs(loaded, h[torch.arange(len(encs), device=h.device), idx])
        if groups is not None:
            lp = torch.stack([torch.logsumexp(lp[:, g], dim=1) for g in groups], dim=1)
        chunks.append(lp.cpu().numpy().astype(np.float64))
    if not chunks:
        return np.zeros((0, len(groups) if groups is not None else 0))
    out = np.concatenate(chunks)
    return out[np.argsort(order, kind="stable")]
