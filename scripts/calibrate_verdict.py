"""Calibrate the steering verdict of a finished steering run: put >= 20 norm-matched random directions
through the same decision rule as if each were self_model (false-positive rate, Wilson 95% CI) and a
planted direction known to move the readout (the mean activation difference between preferring and
rejecting answers of held-out monitoring items). Reuses the run's scored rows; scores only the extra
directions (monitoring items, verdict dose). Writes calibration.csv / calibration_verdicts.csv /
calibration.json into the steering folder and prints the summary.

Example:
    python scripts/calibrate_verdict.py --directions runs/demo/probes/directions.safetensors \
        --steering runs/demo/steering --n-null 20
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from artifacts import read_jsonl
from models import ModelSpec, load_model
from pipeline.layout import SteeringDir
from probes.directions import load_directions
from steering.arms import condition_directions
from steering.calibration import N_NULL
from steering.experiment import run_calibration, select_items


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=None, help="base model (default: the steering run's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--directions", required=True, help="the direction file the steering run used")
    ap.add_argument("--steering", required=True, help="a finished steering folder (results.jsonl, verdict.csv)")
    ap.add_argument("--n-null", type=int, default=N_NULL, help=f"null random directions (default {N_NULL})")
    ap.add_argument("--overwrite", action="store_true", help="discard partial calibration results of other settings")
    a = ap.parse_args(argv)
    run = SteeringDir.at(a.steering)
    folder = run.path
    for path in (run.results, run.verdict, run.manifest):
        if not path.exists():
            ap.error(f"{path}: not found; run scripts/run_steering.py into {folder} first")
    params = json.loads(run.manifest.read_text())["params"]
    base = a.base or params["model"]["base"]
    loaded = load_model(ModelSpec(base=base, device=a.device))
    dirs = load_directions(a.directions)
    conds = condition_directions(dirs, params["conditions"], params["n_random"], "self_model", params["seed"])
    ids = set(params["items"])
    sel = [it for it in select_items(None, None, None) if it.id in ids]
    readouts = params.get("readouts") or [params.get("scorer", "continuation")]
    table, notes = run_calibration(loaded, dirs, conds, read_jsonl(run.results),
                                   pd.read_csv(run.verdict), sel, folder, n_null=a.n_null,
                                   n_random=params["n_random"], seed=params["seed"], positions=params["positions"],
                                   readouts=readouts, overwrite=a.overwrite)
    for n in notes:
        print(f"note: {n}")
    if table is not None:
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
