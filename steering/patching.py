"""Activation patching (mediation) between the base model and a tune, on one loaded model.

The tuned model is a ``LoadedModel`` whose ``model`` is a peft model; the base model is the same object
with the adapter switched off (``disable_adapter()``), so base and tune never sit in memory twice.

For each batch of evaluation items (continuation scorer: rows pref, rej per item):
1. a forward of the *source* model records ``resid_post.L`` at every sweep layer (and gives its scores);
2. a forward of the *target* model, with the output of block L replaced by (the ``patch`` operator of
   ``steering.interventions``) ``h + (h_src - h) Q Q^T`` (``Q``: an orthonormal basis of the patched subspace, [d, k]) at every
   position, gives the patched scores. ``whole`` replaces ``h`` by ``h_src`` outright.

Directions: ``forward`` patches the tune into the base model (source = tuned, target = base); ``reverse``
patches the base into the tune (source = base, target = tuned).

Subspaces at layer L: ``whole`` (the full stream), one per direction (``self_model``, ``tune_shift``: their
unit vector), ``span`` (the span of the listed directions, QR), and the control ``random<k>``: random
orthonormal subspaces of the same sizes (1 and the span's), ``n_random`` seeds, scores averaged per item.

Fractions, per group (each dimension, ``monitoring``, each stage, ``all``), with an item-bootstrap 95% CI
of the ratio of means (``stats.effects.share_of_shift``: recovered forward, removed reverse); shift = tuned - base:
- forward: recovered = mean(patched - base) / mean(shift);
- reverse: removed = mean(tuned - patched) / mean(shift).
A fraction means something only when the shift itself is clearly non-zero (``shift_significant``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from activations.hooks import capture
from activations.sites import Site
from artifacts import atomic_path, hash_jsonable, write_manifest
from artifacts.rows import BASE_MODEL, score_row
from evals.dimensions import MONITORING
from models.logprobs import mean_logprobs
from stats.effects import share_of_shift
from steering.interventions import patch
from steering.scoring import pair_encodings

PATCH_DIRECTIONS = ("forward", "reverse")
TARGET = {"forward": BASE_MODEL, "reverse": "tuned"}  # the model each patch direction patches (and scores)
PATCHING_CSV, PATCHING_ROWS_CSV, PATCHING_PNG = "patching.csv", "patching_rows.csv", "patching.png"  # the stage's files


@contextlib.contextmanager
def adapter(loaded: Any, on: bool) -> Iterator[None]:
    """Run with the LoRA adapter on (the tune) or off (the base model)."""
    model = loaded.model
    if not hasattr(model, "disable_adapter"):
        raise ValueError(f"activation patching needs a tuned model (a peft adapter on the base); got "
                         f"{type(model).__name__} for spec {loaded.spec}; load spec.with_adapter(<tune dir>)")
    if on:
        yield
    else:
        with model.disable_adapter():
            yield


def random_basis(d: int, k: int, seed: int) -> np.ndarray:
    """An orthonormal basis [d, k] of a random k-dimensional subspace (seeded)."""
    g = np.random.default_rng([int(seed), 0xA7C4]).standard_normal((d, k))
    return np.linalg.qr(g)[0] if k else np.zeros((d, 0))


def span_basis(vectors: Sequence[np.ndarray], d: int) -> np.ndarray:
    """Orthonormal basis [d, k] of the span of ``vectors`` (k = len(vectors); [d, 0] for none)."""
    if not vectors:
        return np.zeros((d, 0))
    q, r = np.linalg.qr(np.stack([np.asarray(v, dtype=np.float64) for v in vectors], axis=1))
    keep = np.abs(np.diag(r)) > 1e-8
    return q[:, keep]


def subspaces(directions: dict[str, Any], names: Sequence[str], layer: int, d: int, n_random: int,
              seed: int = 0) -> dict[str, list[np.ndarray] | None]:
    """{subspace name: list of bases (one per random seed, else one)}; ``whole`` -> None."""
    out: dict[str, list[np.ndarray] | None] = {"whole": None}
    units = [directions[n].unit_at(layer) for n in names]
    for n, u in zip(names, units):
        out[n] = [span_basis([u], d)]
    if len(names) > 1:
        out["span"] = [span_basis(units, d)]
    for k in sorted({1, len(names)} if names else set()):
        out[f"random{k}"] = [random_basis(d, k, seed + 1000 * layer + i) for i in range(n_random)]
    return out


def _scores(lp: np.ndarray) -> np.ndarray:
    return lp[0::2] - lp[1::2]


def _run(loaded: Any, encs: list, layers: Sequence[int]) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
    with capture(loaded.model, [Site("resid_post", L) for L in layers]) as store:
        lp = mean_logprobs(loaded, encs, batch_size=len(encs))
    return _scores(lp), {L: store[f"resid_post.{L}"].clone() for L in layers}


def patch_scores(loaded: Any, items: Sequence[Any], directions: dict[str, Any], layers: Sequence[int],
                 names: Sequence[str] = ("self_model", "tune_shift"), n_random: int = 3,
                 batch_size: int = 8, seed: int = 0,
                 patch_directions: Sequence[str] = PATCH_DIRECTIONS) -> pd.DataFrame:
    """One score row (``artifacts.rows``) per item x patch direction x layer x subspace: ``value`` = the patched
    score of the target model (``model``: ``base`` forward, ``tuned`` reverse; ``arm`` = the subspace, ``op`` =
    ``patch``, ``dose`` empty: the subspace is replaced, not scaled), beside the item's ``base`` and ``tuned``
    scores (continuation scorer: mean logprob pref - rej; higher = more of the preference)."""
    d = loaded.d_model
    layers = [int(L) for L in layers]
    for n in names:
        if n not in directions:
            raise ValueError(f"patching along {n!r}: the direction file lacks it (it has {', '.join(directions)})")
        directions[n].validate_for(loaded)
    spaces = {L: subspaces(directions, names, L, d, n_random, seed) for L in layers}
    rows = []
    for lo in range(0, len(items), batch_size):
        chunk = list(items[lo:lo + batch_size])
        encs = [e for pr in pair_encodings(loaded, chunk) for e in pr]
        with torch.no_grad():
            with adapter(loaded, True):
                tuned, h_tuned = _run(loaded, encs, layers)
            with adapter(loaded, False):
                base, h_base = _run(loaded, encs, layers)
            for direction in patch_directions:
                src, on = (h_tuned, False) if direction == "forward" else (h_base, True)
                with adapter(loaded, on):
                    for L in layers:
                        for name, bases in spaces[L].items():
                            vals = []
                            for basis in (bases or [None]):
                                with patch(loaded, L, src[L], basis):
                                    vals.append(_scores(mean_logprobs(loaded, encs, batch_size=len(encs))))
                            k = d if bases is None else bases[0].shape[1]
                            for i, it in enumerate(chunk):
                                rows.append(score_row(
                                    TARGET[direction], name, None, L, it.id, it.dimension, it.stage, "continuation",
                                    float(np.mean([v[i] for v in vals])), op="patch", patch=direction,
                                    k=k, n_seeds=len(vals), base=float(base[i]), tuned=float(tuned[i])))
    return pd.DataFrame(rows)


def _groups(df: pd.DataFrame) -> dict[str, pd.Series]:
    out = {"all": pd.Series(True, index=df.index), "monitoring": df["dimension"].isin(MONITORING)}
    for s in sorted(df["stage"].unique()):
        out[f"stage{int(s)}"] = df["stage"] == s
    for dim in sorted(df["dimension"].unique()):
        out[f"dim:{dim}"] = df["dimension"] == dim
    return {k: m for k, m in out.items() if m.any()}


MOVED = {"forward": "recovered", "reverse": "removed"}  # what each patch direction does to the tune's shift


def _sides(s: pd.DataFrame) -> pd.DataFrame:
    """Patching rows as three sides of score rows (``side``: ``patched``, ``base``, ``tuned``) for the engine."""
    return pd.concat([pd.DataFrame({"item": s["item"].to_numpy(), "side": side, "value": s[col].to_numpy(dtype=float)})
                      for side, col in (("patched", "value"), ("base", "base"), ("tuned", "tuned"))],
                     ignore_index=True)


def fraction_table(rows: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Fraction of the tuned - base shift each patch recovers (forward) or removes (reverse), per group
    (``stats.effects.share_of_shift``; a fraction over one item has no CI, as its shift has none)."""
    out = []
    for gname, m in _groups(rows).items():
        g = rows[m]
        for (direction, layer, name), s in g.groupby(["patch", "layer", "arm"], sort=False):  # arm: the subspace
            r = share_of_shift(_sides(s), {"side": "tuned"}, {"side": "base"}, {"side": "patched"}, n_boot=n_boot,
                               seed=seed, moved=MOVED[direction])
            sh, fr, mv = r["shift"], r["fraction"], r[MOVED[direction]]
            lo, hi = (fr.lo, fr.hi) if fr.n > 1 else (np.nan, np.nan)
            out.append({"group": gname, "patch": direction, "layer": int(layer), "subspace": name,
                        "k": int(s["k"].iloc[0]), "fraction": fr.estimate, "fraction_lo": lo, "fraction_hi": hi,
                        "n_items": fr.n, "shift": sh.estimate, "shift_lo": sh.lo, "shift_hi": sh.hi,
                        "shift_significant": bool(np.isfinite(sh.lo) and (sh.lo > 0 or sh.hi < 0)),
                        "moved_mean": mv.estimate})
    return pd.DataFrame(out)


