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
import os
import re
import shutil
from pathlib import Path

from artifacts import atomic_path, atomic_write_text
from artifacts.figures import FIGURES_DIR
from artifacts.tables import cell, columns_of, html_from_cells, markdown_from_cells

REPORT_MD, REPORT_HTML = "report.md", "report.html"  # what ``Report.write`` writes (figures from outside
# the folder are copied under its ``FIGURES_DIR``)

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
        cols = columns_of(rows, columns)
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
                rel = Path(FIGURES_DIR) / name
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
                out += [markdown_from_cells(b["headers"], b["body"], b["caption"]), ""]
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
                body.append(html_from_cells(b["headers"], b["body"], b["caption"]))
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
        md = atomic_write_text(out_dir / REPORT_MD, self.markdown(links))
        page = atomic_write_text(out_dir / REPORT_HTML, self.html())
        return {"md": md, "html": page}
