"""Plain torch forward hooks: the default, fastest backend.

``capture(model, sites)`` is a context manager that records the residual stream at each site on
every forward pass; hooks are removed on exit, on error too. ``resid_pre.L`` is taken by a forward
pre-hook on block L (its input hidden states), ``resid_post.L`` by a forward hook (its output).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from activations.sites import Site
from models.loading import find_blocks


def _hidden_from_output(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _hidden_from_input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextlib.contextmanager
def capture(model: Any, sites: list[Site], detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record activations [B, T, D] for each site name into the yielded dict (last forward wins)."""
    blocks = find_blocks(model)
    store: dict[str, torch.Tensor] = {}
    handles = []

    def keep(name: str, t: torch.Tensor) -> None:
        store[name] = t.detach() if detach else t

    try:
        for site in sites:
            block = blocks[site.layer]
            if site.kind == "resid_pre":
                def pre(mod, args, kwargs, _n=site.name):
                    keep(_n, _hidden_from_input(args, kwargs))
                handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
            else:
                def post(mod, args, out, _n=site.name):
                    keep(_n, _hidden_from_output(out))
                handles.append(block.register_forward_hook(post))
        yield store
    finally:
        for h in handles:
            h.remove()


class _StopForward(Exception):
    pass


def run_with_sites(model: Any, batch: dict[str, torch.Tensor], sites: list[Site]) -> dict[str, torch.Tensor]:
    """One forward pass returning {site name: [B, T, D]}. It stops right after the deepest needed site
    (no later blocks, no logits), which is why caching costs no more than a bare forward pass."""
    blocks = find_blocks(model)
    last = max(s.layer for s in sites)
    post = any(s.layer == last and s.kind == "resid_post" for s in sites)

    def stop(*_args, **_kwargs):
        raise _StopForward

    with capture(model, sites) as store:
        # Registered after capture's hooks on the same block, so it fires after they have recorded.
        h = blocks[last].register_forward_hook(stop) if post else blocks[last].register_forward_pre_hook(stop)
        try:
            with torch.no_grad():
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      position_ids=batch["position_ids"], use_cache=False)
        except _StopForward:
            pass
        finally:
            h.remove()
    return dict(store)
