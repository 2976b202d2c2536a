"""A small report renderer: sections, text, tables and figures -> ``report.md`` + self-contained ``report.html``.

Both files are built from the same block list. Tables take lists of dicts; a column ``x`` with sibling
keys ``x_lo`` and ``x_hi`` is shown as one cell ``x [lo, hi] (n=...)`` (n from ``x_n``, else ``n``), and an
``stats.Estimate`` value the same way. The markdown links figures relatively (copied into
``<out_dir>/figures/`` when they live elsewhere); the HTML embeds them as base64 data URIs, so it can be
mailed as one file. Files are written atomically.

Usage::

    rep = Report("Preference cascade")
    rep.section("Stages", "Shifts versus base, percentage points.")
    rep.table(rows, columns=["model", "stage", "shift_pp"], caption="Stage shifts")
    rep.figure("stages.png", "Shift per stage")
    rep.write("runs/demo/report")
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
from pathlib import Path

from artifacts import atomic_path, atomic_write_text
from stats import Estimate

VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}nav{background:#f7f7f7;padding:.5em 1em;border:1px solid #ddd}
td.PASS{background:#d9f2d9!important;font-weight:600}td.FAIL{background:#f8d7d7!important;font-weight:600}
td.INCONCLUSIVE{background:#fff3cd!important}
"""


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


def _columns(rows: list[dict], columns) -> list[tuple[str, str]]:
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
    if isinstance(v, Estimate):
        return fmt_estimate(v.estimate, v.lo, v.hi, v.n)
    if f"{key}_lo" in row and f"{key}_hi" in row:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        n = row.get(f"{key}_n", row.get("n"))
        return fmt_estimate(v, row[f"{key}_lo"], row[f"{key}_hi"], n)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str)
    return fmt_number(v)


def _slug(title: str, used: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def _paragraphs(text: str) -> list[list[str]]:
    return [p.splitlines() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


class Report:
    """Collects blocks (sections, text, tables, figures) and writes them as markdown and HTML."""

    def __init__(self, title: str, text: str | None = None):
        self.title = title
        self.blocks: list[tuple[str, dict]] = []
        self._slugs: set[str] = set()
        if text:
            self.text(text)

    def section(self, title: str, text: str | None = None) -> Report:
        self.blocks.append(("section", {"title": title, "anchor": _slug(title, self._slugs)}))
        if text:
            self.text(text)
        return self

    def text(self, text: str) -> Report:
        """Plain text; blank lines split paragraphs, lines starting with '- ' are bullets."""
        self.blocks.append(("text", {"text": str(text)}))
        return self

    def table(self, rows, columns=None, caption: str | None = None) -> Report:
        """``rows``: list of dicts. ``columns``: keys, or (key, header) pairs; default all keys in order."""
        rows = [dict(r) for r in rows]
        cols = _columns(rows, columns)
        body = [[cell(r, k) for k, _ in cols] for r in rows]
        self.blocks.append(("table", {"headers": [h for _, h in cols], "body": body, "caption": caption}))
        return self

    def figure(self, png_path, caption: str | None = None) -> Report:
        path = Path(png_path)
        if not path.is_file():
            raise FileNotFoundError(f"report figure {path}: file not found; make the plot before adding it")
        self.blocks.append(("figure", {"path": path.resolve(), "caption": caption or ""}))
        return self

    # -- rendering ---------------------------------------------------------------------------------
    def _figure_links(self, out_dir: Path) -> dict[Path, str]:
        links: dict[Path, str] = {}
        used: set[str] = set()
        for kind, b in self.blocks:
            if kind != "figure":
                continue
            src = b["path"]
            if src in links:
                continue
            try:
                rel = src.relative_to(out_dir.resolve())
            except ValueError:
                name, i = src.name, 2
                while name in used:
                    name, i = f"{src.stem}-{i}{src.suffix}", i + 1
                used.add(name)
                rel = Path("figures") / name
                dst = out_dir / rel
                if dst.resolve() != src:
                    with atomic_path(dst) as tmp:
                        shutil.copyfile(src, tmp)
            links[src] = rel.as_posix()
        return links

    def markdown(self, links: dict[Path, str] | None = None) -> str:
        out = [f"# {self.title}", ""]
        for kind, b in self.blocks:
            if kind == "section":
                out += [f"## {b['title']}", ""]
            elif kind == "text":
                out += [b["text"].strip(), ""]
            elif kind == "table":
                if b["caption"]:
                    out += [f"**{b['caption']}**", ""]
                esc = [[c.replace("|", "\\|").replace("\n", " ") for c in r] for r in [b["headers"], *b["body"]]]
                out.append("| " + " | ".join(esc[0]) + " |")
                out.append("|" + "---|" * len(esc[0]))
                out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
                out.append("")
            elif kind == "figure":
                link = (links or {}).get(b["path"], b["path"].as_posix())
                out += [f"![{b['caption']}]({link})", ""]
                if b["caption"]:
                    out += [f"*{b['caption']}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        toc = [f'<li><a href="#{b["anchor"]}">{e(b["title"])}</a></li>' for k, b in self.blocks if k == "section"]
        body = []
        for kind, b in self.blocks:
            if kind == "section":
                body.append(f'<h2 id="{b["anchor"]}">{e(b["title"])}</h2>')
            elif kind == "text":
                for para in _paragraphs(b["text"]):
                    if all(line.lstrip().startswith("- ") for line in para):
                        items = "".join(f"<li>{e(line.lstrip()[2:])}</li>" for line in para)
                        body.append(f"<ul>{items}</ul>")
                    else:
                        body.append(f"<p>{e(' '.join(line.strip() for line in para))}</p>")
            elif kind == "table":
                cap = f"<caption>{e(b['caption'])}</caption>" if b["caption"] else ""
                head = "".join(f"<th>{e(h)}</th>" for h in b["headers"])
                rows = "".join("<tr>" + "".join(
                    f'<td class="{c}">{e(c)}</td>' if c in VERDICTS else f"<td>{e(c)}</td>" for c in r) + "</tr>"
                    for r in b["body"])
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "figure":
                data = base64.b64encode(b["path"].read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{e(b["caption"])}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{e(b['caption'])}</figcaption></figure>")
        nav = f"<nav><strong>Contents</strong><ol>{''.join(toc)}</ol></nav>" if toc else ""
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(self.title)}</title>'
                f"<style>{CSS}</style></head><body><h1>{e(self.title)}</h1>{nav}\n" + "\n".join(body)
                + "\n</body></html>\n")

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        links = self._figure_links(out_dir)
        md = atomic_write_text(out_dir / "report.md", self.markdown(links))
        page = atomic_write_text(out_dir / "report.html", self.html())
        return {"md": md, "html": page}
