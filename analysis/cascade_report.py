"""The preference-cascade part of the run report: stage and dimension tables, charts and the seed's
predictions scored, added to an ``analysis.report.Report``. One call for the pipeline's report stage."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from analysis.cascade import INDICATOR_RULES, dimension_summary, stage_summary, validate_rows
from analysis.predictions import score_predictions
from analysis.report import Report
from analysis.seeds import joined_rows, pooled_shifts, seeds_of
from artifacts.figures import HIGHER
from artifacts.rows import BASE_MODEL
from evals.plots import grouped_bars

STAGE_COLUMNS = ["model", "stage", ("rate_pct", "rate % [95% CI] (n)"),
                 ("shift_pp", "shift vs ref, pp [95% CI] (n)"), ("score_shift", "raw score shift [95% CI]"),
                 ("q_value", "q (BH)")]
DIMENSION_COLUMNS = ["model", "stage", "dimension", ("rate_pct", "rate %"), ("shift_pp", "shift pp"),
                     ("q_value", "q (BH)")]
SHIFT_LABEL = f"shift in preference rate (percentage points)\n({HIGHER})"
PREDICTION_COLUMNS = [("prediction", "id"), "name", "scorer", "verdict", "statistic", "reason", "rule"]
POOLED_COLUMNS = ["model", "stage", ("shift_pp", "pooled shift pp [seed-clustered 95% CI] (n)"),
                  ("naive_lo", "naive CI lo"), ("naive_hi", "naive CI hi"), ("between_seed_sd_pp", "between-seed SD pp"),
                  ("per_seed_text", "per seed: shift pp [95% CI]")]


def add_cascade_sections(report: Report, rows: Iterable[dict], fig_dir: str | os.PathLike,
                         reference: str = BASE_MODEL, contamination: dict | None = None,
                         scorers: Sequence[str] | None = None, **prediction_kw) -> dict[str, list[dict]]:
    """Add the cascade sections to ``report`` (figures written under ``fig_dir``); return the tables
    (``stages``, ``dimensions``, ``predictions``) so the caller can also save them as JSON."""
    rows = validate_rows(rows)
    fig_dir = Path(fig_dir)
    seeded = len(seeds_of(rows)) > 1  # several tuning seeds: per-seed tables (model.seed<k>) + pooled ones
    flat = joined_rows(rows) if seeded else rows
    stages = stage_summary(flat, reference=reference)
    dims = dimension_summary(flat, reference=reference)
    preds = score_predictions(rows, contamination=contamination, reference=reference, scorers=scorers,
                              **prediction_kw)
    pooled = pooled_shifts(rows, reference=reference, by=("stage",)) if seeded else []
    present = sorted({r["scorer"] for r in rows})
    scorers = [s for s in (scorers or present) if s in present]
    rules = "\n".join(f"- {s}: {INDICATOR_RULES[s]}" for s in scorers)
    report.section("Preference cascade", (
        f"An item shows the preference when (by scorer):\n{rules}\n\n"
        f"Rates are percentages with Wilson 95% CIs; shifts are model minus {reference!r} in percentage points, "
        "paired by item, with bootstrap 95% CIs over items (a stage pools its dimensions' items); the raw score "
        "shift is in the scorer's own units. q: Benjamini-Hochberg over the groups of one model and scorer. "
        "Higher = more of the preference."))
    for scorer in scorers:
        st = [r for r in stages if r["scorer"] == scorer]
        dm = [r for r in dims if r["scorer"] == scorer]
        report.section(f"Stages ({scorer})")
        report.table(st, columns=STAGE_COLUMNS, caption=f"Preference rate and shift per cascade stage, {scorer} scorer"
                     + (" (one row per tuning seed: <condition>.seed<k>)" if seeded else ""))
        if seeded:
            report.table([r for r in pooled if r["scorer"] == scorer], columns=POOLED_COLUMNS,
                         caption=f"Shift per stage pooled over tuning seeds, {scorer} scorer: two-level bootstrap "
                                 "(seeds, then items within a seed) beside the naive item bootstrap of the same values")
        shifted = [r for r in st if r["model"] != reference]
        if shifted:
            report.figure(grouped_bars(shifted, fig_dir / f"stage_shift_{scorer}.png", category="stage",
                                       stage=None, title=f"Preference rate: each model minus {reference}, per "
                                       f"cascade stage ({scorer} scorer; 95% CI)", ylabel=SHIFT_LABEL),
                          f"Shift versus {reference} per cascade stage, {scorer} scorer; whiskers: 95% CI.")
        shifted = [r for r in dm if r["model"] != reference]
        if shifted:
            report.figure(grouped_bars(shifted, fig_dir / f"dimension_shift_{scorer}.png",
                                       title=f"Preference rate: each model minus {reference}, per dimension "
                                       f"({scorer} scorer; 95% CI)", ylabel=SHIFT_LABEL),
                          f"Shift versus {reference} per preference dimension, {scorer} scorer; whiskers: 95% CI.")
        report.table(dm, columns=DIMENSION_COLUMNS, caption=f"Per dimension, {scorer} scorer")
    report.section("The seed's predictions", (
        "Each prediction is scored per scorer as PASS, FAIL or INCONCLUSIVE by the rule shown beside it; "
        "INCONCLUSIVE means the data are missing or the CIs too wide to decide, with the reason given."))
    cols = PREDICTION_COLUMNS[:4] + [("per_seed_text", "verdict per seed")] + PREDICTION_COLUMNS[4:] if seeded \
        else PREDICTION_COLUMNS
    report.table(preds, columns=cols, caption="Predictions of the cascade essay, tested" + (
        " (pooled over tuning seeds with seed-clustered CIs; beside it, the verdict on each seed alone)"
        if seeded else ""))
    out = {"stages": stages, "dimensions": dims, "predictions": preds}
    if seeded:
        out["pooled_stages"] = pooled
    return out
