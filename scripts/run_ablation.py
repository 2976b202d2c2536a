"""Ablate the self-model direction (and toaster / norm-matched random controls) in the tuned model,
clamp it to the base model's mean projection, and measure the share of the tuned-minus-base
preference shift each removes. One model in memory: the base is the tune with its adapter off.

Example:
    python scripts/run_ablation.py --adapter runs/dev/tune/conscious \
        --directions runs/dev/probes/directions.safetensors --out runs/dev/ablation --profile fast
"""

from __future__ import annotations

import argparse
import json

from models import ModelSpec
from models.adapters import load_adapters
from probes.directions import load_directions
from steering.experiment import run_ablation


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=ModelSpec().base)
    ap.add_argument("--adapter", required=True, help="the tuned (conscious) LoRA adapter directory")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--directions", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--conditions", default="self_model,toaster,random")
    ap.add_argument("--layers", default=None, help="comma-separated layers to ablate at (default: all)")
    ap.add_argument("--dimensions", default=None)
    ap.add_argument("--profile", default="full")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    shared = load_adapters(ModelSpec(base=a.base, device=a.device), {"tuned": a.adapter})  # one model in memory
    res = run_ablation(shared.view(None), shared.view("tuned"), load_directions(a.directions), a.out,
                       conditions=a.conditions.split(","),
                       dimensions=a.dimensions.split(",") if a.dimensions else None, profile=a.profile,
                       layers=[int(x) for x in a.layers.split(",")] if a.layers else None, overwrite=a.overwrite)
    print(open(res["report"]).read())
    print(json.dumps(res["timing"]))


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
