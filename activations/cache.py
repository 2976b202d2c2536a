"""Stream residual-stream activations of a model spec over a dataset into safetensors shards.

Layout of a cache directory::

    shard-00000.safetensors   per position: tensor [n_rows, n_sites, d_model]
                              (``all``: tensor [n_tokens, n_sites, d_model] + ``all.offsets`` [n_rows+1])
    index.jsonl               one row per example: row, id, dataset, label, template_id, shard, n_tokens
    manifest.json             model spec, content hashes (weights, adapter, dataset), sites, positions,
                              dtype, versions; written last: a cache without it is unfinished
    progress.json             present while unfinished: the run's key and the size + sha256 of every
                              finished shard; a resumed run re-computes shards that do not match
    .lock, .kind              the single-writer lock (``artifacts.lock``) and the folder's kind marker

Memory is bounded by one batch and one shard. Shards are written atomically, so a killed run
resumes from the last complete shard, and the batches (hence the values) are the same as in an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import warnings
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
from artifacts import (
    SelfModelError,
    atomic_path,
    atomic_write_json,
    claim_folder,
    clear_folder,
    folder_lock,
    hash_jsonable,
    read_manifest,
    write_manifest,
)
from artifacts.hashing import hash_file
from models.batching import plan_batches
from models.chat import encode_chat, pad_batch
from models.loading import DTYPES, LoadedModel, load_model, resolve_base
from models.provenance import model_provenance
from models.spec import ModelSpec

SHARD = "shard-{:05d}.safetensors"


class CacheError(SelfModelError):
    pass

KIND = "activations"
TOO_LONG = ("error", "truncate")


def shard_rows(shard_size: int, batch_size: int) -> int:
    """Rows per shard file: ``shard_size`` rounded down to whole batches (at least one batch)."""
    return shard_size if shard_size % batch_size == 0 else batch_size * max(1, shard_size // batch_size)


def dataset_hash(examples: Sequence[dict[str, Any]]) -> str:
    """The content hash of the examples a cache is keyed on (ids and messages, in order)."""
    return hash_jsonable([(ex.get("id"), ex["messages"]) for ex in examples])


def cache_key(inputs: dict[str, Any], params: dict[str, Any]) -> str:
    """The key in a cache's manifest: a finished cache with the same key is reused as it is."""
    return hash_jsonable({"inputs": inputs, "params": params})


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
                      loaded: LoadedModel | None = None, overwrite: bool = False, progress: bool = True,
                      too_long: str = "error", backend_options: dict[str, Any] | None = None,
                      token_budget: int | None = None) -> Path:
    """Cache ``sites`` x ``positions`` for ``examples`` (dicts with ``messages``); return ``out_dir``.

    Skips work when ``out_dir`` already holds a finished cache of the same inputs; resumes an
    unfinished one. ``loaded`` reuses a model already in memory (it must match ``model_spec``).
    One writer at a time: ``out_dir`` is locked for the run (``artifacts.lock``); a folder holding another
    kind of artifact is refused, even with ``overwrite``. An example longer than the model's context is
    an error, or (``too_long="truncate"``) cut to the context with a warning. ``backend_options`` go to the
    backend (``nnsight``: ``{"remote": "local"|True}``, see ``activations.backend_nnsight``). ``token_budget``:
    within each shard, rows are length-sorted and packed into batches of at most ``batch_size`` rows and
    ``token_budget`` padded tokens (``models.batching``); shards still hold their rows in input order (None:
    input-order batches).
    """
    for name, v in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CacheError(f"{name} is {v!r}; it must be a positive integer")
    if too_long not in TOO_LONG:
        raise CacheError(f"too_long is {too_long!r}; use one of {', '.join(TOO_LONG)}")
    if token_budget is not None and (isinstance(token_budget, bool) or not isinstance(token_budget, int)
                                     or token_budget < 1):
        raise CacheError(f"token_budget is {token_budget!r}; it must be a positive integer (or None: no budget)")
    with folder_lock(out_dir):
        return _cache_activations(model_spec, examples, sites, positions, out_dir, batch_size, backend=backend,
                                  dtype=dtype, shard_size=shard_size, padding_side=padding_side,
                                  chat_template=chat_template, loaded=loaded, overwrite=overwrite,
                                  progress=progress, too_long=too_long, backend_options=backend_options or {},
                                  token_budget=token_budget)


