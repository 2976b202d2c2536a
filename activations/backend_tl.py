"""TransformerLens backend: ``TransformerBridge.run_with_cache`` with a names filter.

The bridge wraps ``runner.shared_model(loaded)``: new module objects over the loaded model's own
parameter tensors (booting a bridge swaps modules in place, so it needs its own module tree, but no
copy of the weights; with ``hf_model=`` TransformerLens 4 leaves the weights as they are: no layout
conversion, no cast when the dtype matches). Sites map to the bridge's hook names: ``resid_pre.L`` -> ``blocks.L.hook_resid_pre``,
``resid_post.L`` -> ``blocks.L.hook_resid_post``. The padded batch's attention_mask and
position_ids are passed through, and the forward stops after the deepest needed block
(``stop_at_layer``).

Numerics: the bridge re-implements attention step by step (eager), so against a model running the
default sdpa kernel values differ by float32 rounding (about 1e-7 of the stream's scale); against
``attn_implementation="eager"`` they agree to 1e-4 (the tests check both).
"""

from __future__ import annotations

from typing import Any

import torch

from activations.runner import Runner, shared_model
from activations.sites import Site
from models.loading import LoadedModel, resolve_base


def hook_name(site: Site) -> str:
    return f"blocks.{site.layer}.hook_{site.kind}"


def make_bridge(loaded: LoadedModel) -> Any:
    """A ``TransformerBridge`` over ``loaded``'s weights (shared, not copied), with raw HF numerics."""
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(resolve_base(loaded.spec), hf_model=shared_model(loaded),
                                               tokenizer=loaded.tokenizer, device=str(loaded.device),
                                               dtype=loaded.dtype).eval()


def make_runner(loaded: LoadedModel, sites: list[Site]) -> Runner:
    bridge = make_bridge(loaded)
    names = {hook_name(s): s.name for s in sites}
    stop = max(s.layer for s in sites) + 1

    def run(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            _, cache = bridge.run_with_cache(batch["input_ids"], names_filter=list(names),
                                             attention_mask=batch["attention_mask"],
                                             position_ids=batch["position_ids"], stop_at_layer=stop,
                                             return_type=None, return_cache_object=False)
        return {site: cache[h] for h, site in names.items()}

    return run
