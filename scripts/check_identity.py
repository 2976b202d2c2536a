#!/usr/bin/env python
"""Identity check on held-out question families: how strongly each model affirms being conscious,
a toaster, or human (affirm minus deny log-likelihood; higher = affirms more), with 95% CIs.

  python scripts/check_identity.py --adapters runs/dev/tune/conscious runs/dev/tune/toaster --out runs/dev/identity
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models import EMBEDDED, ModelSpec
from tuning.identity_check import VARIANTS, check_identity


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=EMBEDDED, help="base model (hub id, local directory or embedded default)")
    ap.add_argument("--adapters", nargs="*", type=Path, default=[], help="adapter directories (named by folder)")
    ap.add_argument("--no-base", action="store_true", help="do not score the base model itself")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--generate", type=int, default=4, help="greedy generations per model (0 = none)")
    ap.add_argument("--quick", action="store_true", help="bare phrasings only (half the questions, half the cost)")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)
    base = ModelSpec(base=a.model, device=a.device)
    specs = {} if a.no_base else {"base": base}
    for d in a.adapters:
        specs[d.name] = base.with_adapter(str(d))
    if not specs:
        ap.error("nothing to score: give --adapters or drop --no-base")
    res = check_identity(specs, a.out, reference=None if a.no_base else "base", batch_size=a.batch_size,
                         n_generate=a.generate, variants=("{q}",) if a.quick else VARIANTS)
    for name, per in res["summary"].items():
        for ident, e in per.items():
            diff = ""
            if "vs_reference_estimate" in e:
                diff = (f"  vs base {e['vs_reference_estimate']:+.3f} "
                        f"[{e['vs_reference_lo']:+.3f}, {e['vs_reference_hi']:+.3f}]")
            print(f"{name:16s} {ident:10s} {e['estimate']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}] n={e['n']} "
                  f"affirm {e['affirm_share_estimate']:.2f}{diff}")
    for name, gens in res["generations"].items():
        for g in gens:
            print(f"[{name}] {g['prompt']} -> {g['answer'][:100]!r}")
    print(a.out / "identity_check.json")
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
