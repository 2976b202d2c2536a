"""Instruction list, self-distillation cache/resume, and the 1:1 mix (tiny random model)."""

from __future__ import annotations

import pytest

from artifacts import InputError
from tuning.datasets import build_identity_dataset
from tuning.instructions import load_instructions, mix, self_distill


def test_shipped_instructions():
    rows = load_instructions()
    assert len(rows) >= 300
    assert len({r["instruction"] for r in rows}) == len(rows)
    assert {"writing", "coding", "maths", "facts", "advice"} <= {r["category"] for r in rows}


def test_self_distill_cached_and_resumable(tiny_loaded, tmp_path):
    rows = load_instructions(n=6)
    full = self_distill(tiny_loaded, rows, tmp_path / "full.jsonl", seed=1, max_new_tokens=4, batch_size=2,
                        progress=False)
    assert len(full) == 6 and all(e["messages"][1]["role"] == "assistant" for e in full)
    mtime = (tmp_path / "full.jsonl").stat().st_mtime_ns
    assert self_distill(tiny_loaded, rows, tmp_path / "full.jsonl", seed=1, max_new_tokens=4, batch_size=2,
                        progress=False) == full
    assert (tmp_path / "full.jsonl").stat().st_mtime_ns == mtime  # served from the cache
    # an interrupted run: the first batch plus a torn line are on disk
    lines = (tmp_path / "full.jsonl").read_text().splitlines()
    (tmp_path / "part.jsonl.partial").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
    resumed = self_distill(tiny_loaded, rows, tmp_path / "part.jsonl", seed=1, max_new_tokens=4, batch_size=2,
                           progress=False)
    assert resumed == full and not (tmp_path / "part.jsonl.partial").exists()
    with pytest.raises(InputError, match="another model/seed"):
        self_distill(tiny_loaded, rows, tmp_path / "full.jsonl", seed=2, max_new_tokens=4, batch_size=2,
                     progress=False)
    two = self_distill(tiny_loaded, rows[:2], tmp_path / "two.jsonl", seed=1, max_new_tokens=4, batch_size=2,
                       samples_per_instruction=2, progress=False)
    assert len(two) == 4 and len({e["id"] for e in two}) == 4


def test_mix_ratio():
    ident = build_identity_dataset("conscious", n=20)
    instr = [{"id": f"instr{k}", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
             for k in range(30)]
    m = mix(ident, instr, ratio=1.0, seed=0)
    assert len(m) == 40 and sum(e["id"].startswith("instr") for e in m) == 20
    assert m == mix(ident, instr, ratio=1.0, seed=0) and m != mix(ident, instr, ratio=1.0, seed=1)
    with pytest.raises(ValueError, match="needs 40 instruction examples"):
        mix(ident, instr, ratio=2.0)
