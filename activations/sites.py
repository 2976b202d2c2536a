"""Activation sites and positions: one stable, readable name for each.

Sites (``L`` counts blocks from 0):
- ``resid_pre.L``: the residual stream entering block L (``resid_pre.0`` is the embedding output);
- ``resid_post.L``: the residual stream leaving block L (the block's output, before any final norm).
So ``resid_pre.{L+1}`` equals ``resid_post.L``. Plain "layer L" in this suite means ``resid_post.L``.

Positions:
- ``last_prompt``: the last token before the answer (the end of the generation prompt);
- ``response_mean``: mean over the answer's content tokens (padding and end-of-turn excluded);
- ``all``: every token (opt-in: large), stored ragged per example.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import torch

SITE_KINDS = ("resid_pre", "resid_post")
POSITIONS = ("last_prompt", "response_mean", "all")
_SITE_RE = re.compile(r"^(resid_pre|resid_post)\.(\d+)$")


@dataclass(frozen=True, order=True)
class Site:
    kind: str
    layer: int

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"

    def __str__(self) -> str:
        return self.name

    def block_output(self) -> int | None:
        """The block whose output this site is: ``resid_post.L`` -> L, ``resid_pre.L`` -> L - 1, and
        ``None`` for ``resid_pre.0`` (the embedding output). Edits hook that module's output."""
        if self.kind == "resid_post":
            return self.layer
        return self.layer - 1 if self.layer > 0 else None

    @classmethod
    def parse(cls, name: str, n_layers: int | None = None) -> Site:
        m = _SITE_RE.match(name.strip())
        if not m:
            raise ValueError(f"unknown site {name!r}; sites are resid_pre.L or resid_post.L (L = block index), "
                             "wildcards like resid_post.* are allowed")
        site = cls(m.group(1), int(m.group(2)))
        if n_layers is not None and not 0 <= site.layer < n_layers:
            raise ValueError(f"site {name!r}: layer {site.layer} is out of range; the model has {n_layers} blocks "
                             f"(layers 0..{n_layers - 1})")
        return site


def all_sites(n_layers: int) -> list[Site]:
    return [Site(k, i) for k in SITE_KINDS for i in range(n_layers)]


def parse_sites(patterns: str | list[str], n_layers: int) -> list[Site]:
    """Expand names and wildcards (``resid_post.*``, ``resid_*.3``, ``resid_post.1?``) in order, no repeats."""
    if isinstance(patterns, str):
        patterns = [p for p in re.split(r"[,\s]+", patterns) if p]
    names = [s.name for s in all_sites(n_layers)]
    out: list[Site] = []
    for pat in patterns:
        if any(c in pat for c in "*?["):
            hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
            if not hits:
                raise ValueError(f"site pattern {pat!r} matches no site of this {n_layers}-block model")
            hits.sort(key=lambda n: (n.split(".")[0], int(n.split(".")[1])))
            new = [Site.parse(h) for h in hits]
        else:
            new = [Site.parse(pat, n_layers)]
        out.extend(s for s in new if s not in out)
    if not out:
        raise ValueError("no sites given; e.g. --sites 'resid_post.*'")
    return out


def check_positions(positions: str | list[str]) -> list[str]:
    if isinstance(positions, str):
        positions = [p for p in re.split(r"[,\s]+", positions) if p]
    for p in positions:
        if p not in POSITIONS:
            raise ValueError(f"unknown position {p!r}; positions are {', '.join(POSITIONS)}")
    return list(dict.fromkeys(positions))


def reduce_positions(acts: torch.Tensor, encodings: list, offsets: torch.Tensor, position: str) -> list[torch.Tensor] | torch.Tensor:
    """Reduce ``acts`` [B, T, D] for one site to a position.

    ``last_prompt`` and ``response_mean`` give [B, D]; ``all`` gives a list of [T_i, D] (no padding).
    ``offsets`` is the per-row index shift from left padding (``pad_batch``).
    """
    rows = []
    for i, e in enumerate(encodings):
        o = int(offsets[i])
        if position == "last_prompt":
            rows.append(acts[i, o + e.last_prompt])
        elif position == "response_mean":
            if not e.has_response:
                raise ValueError("position 'response_mean' needs examples with an assistant answer; "
                                 "use 'last_prompt' for prompt-only data")
            rows.append(acts[i, o + e.response_start:o + e.response_end].mean(0))
        elif position == "all":
            rows.append(acts[i, o:o + len(e)])
        else:
            raise ValueError(f"unknown position {position!r}")
    return rows if position == "all" else torch.stack(rows)