def _cache_activations(model_spec: ModelSpec | str | None, examples: Sequence[dict[str, Any]],
                       sites: str | list[str], positions: str | list[str], out_dir: str | os.PathLike,
                       batch_size: int, *, backend: str, dtype: str, shard_size: int, padding_side: str,
                       chat_template: str | None, loaded: LoadedModel | None, overwrite: bool, progress: bool,
                       too_long: str, backend_options: dict[str, Any], token_budget: int | None = None) -> Path:
    out = Path(out_dir)
    if not examples:
        raise CacheError("no examples to cache; the dataset is empty")
    shard_size = shard_rows(shard_size, batch_size)
    spec = loaded.spec if loaded is not None else (
        model_spec if isinstance(model_spec, ModelSpec) else ModelSpec(base=model_spec or ModelSpec().base))
    positions = check_positions(positions)
    if dtype not in DTYPES:
        raise CacheError(f"dtype {dtype!r}: use one of {', '.join(DTYPES)}")
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
    if too_long != "error":  # the default leaves the key of earlier caches unchanged
        params["too_long"] = too_long
    if backend_options:  # likewise: only a cache made with options records them
        params["backend_options"] = backend_options
    if token_budget is not None:  # likewise
        params["token_budget"] = token_budget
    inputs = {**model_provenance(spec), "dataset_sha256": dataset_hash(examples)}
    key = cache_key(inputs, params)

    claim_folder(out, KIND)  # refuses a folder of another kind, --overwrite or not
    manifest = read_manifest(out)
    if manifest is not None and manifest.get("key") == key:
        return out
    prog_path = out / "progress.json"
    prog = _read_progress(prog_path)
    if (manifest is not None or (prog is not None and prog.get("key") != key)):
        if not overwrite:
            raise CacheError(f"{out}: holds a cache of other inputs; choose another out_dir or pass overwrite=True")
        clear_folder(out, KIND)
        prog = None
    for stale in out.glob(".*.tmp"):  # half-written files of a killed run
        stale.unlink()
    shard_log = _verified_shards(out, prog)
    atomic_write_json(prog_path, {"key": key, "shards": shard_log})

    if loaded is None:  # loaded only now, so that a finished cache is skipped without loading the model
        loaded = load_model(spec)
        if loaded.n_layers != n_layers:
            raise CacheError(f"{spec.base}: config says {n_layers} blocks but the model has {loaded.n_layers}")
    runner = make_runner(backend, loaded, site_list, **backend_options)
    tok = loaded.tokenizer
    torch_dtype = getattr(torch, dtype)
    n_shards = (len(examples) + shard_size - 1) // shard_size
    bar = tqdm(total=len(examples), desc=f"cache {spec.slug}", unit="ex", disable=not progress)
    n_tokens: list[int] = []
    for shard_idx in range(n_shards):
        lo, hi = shard_idx * shard_size, min(len(examples), (shard_idx + 1) * shard_size)
        shard_file = out / SHARD.format(shard_idx)
        encs = [encode_chat(tok, examples[i]["messages"], chat_template) for i in range(lo, hi)]
        encs = _fit_context(encs, rows[lo:hi], loaded, too_long)
        n_tokens.extend(len(e) for e in encs)
        if shard_file.exists():  # finished in an earlier, interrupted run
            bar.update(hi - lo)
            continue
        acc: dict[str, list] = {p: [None] * (hi - lo) for p in positions}  # per row of the shard, input order
        for bidx in plan_batches([len(e) for e in encs], batch_size, token_budget, sort=token_budget is not None):
            benc = [encs[j] for j in bidx]
            batch = pad_batch(benc, tok.pad_token_id, padding_side, loaded.device)
            acts = runner(batch)
            for p in positions:
                per_site = [reduce_positions(acts[s.name].float(), benc, batch["offset"], p) for s in site_list]
                if p == "all":
                    for j, r in enumerate(bidx):
                        t = torch.stack([ps[j] for ps in per_site], 1)  # [T_j, n_sites, D]
                        _check_finite(t.abs().amax(0)[None], [rows[lo + r]], site_list, p)  # amax keeps NaN
                        acc[p][r] = t.to(torch_dtype).cpu()
                else:
                    t = torch.stack(per_site, 1)  # [B, n_sites, D]
                    _check_finite(t, [rows[lo + r] for r in bidx], site_list, p)
                    t = t.to(torch_dtype).cpu()  # one copy off the device per batch
                    for j, r in enumerate(bidx):
                        acc[p][r] = t[j]
            del acts, per_site  # free this batch's [B, T, D] activations before the next forward pass
            bar.update(len(benc))
        tensors = {}
        for p in positions:
            if p == "all":
                lens = [a.shape[0] for a in acc[p]]
                tensors["all"] = torch.cat(acc[p]).contiguous()
                tensors["all.offsets"] = torch.tensor(np.concatenate([[0], np.cumsum(lens)]), dtype=torch.long)
            else:
                tensors[p] = torch.stack(acc[p]).contiguous()
        with atomic_path(shard_file) as tmp:
            save_file(tensors, str(tmp), metadata={"rows": json.dumps([r["id"] for r in rows[lo:hi]])})
            shard_log[shard_file.name] = _shard_record(tmp)  # recorded before the shard gets its name
            atomic_write_json(prog_path, {"key": key, "shards": shard_log})
    bar.close()

    index = [{"row": i, **r, "shard": i // shard_size, "n_tokens": n_tokens[i]} for i, r in enumerate(rows)]
    with atomic_path(out / "index.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in index))
    write_manifest(out, "activations", inputs=inputs, params=params, key=key, n_rows=len(rows),
                   n_shards=n_shards, d_model=loaded.d_model, n_layers=loaded.n_layers)
    prog_path.unlink(missing_ok=True)
    return out


def _read_progress(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        prog = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        prog = None
    if not isinstance(prog, dict):  # a torn progress file: its shards cannot be trusted; start over
        path.unlink()
        return None
    return prog


def _shard_record(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": hash_file(path)}


def _verified_shards(out: Path, prog: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The shards of an interrupted run that match the size and hash recorded when they were written;
    every other shard file (torn, replaced, or written but not recorded) is deleted to be re-computed."""
    log = dict((prog or {}).get("shards") or {})
    good = {}
    for f in sorted(out.glob(SHARD.replace("{:05d}", "*"))):
        rec = log.get(f.name)
        if isinstance(rec, dict) and rec.get("size") == f.stat().st_size and rec.get("sha256") == hash_file(f):
            good[f.name] = rec
        else:
            warnings.warn(f"{f}: does not match the size/hash recorded in progress.json; re-computing it",
                          stacklevel=3)
            f.unlink()
    return good


def _fit_context(encs: list, rows: list[dict], loaded: LoadedModel, too_long: str) -> list:
    """Check every encoding against the model's context; cut it (with a warning) when asked to."""
    limit = getattr(loaded.config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return encs
    out = []
    for enc, row in zip(encs, rows):
        if len(enc) <= limit:
            out.append(enc)
            continue
        if too_long == "error":
            raise CacheError(f"example {row['id']!r}: {len(enc)} tokens, longer than the model's context of "
                             f"{limit}; shorten it, drop it, or truncate it (cache_activations(..., too_long='truncate'))")
        warnings.warn(f"example {row['id']!r}: {len(enc)} tokens truncated to the model's context of {limit}",
                      stacklevel=3)
        out.append(type(enc)(input_ids=list(enc.input_ids[:limit]), last_prompt=min(enc.last_prompt, limit - 1),
                             response_start=min(enc.response_start, limit), response_end=min(enc.response_end, limit)))
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
        kind = manifest.get("kind") or manifest.get("stage")
        if kind != KIND:
            raise CacheError(f"{self.path}: holds a '{kind}' artifact, not an activation cache; pass a cache folder")
        self.manifest = manifest
        self.sites: list[str] = manifest["params"]["sites"]
        self.positions: list[str] = manifest["params"]["positions"]
        self.shard_size: int = manifest["params"]["shard_size"]
        self.d_model: int = manifest["d_model"]
        index_path = self.path / "index.jsonl"
        try:
            with open(index_path, encoding="utf-8") as fh:
                self.index: list[dict[str, Any]] = [json.loads(line) for line in fh if line.strip()]
        except FileNotFoundError:
            raise CacheError(f"{index_path}: missing; the cache is damaged, re-create it (overwrite=True)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CacheError(f"{index_path}: corrupt ({exc}); re-create the cache (overwrite=True)") from None
        n_rows = manifest.get("n_rows")
        if n_rows is not None and len(self.index) != n_rows:
            raise CacheError(f"{index_path}: holds {len(self.index)} rows but manifest.json says n_rows={n_rows}; "
                             "the cache is damaged, re-create it (overwrite=True)")

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
            with _open_shard(self.path / SHARD.format(int(shard))) as f:
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


def _open_shard(path: Path) -> Any:
    """``safe_open`` with errors that name the shard file."""
    try:
        return safe_open(str(path), framework="pt")
    except FileNotFoundError:
        raise CacheError(f"{path}: shard missing; the cache is damaged, re-create it (overwrite=True)") from None
    except Exception as exc:  # safetensors raises its own SafetensorError for torn or foreign files
        raise CacheError(f"{path}: unreadable shard ({type(exc).__name__}: {exc}); the cache is damaged, "
                         "re-create it (overwrite=True)") from None
