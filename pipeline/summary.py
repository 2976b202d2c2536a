"""What the pipeline prints at the end: wall times, the verdict table and the predictions table."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.layout import RunLayout
from pipeline.report import read_csv


def _table(rows: list[dict], cols: list[str]) -> str:
    rows = [{c: _fmt(r.get(c)) for c in cols} for r in rows]
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, str) and len(v) > 110:
        return v[:107] + "..."
    if isinstance(v, float):
        return f"{v:+.3f}" if abs(v) < 1000 else f"{v:.3g}"
    return "" if v is None else str(v)


def print_summary(root: Path, results, wall: float) -> None:
    run = RunLayout(root)
    root = run.root
    print(f"\n== {root}: {sum(r.status == 'ran' for r in results)} stage(s) ran, "
          f"{sum(r.status == 'skipped' for r in results)} skipped, wall time {wall:.1f}s")
    for r in results:
        print(f"  {r.name:<22} {r.status:<8} {r.seconds:7.1f}s")
    verdict = read_csv(run.steering.verdict)
    if verdict:
        print("\nVerdict (steering the base model):")
        print(_table(verdict, [c for c in ("readout", "group", "verdict", "specific", "self_effect", "self_lo",
                                           "self_hi", "self_q", "polarity_effect", "toaster_effect", "toaster_q",
                                           "dose", "layer", "n_items")
                               if c in verdict[0]]))
    tables = run.report.tables
    if tables.exists():
        preds = json.loads(tables.read_text()).get("predictions", [])
        if preds:
            print("\nThe seed's predictions:")
            print(_table(preds, ["prediction", "name", "scorer", "verdict", "statistic"]))
    html = run.report.html
    if html.exists():
        print(f"\nReport: {html}")
