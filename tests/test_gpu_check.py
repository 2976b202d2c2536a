"""scripts/gpu_check.py --tiny runs on the CPU end to end and writes its table as JSON, with the bf16
ablation residual under 1e-3 and batched doses equal to the per-dose loop."""

from __future__ import annotations

import json

from scripts.gpu_check import main


def test_gpu_check_tiny(tmp_path):
    out = tmp_path / "gpu.json"
    main(["--tiny", "--out", str(out), "--backends", "hooks", "--no-probes"])
    res = json.loads(out.read_text())
    r = res["models"]["tiny"]
    assert "error" not in r, r.get("error")
    assert r["throughput"]["bare_forward"]["tokens_per_s"] > 0 and "vs_bare" in r["throughput"]["hooks_cache"]
    assert r["ablation"]["dtype"] == "torch.bfloat16" and r["ablation"]["max_proj_over_norm_after_ablate"] < 1e-3
    assert r["steering"]["max_abs_diff"] < 1e-5 and r["steering"]["rows"] == 12
