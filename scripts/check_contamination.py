#!/usr/bin/env python
"""Share of training examples touching each evaluated preference (topic lexicon + word overlap with the
evaluation prompts of ``evals``). A clean identity dataset reports 0% everywhere.

  python scripts/check_contamination.py --condition conscious
  python scripts/check_contamination.py --data train.jsonl --out report.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artifacts import InputError, atomic_write_json, read_messages_jsonl
from evals.contamination import OVERLAP_THRESHOLD, contamination_report, max_share
from tuning.datasets import CONDITIONS, build_identity_dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--condition", choices=[*CONDITIONS, "all"], help="check the shipped identity dataset(s)")
    src.add_argument("--data", type=Path, help="OpenAI messages JSONL training file")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=OVERLAP_THRESHOLD)
    ap.add_argument("--no-evals", action="store_true", help="lexicon only; skip overlap with evaluation prompts")
    ap.add_argument("--out", type=Path, help="write the report(s) as JSON")
    ap.add_argument("--fail-above", type=float, default=None, help="exit 1 if any share exceeds this")
    a = ap.parse_args(argv)
    try:
        if a.data:
            sets = {a.data.stem: read_messages_jsonl(a.data)}
        else:
            conds = CONDITIONS if a.condition == "all" else (a.condition,)
            sets = {c: build_identity_dataset(c, n=a.n, seed=a.seed, families="all") for c in conds}
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reports, worst = {}, 0.0
    for name, exs in sets.items():
        rep = contamination_report(exs, use_evals=not a.no_evals, threshold=a.threshold)
        reports[name] = rep
        worst = max(worst, max_share(rep))
        print(f"== {name}: {rep['n_examples']} examples; eval prompts: {rep['eval_source']}")
        print(f"{'dimension':28s} {'lexicon':>18s} {'overlap':>18s}")
        for d, lx in rep["lexicon"].items():
            ov = (rep["overlap"] or {}).get(d)
            ovs = f"{100 * ov['share']:5.1f}% ({ov['k']}/{ov['n']})" if ov else "n/a"
            print(f"{d:28s} {100 * lx['share']:5.1f}% ({lx['k']}/{lx['n']}) {ovs:>18s}"
                  + (f"  e.g. {lx['examples'][:2]}" if lx["k"] else ""))
    if a.out:
        atomic_write_json(a.out, reports)
        print(a.out)
    return 1 if a.fail_above is not None and worst > a.fail_above else 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
