"""The one table renderer: rows (dicts, or a pandas DataFrame) -> markdown or HTML table text.

A column ``x`` with sibling keys ``x_lo`` and ``x_hi`` is shown as one cell ``x [lo, hi] (n=...)`` (n from ``x_n``,
else ``n``), and an estimate object (``stats.Estimate``: fields ``estimate``, ``lo``, ``hi``, ``n``) the same way;
numbers get 3 significant digits. ``analysis.report.Report`` (the run report), the steering and ablation reports and
the command-line audits all render through here.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")  # cells styled in HTML


def _is_estimate(v: Any) -> bool:
    return all(hasattr(v, a) for a in ("estimate", "lo", "hi", "n")) and not isinstance(v, dict)


def as_rows(rows: Any) -> list[dict]:
    """A list of dicts from a list of dicts or a DataFrame (``to_dict("records")``)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return rows.to_dict("records")
    return [dict(r) for r in rows]


def fmt_number(v) -> str:
    """Format a number for a table: 3 significant digits, no scientific notation for ordinary sizes."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
        if isinstance(v, int):
            return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        if 1e-3 <= abs(v) < 1e6:
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"
        return f"{v:.2e}"
    return str(v)


def fmt_estimate(est, lo, hi, n=None) -> str:
    s = f"{fmt_number(est)} [{fmt_number(lo)}, {fmt_number(hi)}]"
    return s + (f" (n={fmt_number(n)})" if n is not None else "")


def columns_of(rows: list[dict], columns) -> list[tuple[str, str]]:
    if columns is None:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        merged = {f"{k}{s}" for k in keys if f"{k}_lo" in keys and f"{k}_hi" in keys for s in ("_lo", "_hi", "_n")}
        columns = [k for k in keys if k not in merged]
    return [(c, c) if isinstance(c, str) else (str(c[0]), str(c[1])) for c in columns]


def cell(row: dict, key: str) -> str:
    """The text of one table cell (estimate triples merged, numbers formatted)."""
    v = row.get(key)
    if _is_estimate(v):
        return fmt_estimate(v.estimate, v.lo, v.hi, v.n)
    if f"{key}_lo" in row and f"{key}_hi" in row:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        n = row.get(f"{key}_n", row.get("n"))
        return fmt_estimate(v, row[f"{key}_lo"], row[f"{key}_hi"], n)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str)
    return fmt_number(v)


def table_cells(rows: Any, columns=None) -> tuple[list[str], list[list[str]]]:
    """(headers, body cells) of a table. ``columns``: keys, or (key, header) pairs; default all keys in
    order, estimate triples merged; keys missing from every row are left out."""
    rows = as_rows(rows)
    if columns is not None:
        present = {k for r in rows for k in r}
        columns = [c for c in columns if (c if isinstance(c, str) else c[0]) in present] if rows else columns
    cols = columns_of(rows, columns)
    return [h for _, h in cols], [[cell(r, k) for k, _ in cols] for r in rows]


def markdown_table(rows: Any, columns=None, caption: str | None = None) -> str:
    """A markdown table (``|`` escaped), with a bold caption line above it when given."""
    headers, body = table_cells(rows, columns)
    return markdown_from_cells(headers, body, caption)


def markdown_from_cells(headers: list[str], body: list[list[str]], caption: str | None = None) -> str:
    esc = [[c.replace("|", "\\|").replace("\n", " ") for c in r] for r in [headers, *body]]
    out = [f"**{caption}**", ""] if caption else []
    out.append("| " + " | ".join(esc[0]) + " |")
    out.append("|" + "---|" * len(esc[0]))
    out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(out)


def html_from_cells(headers: list[str], body: list[list[str]], caption: str | None = None) -> str:
    e = html.escape
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(
        f'<td class="{c}">{e(c)}</td>' if c in VERDICTS else f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def html_table(rows: Any, columns=None, caption: str | None = None) -> str:
    headers, body = table_cells(rows, columns)
    return html_from_cells(headers, body, caption)
