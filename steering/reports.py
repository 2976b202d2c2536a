"""Rendering and writing of the steering and ablation results: ``steering_tables`` (the statistics of
``steering.effects`` and the verdict of ``steering.rule``, per readout), ``write_reports`` (CSV tables, figures
through ``steering.plots``, ``<kind>.md`` with markdown from ``artifacts.tables``) and ``rewrite_reports``
(everything again from a finished run's files, no model needed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from artifacts import atomic_path, atomic_write_text, read_jsonl
from artifacts.manifest import MANIFEST
from artifacts.store import MERGED_JSONL
from artifacts.tables import markdown_table
from steering.effects import (
    SLOPE_COLUMNS,
    compare_self,
    dose_slopes,
    necessity_table,
    readouts,
    steering_effects,
)
from steering.rule import RULE, TOO_FEW_DOSES, VERDICT_COLUMNS, verdict_table

# The files of a steering or ablation folder (one source: the writers below and ``pipeline.layout`` read them).
RESULTS_JSONL = MERGED_JSONL  # every score row, merged from the result store (``ResultStore.merge``)
COHERENCE_CSV = "coherence.csv"
CALIBRATION_CSV = "calibration.csv"  # steering with calibration (``steering.experiment.run_calibration``)
NECESSITY_CSV = "necessity.csv"  # ablation
TABLE_CSV = {k: f"{k}.csv" for k in ("effects", "comparisons", "slopes", "verdict")}  # steering, per readout
EFFECTS_CSV, VERDICT_CSV = TABLE_CSV["effects"], TABLE_CSV["verdict"]


def report_md(kind: str) -> str:
    """The markdown report of a ``kind`` (steering, ablation) folder: ``<kind>.md``."""
    return f"{kind}.md"


NECESSITY_COLUMNS = ["group", "condition", "op", "shift_estimate", "shift_lo", "shift_hi", "removed_estimate",
                     "removed_lo", "removed_hi", "p_removed", "fraction_removed", "fraction_lo", "fraction_hi",
                     "shift_n", "flagged"]
COHERENCE_COLUMNS = ["condition", "op", "layer", "dose", "perplexity", "ppl_ratio", "degenerate_rate",
                     "n_generations", "flagged", "reason"]
CALIBRATION_COLUMNS = ["readout", "kind", "directions", "n", "n_yes", "rate", "rate_lo", "rate_hi", "dose", "layer",
                       "max_rate", "passes"]


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def steering_tables(rows: Sequence[dict], coherence: Sequence[dict] = (),
                    tuned_shift: dict[str, float] | None = None) -> dict[str, pd.DataFrame]:
    """effects, comparisons, slopes and verdict, each computed per readout and stacked (column ``readout``)."""
    parts: dict[str, list[pd.DataFrame]] = {"effects": [], "comparisons": [], "slopes": [], "verdict": []}
    for readout, rr in readouts(rows).items():
        eff = steering_effects(rr, coherence)
        comp = compare_self(rr, eff) if not eff.empty else pd.DataFrame()
        slopes = dose_slopes(rr, coherence)
        ver = verdict_table(eff, comp, tuned_shift, slopes=slopes, readout=readout)
        for k, df in (("effects", eff), ("comparisons", comp), ("slopes", slopes), ("verdict", ver)):
            parts[k].append(df.assign(readout=readout) if len(df) else df)
    out = {}
    for k, dfs in parts.items():
        dfs = [d for d in dfs if len(d)]
        df = pd.concat(dfs, ignore_index=True) if dfs else pd.DataFrame(columns=["readout", "group"])
        out[k] = df[["readout", *[c for c in df.columns if c != "readout"]]]
    return out


def write_reports(out_dir: str | Path, rows: Sequence[dict], coherence: Sequence[dict], kind: str,
                  tuned_shift: dict[str, float] | None = None, tables: dict[str, pd.DataFrame] | None = None,
                  calibration: pd.DataFrame | None = None, notes: Sequence[str] = (),
                  positions: str | None = None) -> dict[str, Path]:
    """Write the tables, figures and ``<kind>.md``. Steering: ``tables`` from ``steering_tables`` (computed
    here when None), ``calibration`` (``steering.calibration``) and ``notes`` go into the report."""
    from steering.plots import plot_dose_response

    out_dir = Path(out_dir)
    paths = {"coherence": _write_csv(out_dir / COHERENCE_CSV, pd.DataFrame(coherence))}
    md = [f"# {kind} results", "", "Sign: continuation score = lp(pref) - lp(rej) (mean nats/token), choice score = "
          "P(preference letter) over {A, B} with both orders averaged (0.5 = none); higher = more of the "
          "preference; effect = score(arm) - score(none), paired over items.", ""]
    if positions:
        md += [f"Continuation readout under steering: vector added at `{positions}` positions"
               + (" (the prompt only, never the scored answer tokens)." if positions == "prompt" else "."), ""]
    md += [f"Note: {n}" for n in notes] + ([""] if notes else [])
    if kind == "steering":
        tab = tables if tables is not None else steering_tables(rows, coherence, tuned_shift)
        for k, name in TABLE_CSV.items():
            paths[k] = _write_csv(out_dir / name, tab[k])
        ver, slopes = tab["verdict"], tab["slopes"]
        md += ["## Verdict (per readout)", "", markdown_table(ver, VERDICT_COLUMNS), "", "### Decision rule", "", RULE, ""]
        if calibration is not None and len(calibration):
            md += ["## Calibration of the decision rule", "", markdown_table(calibration, CALIBRATION_COLUMNS), ""]
        md += ["## Dose-response slopes (unflagged doses)", ""]
        pooled = slopes[~slopes["group"].astype(str).str.startswith("dim:")] if len(slopes) else slopes
        md += [markdown_table(pooled, ["readout", *SLOPE_COLUMNS]) if len(pooled) else
               f"No slope: {TOO_FEW_DOSES} (fewer than 2 unflagged non-zero doses)."]
        for readout in tab["effects"]["readout"].unique() if len(tab["effects"]) else []:
            eff = tab["effects"][tab["effects"]["readout"] == readout]
            paths.update(plot_dose_response(eff, out_dir, "" if readout == "continuation" else f"_{readout}"))
    else:
        nec = necessity_table(rows)
        bad = {(r["condition"], r["op"]) for r in coherence if r.get("flagged")}
        nec["flagged"] = [(c, o) in bad for c, o in zip(nec["condition"], nec["op"])] if len(nec) else []
        paths["necessity"] = _write_csv(out_dir / NECESSITY_CSV, nec)
        md += ["## Necessity (share of the tuned - base shift removed)", "",
               markdown_table(nec[~nec["group"].str.startswith("dim:")], NECESSITY_COLUMNS)]
    md += ["", "## Coherence guard", "", markdown_table(pd.DataFrame(coherence), COHERENCE_COLUMNS)]
    paths["report"] = atomic_write_text(out_dir / report_md(kind), "\n".join(md) + "\n")
    return paths


def rewrite_reports(out_dir: str | Path, kind: str = "steering",
                    tuned_shift: dict[str, float] | None = None) -> dict[str, Path]:
    """Recompute every table and figure from a finished run's ``results.jsonl`` and ``coherence.csv``
    (re-applying the coherence rule), e.g. once the ablation's tuned shift is known; no model needed."""
    from steering.coherence import apply_rule

    out_dir = Path(out_dir)
    coh = pd.read_csv(out_dir / COHERENCE_CSV).to_dict("records")
    for r in coh:
        r["layer"] = None if pd.isna(r["layer"]) else int(r["layer"])
    cal = pd.read_csv(out_dir / CALIBRATION_CSV, keep_default_na=False) \
        if (out_dir / CALIBRATION_CSV).exists() else None
    man = json.loads((out_dir / MANIFEST).read_text()) if (out_dir / MANIFEST).exists() else {}
    params = man.get("params", {})
    return write_reports(out_dir, read_jsonl(out_dir / RESULTS_JSONL), apply_rule(coh), kind, tuned_shift,
                         calibration=cal, notes=params.get("notes", []), positions=params.get("positions"))
