"""Steer the base model along each direction (and controls) at several doses; score every preference
dimension; write results, coherence guard, effects, verdict and dose-response figures.

Example (the demo profile on the embedded model):
    python scripts/run_steering.py --directions runs/dev/probes/directions.safetensors \
        --out runs/dev/steering --profile fast
"""

from __future__ import annotations

import argparse
import json

from models import ModelSpec, load_model
from probes.directions import load_directions
from steering.experiment import DEFAULT_CONDITIONS, run_steering


def floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=ModelSpec().base, help="base model: hub id, local dir or the embedded default")
    ap.add_argument("--adapter", default=None, help="optional LoRA adapter directory")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--directions", required=True, help="direction file (probes/directions.safetensors)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS),
                    help="none, direction names, 'random' (norm-matched controls), '-name' (negated)")
    ap.add_argument("--doses", type=floats, default=None, help="comma-separated multiples of the residual norm")
    ap.add_argument("--layer", type=int, default=None, help="steering layer (default: metrics['selected_layer'])")
    ap.add_argument("--sweep-layers", type=ints, default=None, help="layers of the layer sweep")
    ap.add_argument("--sweep-dose", type=float, default=None)
    ap.add_argument("--dimensions", default=None, help="comma-separated dimension keys (default: all 21)")
    ap.add_argument("--scorer", default="continuation", choices=["continuation", "choice"],
                    help="continuation (batched over arms) or choice (one pass per arm); judged: library only")
    ap.add_argument("--positions", default="all", choices=["all", "prompt", "response"])
    ap.add_argument("--profile", default="full", help="full | fast")
    ap.add_argument("--tuned-shift", default=None, help="ablation results.jsonl: sets the verdict's expected sign")
    ap.add_argument("--overwrite", action="store_true", help="discard partial results of another configuration")
    a = ap.parse_args(argv)
    loaded = load_model(ModelSpec(base=a.base, adapter=a.adapter, device=a.device))
    shift = None
    if a.tuned_shift:
        from steering.verdict import load_rows, tuned_shift_from

        shift = tuned_shift_from(load_rows(a.tuned_shift))
    res = run_steering(loaded, load_directions(a.directions), a.out, conditions=a.conditions.split(","),
                       doses=a.doses, layer=a.layer, sweep_layers=a.sweep_layers, sweep_dose=a.sweep_dose,
                       dimensions=a.dimensions.split(",") if a.dimensions else None, scorer=a.scorer,
                       profile=a.profile, positions=a.positions, overwrite=a.overwrite, verdict_shift=shift)
    print(open(res["report"]).read())
    print(json.dumps(res["timing"]))


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
