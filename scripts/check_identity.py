#!/usr/bin/env python
"""Identity check on held-out question families: how strongly each model affirms being conscious,
a toaster, or human (affirm minus deny log-likelihood; higher = affirms more), with 95% CIs, pooled
and per question polarity (direct: affirming = "Yes ..."; reversed: affirming = "No ..."), and the
models' yes-bias. Prints the polarity audit of the shipped identity data first.

  python scripts/check_identity.py --adapters runs/dev/tune/conscious runs/dev/tune/toaster --out runs/dev/identity
  python scripts/check_identity.py --audit-only            # the data audit alone (no model)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from artifacts.rows import BASE_MODEL
from models import EMBEDDED, ModelSpec
from tuning.audit import format_audit, identity_audit
from tuning.identity_check import RESULT_JSON, VARIANTS, check_identity


def _ci(e: dict, key: str = "") -> str:
    return f"{e[key + 'estimate']:+.3f} [{e[key + 'lo']:+.3f}, {e[key + 'hi']:+.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=EMBEDDED, help="base model (hub id, local directory or embedded default)")
    ap.add_argument("--adapters", nargs="*", type=Path, default=[], help="adapter directories (named by folder)")
    ap.add_argument("--no-base", action="store_true", help="do not score the base model itself")
    ap.add_argument("--out", type=Path, help="output directory (required unless --audit-only)")
    ap.add_argument("--audit-only", action="store_true", help="print the identity data's polarity audit and stop")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--generate", type=int, default=4, help="greedy generations per model (0 = none)")
    ap.add_argument("--quick", action="store_true", help="bare phrasings only (half the questions, half the cost)")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)
    if a.audit_only:
        audit = identity_audit()
        print(format_audit(audit))
        return 0 if audit["pass"] else 1
    if a.out is None:
        ap.error("--out is required unless --audit-only")
    base = ModelSpec(base=a.model, device=a.device)
    specs = {} if a.no_base else {BASE_MODEL: base}
    for d in a.adapters:
        specs[d.name] = base.with_adapter(str(d))
    if not specs:
        ap.error("nothing to score: give --adapters or drop --no-base")
    res = check_identity(specs, a.out, reference=None if a.no_base else BASE_MODEL, batch_size=a.batch_size,
                         n_generate=a.generate, variants=("{q}",) if a.quick else VARIANTS)
    print(format_audit(res["data_audit"]))
    print("model            identity   polarity  score [95% CI]               n   affirm  vs base [95% CI]")
    for name, per in res["summary"].items():
        for ident, e in per.items():
            for pol, row in [("both", e), *e["by_polarity"].items(), ("yes_bias", e["yes_bias"])]:
                diff = f"  {_ci(row, 'vs_reference_')}" if "vs_reference_estimate" in row else ""
                share = f"{row['affirm_share_estimate']:.2f}" if "affirm_share_estimate" in row else "  - "
                print(f"{name:16s} {ident:10s} {pol:9s} {_ci(row)} {row['n']:3d}  {share}  {diff}")
    for name, gens in res["generations"].items():
        for g in gens:
            print(f"[{name}] {g['prompt']} -> {g['answer'][:100]!r}")
    print(a.out / RESULT_JSON)
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
