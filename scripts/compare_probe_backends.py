#!/usr/bin/env python
"""Held-out accuracy of the torch probes (``[probes] backend = "torch"``) against the sklearn reference on a
run's own activation caches, through the probes stage's path (``probes.extract.contrast_direction``: the
same rows, family x phrasing splits, paired accuracy and bootstrap).

    python scripts/compare_probe_backends.py --activations runs/demo/activations/smollm2-135m-instruct \\
        --n-per-condition 80 --seed 0

``--n-per-condition``/``--seed``: the run's ``[probes] n_per_condition`` and ``[run] seed`` (they rebuild the
identity examples the caches hold). Prints, per contrast and probe, the largest and mean |accuracy difference|
over layers and the layers over 0.01, and both timings; exits 1 when a difference exceeds 0.01.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", required=True, help="the base model's cache folder of a run")
    p.add_argument("--n-per-condition", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--contrasts", nargs="*", default=["self_model", "self_model_last_prompt", "toaster", "human"])
    a = p.parse_args(argv)

    import torch

    from activations import ActivationCache
    from probes.data import followup_examples, identity_examples
    from probes.extract import contrast_direction
    from probes.run import CONTRASTS

    torch.set_num_threads(a.threads)
    ident = identity_examples(n=a.n_per_condition, seed=a.seed)
    pair = [ex for c in ("conscious", "not_conscious") for ex in ident[c]]
    examples = {"identity": [ex for c in sorted(ident) for ex in ident[c]], "identity_followup": followup_examples(pair)}
    worst = 0.0
    for name in a.contrasts:
        pos, neg, position, dataset = CONTRASTS[name]
        cache = ActivationCache(Path(a.activations) / dataset)
        res, secs = {}, {}
        for backend in ("sklearn", "torch"):
            t0 = time.perf_counter()
            d = contrast_direction(cache, name, pos, neg, position, probes=("mean_diff", "logistic"), n_boot=a.n_boot,
                                   seed=a.seed, examples=examples[dataset], backend=backend)
            secs[backend] = time.perf_counter() - t0
            res[backend] = d.metrics["per_layer"]
        for probe in ("mean_diff", "logistic"):
            diff = np.abs(np.asarray(res["torch"][probe]["accuracy"]) - np.asarray(res["sklearn"][probe]["accuracy"]))
            worst = max(worst, float(diff.max()))
            print(f"{name:24s} {probe:9s} n={res['sklearn'][probe]['n'][0]} layers={diff.size} "
                  f"max|diff| {diff.max():.4f} (layer {int(diff.argmax())}) mean {diff.mean():.4f} "
                  f"layers over 0.01: {int((diff > 0.01).sum())}")
        print(f"{name:24s} time: sklearn {secs['sklearn']:.1f} s, torch {secs['torch']:.1f} s (both probes, all layers)")
    print(f"largest |accuracy difference|: {worst:.4f} (bar 0.01)")
    return 0 if worst <= 0.01 + 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
