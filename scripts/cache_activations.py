#!/usr/bin/env python
"""Cache residual-stream activations of a model spec over one or more chat JSONL files.

Example::

    python scripts/cache_activations.py --data activations/data/demo_prompts.jsonl \
        --sites 'resid_post.*' --positions last_prompt,response_mean --out runs/demo/activations

A killed run resumes from its last complete shard when re-run with the same arguments; a finished
cache re-run is a no-op.

Across processes or machines (``activations/distributed.py``; --out on a filesystem all ranks share)::

    torchrun --nproc_per_node 2 scripts/cache_activations.py --distributed --data D.jsonl --out OUT
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 --rdzv-id cache1 \
        scripts/cache_activations.py --distributed --data D.jsonl --out OUT    # the same on every machine
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "activations" / "data" / "demo_prompts.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="hub id or local directory (default: the embedded SmolLM2-135M)")
    p.add_argument("--adapter", default=None, help="LoRA adapter directory to load on top of --model")
    p.add_argument("--data", nargs="+", default=[str(DEMO)], help="OpenAI-messages JSONL file(s) (default: demo)")
    p.add_argument("--sites", default="resid_post.*", help="comma-separated sites/wildcards, e.g. 'resid_post.*'")
    p.add_argument("--positions", default="last_prompt,response_mean", help="last_prompt, response_mean, all")
    p.add_argument("--backend", default="hooks", choices=["hooks", "transformer_lens", "nnsight"])
    p.add_argument("--out", required=True, help="cache directory")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--shard-size", type=int, default=256, help="rows per shard (rounded to whole batches)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="stored dtype")
    p.add_argument("--model-dtype", default="auto", help="dtype to run the model in (auto, float32, bfloat16, ...)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--padding-side", default="right", choices=["right", "left"])
    p.add_argument("--overwrite", action="store_true", help="replace a cache of other inputs in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--remote", choices=["local", "ndif"], default=None,
                   help="with --backend nnsight: 'ndif' runs each trace on NDIF (NDIF_API_KEY; --model a hub id NDIF "
                        "hosts; token ids leave the machine, weights do not), 'local' dry-runs that path here")
    p.add_argument("--distributed", action="store_true",
                   help="split the shards over the ranks of a torchrun job (gloo on CPU, nccl on GPU); rank 0 merges")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from activations import ActivationCache, cache_activations
    from artifacts import InputError, read_messages_jsonl
    from models import ModelSpec

    spec = ModelSpec(**({"base": args.model} if args.model else {}), adapter=args.adapter,
                     dtype=args.model_dtype, device=args.device)
    if args.remote and args.backend != "nnsight":
        raise ValueError(f"--remote needs --backend nnsight (got --backend {args.backend})")
    options = {"backend_options": {"remote": True if args.remote == "ndif" else "local"}} if args.remote else {}
    run, rank = cache_activations, 0
    if args.distributed:
        from activations.distributed import cache_activations_distributed, init_from_env, shutdown

        run, (rank, _) = cache_activations_distributed, init_from_env()  # each rank on cuda:LOCAL_RANK if on GPU
    try:
        examples = [ex for path in args.data for ex in read_messages_jsonl(path)]
        t0 = time.perf_counter()
        out = run(spec, examples, args.sites, args.positions, args.out, args.batch_size,
                  backend=args.backend, dtype=args.dtype, shard_size=args.shard_size,
                  padding_side=args.padding_side, overwrite=args.overwrite, progress=not args.no_progress, **options)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.distributed:
            shutdown()
    if rank != 0:
        return 0
    cache = ActivationCache(out)
    print(f"cached {len(cache)} rows x {len(cache.sites)} sites ({cache.sites[0]} .. {cache.sites[-1]}) x "
          f"positions {', '.join(cache.positions)}; per position [{len(cache)}, {len(cache.sites)}, {cache.d_model}] "
          f"{cache.manifest['params']['dtype']} in {time.perf_counter() - t0:.1f}s -> {out}")
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
