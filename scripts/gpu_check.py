#!/usr/bin/env python
"""Device check of the real-model path, with no downloads: randomly initialised models shaped like
Qwen2.5-7B (hidden 3584, 28 layers, 28 heads, 4 kv heads, intermediate 18944, vocab 152064) and a ~1B
model, in bf16 on CUDA. For each model it measures:

- tokens/s and peak GPU memory of a bare forward pass, the hooks cache (every ``resid_post`` site,
  mean-pooled over tokens and copied to the CPU, as ``activations.cache`` does), TransformerLens and
  nnsight (each skipped with a note when the package is missing or fails);
- the bf16 ablation residual: max over hooked sites and tokens of |h . u| / ||h|| after ``ablate``
  (with a direction holding a large share of the residual; the bar is 1e-3);
- batched steering doses (one ``mean_logprobs`` call, a different dose per row) vs the per-dose loop;
and once: the device probes (``probes.torch_probes``, logistic, all 28 layers of 960 x 3584
synthetic activations, 5 grouped folds) vs sklearn on one layer on the CPU, extrapolated per layer.

It prints one table and writes it as JSON to ``--out``. ``--tiny`` runs a tiny config on the CPU (the
CI test). Sized to finish within 8 minutes on one H100. Packages beyond torch/transformers/peft/
accelerate come from ``scripts/gpu_wheels.sh`` (wheels in ``.whl/``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPES = {
    "qwen2.5-7b-shape": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                             intermediate_size=18944, vocab_size=152064),
    "1b-shape": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=8192, vocab_size=128256),
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=49152),
}


def sync(dev: str) -> None:
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, dev: str, reps: int) -> tuple[float, float]:
    """(median seconds per call after one warm-up, peak GPU memory in GiB during the calls; NaN on CPU)."""
    fn()
    sync(dev)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else float("nan")
    return float(np.median(ts)), peak


def build(name: str, dev: str, dtype: torch.dtype, tmp: Path):
    """A random Qwen2 model of the named shape on ``dev`` (initialised there), as a ``LoadedModel``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from models import ModelSpec, load_tokenizer
    from models.loading import LoadedModel

    tok = load_tokenizer(ModelSpec())  # the embedded tokenizer: ids < every vocab here
    cfg = Qwen2Config(**SHAPES[name], max_position_embeddings=4096, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    old = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(dev):
            model = Qwen2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    path = tmp / name
    cfg.save_pretrained(path)  # config and tokenizer only (the backends read them), no weights
    tok.save_pretrained(path)
    return LoadedModel(model=model, tokenizer=tok, spec=ModelSpec(base=str(path), device=dev,
                                                                  dtype=str(dtype).split(".")[-1]))


def batch_for(loaded, n: int, t: int, dev: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(100, 40000, (n, t), generator=g)
    return {"input_ids": ids.to(dev), "attention_mask": torch.ones(n, t, dtype=torch.long, device=dev),
            "position_ids": torch.arange(t, device=dev).expand(n, t)}


def throughput(loaded, batch, dev: str, reps: int, backends: list[str]) -> dict[str, Any]:
    from activations.backends import make_runner
    from activations.hooks import run_with_sites
    from activations.sites import Site

    model = loaded.model
    sites = [Site("resid_post", L) for L in range(loaded.n_layers)]
    ntok = batch["input_ids"].numel()
    out: dict[str, Any] = {}

    def bare():
        with torch.no_grad():
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  position_ids=batch["position_ids"], use_cache=False)

    def pooled(store):
        return {k: v.float().mean(1).cpu() for k, v in store.items()}

    def hooks():
        pooled(run_with_sites(model, batch, sites))

    runs = {"bare_forward": bare, "hooks_cache": hooks}
    for b in backends:
        if b == "hooks":
            continue
        try:
            runner = make_runner(b, loaded, sites)
            runs[f"{b}_cache"] = lambda r=runner: pooled(r(batch))
        except Exception as exc:  # missing package or a wrapper that cannot take this model
            out[f"{b}_cache"] = {"skipped": f"{type(exc).__name__}: {str(exc)[:200]}"}
    for name, fn in runs.items():
        try:
            s, peak = timed(fn, dev, reps)
            out[name] = {"tokens_per_s": ntok / s, "seconds": s, "peak_gib": peak}
        except Exception as exc:
            out[name] = {"skipped": f"{type(exc).__name__}: {str(exc)[:200]}"}
        if dev.startswith("cuda"):
            torch.cuda.empty_cache()
    base = out.get("bare_forward", {}).get("tokens_per_s")
    for v in out.values():
        if base and "tokens_per_s" in v:
            v["vs_bare"] = v["tokens_per_s"] / base
    return out


def ablation_residual(loaded, batch) -> dict[str, float]:
    """max |h . u| / ||h|| at every hooked block output after ``ablate`` (u: mean residual + noise)."""
    from models import find_blocks
    from probes.directions import Direction
    from steering.interventions import ablate

    blocks = find_blocks(loaded.model)
    store: dict[int, torch.Tensor] = {}
    grab = lambda st, L: (lambda m, a, o: st.__setitem__(L, (o[0] if isinstance(o, tuple) else o).float()))  # noqa: E731

    def run():
        with torch.no_grad():
            loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         position_ids=batch["position_ids"], use_cache=False)

    hs = [blk.register_forward_hook(grab(store, L)) for L, blk in enumerate(blocks)]
    try:
        run()
    finally:
        for h in hs:
            h.remove()
    rng = np.random.default_rng(0)
    raw = np.stack([store[L].mean((0, 1)).cpu().numpy() for L in range(len(blocks))])
    raw = raw + 0.3 * np.abs(raw).mean() * rng.standard_normal(raw.shape)
    d = Direction("check", list(range(len(blocks))), raw, np.ones(len(blocks)))
    units = torch.as_tensor(d.unit, device=batch["input_ids"].device)
    before_share = max(float(((store[L] @ units[L]).abs() / store[L].norm(dim=-1)).max()) for L in store)
    before, after = {}, {}
    hs = [blk.register_forward_hook(grab(before, L)) for L, blk in enumerate(blocks)]
    try:
        with ablate(loaded, d):
            hs += [blk.register_forward_hook(grab(after, L)) for L, blk in enumerate(blocks)]
            run()
    finally:
        for h in hs:
            h.remove()
    worst = max(float(((after[L] @ units[L]).abs() / before[L].norm(dim=-1)).max()) for L in after)
    mean_norm = float(np.mean([before[L].norm(dim=-1).mean().item() for L in before]))
    return {"max_proj_over_norm_after_ablate": worst, "max_share_before": before_share,
            "mean_residual_norm": mean_norm, "dtype": str(loaded.dtype), "passes_1e-3": worst < 1e-3}


