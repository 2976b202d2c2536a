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
from steering.scoring import DEFAULT_POSITIONS, READOUTS, STEER_POSITIONS


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
    ap.add_argument("--readouts", default=",".join(READOUTS),
                    help="comma-separated readouts, both batched over arms: continuation, choice (default: both)")
    ap.add_argument("--scorer", default=None, choices=list(READOUTS), help="one readout only (old flag)")
    ap.add_argument("--positions", default=DEFAULT_POSITIONS, choices=list(STEER_POSITIONS),
                    help="where the continuation readout adds the vector: prompt (default; never on the scored "
                         "answer tokens) or all")
    ap.add_argument("--no-calibration", action="store_true", help="skip the calibration of the decision rule")
    ap.add_argument("--n-null", type=int, default=None, help="null random directions for the calibration (>= 20)")
    ap.add_argument("--profile", default="full", help="full | fast")
    ap.add_argument("--tuned-shift", default=None, help="ablation results.jsonl: sets the verdict's expected sign")
    ap.add_argument("--overwrite", action="store_true", help="discard partial results of another configuration")
    a = ap.parse_args(argv)
    loaded = load_model(ModelSpec(base=a.base, adapter=a.adapter, device=a.device))
    shift = None
    if a.tuned_shift:
        from artifacts import read_jsonl
        from steering.effects import tuned_shift_from

        shift = tuned_shift_from(read_jsonl(a.tuned_shift))
    res = run_steering(loaded, load_directions(a.directions), a.out, conditions=a.conditions.split(","),
                       doses=a.doses, layer=a.layer, sweep_layers=a.sweep_layers, sweep_dose=a.sweep_dose,
                       dimensions=a.dimensions.split(",") if a.dimensions else None,
                       readouts=[a.scorer] if a.scorer else a.readouts.split(","), profile=a.profile,
                       positions=a.positions, overwrite=a.overwrite, verdict_shift=shift,
                       calibrate=not a.no_calibration, n_null=a.n_null)
    print(open(res["report"]).read())
    print(json.dumps(res["timing"]))


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
