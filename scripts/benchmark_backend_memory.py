#!/usr/bin/env python
"""Resident memory a TransformerLens / nnsight runner adds on top of the loaded model (the embedded model by
default), against a deep copy of the model (what the backends cost before they shared the weights).

    python scripts/benchmark_backend_memory.py [--model DIR]

Each line is the growth of VmRSS around making the object (garbage collected before and after). The first
TransformerLens runner also pays for importing the library's code; the second shows the runner alone.
"""

from __future__ import annotations

import argparse
import copy
import gc


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="hub id or local directory (default: the embedded SmolLM2-135M)")
    args = p.parse_args(argv)
    from activations.backends import make_runner
    from activations.runner import shared_model
    from activations.sites import parse_sites
    from models import ModelSpec, load_model

    loaded = load_model(ModelSpec(**({"base": args.model} if args.model else {}), device="cpu"))
    sites = parse_sites("resid_post.*", loaded.n_layers)
    size = sum(t.numel() * t.element_size() for t in loaded.model.parameters()) / 2**20
    gc.collect()
    print(f"parameters {size:.0f} MiB; RSS after loading {rss_mib():.0f} MiB")
    cases = [("shared_model", lambda: shared_model(loaded)),
             ("transformer_lens runner (1st: + library import)", lambda: make_runner("transformer_lens", loaded, sites)),
             ("transformer_lens runner (2nd)", lambda: make_runner("transformer_lens", loaded, sites)),
             ("nnsight runner (1st)", lambda: make_runner("nnsight", loaded, sites)),
             ("nnsight runner (2nd)", lambda: make_runner("nnsight", loaded, sites)),
             ("copy.deepcopy(model) (the backends' old private copy)", lambda: copy.deepcopy(loaded.model))]
    for name, make in cases:
        gc.collect()
        before = rss_mib()
        obj = make()
        gc.collect()
        print(f"{name}: RSS +{rss_mib() - before:.0f} MiB")
        del obj
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