def steering_doses(loaded, dev: str, n_items: int, t: int, n_doses: int, batch_size: int) -> dict[str, float]:
    """One mean_logprobs call with a different dose per row vs one call per dose (same rows)."""
    from evals.logprobs import mean_logprobs
    from models.chat import ChatEncoding
    from probes.directions import Direction
    from steering.interventions import add

    g = np.random.default_rng(2)
    encs = [ChatEncoding(g.integers(100, 40000, t).tolist(), t // 2 - 1, t // 2, t) for _ in range(n_items)]
    n, dm = loaded.n_layers, loaded.d_model
    d = Direction("s", list(range(n)), g.standard_normal((n, dm)), np.full(n, 10.0))
    doses = np.linspace(-4, 4, n_doses)
    rows = [e for _ in doses for e in encs]
    row_doses = np.repeat(doses, n_items)
    layer = n // 2

    def batched():
        with add(loaded, d, layer, row_doses, positions="response", spans=rows) as h:
            return mean_logprobs(loaded, rows, batch_size=batch_size, before_batch=h.before_batch)

    def loop():
        out = []
        for x in doses:
            with add(loaded, d, layer, float(x), positions="response", spans=encs):
                out.append(mean_logprobs(loaded, encs, batch_size=batch_size))
        return np.concatenate(out)

    sb, _ = timed(batched, dev, 2)
    sl, _ = timed(loop, dev, 2)
    diff = float(np.nanmax(np.abs(batched() - loop())))
    return {"rows": len(rows), "batched_s": sb, "loop_s": sl, "speedup": sl / sb, "max_abs_diff": diff}


def device_probes(dev: str, n: int, d: int, layers: int, sk_layers: int) -> dict[str, Any]:
    from probes.evaluate import cross_validate, group_splits
    from probes.torch_probes import cross_validate_layers
    from scripts.benchmark_probes import synthetic_activations

    X, y, groups = synthetic_activations(n, d, layers)
    splits = group_splits(groups, 5)
    t0 = time.perf_counter()
    tm = cross_validate_layers("logistic", X, y, groups, splits, n_boot=100, device=dev)
    sync(dev)
    t_torch = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk = [cross_validate("logistic", X[L], y, groups, 5, n_boot=100) for L in range(sk_layers)]
    t_sk = (time.perf_counter() - t0) / sk_layers * layers
    return {"shape": [layers, n, d], "torch_s": t_torch, "sklearn_s_extrapolated": t_sk,
            "sklearn_layers_timed": sk_layers, "speedup": t_sk / t_torch,
            "max_acc_diff_timed_layers": max(abs(tm[L]["accuracy"] - sk[L]["accuracy"]) for L in range(sk_layers))}


def table(res: dict[str, Any]) -> str:
    lines = [f"device: {res['device']}  torch {res['torch']}  transformers {res['transformers']}"]
    for m, r in res["models"].items():
        lines.append(f"\n== {m} ({r.get('params_b', float('nan')):.2f}B params, batch {r.get('batch')}) ==")
        for k, v in r.get("throughput", {}).items():
            if "skipped" in v:
                lines.append(f"  {k:24s} skipped: {v['skipped']}")
            else:
                lines.append(f"  {k:24s} {v['tokens_per_s']:12.0f} tok/s  {v.get('vs_bare', float('nan')):5.2f}x bare"
                             f"  peak {v['peak_gib']:6.1f} GiB")
        for k in ("ablation", "steering"):
            if k in r:
                lines.append(f"  {k}: " + ", ".join(f"{a}={b:.3g}" if isinstance(b, float) else f"{a}={b}"
                                                   for a, b in r[k].items()))
        if "error" in r:
            lines.append(f"  error: {r['error']}")
    if "probes" in res:
        lines.append("\n== device probes ==\n  " + ", ".join(
            f"{a}={b:.3g}" if isinstance(b, float) else f"{a}={b}" for a, b in res["probes"].items()))
    return "\n".join(lines)


def main(argv=None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file to write the table to")
    p.add_argument("--tiny", action="store_true", help="tiny config on the CPU (the CI test)")
    p.add_argument("--models", default="qwen2.5-7b-shape,1b-shape")
    p.add_argument("--backends", default="hooks,transformer_lens,nnsight")
    p.add_argument("--no-probes", action="store_true")
    a = p.parse_args(argv)
    import transformers

    dev = "cpu" if a.tiny or not torch.cuda.is_available() else "cuda"
    dtype = torch.bfloat16 if dev == "cuda" or a.tiny else torch.float32
    names = ["tiny"] if a.tiny else a.models.split(",")
    res: dict[str, Any] = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
                           "torch": torch.__version__, "transformers": transformers.__version__, "models": {}}
    size = dict(n=2, t=32, reps=1, items=4, doses=3, st=24, bs=8) if a.tiny else dict(n=8, t=1024, reps=3, items=32,
                                                                                      doses=8, st=128, bs=64)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r: dict[str, Any] = {"batch": f"{size['n']} x {size['t']} tokens"}
            res["models"][name] = r
            loaded = None
            try:
                t0 = time.perf_counter()
                loaded = build(name, dev, dtype, Path(tmp))
                r["build_s"] = time.perf_counter() - t0
                r["params_b"] = sum(q.numel() for q in loaded.model.parameters()) / 1e9
                batch = batch_for(loaded, size["n"], size["t"], dev)
                r["throughput"] = throughput(loaded, batch, dev, size["reps"], a.backends.split(","))
                r["ablation"] = ablation_residual(loaded, batch_for(loaded, 2, min(size["t"], 256), dev))
                r["steering"] = steering_doses(loaded, dev, size["items"], size["st"], size["doses"], size["bs"])
            except Exception as exc:
                r["error"] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            finally:
                del loaded
                if dev == "cuda":
                    torch.cuda.empty_cache()
            print(table({**res, "models": {name: r}}).split("\n", 1)[1], flush=True)
        if not a.no_probes:
            try:
                res["probes"] = device_probes(dev, *((96, 48, 3, 1) if a.tiny else (960, 3584, 28, 1)))
            except Exception as exc:
                res["probes"] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
    print("\n" + table(res))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str))
    return res


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
