"""Score items under many arms in batched forward passes (one row per item x arm x answer).

Two readouts (``READOUTS``), both batched over arms (every arm of an item is a row of the same batch,
with its own steering vector, so all conditions and doses cost one pass over (items x arms) rows):

- ``continuation``: log-likelihood of the preference-expressing answer minus that of the rejecting
  one, each length-normalised (``models.logprobs.mean_logprobs``). Under steering the vector is added
  at the prompt positions only by default (``positions="prompt"``): never on the scored answer
  tokens, so a vector that merely shares words with one answer is not rewarded. ``"all"`` adds it
  everywhere (the old behaviour).
- ``choice``: the counterbalanced A/B question of ``evals.scorers.choice`` (P(preference letter),
  both orders averaged; 0.5 = no preference). It reads the next-token distribution after the prompt,
  so every position is a prompt position and ``positions`` does not apply.

Higher = more of the preference for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evals.scorers import CHEAP_SCORERS
from models import encode_chat
from models.logprobs import mean_logprobs
from steering.arms import Arm, expand_edits, subset_edits
from steering.interventions import Intervention, LayerEdit

SIGN = "higher = more of the preference"
READOUTS = CHEAP_SCORERS  # the scorers that run under steering (no judge)
DEFAULT_POSITIONS = "prompt"  # continuation under steering: never steer the scored answer tokens
STEER_POSITIONS = ("prompt", "all")


def pair_encodings(loaded: Any, items: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(preferred, rejected) ChatEncodings per item; items must have ``pref`` and ``rej``."""
    out = []
    for it in items:
        if not it.pref or not it.rej:
            raise ValueError(f"item {it.id!r} (kind {it.kind!r}) has no pref/rej answers; the continuation scorer "
                             "needs kind 'pair' or 'action' items (load_items(kinds=['pair', 'action']))")
        out.append((encode_chat(loaded.tokenizer, it.messages(it.pref)),
                    encode_chat(loaded.tokenizer, it.messages(it.rej))))
    return out


def score_continuation(loaded: Any, items: Sequence[Any], arms: Sequence[Arm], edits: dict[int, LayerEdit],
                       batch_size: int = 32, positions: str = DEFAULT_POSITIONS,
                       encodings: list[tuple[Any, Any]] | None = None,
                       token_budget: int | None = None) -> dict[str, np.ndarray]:
    """For each item and arm: ``lp_pref``, ``lp_rej`` and ``score`` = lp_pref - lp_rej, arrays [n_items, n_arms].

    ``edits`` are per-arm rows (``arms.arm_edits``). The rows are ordered item, arm, (pref, rej); without
    ``token_budget`` the forward passes take them in that order (arms of one item share a batch), with it
    rows of all items x arms are length-sorted and packed (``models.batching``), each with its own edit.
    """
    encs = encodings if encodings is not None else pair_encodings(loaded, items)
    rows = [e for pr in encs for _ in arms for e in pr]
    n_i, n_a = len(items), len(arms)
    if not rows:
        z = np.zeros((0, n_a))
        return {"lp_pref": z, "lp_rej": z, "score": z}
    row_edits = expand_edits(edits, 2, n_i)
    if row_edits:
        with Intervention(loaded, row_edits, positions, spans=rows) as h:
            lp = mean_logprobs(loaded, rows, batch_size=batch_size, before_batch=h.before_batch,
                               token_budget=token_budget)
    else:
        lp = mean_logprobs(loaded, rows, batch_size=batch_size, token_budget=token_budget)
    lp = lp.reshape(n_i, n_a, 2)
    return {"lp_pref": lp[..., 0], "lp_rej": lp[..., 1], "score": lp[..., 0] - lp[..., 1]}


