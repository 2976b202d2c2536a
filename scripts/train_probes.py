#!/usr/bin/env python
"""Train probes and extract directions (self_model, toaster, human, polarity, negation, self_model_orth, tune
shifts) for a base model and its tunes; print the per-layer table of self_model against its controls.

Example (the embedded model, demo size, tuned adapters when present):
    python scripts/train_probes.py --out runs/dev/probes --n 80 --max-eval-per-dimension 4 --adapters-root runs/dev/tune
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models import ModelSpec
from probes import ProbeError
from probes.run import DIRECTIONS_FILE, resolve_adapter, run_probes
from tuning.datasets import CONDITIONS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=ModelSpec().base, help="hub id, local directory or embedded:... (default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--out", default="runs/dev/probes", help="output directory")
    ap.add_argument("--cache-dir", default=None, help="activation caches (default OUT/activations)")
    ap.add_argument("--n", type=int, default=80, help="identity examples per condition before dropping "
                    "pairs with identical answers")
    ap.add_argument("--adapter", action="append", default=[], metavar="COND=DIR",
                    help="a tuned adapter, e.g. conscious=runs/dev/tune/conscious (repeatable)")
    ap.add_argument("--adapters-root", default=None,
                    help="use ROOT/<condition> for every condition whose folder exists")
    ap.add_argument("--max-eval-per-dimension", type=int, default=4, help="0 for every item")
    ap.add_argument("--folds", type=int, default=5, help="folds of question families")
    ap.add_argument("--phrasing-folds", type=int, default=2,
                    help="folds of answer phrasings, crossed with the family folds (when examples carry 'phrasing')")
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--logistic-for", default="self_model,self_model_last_prompt,toaster,human",
                    help="comma list of directions that also get the logistic probe ('' for none)")
    ap.add_argument("--reextract", default="all",
                    help="conditions whose tuned model re-extracts the contrasts: all, none or a comma list")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    adapters = {}
    for c in CONDITIONS if a.adapters_root else ():
        folder = Path(a.adapters_root) / c
        try:
            adapters[c] = resolve_adapter(folder)
        except ProbeError as exc:
            if folder.exists():
                print(f"skipping {c}: {exc}", file=sys.stderr)
    for item in a.adapter:
        cond, sep, path = item.partition("=")
        if not sep or cond not in CONDITIONS:
            ap.error(f"--adapter {item!r}: use COND=DIR with COND one of {', '.join(CONDITIONS)}")
        adapters[cond] = path
    spec = ModelSpec(base=a.base, device=a.device, dtype=a.dtype)
    summary = run_probes(spec, adapters, a.out, a.n, cache_dir=a.cache_dir, seed=a.seed, n_splits=a.folds,
                         n_boot=a.n_boot, max_eval_per_dimension=a.max_eval_per_dimension or None,
                         logistic_for=[x for x in a.logistic_for.split(",") if x], batch_size=a.batch_size,
                         reextract={"all": True, "none": False}.get(a.reextract, a.reextract.split(",")),
                         phrasing_splits=a.phrasing_folds)
    skip = ("reading_at_selected", "layer_table", "cos_by_layer")
    print(json.dumps({k: v for k, v in summary.items() if k not in skip}, indent=1, default=str))
    print_curves(Path(a.out) / DIRECTIONS_FILE, ["self_model", "toaster"])
    print_layer_table(summary.get("layer_table", []))
    return 0


def _f(v) -> str:
    return "   -" if v is None or v == "" else f"{float(v):5.2f}"


def print_layer_table(rows: list[dict]) -> None:
    """self_model and self_model_orth per layer: probe vs lexical accuracy, selectivity, paired accuracy, controls."""
    if not rows:
        return
    pol = [k for k in rows[0] if k.startswith("paired_accuracy_") and not k.endswith(("_lo", "_hi"))]
    cols = (["probe_accuracy", "lexical_accuracy", "selectivity", "paired_accuracy"] + pol
            + ["cos_polarity", "cos_negation", "polarity_paired_accuracy", "negation_paired_accuracy"])
    heads = ["acc", "lex", "sel", "pair"] + [k.replace("paired_accuracy_", "pair_")[:9] for k in pol] + [
        "cos_pol", "cos_neg", "pol_pair", "neg_pair"]
    for name in dict.fromkeys(r["direction"] for r in rows):
        print(f"\n{name}: per layer (acc = held-out probe accuracy, lex = lexical baseline, sel = acc - lex, "
              "pair = paired accuracy; pol_pair/neg_pair = the control directions' paired accuracy)")
        print("layer " + " ".join(f"{h:>9}" for h in heads) + "  selected")
        for r in (r for r in rows if r["direction"] == name):
            print(f"{r['layer']:>5} " + " ".join(f"{_f(r.get(k)):>9}" for k in cols) + ("  *" if r["selected"] else ""))


def print_curves(path: Path, names: list[str]) -> None:
    """Per-layer held-out-family accuracy / AUROC of each probe, for the named directions."""
    from probes import load_directions

    dirs = load_directions(path)
    for name in names:
        d = dirs[name]
        per = d.metrics["per_layer"]
        print(f"\n{name} (selected layer {d.metrics['selected_layer']}; "
              f"n={per['mean_diff']['n'][0]}, families={per['mean_diff']['n_families'][0]})")
        print("layer " + " ".join(f"{p + ' acc':>15} {p + ' auc':>15}" for p in per))
        for i, L in enumerate(d.layers):
            print(f"{L:>5} " + " ".join(f"{per[p]['accuracy'][i]:>15.3f} {per[p]['auroc'][i]:>15.3f}" for p in per))


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
