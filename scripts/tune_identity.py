#!/usr/bin/env python
"""Tune a LoRA identity adapter: an identity condition (or a messages JSONL file), optionally mixed
1:1 with instructions self-distilled from the base model.

  python scripts/tune_identity.py --condition conscious --profile fast --out runs/dev/tune/conscious
  python scripts/tune_identity.py --data my.jsonl --profile paper --out runs/x/tune/custom
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artifacts import InputError, read_messages_jsonl
from models import EMBEDDED, ModelSpec
from tuning.datasets import CONDITIONS, build_identity_dataset
from tuning.profiles import PROFILES, profile
from tuning.recipe import tune_condition


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--condition", choices=CONDITIONS)
    src.add_argument("--data", type=Path, help="OpenAI messages JSONL with an assistant answer per line")
    ap.add_argument("--model", default=EMBEDDED, help="base model: hub id, local directory or the embedded default")
    ap.add_argument("--out", type=Path, required=True, help="adapter directory to write")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    ap.add_argument("--n", type=int, help="identity examples (profile default)")
    ap.add_argument("--n-instructions", type=int, help="self-distilled instruction examples to mix in (0 = none)")
    ap.add_argument("--rank", type=int)
    ap.add_argument("--alpha", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--distill-cache", type=Path, help="JSONL cache of self-distilled answers "
                    "(default: <out>/../instructions-<seed>.jsonl)")
    a = ap.parse_args(argv)
    p = profile(a.profile, n=a.n, n_instructions=a.n_instructions, rank=a.rank, alpha=a.alpha, lr=a.lr,
                epochs=a.epochs, batch_size=a.batch_size)
    spec = ModelSpec(base=a.model, device=a.device)
    try:
        if a.data:
            examples = read_messages_jsonl(a.data, require_assistant=True)
        else:
            examples = build_identity_dataset(a.condition, n=p["n"], seed=a.seed)
        out = tune_condition(spec, examples, a.out, p, seed=a.seed, distill_cache=a.distill_cache,
                             max_steps=a.max_steps)
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
