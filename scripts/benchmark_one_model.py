"""Memory and load time of one model in memory (``models.adapters``) against one model per spec.

Each run is one process, so ``resource.getrusage`` gives that mode's own peak RSS. Random LoRA adapters
(rank 8, every linear layer, like the ``fast`` tune) are written once to ``--adapters``.

- ``ablation``: the ablation stage's work (``steering.experiment.run_ablation``, cot_monitoring, 2 items,
  self_model + 1 random, 1 coherence prompt) with ``--models two`` (base and tune loaded as two models: the
  stage before issue 14) or ``--models one`` (the tune with its adapter off as the base).
- ``setup``: the time to have base + ``--n-adapters`` tunes ready for scoring, as the evals / probes /
  identity stages get them: ``--models two`` = ``load_model`` per spec (the stages before), ``one`` =
  ``models.adapters.each_model``.

Example (embedded model, CPU):
    python scripts/benchmark_one_model.py prepare
    python scripts/benchmark_one_model.py ablation --models two --threads 1
    python scripts/benchmark_one_model.py ablation --models one --threads 1
    python scripts/benchmark_one_model.py setup --models two --threads 1
    python scripts/benchmark_one_model.py setup --models one --threads 1
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
from pathlib import Path

from artifacts.rows import BASE_MODEL


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_adapters(spec, folder: Path, n: int) -> list[str]:
    """``n`` random rank-8 LoRA adapters on every linear layer of ``spec``'s base (written once)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from models.loading import resolve_base

    out = []
    for i in range(n):
        path = folder / f"c{i}"
        if not (path / "adapter_config.json").exists():
            torch.manual_seed(100 + i)
            model = AutoModelForCausalLM.from_pretrained(resolve_base(spec), dtype=torch.float32)
            peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                    init_lora_weights=False))
            for name, w in peft.named_parameters():
                if "lora_B" in name:
                    w.data *= 0.02  # a modest shift
            peft.save_pretrained(path)
            del model, peft
            gc.collect()
        out.append(str(path))
    return out


def run_ablation_bench(spec, adapter: str, models: str, out: Path) -> dict:
    import numpy as np

    from models import load_model
    from models.adapters import load_adapters
    from probes.directions import Direction
    from steering.experiment import get_profile, run_ablation

    t0 = time.time()
    if models == "two":
        base, tuned = load_model(spec), load_model(spec.with_adapter(adapter))
    else:
        shared = load_adapters(spec, {"conscious": adapter})
        base, tuned = shared.view(None), shared.view("conscious")
    load_s = time.time() - t0
    rng = np.random.default_rng(0)
    n, d = tuned.n_layers, tuned.d_model
    dirs = {k: Direction(k, list(range(n)), rng.standard_normal((n, d)), np.full(n, 100.0),
                         metrics={"selected_layer": n // 2}) for k in ("self_model", "toaster")}
    prof = get_profile("fast", ablation_monitoring_items=2, gen_prompts=1, max_new_tokens=8, n_random=1,
                       n_paragraphs=1)
    t1 = time.time()
    run_ablation(base, tuned, dirs, out, profile=prof, dimensions=["cot_monitoring"],
                 conditions=("self_model", "random"), overwrite=True)
    return {"load_s": round(load_s, 2), "ablation_s": round(time.time() - t1, 1)}


def run_setup_bench(spec, adapters: list[str], models: str) -> dict:
    from models import load_model
    from models.adapters import each_model

    load_model(spec)  # warm the page cache and the imports
    gc.collect()
    specs = {BASE_MODEL: spec, **{f"c{i}": spec.with_adapter(p) for i, p in enumerate(adapters)}}
    t0 = time.time()
    if models == "two":
        for s in specs.values():
            loaded = load_model(s)
            del loaded
            gc.collect()
    else:
        for _name, _loaded in each_model(specs):
            pass
    return {"setup_s": round(time.time() - t0, 2), "n_specs": len(specs)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("prepare", "ablation", "setup"), help="prepare: only write the adapters")
    ap.add_argument("--models", choices=("two", "one"), default="one",
                    help="two: a model per spec (before); one: one base, adapters toggled")
    ap.add_argument("--base", default=None, help="base model (default: the embedded one)")
    ap.add_argument("--adapters", default=str(Path(tempfile.gettempdir()) / "selfmodel-bench-adapters"))
    ap.add_argument("--n-adapters", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    a = ap.parse_args(argv)
    import torch

    from models import ModelSpec

    if a.threads:
        torch.set_num_threads(a.threads)
    spec = ModelSpec(device="cpu") if a.base is None else ModelSpec(base=a.base, device="cpu")
    folder = Path(a.adapters) / spec.slug
    fresh = not all((folder / f"c{i}" / "adapter_config.json").exists() for i in range(max(1, a.n_adapters)))
    adapters = make_adapters(spec, folder, max(1, a.n_adapters))
    if a.what == "prepare":
        print(json.dumps({"adapters": adapters}))
        return
    gc.collect()
    rss0 = peak_rss_mib()
    if a.what == "ablation":
        res = run_ablation_bench(spec, adapters[0], a.models, folder / f"ablation-{a.models}")
    else:
        res = run_setup_bench(spec, adapters, a.models)
    print(json.dumps({"what": a.what, "models": a.models, "base": spec.base, **res,
                      "peak_rss_mib_before": round(rss0), "peak_rss_mib": round(peak_rss_mib()),
                      **({"note": "this run also wrote the adapters: run `prepare` first"} if fresh else {})}))


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
