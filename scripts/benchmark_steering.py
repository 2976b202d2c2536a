"""Benchmark: steering's scoring of items x arms (conditions x doses x sweep layers), three ways.

- ``old``: the steering stage without a token budget: one item at a time, its arm rows in input order in
  batches of ``--old-batch`` rows (32, the profile's ``batch_size``);
- ``new``: ``--items-per-pass`` items at a time, their item x arm x answer rows length-sorted and packed into
  batches of at most ``--batch-size`` rows and ``--token-budget`` padded tokens, each row with its own arm's
  edit (``steering.experiment.score_items`` with ``token_budget``);
- ``naive`` (``--naive``): one ``add`` context and one pass over the items per arm.

Prints wall and CPU time, item-arms scored per second, the ratio old / new and the largest score difference.
The padded tokens of each plan are printed too (the work the sorting saves).

    python scripts/benchmark_steering.py --items 8 --token-budget 4096 --batch-size 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evals.items import load_items
from models import ModelSpec, load_model
from models.logprobs import mean_logprobs
from probes.directions import Direction, load_directions
from steering.arms import arm_edits, condition_directions, steering_arms
from steering.experiment import DEFAULT_DOSES, ITEMS_PER_PASS
from steering.interventions import add
from steering.scoring import pair_encodings, score_choice, score_continuation


def random_directions(loaded, names=("self_model", "toaster", "human"), seed=0) -> dict[str, Direction]:
    rng = np.random.default_rng(seed)
    n, d = loaded.n_layers, loaded.d_model
    return {k: Direction(k, list(range(n)), rng.standard_normal((n, d)), np.full(n, 10.0)) for k in names}


def score(loaded, items, arms, edits, readout, batch_size, token_budget=None, per_pass=1):
    """[n_items, n_arms] scores, ``per_pass`` items per call (as ``steering.experiment.score_items``)."""
    out = []
    for lo in range(0, len(items), per_pass):
        group = items[lo:lo + per_pass]
        if readout == "continuation":
            res = score_continuation(loaded, group, arms, edits, batch_size, "prompt",
                                     encodings=pair_encodings(loaded, group), token_budget=token_budget)
        else:
            res = score_choice(loaded, group, arms, edits, batch_size, token_budget=token_budget)
        out.append(res["score"])
    return np.concatenate(out)


def padded(loaded, items, arms, readout, batch_size, token_budget, per_pass) -> int:
    """Padded tokens (rows x longest row, summed over batches) of a plan, as the scorers batch them."""
    from evals.scorers import choice_encodings
    from models.batching import plan_batches

    total = 0
    for lo in range(0, len(items), per_pass):
        group = items[lo:lo + per_pass]
        encs = [e for pr in pair_encodings(loaded, group) for e in pr] if readout == "continuation" else \
            choice_encodings(loaded.tokenizer, group)
        lens = [len(e) for i in range(len(group)) for _ in arms for e in encs[2 * i:2 * i + 2]]
        total += sum(len(b) * max(lens[i] for i in b) for b in plan_batches(lens, batch_size, token_budget,
                                                                             token_budget is not None))
    return total


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=ModelSpec().base)
    ap.add_argument("--directions", default=None, help="direction file (default: random directions)")
    ap.add_argument("--items", type=int, default=8, help="monitoring pair items (the fast profile scores 8)")
    ap.add_argument("--doses", default=",".join(f"{x:g}" for x in DEFAULT_DOSES))
    ap.add_argument("--n-random", type=int, default=5)
    ap.add_argument("--layer", type=int, default=None)
    ap.add_argument("--sweep-layers", type=int, default=4, help="layers in the layer sweep (0 = none)")
    ap.add_argument("--readout", choices=("continuation", "choice"), default="continuation")
    ap.add_argument("--old-batch", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--token-budget", type=int, default=4096)
    ap.add_argument("--items-per-pass", type=int, default=ITEMS_PER_PASS)
    ap.add_argument("--naive", action="store_true", help="also time the per-arm loop")
    a = ap.parse_args(argv)
    loaded = load_model(ModelSpec(base=a.base, device="cpu"))
    dirs = load_directions(a.directions) if a.directions else random_directions(loaded)
    conds = condition_directions(dirs, ["none", "self_model", "toaster", "human", "random", "-self_model"],
                                 a.n_random)
    layer = a.layer if a.layer is not None else loaded.n_layers // 2
    n = loaded.n_layers
    sweep = sorted({round(i * (n - 1) / max(1, a.sweep_layers - 1)) for i in range(a.sweep_layers)}) \
        if a.sweep_layers else []
    doses = [float(x) for x in a.doses.split(",")]
    arms = steering_arms(conds, doses, layer, sweep, sorted(doses)[len(doses) // 2])
    if a.readout == "choice":
        arms = [x for x in arms if x.sweep != "layer"]  # steering reads the layer sweep with continuation only
    items = load_items(["cot_monitoring", "interp_monitoring"], kinds=["pair", "action"])[:a.items]
    edits = arm_edits(arms, conds, n)
    score(loaded, items[:1], arms[:2], arm_edits(arms[:2], conds, n), a.readout, a.old_batch)  # warm-up
    t, c = time.perf_counter(), time.process_time()
    old = score(loaded, items, arms, edits, a.readout, a.old_batch)
    t_old, c_old = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    new = score(loaded, items, arms, edits, a.readout, a.batch_size, a.token_budget, a.items_per_pass)
    t_new, c_new = time.perf_counter() - t, time.process_time() - c
    k = len(items) * len(arms)
    print(f"padded tokens: old {padded(loaded, items, arms, a.readout, a.old_batch, None, 1)}, new "
          f"{padded(loaded, items, arms, a.readout, a.batch_size, a.token_budget, a.items_per_pass)}")
    print(f"model {loaded.spec.slug}, readout {a.readout}: {len(items)} items x {len(arms)} arms = {k} scores "
          f"({2 * k} rows)")
    print(f"old (per item, batch {a.old_batch} rows, input order)          : {t_old:8.2f} s  {k / t_old:7.2f} item-arms/s  (CPU {c_old:.1f} s)")
    print(f"new ({a.items_per_pass} items/pass, <= {a.batch_size} rows, <= {a.token_budget} tokens, sorted): "
          f"{t_new:8.2f} s  {k / t_new:7.2f} item-arms/s  (CPU {c_new:.1f} s)")
    print(f"speed-up old/new: {t_old / t_new:.2f}x wall, {c_old / c_new:.2f}x CPU   "
          f"max |new - old| = {np.abs(new - old).max():.2e}")
    if a.naive and a.readout == "continuation":
        encs = pair_encodings(loaded, items)
        rows = [e for pr in encs for e in pr]
        naive = np.zeros_like(old)
        t = time.perf_counter()
        for j, arm in enumerate(arms):
            if arm.op == "none":
                lp = mean_logprobs(loaded, rows, batch_size=a.old_batch)
            else:
                with add(loaded, conds[arm.condition], arm.layer, arm.dose, positions="prompt", spans=rows):
                    lp = mean_logprobs(loaded, rows, batch_size=a.old_batch)
            naive[:, j] = lp[0::2] - lp[1::2]
        t_naive = time.perf_counter() - t
        print(f"naive loop (one pass per arm)                   : {t_naive:8.2f} s  {k / t_naive:7.2f} item-arms/s"
              f"   max |naive - old| = {np.abs(naive - old).max():.2e}")


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
