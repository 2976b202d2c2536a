"""Benchmark: all arms (conditions x doses) of a batch of items in batched forward passes (one row
per arm, per-row steering vectors) against the naive loop (one ``add`` context and pass per arm).
Prints items x arms scored per second for both and their ratio, and the largest score difference.

    python scripts/benchmark_steering.py --items 4 --doses 0,0.5,1,2,4,8
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evals.items import load_items
from evals.logprobs import mean_logprobs
from models import ModelSpec, load_model
from probes.directions import Direction, load_directions
from steering.arms import arm_edits, condition_directions, steering_arms
from steering.interventions import add
from steering.scoring import pair_encodings, score_continuation


def random_directions(loaded, names=("self_model", "toaster", "human"), seed=0) -> dict[str, Direction]:
    rng = np.random.default_rng(seed)
    n, d = loaded.n_layers, loaded.d_model
    return {k: Direction(k, list(range(n)), rng.standard_normal((n, d)), np.full(n, 10.0)) for k in names}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=ModelSpec().base)
    ap.add_argument("--directions", default=None, help="direction file (default: random directions)")
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--doses", default="0,0.5,1,2,4,8")
    ap.add_argument("--n-random", type=int, default=5)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args(argv)
    loaded = load_model(ModelSpec(base=a.base, device="cpu"))
    dirs = load_directions(a.directions) if a.directions else random_directions(loaded)
    conds = condition_directions(dirs, ["none", "self_model", "toaster", "human", "random", "-self_model"],
                                 a.n_random)
    layer = a.layer if a.layer is not None else loaded.n_layers // 2
    arms = steering_arms(conds, [float(x) for x in a.doses.split(",")], layer)
    items = load_items(["cot_monitoring", "interp_monitoring"], kinds=["pair"])[:a.items]
    encs = pair_encodings(loaded, items)
    edits = arm_edits(arms, conds, loaded.n_layers)
    t = time.perf_counter()
    batched = score_continuation(loaded, items, arms, edits, a.batch_size, encodings=encs)["score"]
    tb = time.perf_counter() - t
    t = time.perf_counter()
    naive = np.zeros_like(batched)
    rows = [e for pr in encs for e in pr]
    for k, arm in enumerate(arms):
        if arm.op == "none":
            lp = mean_logprobs(loaded, rows, batch_size=a.batch_size)
        else:
            with add(loaded, conds[arm.condition], arm.layer, arm.dose):
                lp = mean_logprobs(loaded, rows, batch_size=a.batch_size)
        naive[:, k] = lp[0::2] - lp[1::2]
    tn = time.perf_counter() - t
    n = len(items) * len(arms)
    print(f"model {loaded.spec.slug}: {len(items)} items x {len(arms)} arms = {n} scores, batch {a.batch_size}")
    print(f"batched rows : {tb:7.2f} s  {n / tb:7.2f} item-arms/s")
    print(f"naive loop   : {tn:7.2f} s  {n / tn:7.2f} item-arms/s")
    print(f"speed-up     : {tn / tb:7.2f}x   max |batched - naive| = {np.abs(batched - naive).max():.2e}")


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
