"""Stream residual-stream activations of a model spec over a dataset into safetensors shards.

Layout of a cache directory::

    shard-00000.safetensors   per position: tensor [n_rows, n_sites, d_model]
                              (``all``: tensor [n_tokens, n_sites, d_model] + ``all.offsets`` [n_rows+1])
    index.jsonl               one row per example: row, id, dataset, label, template_id, shard, n_tokens
    manifest.json             model spec, content hashes (weights, adapter, dataset), sites, positions,
                              dtype, versions; written last: a cache without it is unfinished
    progress.json             present while unfinished: the run's key, to resume safely

Memory is bounded by one batch and one shard. Shards are written atomically, so a killed run
resumes from the last complete shard, and the batches (hence the values) are the same as in an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from activations.backends import make_runner
from activations.sites import Site, check_positions, parse_sites, reduce_positions
from artifacts import atomic_path, atomic_write_json, hash_jsonable, read_manifest, write_manifest
from artifacts.hashing import hash_file, hash_path
from models.chat import encode_chat, pad_batch
from models.loading import LoadedModel, load_model, resolve_base
from models.spec import ModelSpec

SHARD = "shard-{:05d}.safetensors"
_WEIGHT_HASHES: dict[tuple, str] = {}


class CacheError(ValueError):
    pass


def weights_hash(spec: ModelSpec) -> str:
    """Content hash of the base weights (the GGUF file for the embedded model); memoised per process."""
    if spec.is_embedded:
        from models.embedded import gguf_path

        path = gguf_path()
    else:
        path = Path(resolve_base(spec))
        if not path.exists():  # a hub id resolved from the local hub cache: name + revision
            return hash_jsonable({"hub_id": spec.base})
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _WEIGHT_HASHES:
        _WEIGHT_HASHES[key] = hash_file(path) if path.is_file() else hash_path(path)
    return _WEIGHT_HASHES[key]


def model_provenance(spec: ModelSpec) -> dict[str, Any]:
    return {"model": spec.to_dict(), "weights_sha256": weights_hash(spec),
            "adapter_sha256": hash_path(spec.adapter) if spec.adapter else None}


_INDEX_FIELDS = ("id", "dataset", "label", "template_id", "condition")
_OPTIONAL_FIELDS = ("family", "dimension", "stage", "kind")


def _row_meta(ex: dict[str, Any]) -> dict[str, Any]:
    """The index row of an example: the fixed fields, plus optional ones present in the example."""
    row = {k: ex.get(k) for k in _INDEX_FIELDS}
    row.update({k: ex[k] for k in _OPTIONAL_FIELDS if k in ex})
    return row


def cache_activations(model_spec: ModelSpec | str | None, examples: Sequence[dict[str, Any]],
                      sites: str | list[str], positions: str | list[str], out_dir: str | os.PathLike,
                      batch_size: int = 8, *, backend: str = "hooks", dtype: str = "float32",
                      shard_size: int = 256, padding_side: str = "right", chat_template: str | None = None,
                      loaded: LoadedModel | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Cache ``sites`` x ``positions`` for ``examples`` (dicts with ``messages``); return ``out_dir``.

    Skips work when ``out_dir`` already holds a finished cache of the same inputs; resumes an
    unfinished one. ``loaded`` reuses a model already in memory (it must match ``model_spec``).
    """
    out = Path(out_dir)
    if not examples:
        raise CacheError("no examples to cache; the dataset is empty")
    if shard_size % batch_size:
        shard_size = batch_size * max(1, shard_size // batch_size)
    spec = loaded.spec if loaded is not None else (
        model_spec if isinstance(model_spec, ModelSpec) else ModelSpec(base=model_spec or ModelSpec().base))
    positions = check_positions(positions)
    if dtype not in ("float32", "float16", "bfloat16"):
        raise CacheError(f"dtype {dtype!r}: use float32, float16 or bfloat16")
    rows = [_row_meta(ex) for ex in examples]
    if len({r["id"] for r in rows}) != len(rows):
        raise CacheError("example ids are not unique; give every example a distinct 'id'")
    n_layers = loaded.n_layers if loaded is not None else _config_layers(spec)
    if n_layers is None:
        loaded = load_model(spec)
        n_layers = loaded.n_layers
    site_list = parse_sites(sites, n_layers)
    params = {"sites": [s.name for s in site_list], "positions": positions, "dtype": dtype,
              "batch_size": batch_size, "shard_size": shard_size, "padding_side": padding_side,
              "backend": backend, "chat_template": chat_template}
    inputs = {**model_provenance(spec),
              "dataset_sha256": hash_jsonable([(ex.get("id"), ex["messages"]) for ex in examples])}
    key = hash_jsonable({"inputs": inputs, "params": params})

    manifest = read_manifest(out)
    if manifest is not None and manifest.get("key") == key:
        return out
    prog_path = out / "progress.json"
    prog = json.loads(prog_path.read_text()) if prog_path.exists() else None
    if (manifest is not None or (prog is not None and prog.get("key") != key)):
        if not overwrite:
            raise CacheError(f"{out}: holds a cache of other inputs; choose another out_dir or pass overwrite=True")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp"):  # half-written files of a killed run
        stale.unlink()
    atomic_write_json(prog_path, {"key": key})

    if loaded is None:  # loaded only now, so that a finished cache is skipped without loading the model
        loaded = load_model(spec)
        if loaded.n_layers != n_layers:
            raise CacheError(f"{spec.base}: config says {n_layers} blocks but the model has {loaded.n_layers}")
    runner = make_runner(backend, loaded, site_list)
    tok = loaded.tokenizer
    torch_dtype = getattr(torch, dtype)
    n_shards = (len(examples) + shard_size - 1) // shard_size
    bar = tqdm(total=len(examples), desc=f"cache {spec.slug}", unit="ex", disable=not progress)
    n_tokens: list[int] = []
    for shard_idx in range(n_shards):
        lo, hi = shard_idx * shard_size, min(len(examples), (shard_idx + 1) * shard_size)
        shard_file = out / SHARD.format(shard_idx)
        encs = [encode_chat(tok, examples[i]["messages"], chat_template) for i in range(lo, hi)]
        n_tokens.extend(len(e) for e in encs)
        if shard_file.exists():  # finished in an earlier, interrupted run
            bar.update(hi - lo)
            continue
        acc: dict[str, list[torch.Tensor]] = {p: [] for p in positions}
        for b0 in range(0, hi - lo, batch_size):
            benc = encs[b0:b0 + batch_size]
            batch = pad_batch(benc, tok.pad_token_id, padding_side, loaded.device)
            acts = runner(batch)
            for p in positions:
                per_site = [reduce_positions(acts[s.name].float(), benc, batch["offset"], p) for s in site_list]
                if p == "all":
                    for j in range(len(benc)):
                        t = torch.stack([ps[j] for ps in per_site], 1)  # [T_j, n_sites, D]
                        _check_finite(t.abs().amax(0)[None], [rows[lo + b0 + j]], site_list, p)  # amax keeps NaN
                        acc[p].append(t.to(torch_dtype).cpu())
                else:
                    t = torch.stack(per_site, 1)  # [B, n_sites, D]
                    _check_finite(t, rows[lo + b0:lo + b0 + len(benc)], site_list, p)
                    acc[p].append(t.to(torch_dtype).cpu())
            del acts, per_site  # free this batch's [B, T, D] activations before the next forward pass
            bar.update(len(benc))
        tensors = {}
        for p in positions:
            if p == "all":
                lens = [a.shape[0] for a in acc[p]]
                tensors["all"] = torch.cat(acc[p]).contiguous()
                tensors["all.offsets"] = torch.tensor(np.concatenate([[0], np.cumsum(lens)]), dtype=torch.long)
            else:
                tensors[p] = torch.cat(acc[p]).contiguous()
        with atomic_path(shard_file) as tmp:
            save_file(tensors, str(tmp), metadata={"rows": json.dumps([r["id"] for r in rows[lo:hi]])})
    bar.close()

    index = [{"row": i, **r, "shard": i // shard_size, "n_tokens": n_tokens[i]} for i, r in enumerate(rows)]
    with atomic_path(out / "index.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in index))
    write_manifest(out, "activations", inputs=inputs, params=params, key=key, n_rows=len(rows),
                   n_shards=n_shards, d_model=loaded.d_model, n_layers=loaded.n_layers)
    prog_path.unlink(missing_ok=True)
    return out


def _config_layers(spec: ModelSpec) -> int | None:
    """The block count from the model's config (no weights loaded); None when it does not say."""
    from transformers import AutoConfig

    try:
        n = getattr(AutoConfig.from_pretrained(resolve_base(spec)), "num_hidden_layers", None)
    except (OSError, ValueError):
        return None
    return int(n) if isinstance(n, int) else None


def _check_finite(t: torch.Tensor, rows: list[dict], sites: list[Site], position: str) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        i, j = (int(x) for x in bad.nonzero()[0][:2])
        raise CacheError(f"non-finite activation (NaN/inf) for example {rows[i]['id']!r} at site {sites[j].name}, "
                         f"position {position}; check the model weights/dtype (try dtype float32)")


class ActivationCache:
    """Read a finished cache: one site and position at a time, optionally a subset of rows.

    ``load(site, position, rows)`` -> float32 array [n, d_model] (for ``all``: a list of [T_i, d_model]).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = read_manifest(self.path)
        if manifest is None:
            raise CacheError(f"{self.path}: no manifest.json; the cache is missing or unfinished "
                             "(re-run cache_activations to resume it)")
        self.manifest = manifest
        self.sites: list[str] = manifest["params"]["sites"]
        self.positions: list[str] = manifest["params"]["positions"]
        self.shard_size: int = manifest["params"]["shard_size"]
        self.d_model: int = manifest["d_model"]
        with open(self.path / "index.jsonl") as fh:
            self.index: list[dict[str, Any]] = [json.loads(line) for line in fh]

    def __len__(self) -> int:
        return len(self.index)

    def column(self, field: str) -> list[Any]:
        return [r.get(field) for r in self.index]

    @property
    def ids(self) -> list[str]:
        return self.column("id")

    @property
    def labels(self) -> list[Any]:
        return self.column("label")

    @property
    def template_ids(self) -> list[Any]:
        return self.column("template_id")

    @property
    def layers(self) -> list[int]:
        return [int(s.split(".")[1]) for s in self.sites]

    def site_index(self, site: str) -> int:
        if site not in self.sites:
            raise CacheError(f"{self.path}: site {site!r} is not in this cache; it holds {', '.join(self.sites)}")
        return self.sites.index(site)

    def load(self, site: str, position: str, rows: Sequence[int] | None = None):
        j = self.site_index(site)
        if position not in self.positions:
            raise CacheError(f"{self.path}: position {position!r} is not in this cache; it holds {self.positions}")
        want = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=int)
        out: dict[int, Any] = {}
        for shard in np.unique(want // self.shard_size):
            local = want[want // self.shard_size == shard] - shard * self.shard_size
            with safe_open(str(self.path / SHARD.format(int(shard))), framework="pt") as f:
                if position == "all":
                    offs = f.get_tensor("all.offsets")
                    sl = f.get_slice("all")
                    for r in local:
                        a, b = int(offs[r]), int(offs[r + 1])
                        out[int(r + shard * self.shard_size)] = sl[a:b, j:j + 1, :][:, 0].float().numpy()
                else:
                    sl = f.get_slice(position)
                    lo, hi = int(local.min()), int(local.max()) + 1
                    block = sl[lo:hi, j:j + 1, :][:, 0].float().numpy()
                    for r in local:
                        out[int(r + shard * self.shard_size)] = block[r - lo]
        if position == "all":
            return [out[int(r)] for r in want]
        return np.stack([out[int(r)] for r in want]).astype(np.float32)