def run_patching(loaded: Any, directions: dict[str, Any], out_dir: str | Path, items: Sequence[Any],
                 layers: Sequence[int], names: Sequence[str] = ("self_model", "tune_shift"), n_random: int = 3,
                 batch_size: int = 8, seed: int = 0) -> dict[str, Any]:
    """Patch every layer of ``layers`` along every subspace, both ways; write ``patching_rows.csv``,
    ``patching.csv`` (fractions with CIs), ``patching.png`` and ``manifest.json``."""
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = patch_scores(loaded, items, directions, layers, names, n_random, batch_size, seed)
    table = fraction_table(rows)
    for name, df in ((PATCHING_ROWS_CSV, rows), (PATCHING_CSV, table)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
    plot_fractions(table, out_dir / PATCHING_PNG)
    timing = {"total_s": round(time.time() - t0, 1), "n_items": len(items), "layers": list(layers)}
    write_manifest(out_dir, "patching", inputs={"directions": {n: hash_jsonable(directions[n].raw.tolist())
                                                               for n in names},
                                                "items": hash_jsonable([it.id for it in items])},
                   params={"model": loaded.spec.to_dict(), "layers": [int(x) for x in layers], "names": list(names),
                           "n_random": n_random, "seed": seed, "positions": "all"},
                   outputs={"rows": PATCHING_ROWS_CSV, "table": PATCHING_CSV, "plot": PATCHING_PNG},
                   timing=timing, sign="higher = more of the preference; shift = tuned - base")
    return {"timing": timing, "n_rows": len(rows)}


def plot_fractions(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Fraction recovered (forward) / removed (reverse) by layer, one line per subspace, group ``all``."""
    from artifacts.figures import (
        CI_WHISKERS,
        ci_err,
        layer_axis,
        legend_outside,
        new_figure,
        palette,
        save_figure,
    )

    t = table[table["group"] == "all"]
    if t.empty:
        return None
    fig, axes = new_figure(1, 2, size=(11, 3.8), squeeze=False)
    colours = palette(t["subspace"])
    for ax, direction in zip(axes[0], PATCH_DIRECTIONS):
        g = t[t["patch"] == direction]
        for j, (name, s) in enumerate(g.groupby("subspace", sort=False)):
            s = s.sort_values("layer")
            ax.errorbar(s["layer"] + 0.08 * j, s["fraction"], yerr=ci_err(s["fraction"], s["fraction_lo"],
                        s["fraction_hi"]), marker="o", label=name, color=colours[name],
                        ls="--" if name.startswith("random") else "-", **{**CI_WHISKERS, "ecolor": colours[name]})
        ax.axhline(0, color="black", lw=0.5)
        ax.axhline(1, color="grey", lw=0.5, ls=":")
        layer_axis(ax)
        what = "recovered" if direction == "forward" else "removed"
        ax.set_ylabel(f"fraction of the tune's shift {what} (1 = all)")
        ax.set_title(f"{direction}: " + ("tune patched into base" if direction == "forward" else
                                         "base patched into tune") + " (95% CI)")
    legend_outside(axes[0][1], title="subspace")
    return save_figure(fig, path)