def score_choice(loaded: Any, items: Sequence[Any], arms: Sequence[Arm], edits: dict[int, LayerEdit],
                 batch_size: int = 32, encodings: list[Any] | None = None,
                 token_budget: int | None = None) -> dict[str, np.ndarray]:
    """The counterbalanced choice readout for each item and arm, batched over arms: ``score`` (P(pref letter)
    over {A, B}, both orders averaged), ``p_pref_as_a``, ``p_pref_as_b``, arrays [n_items, n_arms].
    Rows are ordered item, arm, (pref as A, pref as B); the vector is added at every (prompt) position.
    ``token_budget``: length-sorted, packed batches over all rows (as ``score_continuation``)."""
    from evals.scorers import choice_encodings, choice_values, letter_token_ids
    from models.logprobs import next_token_logprobs

    encs = encodings if encodings is not None else choice_encodings(loaded.tokenizer, items)
    n_i, n_a = len(items), len(arms)
    pairs = [encs[2 * i:2 * i + 2] for i in range(n_i)]
    rows = [e for pr in pairs for _ in arms for e in pr]
    if not rows:
        z = np.zeros((0, n_a))
        return {"score": z, "p_pref_as_a": z, "p_pref_as_b": z}
    ids = letter_token_ids(loaded.tokenizer)
    row_edits = expand_edits(edits, 2, n_i)
    if row_edits:
        with Intervention(loaded, row_edits, "all") as h:
            lp = next_token_logprobs(loaded, rows, batch_size=batch_size, before_batch=h.before_batch, token_ids=ids,
                                     token_budget=token_budget)
    else:
        lp = next_token_logprobs(loaded, rows, batch_size=batch_size, token_ids=ids, token_budget=token_budget)
    v = choice_values(lp)
    return {k: v[k].reshape(n_i, n_a) for k in ("p_pref_as_a", "p_pref_as_b")} | {
        "score": v["value"].reshape(n_i, n_a)}




def score_with_evals(loaded: Any, items: Sequence[Any], arms: Sequence[Arm], edits: dict[int, LayerEdit],
                     scorer: str, batch_size: int = 8, judge: Any = None, **kw: Any) -> dict[str, np.ndarray]:
    """Any ``evals.scorers`` scorer (``choice``, ``judged``), one pass per arm with that arm's edit on every row.

    Slower than ``score_continuation`` (arms are not batched together) but scorer-agnostic.
    """
    from evals.scorers import score

    if scorer == "judged":
        return _judged_all_arms(loaded, items, arms, edits, batch_size, judge, **kw)
    out = np.full((len(items), len(arms)), np.nan)
    for k in range(len(arms)):
        one = subset_edits(edits, [k])
        if one:
            with Intervention(loaded, one, "all"):
                rows = score(scorer, loaded, items, batch_size, judge=judge, **kw)
        else:
            rows = score(scorer, loaded, items, batch_size, judge=judge, **kw)
        out[:, k] = [r["value"] for r in rows]
    nan = np.full_like(out, np.nan)
    return {"lp_pref": nan, "lp_rej": nan, "score": out}


def _judged_all_arms(loaded: Any, items: Sequence[Any], arms: Sequence[Arm], edits: dict[int, LayerEdit],
                     batch_size: int, judge: Any, **kw: Any) -> dict[str, np.ndarray]:
    """Judged scores: sample answers under each arm, then grade every arm's answers in one concurrent
    ``judge_many`` call (so the judge sees arms x items x samples requests at once, not one arm at a time)."""
    from evals.scorers import judged_answers, judged_rows, judged_sampling

    if judge is None:
        raise ValueError("the judged scorer needs a judge: evals.judge.EndpointJudge(...) or LocalJudge(...)")
    s = judged_sampling(judge, **kw)
    answers: list[str] = []
    for k in range(len(arms)):
        one = subset_edits(edits, [k])
        if one:
            with Intervention(loaded, one, "all"):
                answers += judged_answers(loaded, items, s, batch_size)
        else:
            answers += judged_answers(loaded, items, s, batch_size)
    rows = judged_rows([it for _ in arms for it in items], answers, judge, s)
    out = np.array([r["value"] for r in rows], dtype=float).reshape(len(arms), len(items)).T
    nan = np.full_like(out, np.nan)
    return {"lp_pref": nan, "lp_rej": nan, "score": out}
