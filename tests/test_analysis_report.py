"""analysis.report and the cascade charts (evals.plots.grouped_bars): self-contained HTML, every block rendered,
readable PNGs."""

from __future__ import annotations

import re

import pytest

from analysis.cascade import dimension_summary, stage_summary
from analysis.predictions import score_predictions
from analysis.report import Report
from artifacts.tables import cell
from evals.plots import grouped_bars
from stats import Estimate
from tests.test_analysis_synth import make_rows

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rows():
    return make_rows({"conscious": {1: 0.4, 2: 0.4, 3: 0.05}, "toaster": {}, "human": {1: 0.4}}, n_per_dim=6)


def _png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000, path
    return path


def test_grouped_bars_write_nonempty_pngs(tmp_path, rows):
    dims = dimension_summary(rows)
    shifted = [r for r in dims if r["model"] != "base"]
    _png(grouped_bars(shifted, tmp_path / "dims.png", title="Shift vs base", ylabel="shift (pp)"))
    _png(grouped_bars(dims, tmp_path / "rates.png", value="rate_pct", ylabel="rate (%)"))
    stages = [r for r in stage_summary(rows) if r["model"] != "base"]
    _png(grouped_bars(stages, tmp_path / "stages.png", category="stage", stage=None))
    with pytest.raises(ValueError):
        grouped_bars([], tmp_path / "none.png")
    assert not list(tmp_path.glob(".*.tmp"))


def test_cells_merge_estimates():
    row = {"shift_pp": 12.3456, "shift_pp_lo": 1.0, "shift_pp_hi": 20.5, "n": 40, "p": 0.000012, "x": float("nan")}
    assert cell(row, "shift_pp") == "12.3 [1, 20.5] (n=40)"
    assert cell({"e": Estimate(0.5, 0.25, 0.75, 9)}, "e") == "0.5 [0.25, 0.75] (n=9)"
    assert cell(row, "p") == "1.20e-05" and cell(row, "x") == "–" and cell(row, "n") == "40"
    assert cell({"s": float("nan"), "s_lo": float("nan"), "s_hi": float("nan"), "n": 3}, "s") == "–"
    assert cell({"s": 5.0, "s_lo": 1.0, "s_hi": 9.0, "s_n": 7, "n": 3}, "s") == "5 [1, 9] (n=7)"


def test_report_html_is_self_contained(tmp_path, rows):
    fig = grouped_bars([r for r in stage_summary(rows) if r["model"] != "base"], tmp_path / "src" / "stages.png",
                       category="stage", stage=None)
    preds = score_predictions(rows, contamination={"monitoring": 0.0})
    rep = Report("Cascade report", "Synthetic data with planted shifts.")
    rep.section("Stage summary", "Shifts in pp versus base.\n\n- one bullet\n- two bullets")
    rep.table(stage_summary(rows), columns=["model", "scorer", "stage", ("rate_pct", "rate (%)"), "shift_pp"],
              caption="Per-stage rates | shifts")
    rep.figure(fig, "Stage shifts")
    rep.section("Predictions")
    rep.table(preds, columns=["prediction", "name", "scorer", "verdict", "statistic", "rule", "reason"],
              caption="Seed predictions")
    rep.section("Stage summary")  # a repeated title gets its own anchor
    out = rep.write(tmp_path / "report")
    page = out["html"].read_text()
    md = out["md"].read_text()
    for text in ("Cascade report", "Stage summary", "Predictions", "Per-stage rates | shifts", "Seed predictions",
                 "Stage shifts", "rate (%)", "one bullet"):
        assert text in page and text in md, text
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(?!#|data:)', page)  # only in-page anchors and data URIs
    assert 'href="#stage-summary"' in page and 'href="#stage-summary-2"' in page
    assert page.count("<table>") == 2 and 'class="PASS"' in page
    assert re.search(r"\d \[[-\d.]+, [-\d.]+\] \(n=\d+\)", page)
    link = re.search(r"!\[Stage shifts\]\(([^)]+)\)", md).group(1)
    assert link == "figures/stages.png" and (tmp_path / "report" / link).read_bytes().startswith(PNG)
    assert not list((tmp_path / "report").rglob(".*.tmp"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        rep.figure(tmp_path / "missing.png", "x")


def test_cascade_sections_end_to_end(tmp_path):
    from analysis.cascade_report import add_cascade_sections

    rows = make_rows({"conscious": {1: 0.4, 2: 0.4, 3: 0.05}, "toaster": {}}, n_per_dim=4,
                     scorers=("continuation", "choice"))
    with pytest.raises(ValueError, match="one scorer"):
        grouped_bars(dimension_summary(rows), tmp_path / "mixed.png")
    rep = Report("Run report")
    tables = add_cascade_sections(rep, rows, tmp_path / "report" / "figures", contamination={"power": 0.0})
    out = rep.write(tmp_path / "report")
    page = out["html"].read_text()
    assert len(tables["predictions"]) == 14 and len(tables["stages"]) == 2 * 3 * 3  # (a)-(g) per scorer
    assert page.count("data:image/png;base64,") == 4  # stage + dimension chart per scorer
    for title in ("Stages (choice)", "Stages (continuation)", "The seed&#x27;s predictions"):
        assert title in page
    assert "INCONCLUSIVE" in page  # no human model: prediction (d)
    md = out["md"].read_text()
    assert "](figures/stage_shift_choice.png)" in md  # figures already inside out_dir: linked in place
