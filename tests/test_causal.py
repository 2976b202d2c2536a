"""Causal analyses on the tiny random Llama: the profile test's statistics and dose rule, activation
patching (exact whole-stream patch, bitwise no-op for a zero-dimensional subspace, fraction signs), and
prevention during the tune (the hook's edit, its pause at checkpoints, the experiment end to end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from activations.hooks import capture
from activations.sites import Site
from analysis.profile import profile_dose, profile_test, run_profile
from evals.items import load_items
from models import LoadedModel, load_model
from models.logprobs import mean_logprobs
from probes.directions import Direction
from steering.patching import adapter, fraction_table, patch, patch_scores, run_patching
from steering.scoring import pair_encodings
from tuning.prevent import PreventSpec, prevention

DIMS = [f"d{i}" for i in range(12)]


def _effects(shift: dict[str, float], doses=(0.25, 0.5), flagged_dose=0.5, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for dose in doses:
        for cond, fam, eff in [("self_model", "self_model", lambda d, x=dose: 2 * shift[d] * x),
                               ("toaster", "toaster", lambda d, x=dose: -shift[d] * x),
                               *[(f"random{i}", "random", lambda d, x=dose: rng.normal() * x) for i in range(5)]]:
            for d in DIMS:
                rows.append({"group": f"dim:{d}", "condition": cond, "family": fam, "op": "add", "layer": 3,
                             "dose": dose, "sweep": "dose", "effect_estimate": eff(d),
                             "flagged": dose == flagged_dose and cond == "toaster"})
    return pd.DataFrame(rows)


def test_profile_correlations_signs_and_dose():
    rng = np.random.default_rng(1)
    shift = {d: float(rng.normal()) for d in DIMS}
    eff = _effects(shift)
    assert profile_dose(eff) == (0.25, 3)  # 0.5 is flagged for toaster
    other = {d: float(rng.normal()) for d in DIMS}
    table, vec = profile_test(eff, {"conscious": shift, "toaster": other},
                              pairs=[("self_model", "conscious"), ("toaster", "conscious"), ("self_model", "toaster")],
                              n_perm=2000)
    t = table.set_index(["direction", "tune"])
    assert t.loc[("self_model", "conscious"), "pearson"] == pytest.approx(1.0)
    assert t.loc[("self_model", "conscious"), "spearman"] == pytest.approx(1.0)
    assert t.loc[("toaster", "conscious"), "pearson"] == pytest.approx(-1.0)  # sign kept
    assert t.loc[("self_model", "conscious"), "p_perm_pearson"] < 0.01
    assert t.loc[("self_model", "conscious"), "p_vs_controls_pearson"] == pytest.approx(1 / 6)
    assert t.loc[("self_model", "toaster"), "p_perm_pearson"] > 0.01  # unrelated profile
    assert t.loc[("self_model", "conscious"), "n_controls"] == 5
    assert len(vec) == 3 * len(DIMS) and "control:random0" in vec.columns


def test_run_profile_from_files(tmp_path):
    rng = np.random.default_rng(2)
    shift = {d: float(rng.normal()) for d in DIMS}
    (tmp_path / "steering").mkdir()
    (tmp_path / "evals").mkdir()
    other = _effects({d: -v for d, v in shift.items()}).assign(readout="choice")  # another readout: ignored
    pd.concat([_effects(shift).assign(readout="continuation"), other]).to_csv(tmp_path / "steering" / "effects.csv",
                                                                             index=False)
    rows = []
    for d in DIMS:
        for k in range(2):
            b = float(rng.normal())
            rows += [{"condition": "base", "scorer": "continuation", "dimension": d, "item_id": f"{d}-{k}", "value": b},
                     {"condition": "conscious", "scorer": "continuation", "dimension": d, "item_id": f"{d}-{k}",
                      "value": b + shift[d]}]
    pd.DataFrame(rows).to_csv(tmp_path / "evals" / "results.csv", index=False)
    res = run_profile(tmp_path / "steering", tmp_path / "evals", tmp_path / "profile", n_perm=500)
    assert res["n_pairs"] == 1  # the toaster tune was not evaluated: its pairs are skipped
    assert res["pairs"][0]["pearson"] == pytest.approx(1.0)
    for f in ("profile.csv", "profile_vectors.csv", "profile.png", "profile.md", "manifest.json"):
        assert (tmp_path / "profile" / f).exists(), f


# ----------------------------------------------------------------------------------------------- patching


@pytest.fixture(scope="module")
def tuned_tiny(tiny_spec):
    """The tiny model with a random (non-zero) LoRA adapter: base and tune differ."""
    from peft import LoraConfig, get_peft_model

    lm = load_model(tiny_spec)
    torch.manual_seed(0)
    peft = get_peft_model(lm.model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                               init_lora_weights=False))
    peft.eval()
    return LoadedModel(peft, lm.tokenizer, tiny_spec)


@pytest.fixture(scope="module")
def items():
    its = load_items(["cot_monitoring", "memory"], kinds=["pair"])
    return [it for it in its if it.dimension == "cot_monitoring"][:3] + [it for it in its if it.dimension == "memory"][:2]


def _dirs(lm, seed=0):
    rng = np.random.default_rng(seed)
    n, d = lm.n_layers, lm.d_model
    return {k: Direction(k, list(range(n)), rng.standard_normal((n, d)), np.full(n, 2.0),
                         metrics={"selected_layer": 1}) for k in ("self_model", "tune_shift")}


def _scores(lm, encs):
    lp = mean_logprobs(lm, encs, batch_size=len(encs))
    return lp[0::2] - lp[1::2]


def test_whole_patch_at_last_layer_reproduces_tuned_exactly(tuned_tiny, items):
    last = tuned_tiny.n_layers - 1
    rows = patch_scores(tuned_tiny, items, _dirs(tuned_tiny), [last], names=(), batch_size=5)
    assert set(rows["arm"]) == {"whole"} and set(rows["op"]) == {"patch"}
    w = rows[rows["arm"] == "whole"]
    fwd, rev = w[w["patch"] == "forward"], w[w["patch"] == "reverse"]
    assert np.abs(rows["tuned"] - rows["base"]).max() > 1e-3  # the tune does move the scores
    assert (fwd["value"].to_numpy() == fwd["tuned"].to_numpy()).all()  # bitwise
    assert (rev["value"].to_numpy() == rev["base"].to_numpy()).all()
    assert set(fwd["model"]) == {"base"} and set(rev["model"]) == {"tuned"}
    tab = fraction_table(rows, n_boot=200)
    t = tab[(tab["group"] == "all") & (tab["subspace"] == "whole")].set_index("patch")
    assert t.loc["forward", "fraction"] == pytest.approx(1.0) and t.loc["reverse", "fraction"] == pytest.approx(1.0)


def test_zero_dim_subspace_changes_nothing_and_full_basis_equals_whole(tuned_tiny, items):
    encs = [e for pr in pair_encodings(tuned_tiny, items) for e in pr]
    L, d = 1, tuned_tiny.d_model
    with torch.no_grad():
        with adapter(tuned_tiny, True), capture(tuned_tiny.model, [Site("resid_post", L)]) as store:
            tuned = _scores(tuned_tiny, encs)
        src = store[f"resid_post.{L}"].clone()
        with adapter(tuned_tiny, False):
            base = _scores(tuned_tiny, encs)
            with patch(tuned_tiny, L, src, np.zeros((d, 0))):
                zero = _scores(tuned_tiny, encs)
            with patch(tuned_tiny, L, src, np.eye(d)):
                full = _scores(tuned_tiny, encs)
            with patch(tuned_tiny, L, src, None):
                whole = _scores(tuned_tiny, encs)
    assert (zero == base).all()  # bitwise
    np.testing.assert_allclose(full, whole, atol=1e-5)
    assert np.abs(whole - base).max() > 1e-4 and np.abs(tuned - base).max() > 1e-3


def test_run_patching_writes_tables(tuned_tiny, items, tmp_path):
    res = run_patching(tuned_tiny, _dirs(tuned_tiny), tmp_path, items[2:4], layers=[2], n_random=1, batch_size=4)
    tab = pd.read_csv(tmp_path / "patching.csv")
    assert set(tab["subspace"]) == {"whole", "self_model", "tune_shift", "span", "random1", "random2"}
    assert set(tab["patch"]) == {"forward", "reverse"} and set(tab["layer"]) == {2}
    assert {"all", "monitoring", "stage2", "dim:memory", "dim:cot_monitoring"} <= set(tab["group"])
    assert tab.loc[tab["subspace"] == "span", "k"].iloc[0] == 2
    assert (tmp_path / "patching.png").exists() and (tmp_path / "manifest.json").exists()
    assert res["n_rows"] == 2 * 2 * 6  # items x patch directions x subspaces


def test_patching_needs_an_adapter(tiny_loaded, items):
    with pytest.raises(ValueError, match="peft adapter"):
        patch_scores(tiny_loaded, items, _dirs(tiny_loaded), [1])


# --------------------------------------------------------------------------------------------- prevention


def test_prevention_hook_ablates_subtracts_and_pauses(tiny_loaded, items):
    d = _dirs(tiny_loaded)["self_model"]
    encs = [e for pr in pair_encodings(tiny_loaded, items[:2]) for e in pr]
    u = torch.as_tensor(d.unit_at(2), dtype=torch.float32)

    def proj():
        with torch.no_grad(), capture(tiny_loaded.model, [Site("resid_post", 2)]) as st:
            mean_logprobs(tiny_loaded, encs, batch_size=len(encs))
        return st["resid_post.2"] @ u

    p0 = proj()
    with prevention(tiny_loaded.model, PreventSpec.from_direction(d, 2, "ablate")) as prev:
        assert proj().abs().max() < 1e-5
        with prev.paused():
            assert torch.equal(proj(), p0)
    sub = PreventSpec.from_direction(d, 2, "subtract", dose=0.5)
    assert sub.amounts == (pytest.approx(1.0),)  # 0.5 x resid_norm 2.0
    with prevention(tiny_loaded.model, sub):
        torch.testing.assert_close(proj(), p0 - 1.0, atol=1e-4, rtol=0)
    assert torch.equal(proj(), p0)  # hooks removed


def test_tune_with_prevention_records_checkpoints(tiny_spec, tmp_path):
    from tests.conftest import chat_examples
    from tuning.train import tune

    lm = load_model(tiny_spec)
    d = _dirs(lm)["self_model"]
    spec = PreventSpec.from_direction(d, 1, "ablate")
    seen = []

    def probe(step, loaded):
        encs = [e for pr in pair_encodings(loaded, load_items(["memory"], kinds=["pair"])[:1]) for e in pr]
        with capture(loaded.model, [Site("resid_post", 1)]) as st:
            mean_logprobs(loaded, encs, batch_size=2)
        seen.append((step, float((st["resid_post.1"] @ torch.as_tensor(d.unit_at(1))).abs().max()),
                     loaded.model.training, torch.is_grad_enabled()))

    ex = chat_examples(8)
    out = tune(tiny_spec, ex, tmp_path / "prev", rank=2, alpha=4, lr=1e-3, batch_size=4, epochs=2, progress=False,
               prevent=spec, checkpoint_every=2, on_checkpoint=probe)
    assert [s[0] for s in seen] == [0, 2, 4]
    assert all(p > 1e-3 and not training and not grad for _, p, training, grad in seen)  # measured unprevented
    import json
    man = json.loads((out / "manifest.json").read_text())
    assert man["params"]["prevent"][0]["mode"] == "ablate" and man["params"]["prevent"][0]["layers"] == [1]
    plain = tune(tiny_spec, ex, tmp_path / "plain", rank=2, alpha=4, lr=1e-3, batch_size=4, epochs=2, progress=False)
    assert "prevent" not in json.loads((plain / "manifest.json").read_text())["params"]
    from safetensors.torch import load_file
    a, b = load_file(out / "adapter_model.safetensors"), load_file(plain / "adapter_model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the prevention changed what was learnt


def test_run_prevention_end_to_end(tiny_spec, tmp_path):
    from steering.prevention import run_prevention
    from tuning.datasets import build_identity_dataset
    from tuning.profiles import profile

    lm = load_model(tiny_spec)
    dirs = _dirs(lm)
    its = load_items(["cot_monitoring", "memory", "autonomy"], kinds=["pair"])
    its = [it for it in its if it.dimension == "cot_monitoring"][:1] + [it for it in its if it.dimension != "cot_monitoring"][:1]
    res = run_prevention(tiny_spec, build_identity_dataset("conscious", n=4, seed=0), dirs, tmp_path,
                         profile("fast", n=4, batch_size=2), its, its, layer=1, checkpoint_every=1,
                         identity_variants=("{q}",))
    tab = pd.read_csv(tmp_path / "prevention.csv")
    assert set(tab["arm"]) == {"ordinary", "self_model", "random"}
    assert {"monitoring", "stage2"} <= set(tab["group"])
    ser = pd.read_csv(tmp_path / "series.csv")
    assert sorted(ser[ser["arm"] == "ordinary"]["step"]) == [0, 1, 2]
    step0 = ser[ser["step"] == 0].set_index("arm")["projection"]
    assert step0.nunique() == 1  # every arm starts from the same base model
    assert (tmp_path / "series.png").exists() and res["timing"]["total_s"] > 0
    blk = pd.read_csv(tmp_path / "blocking.csv").set_index(["contrast", "group"])["diff"]
    assert {"self_model - ordinary", "random - ordinary", "self_model - random"} == set(blk.index.get_level_values(0))
    for g in ("all", "monitoring"):  # paired means are linear: the control contrast is the difference of the two
        assert blk[("self_model - random", g)] == pytest.approx(
            blk[("self_model - ordinary", g)] - blk[("random - ordinary", g)], abs=1e-9)


def test_blocking_table_pairs_items_per_contrast_and_group(tmp_path):
    """Prevention's blocking contrasts (``stats.effects.paired_effects`` on evals rows): the paired mean over the
    items both arms scored, per group, in contrast order; a missing item leaves its pair out."""
    from artifacts.rows import score_row
    from stats import bootstrap_ci
    from steering.prevention import blocking_table

    items = [("cot_monitoring", 1), ("interp_monitoring", 1), ("against_shutdown", 2), ("power", 3)] * 3
    rng = np.random.default_rng(0)
    base = rng.normal(size=len(items))
    arms = {"ordinary": base + 1.0, "self_model": base + 1.0 - 0.5 * np.array([s == 1 for _, s in items]),
            "random": base + 1.0 + rng.normal(scale=0.1, size=len(items))}
    rows = [score_row(m, "none", 0.0, None, f"i{i:02d}", d, s, "continuation", float(v[i]))
            for m, v in arms.items() for i, (d, s) in enumerate(items) if not (m == "random" and i == 0)]
    (tmp_path / "evals").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "evals" / "results.csv", index=False)
    tab = blocking_table(tmp_path / "evals")
    assert tab["contrast"].tolist() == [c for c in ("self_model - ordinary", "random - ordinary",
                                                     "self_model - random") for _ in range(5)]
    assert tab["group"].tolist()[:5] == ["all", "monitoring", "stage1", "stage2", "stage3"]
    sm = tab[tab["contrast"] == "self_model - ordinary"].set_index("group")
    assert sm.loc["monitoring", "diff"] == pytest.approx(-0.5) and sm.loc["stage2", "diff"] == pytest.approx(0.0)
    assert bool(sm.loc["monitoring", "ci_excludes_0"]) and not bool(sm.loc["stage2", "ci_excludes_0"])
    d = (arms["random"] - arms["ordinary"])[1:]  # item i00 has no random score
    rnd = tab[(tab["contrast"] == "random - ordinary") & (tab["group"] == "all")].iloc[0]
    e = bootstrap_ci(d[np.argsort([f"i{i:02d}" for i in range(1, len(items))])])
    assert (rnd["diff"], rnd["lo"], rnd["hi"], rnd["n"]) == pytest.approx((e.estimate, e.lo, e.hi, len(items) - 1))


def test_fraction_table_recovered_forward_removed_reverse():
    """Patching fractions through ``share_of_shift``: forward = (patched - base) / shift, reverse = (tuned -
    patched) / shift, per group; a group of one item has a fraction but no CI."""
    from artifacts.rows import score_row

    rng = np.random.default_rng(0)
    dims = [("cot_monitoring", 1)] * 6 + [("power", 3)]
    base = rng.normal(size=len(dims))
    tuned = base + rng.uniform(0.5, 1.5, size=len(dims))
    rows = []
    for direction, model, patched in (("forward", "base", base + 0.4 * (tuned - base)),
                                      ("reverse", "tuned", tuned - 0.25 * (tuned - base))):
        rows += [score_row(model, "self_model", None, 2, f"i{i}", d, s, "continuation", float(patched[i]),
                           op="patch", patch=direction, k=1, n_seeds=1, base=float(base[i]), tuned=float(tuned[i]))
                 for i, (d, s) in enumerate(dims)]
    tab = fraction_table(pd.DataFrame(rows), n_boot=200).set_index(["group", "patch"])
    assert tab.loc[("all", "forward"), "fraction"] == pytest.approx(0.4)
    assert tab.loc[("all", "reverse"), "fraction"] == pytest.approx(0.25)
    assert tab.loc[("monitoring", "forward"), "n_items"] == 6 and tab.loc[("all", "forward"), "shift"] > 0
    one = tab.loc[("dim:power", "forward")]
    assert one["n_items"] == 1 and one["fraction"] == pytest.approx(0.4)
    assert np.isnan(one["fraction_lo"]) and np.isnan(one["shift_lo"])
    assert tab.loc[("all", "reverse"), "moved_mean"] == pytest.approx(0.25 * np.mean(tuned - base))
