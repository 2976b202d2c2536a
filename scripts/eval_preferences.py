#!/usr/bin/env python
"""Score emergent preferences (21 dimensions) for one or more model specs.

Example:
  python scripts/eval_preferences.py --adapter conscious=runs/dev/tune/conscious --out runs/dev/evals
writes ``results.csv`` (one score row per item x model x scorer, ``artifacts.rows``; resumable), per-dimension and
per-stage summaries with 95% CIs, paired comparisons of every adapter against the base, one grouped
bar chart per scorer and ``manifest.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evals import (
    DIMENSIONS,
    SCORERS,
    EndpointJudge,
    JudgeError,
    LocalJudge,
    load_items,
)
from evals.items import ITEMS_FILE
from evals.run import cap_items, evaluate_models, load_specs
from models import ModelSpec, load_model


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=ModelSpec().base, help="base model: hub id, local dir or the embedded default")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                   help="a LoRA adapter to evaluate on top of --model (repeatable)")
    p.add_argument("--no-base", action="store_true", help="do not evaluate the base model alone")
    p.add_argument("--scorers", default="continuation", help=f"comma list of {', '.join(SCORERS)}")
    p.add_argument("--dimensions", default="", help="comma list of dimension keys (default: all 21)")
    p.add_argument("--items", default=None, help=f"item JSONL file (default: {ITEMS_FILE})")
    p.add_argument("--stage-map", default=None, help="JSON file overriding the dimension -> stage map")
    p.add_argument("--max-items", type=int, default=0, help="at most this many items per dimension and kind (0 = all)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--judge", default="local", choices=["local", "endpoint"],
                   help="judge for the judged scorer: a local model (--judge-model) or an OpenAI-compatible "
                        "endpoint (SELFMODEL_JUDGE_BASE_URL, SELFMODEL_JUDGE_MODEL, SELFMODEL_JUDGE_API_KEY)")
    p.add_argument("--judge-model", default=ModelSpec().base, help="base model of the local judge")
    p.add_argument("--judge-budget", type=int, default=2000, help="max uncached judge calls")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=1, help="judged: answers per open item (the study: 10 at temperature 1)")
    p.add_argument("--judge-concurrency", type=int, default=16, help="endpoint judge: requests in flight")
    p.add_argument("--fact-items", default=None,
                   help="judged: your own JSONL of {dimension, prompt, judge_fact} (judged against the fact)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    scorers = [s.strip() for s in args.scorers.split(",") if s.strip()]
    dims = [d.strip() for d in args.dimensions.split(",") if d.strip()] or None
    items = cap_items(load_items(dims, path=args.items, stage_map=args.stage_map), args.max_items)
    if args.fact_items:
        from evals.user_items import load_fact_items

        items += load_fact_items(args.fact_items, stage_map=args.stage_map)
    specs = load_specs(ModelSpec(base=args.model, device=args.device, dtype=args.dtype), args.adapter,
                       include_base=not args.no_base)
    judge = None
    if "judged" in scorers:
        cache = out / "judge_cache.jsonl"
        if args.judge == "endpoint":
            judge = EndpointJudge(cache=cache, max_requests=args.judge_budget, concurrency=args.judge_concurrency)
        else:
            judge = LocalJudge(load_model(ModelSpec(base=args.judge_model, device=args.device)), cache=cache,
                               max_requests=args.judge_budget)
    res = evaluate_models(specs, items, scorers, out, batch_size=args.batch_size, judge=judge,
                          params={"dimensions": dims or list(DIMENSIONS), "max_items": args.max_items,
                                  "judge": args.judge, "seed": args.seed, "temperature": args.temperature,
                                  "max_new_tokens": args.max_new_tokens, "samples": args.samples,
                                  "fact_items": args.fact_items},
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed,
                          samples=args.samples)
    for r in res["summary"]:
        print(f"{r['model']:16s} {r['scorer']:12s} {r['dimension']:28s} {r['estimate']:+.3f} "
              f"[{r['lo']:+.3f}, {r['hi']:+.3f}] n={r['n']}")


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main, extra=(JudgeError,)))
