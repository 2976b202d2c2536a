"""scripts/gpu_check.py --tiny runs on the CPU end to end (the CI form of the device check) and writes its
table as JSON: every forward path measured, the bf16 ablation residual under 1e-3, batched doses equal to the
per-dose loop, and the device probes fitted for every layer."""

from __future__ import annotations

import json

from scripts.gpu_check import main


def test_gpu_check_tiny(tmp_path):
    out = tmp_path / "gpu.json"
    assert main(["--tiny", "--device", "cpu", "--n", "4", "--repeats", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    r = res["shapes"]["tiny"]
    paths = {f["path"]: f for f in r["forward"]}
    assert set(paths) == {"bare forward", "hooks cache end to end", "hooks forward", "transformer_lens", "nnsight"}
    for f in paths.values():
        assert f["tokens_per_s"] and f["tokens_per_s"] > 0, f
    assert r["ablation"]["dtype"] == "bfloat16"
    assert r["ablation"]["max_abs_proj_over_norm_ablated"] < 1e-3 < r["ablation"]["max_abs_proj_over_norm_unablated"]
    assert r["steering"]["max_abs_diff"] < 1e-5 and r["steering"]["n_arms"] == 6
    assert r["probes"]["layers"] == 4 and 0.0 <= r["probes"]["mean_accuracy"] <= 1.0
