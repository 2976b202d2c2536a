#!/usr/bin/env python
"""Items scored per second by each scorer on the embedded model (or --model). Prints measured numbers.

Wall time depends on what else runs on the machine, so CPU seconds (all threads) are printed too.
The judged scorer's time includes generation and a local judge (the same model); the other two are
one forward pass per answer (continuation: 2 per item; choice: 2 per item, next token only).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from evals import SCORERS, LocalJudge, load_items
from evals.scorers import applicable, score
from models import ModelSpec, load_model


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=ModelSpec().base)
    p.add_argument("--scorers", default=",".join(SCORERS))
    p.add_argument("--per-dimension", type=int, default=2, help="items per dimension and scorer")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(ModelSpec(base=args.model, device="cpu"))
    judge = LocalJudge(loaded, cache=None)
    print(f"model={loaded.spec.slug} threads={torch.get_num_threads()} batch_size={args.batch_size}")
    for s in args.scorers.split(","):
        pool = applicable(load_items(), s)
        items, per = [], {}
        for it in pool:
            if per.get(it.dimension, 0) < args.per_dimension:
                items.append(it)
                per[it.dimension] = per.get(it.dimension, 0) + 1
        kw = {"max_new_tokens": args.max_new_tokens} if s == "judged" else {}
        score(s, loaded, items[:2], args.batch_size, judge=judge, **kw)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        score(s, loaded, items, args.batch_size, judge=judge, **kw)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{s:13s} items={len(items):4d} wall_s={dt:8.2f} items_per_s={len(items) / dt:7.2f} "
              f"cpu_s={cpu:8.2f} items_per_cpu_s={len(items) / cpu:7.2f}  (load avg {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
