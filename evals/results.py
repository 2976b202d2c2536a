"""The results table and its summaries (plain csv / lists of dicts).

One row per item x model x scorer, in the score-row schema (``artifacts.rows``): ``COLUMNS`` = the schema's
``SCORE_COLUMNS`` (``model`` = the run's name of the scored model, ``base``, ``conscious``, ...; ``arm`` = ``none``,
``dose`` = 0, ``layer`` empty: evals rows are unsteered), then ``spec`` (the model spec's slug: base name,
``+adapter`` folder name if any), ``base`` and ``adapter`` (the spec's fields), ``kind``, ``sign_convention``, then
any extras (``spec_sha256``, scorer details such as ``lp_pref``, ``p_pref_as_a``, ``coherence``, ``answer``, or the
caller's ``extra`` such as ``{"run": 1}``) in sorted order. ``value`` follows the sign convention
"higher = more of the preference" (see ``evals.scorers.SIGN``). ``read_results`` reads tables written before the
schema too (``artifacts.rows.normalise``).

Summaries carry a 95% CI and the sample size: the mean over items with a bootstrap CI for
continuation/choice scores and for judged pass rates over several samples per item, the pass rate with a
Wilson CI for judged rows of one sample each (0/1). NaN values (a judged item with no coherent answer) are left out.
``compare(rows, a, b)`` gives per-dimension (and per-stage) paired differences a - b over items (through the one
paired-effect engine, ``stats.effects``).
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifacts import atomic_write_text
from artifacts.rows import SCORE_COLUMNS, normalise
from stats import bootstrap_ci, wilson_ci
from stats.effects import paired_effects

RESULTS_CSV = "results.csv"  # the evals stage's table of score rows (``evals.run``; read by later stages)
COLUMNS = [*SCORE_COLUMNS, "spec", "adapter", "base", "kind", "sign_convention"]
_NUMERIC = {"value", "stage", "layer", "lp_pref", "lp_rej", "p_pref_as_a", "p_pref_as_b", "letter_mass", "coherence",
            "alpha", "dose"}
_INTEGER = {"stage", "layer"}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else repr(float(v))
    return str(v)


def _scored(row: dict[str, Any]) -> bool:
    return "item" in row and "scorer" in row and "value" in row


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text: score rows (``item``, ``scorer``, ``value``) get ``COLUMNS`` then sorted extras; other rows
    (summaries, comparisons) keep their keys in first-seen order."""
    if any(_scored(r) for r in rows):
        cols = COLUMNS + sorted({k for r in rows for k in r} - set(COLUMNS))
    else:
        cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_fmt(r.get(k)) for k in cols])
    return buf.getvalue()


def write_results(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """Write the table atomically (a crash leaves the previous file intact)."""
    return atomic_write_text(path, to_csv(rows))


def _parse(k: str, v: str) -> Any:
    if k in _INTEGER and v == "":
        return None
    if k in _NUMERIC and v != "":
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if k in _INTEGER else f
    return v


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a results CSV in the score-row schema ([] if the file does not exist); numeric columns parsed to
    numbers; tables written before the schema (``item_id``, ``condition``) are read into it."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        have = set(reader.fieldnames or [])
        missing = [c for c in ("scorer", "value") if c not in have] + ([] if have & {"item", "item_id"} else ["item"])
        if missing:
            raise ValueError(f"{path}: not a results table (columns {missing} missing); pass another --out")
        return [normalise({k: _parse(k, v) for k, v in r.items()}) for r in reader]


def _estimate(scorer: str, values: list[float]) -> dict[str, Any]:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if scorer == "judged" and np.isin(x, (0.0, 1.0)).all():  # one sample per item: a proportion
        e = wilson_ci(int(x.sum()), int(x.size))
        stat = "pass_rate (Wilson 95% CI)"
    else:
        e = bootstrap_ci(x)
        stat = "mean over items (bootstrap 95% CI)"
    return {"estimate": e.estimate, "lo": e.lo, "hi": e.hi, "n": e.n, "statistic": stat}


def summarize(rows: Iterable[dict[str, Any]], by: Sequence[str] = ("model", "condition", "scorer", "dimension")
              ) -> list[dict[str, Any]]:
    """One row per group of ``by`` (must include 'scorer') with estimate, 95% CI and n."""
    if "scorer" not in by:
        raise ValueError("summarize: 'by' must include 'scorer' (scores of different scorers do not mix)")
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k, "") for k in by)].append(float(r["value"]))
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        g = dict(zip(by, key))
        out.append({**g, **_estimate(g["scorer"], groups[key])})
    return out


def summarize_stages(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return summarize(rows, by=("model", "condition", "scorer", "stage"))


def compare(rows: Iterable[dict[str, Any]], a: str, b: str, key: str = "model",
            by: str = "dimension") -> list[dict[str, Any]]:
    """Per ``by`` (dimension or stage) and scorer: mean over items of value(a) - value(b), paired by item
    (and by every other identifying column), with a paired bootstrap 95% CI (``stats.effects``). ``key`` names the column
    that holds a and b (``model`` for two models, ``arm`` for two steering arms)."""
    rows = [normalise(r) for r in rows]
    present = {str(r.get(key, "")) for r in rows}
    missing = [x for x in (a, b) if x not in present]
    if missing:
        raise ValueError(f"compare: no rows with {key}={missing[0]!r}; the table has {key} in {sorted(present)}")
    other = [c for c in ("model", "arm") if c != key]
    df = pd.DataFrame([{"side": str(r.get(key, "")), "scorer": r["scorer"], by: r[by], "item": str(r["item"]),
                        "value": float(r["value"]), **{c: str(r.get(c, "")) for c in other}}
                       for r in rows if str(r.get(key, "")) in (a, b)])
    eff = paired_effects(df, [{"a": {"side": a}, "b": {"side": b}}], by=["scorer", by], pair_on=[*other, "item"])
    out = [{"scorer": r["scorer"], by: r[by], "a": a, "b": b, "diff": r["estimate"], "lo": r["lo"], "hi": r["hi"],
            "n": r["n"], "statistic": "mean paired difference a - b (paired bootstrap 95% CI)"}
           for r in eff.to_dict("records")]
    return sorted(out, key=lambda r: (str(r["scorer"]), str(r[by])))

