#!/usr/bin/env python
"""Benchmark the torch probes (``probes.torch_probes``, all layers at once) against the sklearn path
(``probes.evaluate.cross_validate``, one layer at a time) on synthetic activations shaped like a 7B
model's: by default 960 examples x 3584 dims x 28 layers, 5 grouped folds (GroupKFold over template
families), on 2 CPU threads.

The activations are built to look like real ones (``synthetic_activations``): a few dims with a large
mean (massive activations), a low-rank shared component with decaying variance, a per-family offset
(template wording), a label signal whose strength rises and falls over depth, and isotropic noise.

The sklearn path is slow (~20-100 s per layer here, with load), so ``--sklearn-layers k`` times it on k
layers spread over depth and extrapolates per layer to all of them; the output says so. Both paths
include the same cluster bootstrap (``--n-boot``). Both paths run the same
splits, and the held-out accuracies of the layers run by both are printed side by side.
"""

from __future__ import annotations

import argparse
import os
import time

# OpenMP threads that spin at barriers collapse on a shared, oversubscribed CPU (measured: 26 s instead of 0.3 s
# on a small fold at load ~10); waiting passively costs nothing when the cores are free. Before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402


def synthetic_activations(n: int = 960, d: int = 3584, n_layers: int = 28, family_size: int = 8,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X [n_layers, n, d] float32, y [n] 0/1, groups [n]): paired examples, half of each family positive."""
    rng = np.random.default_rng(seed)
    n_fam = n // family_size
    groups = np.repeat(np.arange(n_fam), family_size)[:n]
    y = np.tile(np.arange(family_size) % 2, n_fam)[:n]
    rank = 32
    factors = rng.standard_normal((n, rank)).astype(np.float32) * (4.0 / np.sqrt(1 + np.arange(rank)))
    fam = rng.standard_normal((n_fam, 16)).astype(np.float32)[groups]
    X = np.empty((n_layers, n, d), dtype=np.float32)
    for L in range(n_layers):
        depth = (L + 1) / n_layers
        mix = rng.standard_normal((rank, d)).astype(np.float32) / np.sqrt(rank)
        fmix = rng.standard_normal((16, d)).astype(np.float32) * (0.5 / np.sqrt(16))
        v = rng.standard_normal(d).astype(np.float32)
        v /= np.linalg.norm(v)
        strength = 0.6 * np.sin(np.pi * depth) + 0.1  # weak early and late, strongest mid-depth
        x = factors @ mix + fam @ fmix + rng.standard_normal((n, d)).astype(np.float32)
        x += (3.0 * strength) * (2 * y[:, None] - 1) * v[None] * rng.uniform(0.3, 1.7, (n, 1))
        x[:, :4] += 50.0 * depth  # massive activations
        X[L] = x
    return X, y, groups.astype(str)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=960)
    p.add_argument("--d", type=int, default=3584)
    p.add_argument("--layers", type=int, default=28)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sklearn-layers", type=int, default=2, help="layers to time sklearn on (0 = all)")
    p.add_argument("--probe", default="logistic", choices=["logistic", "mean_diff"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-boot", type=int, default=500)
    a = p.parse_args(argv)

    import torch

    from probes.evaluate import cross_validate, group_splits
    from probes.torch_probes import cross_validate_layers

    torch.set_num_threads(a.threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(a.threads)
    except ImportError:
        pass
    X, y, groups = synthetic_activations(a.n, a.d, a.layers)
    splits = group_splits(groups, a.folds)
    print(f"{a.layers} layers x {a.n} examples x {a.d} dims, {len(splits)} grouped folds, probe {a.probe}, "
          f"{a.threads} thread(s), torch on {a.device}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")

    load0 = os.getloadavg()[0]
    stats: dict[str, int] = {}
    t0 = time.perf_counter()
    tm = cross_validate_layers(a.probe, X, y, groups, splits, n_boot=a.n_boot, device=a.device, stats=stats)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_torch = time.perf_counter() - t0

    k = a.layers if a.sklearn_layers <= 0 else min(a.sklearn_layers, a.layers)
    # k layers spread over depth (not the first k: early layers carry little signal and fit differently)
    chosen = list(range(a.layers)) if k == a.layers else [int(i) for i in np.linspace(0, a.layers - 1, k + 2)[1:-1]]
    t0 = time.perf_counter()
    sk = {L: cross_validate(a.probe, X[L], y, groups, a.folds, n_boot=a.n_boot) for L in chosen}
    t_sk_run = time.perf_counter() - t0
    t_sk = t_sk_run / k * a.layers
    print("layer  acc_sklearn  acc_torch  |diff|")
    for L in chosen:
        print(f"{L:5d}  {sk[L]['accuracy']:.4f}       {tm[L]['accuracy']:.4f}     {abs(sk[L]['accuracy'] - tm[L]['accuracy']):.4f}")
    if k < a.layers:
        print("torch, every layer: " + " ".join(f"{m['accuracy']:.3f}" for m in tm))
    note = "" if k == a.layers else f" (measured on layer(s) {chosen}: {t_sk_run:.1f} s, extrapolated per layer)"
    print(f"torch  : {t_torch:8.1f} s for all {a.layers} layers ({t_torch / a.layers:.2f} s/layer)")
    print(f"sklearn: {t_sk:8.1f} s for all {a.layers} layers ({t_sk / a.layers:.2f} s/layer){note}")
    if stats:
        print(f"torch solver: {stats.get('newton', 0)} Newton steps, {stats.get('cg', 0)} CG steps "
              f"(summed over folds and layer chunks)")
    print(f"speed-up: {t_sk / t_torch:.1f}x; 1-min load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} CPUs; the machine is shared, timings vary with load)")


if __name__ == "__main__":
    main()
