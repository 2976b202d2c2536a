"""Calibration of the steering verdict: how often does the decision rule say "yes" for a direction that
should not move the preference, and does it say "yes" for one that does?

- **null**: ``n_null`` (>= 20) norm-matched random directions (``controls.random_like`` of the target, seeds
  ``seed0 .. seed0 + n_null - 1``; the first ``n_random`` are the experiment's own random controls), each put
  through the *same* decision rule (``steering.rule.verdict_table``) as if it were ``self_model``, with
  ``n_random`` of the *other* null directions as its random controls (the next ones, cyclically: the same
  number of controls as the real verdict), toaster as toaster and polarity as polarity. The false-positive
  rate is the share called "yes" (Wilson 95% CI); the rule is calibrated when it is at most ``MAX_FPR``.
- **planted**: directions known to move the readout, put through the same rule, norm-matched to the target,
  built from *held-out* monitoring items (never scored in the verdict), times the expected sign:
  ``planted_mean_diff``: the mean difference of ``resid_post.L`` (``response_mean``) between the preferring
  and the rejecting answers; ``planted_grad_<readout>``: the gradient of that readout's score (summed over
  the held-out items) with respect to a vector added at layer L at the positions the readout steers (the
  direction that moves the readout fastest, to first order). Sensitivity = share called "yes".

Only the monitoring group at the verdict dose and layer is calibrated (that is where the headline verdict
is); the rows already scored by the experiment (none, toaster, polarity, random controls) are reused and
only the extra null directions and the planted one are scored, in one batched pass per item and readout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from artifacts.rows import normalise_all
from probes.directions import Direction
from stats import wilson_ci
from steering.controls import random_like

N_NULL = 20
MAX_FPR = 0.05
GROUP = "monitoring"
PLANTED = "planted_mean_diff"
NULL_KIND = "null_random"  # (not "null": CSV readers take that for a missing value)


def null_directions(target: Direction, n_null: int = N_NULL, seed0: int = 0) -> list[Direction]:
    """Norm-matched random directions named ``random<seed>`` (the experiment's own controls share seeds)."""
    return [random_like(target, seed0 + i) for i in range(n_null)]


@torch.no_grad()
def planted_direction(loaded: Any, items: Sequence[Any], target: Direction, layer: int, sign: float = 1.0,
                      batch_size: int = 16) -> Direction:
    """``sign`` x mean over ``items`` of (resid_post.layer of the preferring answer - that of the rejecting
    answer), each averaged over the answer's tokens; with the target's ``resid_norm`` (norm-matched doses)."""
    from activations.hooks import capture
    from activations.sites import Site, reduce_positions
    from models.chat import pad_batch
    from steering.scoring import pair_encodings

    if not items:
        raise ValueError("planted_direction needs held-out items with pref/rej answers")
    encs = [e for pr in pair_encodings(loaded, items) for e in pr]  # pref, rej, pref, rej ...
    site = Site("resid_post", int(layer))
    acts = []
    for lo in range(0, len(encs), batch_size):
        chunk = encs[lo:lo + batch_size]
        batch = pad_batch(chunk, loaded.tokenizer.pad_token_id, "right", loaded.device)
        with capture(loaded.model, [site]) as store:
            loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"], use_cache=False)
        acts.append(reduce_positions(store[site.name].float().cpu(), chunk, batch["offset"], "response_mean"))
    a = torch.cat(acts).double().numpy()
    diff = float(sign) * (a[0::2] - a[1::2]).mean(0)
    return Direction(name=PLANTED, layers=[int(layer)], raw=diff[None], resid_norm=[target.norm_at(int(layer))],
                     site_kind=target.site_kind, position="response_mean",
                     provenance={"control": "planted", "source": "mean(pref - rej) resid_post response_mean",
                                 "layer": int(layer), "sign": float(sign), "items": [it.id for it in items],
                                 "norm_matched_to": target.name})


def _readout_value(loaded: Any, encs: Sequence[Any], readout: str, letters: Sequence[Sequence[int]]) -> torch.Tensor:
    """The readout's score for one item from full-sequence forwards (differentiable): continuation = mean
    lp(pref answer) - mean lp(rej answer); choice = P(pref letter) over {A, B}, both orders averaged."""
    from models.logprobs import _head_logprobs

    decoder = loaded.base_model.get_decoder()
    vals = []
    for e in encs:
        ids = torch.tensor([e.input_ids], device=loaded.device)
        out = decoder(input_ids=ids, use_cache=False)
        h = (out[0] if isinstance(out, (tuple, list)) else out.last_hidden_state)[0]
        if readout == "continuation":  # the output head only where it is read
            lp = _head_logprobs(loaded, h[e.response_start - 1:e.response_end - 1])
            tgt = torch.tensor(e.input_ids[e.response_start:e.response_end], device=lp.device)
            vals.append(lp.gather(1, tgt[:, None]).mean())
        else:
            lp = _head_logprobs(loaded, h[e.last_prompt])
            la, lb = (torch.logsumexp(lp[list(g)], 0) for g in letters)
            vals.append(torch.sigmoid(la - lb))  # P(A) over {A, B}
    if readout == "continuation":
        return vals[0] - vals[1]
    return 0.5 * (vals[0] + 1.0 - vals[1])


def planted_gradient(loaded: Any, items: Sequence[Any], target: Direction, layer: int, readout: str,
                     sign: float = 1.0) -> Direction:
    """``sign`` x d(sum of the readout's scores over ``items``) / d(vector added at ``resid_post.layer``), at the
    positions the readout steers (continuation: the prompt; choice: every position), with the target's
    ``resid_norm``."""
    from evals.scorers import choice_encodings, letter_token_ids
    from models.loading import find_blocks
    from steering.scoring import pair_encodings

    if not items:
        raise ValueError("planted_gradient needs held-out items with pref/rej answers")
    v = torch.zeros(loaded.d_model, dtype=torch.float32, device=loaded.device, requires_grad=True)
    state: dict[str, int] = {"stop": 10 ** 9}

    def hook(mod, args, out):
        h = out[0] if isinstance(out, (tuple, list)) else out
        m = torch.zeros(h.shape[1], 1, device=h.device, dtype=h.dtype)
        m[:state["stop"]] = 1.0
        h = h + m * v.to(h.dtype)
        return (h, *out[1:]) if isinstance(out, (tuple, list)) else h

    letters = letter_token_ids(loaded.tokenizer) if readout == "choice" else []
    if readout == "continuation":
        groups = [list(p) for p in pair_encodings(loaded, items)]
    elif readout == "choice":
        encs = choice_encodings(loaded.tokenizer, items)
        groups = [encs[i:i + 2] for i in range(0, len(encs), 2)]
    else:
        raise ValueError(f"planted_gradient supports the readouts continuation and choice, not {readout!r}")
    handle = find_blocks(loaded.model)[int(layer)].register_forward_hook(hook)
    try:
        with torch.enable_grad():
            for g in groups:
                state["stop"] = g[0].response_start if readout == "continuation" else 10 ** 9
                # pref and rej share the prompt: the prompt positions end at the same response_start
                _readout_value(loaded, g, readout, letters).backward()
    finally:
        handle.remove()
    grad = float(sign) * v.grad.detach().double().cpu().numpy()
    if not np.all(np.isfinite(grad)) or not np.any(grad):
        raise ValueError(f"the {readout} readout's gradient at layer {layer} is zero or not finite")
    return Direction(name=f"planted_grad_{readout}", layers=[int(layer)], raw=grad[None],
                     resid_norm=[target.norm_at(int(layer))], site_kind=target.site_kind, position="prompt",
                     provenance={"control": "planted", "source": f"gradient of the {readout} readout", "layer": int(layer),
                                 "sign": float(sign), "items": [it.id for it in items], "norm_matched_to": target.name})


def _as_target(rows: Sequence[dict], target_cond: str, controls: Sequence[str], keep: Sequence[str]) -> list[dict]:
    """Schema rows (``artifacts.rows``) with the arm relabelled: ``target_cond`` -> self_model,
    ``controls`` -> random0.. ; other arms kept only if in ``keep`` (none, toaster, polarity)."""
    names = {target_cond: ("self_model", "self_model"),
             **{c: (f"random{k}", "random") for k, c in enumerate(controls)},
             **{c: (c, c) for c in keep}}
    out = []
    for r in rows:
        if r["arm"] in names:
            cond, fam = names[r["arm"]]
            out.append({**r, "arm": cond, "family": fam})
    return out


def calibration_verdicts(rows: Sequence[dict], null_names: Sequence[str], n_random: int,
                         tuned_shift: dict[str, float] | None = None, planted: Sequence[str] = (PLANTED,),
                         keep: Sequence[str] = ("none", "toaster", "polarity")) -> pd.DataFrame:
    """The decision rule applied to each null direction (and each planted one present in ``rows``) as if it
    were self_model, on one readout's rows (monitoring items, one dose). One row per direction: kind,
    direction, verdict, clauses."""
    from steering.effects import compare_self, steering_effects
    from steering.rule import verdict_table

    n = len(null_names)
    if n < 2:
        raise ValueError(f"calibration needs at least 2 null directions, got {n}")
    k = min(n_random, n - 1)
    jobs = [(NULL_KIND, name, [null_names[(i + j) % n] for j in range(1, k + 1)])
            for i, name in enumerate(null_names)]
    rows = normalise_all(rows)  # once: every job below relabels these rows
    have = {r["arm"] for r in rows}
    jobs += [("planted", p, list(null_names[:k])) for p in planted if p in have]
    out = []
    for kind, name, ctrls in jobs:
        rr = _as_target(rows, name, ctrls, keep)
        eff = steering_effects(rr, groups=[GROUP])
        ver = verdict_table(eff, compare_self(rr, eff), tuned_shift, groups=[GROUP])
        v = ver.iloc[0].to_dict() if len(ver) else {"verdict": "inconclusive"}
        out.append({"kind": kind, "direction": name, "n_controls": len(ctrls), **{
            c: v.get(c) for c in ("verdict", "self_reproduces", "toaster_fails", "specific", "dose", "layer",
                                  "self_effect", "self_lo", "self_hi", "self_q", "n_items")}})
    return pd.DataFrame(out)


def calibration_summary(verdicts: pd.DataFrame, readout: str) -> list[dict]:
    """Per kind: n, n_yes, rate with its Wilson 95% CI; null passes when rate <= MAX_FPR, planted when all yes."""
    out = []
    for kind in (NULL_KIND, "planted"):
        v = verdicts[verdicts["kind"] == kind]
        if v.empty:
            continue
        n, k = len(v), int((v["verdict"] == "yes").sum())
        ci = wilson_ci(k, n)
        rate = k / n
        out.append({"readout": readout, "kind": kind, "n": n, "n_yes": k, "rate": rate, "rate_lo": ci.lo,
                    "rate_hi": ci.hi, "dose": v["dose"].iloc[0], "layer": v["layer"].iloc[0],
                    "directions": ",".join(v["direction"]) if kind == "planted" else f"{n} random",
                    "max_rate": MAX_FPR if kind == NULL_KIND else None,
                    "passes": bool(rate <= MAX_FPR) if kind == NULL_KIND else bool(k == n)})
    return out
