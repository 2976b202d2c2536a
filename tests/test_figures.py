"""artifacts.figures: the one save function writes a valid PNG atomically, colours are fixed per family, and no
module outside it saves a figure or picks a matplotlib backend."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from artifacts.figures import COLOURS, OTHER_COLOURS, ci_err, new_figure, palette, pyplot, save_figure

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _figure():
    fig, ax = new_figure(size=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4], label="self_model")
    return fig


def test_save_figure_writes_a_valid_png_and_closes(tmp_path):
    fig = _figure()
    out = save_figure(fig, tmp_path / "a" / "b" / "fig.png")  # folders created
    assert out == tmp_path / "a" / "b" / "fig.png" and out.read_bytes().startswith(PNG)
    img = pyplot().imread(out)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img[..., :3].std() > 0  # drawn, not blank
    assert not pyplot().fignum_exists(fig.number)
    assert [p.name for p in out.parent.iterdir()] == ["fig.png"]


def test_save_figure_leaves_no_partial_file(tmp_path):
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")
    fig = _figure()
    fig.axes[0].set_title(r"$\frac{$")  # broken mathtext: the draw fails inside savefig
    with pytest.raises(ValueError):
        save_figure(fig, out)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["fig.png"]
    assert not pyplot().fignum_exists(fig.number)

    fig = _figure()
    real = fig.savefig

    def disk_full(path, **kw):  # half the file written, then the write fails
        real(path, **kw)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError("No space left on device")

    fig.savefig = disk_full
    with pytest.raises(OSError, match="No space"):
        save_figure(fig, tmp_path / "new.png")
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"] and out.read_bytes() == b"old"


def test_one_colour_per_family():
    names = ["random3", "self_model", "conscious.seed1", "toaster (logistic)", "stage1", "stage2", "base"]
    p = palette(names)
    assert p["random3"] == COLOURS["random"] and p["self_model"] == COLOURS["self_model"]
    assert p["conscious.seed1"] == COLOURS["conscious"] and p["toaster (logistic)"] == COLOURS["toaster"]
    assert p["stage1"] != p["stage2"] and {p["stage1"], p["stage2"]} <= set(OTHER_COLOURS)
    assert palette(["stage1", "human"])["human"] == palette(["human"])["human"]  # order does not matter


def test_ci_err_is_non_negative_and_nan_free():
    err = ci_err([1.0, 2.0, np.nan], [0.5, 2.5, 0.0], [2.0, np.nan, 1.0])
    assert err.shape == (2, 3) and np.isfinite(err).all() and (err >= 0).all()
    assert err[:, 0].tolist() == [0.5, 1.0]


def test_no_other_module_saves_figures():
    """Every PNG goes through ``save_figure`` and every figure is started through ``artifacts.figures``."""
    offenders = []
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT)
        if rel.parts[0] in (".venv", "tests") or rel == Path("artifacts/figures.py"):
            continue
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Attribute) and node.attr in ("savefig", "subplots") or (
                    isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                        (getattr(node, "module", None) or a.name).startswith("matplotlib") for a in node.names)):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"figures saved or started outside artifacts.figures: {offenders}"
