"""evals: evaluate (resumable), results table, summaries, compare, plot, and the eval script."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.rows import SCORE_COLUMNS
from evals import compare, evaluate, load_items, plot_dimensions, read_results, summarize, summarize_stages
from models import find_blocks


def _count_forwards(loaded):
    calls = []
    handle = find_blocks(loaded.model)[0].register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_evaluate_resumes_and_writes_table(tiny_loaded, tmp_path):
    items = load_items(["memory", "power"], kinds=["pair", "action"])[:10]
    out = tmp_path / "results.csv"
    rows = evaluate(tiny_loaded, items, ["continuation", "choice"], condition="c0", out=out, chunk_size=4,
                    progress=False, extra={"alpha": 1.5})
    assert len(rows) == 20
    table = read_results(out)
    assert len(table) == 20
    r = table[0]
    assert r["spec"] == tiny_loaded.spec.slug and r["adapter"] == "" and r["model"] == "c0"  # artifacts.rows schema
    assert r["arm"] == "none" and r["dose"] == 0.0 and r["layer"] is None and list(r)[:9] == list(SCORE_COLUMNS)
    assert r["alpha"] == 1.5 and isinstance(r["value"], float) and r["stage"] in (1, 2, 3)
    assert "higher" in r["sign_convention"]
    # a finished run is not scored again
    calls, handle = _count_forwards(tiny_loaded)
    try:
        again = evaluate(tiny_loaded, items, ["continuation", "choice"], condition="c0", out=out, progress=False,
                         extra={"alpha": 1.5})
        assert calls == [] and len(again) == 20
        # drop rows as an interrupted run would have; only those are re-scored, with the same values
        import csv

        lines = out.read_text().splitlines()
        out.write_text("\n".join(lines[:-3]) + "\n")
        resumed = evaluate(tiny_loaded, items, ["continuation", "choice"], condition="c0", out=out,
                           progress=False, extra={"alpha": 1.5})
        assert len(calls) == 1  # one forward pass re-scored the 3 missing choice items
    finally:
        handle.remove()
    key = {(x["scorer"], x["item"]): x["value"] for x in table}
    assert all(x["value"] == pytest.approx(key[(x["scorer"], x["item"])], abs=1e-5) for x in resumed)
    assert len(list(csv.DictReader(open(out)))) == 20
    # a table written before the row schema (item_id; condition = the name; model = the spec slug) resumes too
    old = tmp_path / "old" / "results.csv"
    old.parent.mkdir()
    with open(out, newline="") as fh, open(old, "w", newline="") as oh:
        legacy = [{"model": r["spec"], "condition": r["model"], "item_id": r["item"],
                   **{k: v for k, v in r.items() if k not in ("model", "arm", "dose", "layer", "item", "spec")}}
                  for r in csv.DictReader(fh)]
        w = csv.DictWriter(oh, list(legacy[0]))
        w.writeheader()
        w.writerows(legacy)
    calls, handle = _count_forwards(tiny_loaded)
    try:
        again = evaluate(tiny_loaded, items, ["continuation", "choice"], condition="c0", out=old, progress=False,
                         extra={"alpha": 1.5})
    finally:
        handle.remove()
    assert calls == [] and len(again) == 20 and {r["model"] for r in again} == {"c0"}
    # another condition is new work in the same table
    evaluate(tiny_loaded, items[:2], ["continuation"], condition="c1", out=out, progress=False)
    assert len(read_results(out)) == 22


def _rows(model, values, scorer="continuation", dim="power", stage=3):
    return [{"model": model, "arm": "none", "scorer": scorer, "dimension": dim, "stage": stage,
             "item": f"{dim}.{i}", "value": v} for i, v in enumerate(values)]


def test_summaries_compare_and_plot(tmp_path):
    rng = np.random.default_rng(0)
    a_vals = rng.normal(1.0, 0.5, 20)
    b_vals = a_vals - 0.3 + rng.normal(0, 0.05, 20)
    rows = _rows("a", a_vals) + _rows("b", b_vals) + _rows("a", [1, 0, 1, 1], "judged", "memory", 2)
    s = summarize(rows)
    cont_a = next(r for r in s if r["model"] == "a" and r["scorer"] == "continuation")
    assert cont_a["n"] == 20 and cont_a["lo"] < cont_a["estimate"] < cont_a["hi"]
    assert cont_a["estimate"] == pytest.approx(a_vals.mean())
    judged = next(r for r in s if r["scorer"] == "judged")
    assert judged["estimate"] == 0.75 and judged["n"] == 4 and "Wilson" in judged["statistic"]
    st = summarize_stages(rows)
    assert {(r["model"], r["scorer"], r["stage"]) for r in st} == {("a", "continuation", 3), ("b", "continuation", 3),
                                                                   ("a", "judged", 2)}
    (c,) = compare(rows, "a", "b")
    assert c["diff"] == pytest.approx(0.3, abs=0.05) and c["lo"] > 0.2 and c["n"] == 20
    with pytest.raises(ValueError, match="no rows with model='zz'"):
        compare(rows, "a", "zz")
    png = plot_dimensions(s, tmp_path / "fig.png", "continuation")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_eval_script_base_and_adapter(tiny_model_dir, tmp_path):
    """The script evaluates base + a LoRA adapter; an untrained LoRA (B = 0) equals the base exactly."""
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from scripts.eval_preferences import main

    adir = tmp_path / "adapter"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(adir)
    out = tmp_path / "ev"
    main(["--model", tiny_model_dir, "--adapter", f"zero={adir}", "--scorers", "continuation,choice",
          "--dimensions", "power,memory", "--max-items", "2", "--out", str(out), "--device", "cpu"])
    for f in ("results.csv", "summary_dimensions.csv", "summary_stages.csv", "manifest.json",
              "preferences_continuation.png", "preferences_choice.png"):
        assert (out / f).exists(), f
    rows = read_results(out / "results.csv")
    assert len(rows) == 2 * 2 * (2 + 2 + 2)  # specs x scorers x (memory pairs, power pairs, power actions)
    cmp_file = next(out.glob("compare_*_vs_base.csv"))
    import csv

    diffs = [float(r["diff"]) for r in csv.DictReader(open(cmp_file))]
    assert diffs and np.allclose(diffs, 0.0, atol=1e-6)
    assert json.loads((out / "manifest.json").read_text())["params"]["scorers"] == ["continuation", "choice"]
