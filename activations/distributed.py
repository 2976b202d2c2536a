"""Activation caching split across processes or machines with ``torch.distributed`` (launched by ``torchrun``).

The work is the single-process cache's own shard files: with S rows per shard (``cache.shard_rows``), shard s
holds rows [s*S, (s+1)*S). Rank r of W caches shards r, r+W, r+2W, ... (fixed by the rank alone, never by
timing) into its own sub-cache ``<out>/ranks/rank-RRRRR-of-WWWWW/``: an ordinary ``cache_activations`` folder
(atomic shards, resumable, manifest with the model and the subset's data hash) plus ``rank.json`` (rank, world,
host, which global shard each local shard is, each shard file's size and sha256, the whole dataset's hash).
Every shard starts a batch, so each row is computed in the same batch as in one process, and the values are
the same. When every rank has finished, rank 0 moves each shard file to its single-process name and writes
``index.jsonl`` and ``manifest.json`` last: the same files, rows, values and manifest key that one process
would write, so ``ActivationCache`` and the probes stage read it unchanged, and a one-process
``cache_activations`` call with the same inputs finds it finished. The manifest adds ``distributed`` (the
request hash, the world size and every rank's record).

Resume: a rank whose sub-cache is finished skips it (and a partly written one resumes at its last shard);
a finished merged cache of the same request is returned by every rank without loading the model.
Requirements: ``out_dir`` on a filesystem every rank sees (NFS, Lustre, ...; checked before any work), one
process per model copy (``cuda:LOCAL_RANK`` for a device of ``auto``/``cuda``). Launch::

    torchrun --nproc_per_node 2 scripts/cache_activations.py --distributed --data D.jsonl --out OUT
    # several machines: the same command on each, with the node count and one rendezvous point
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29500 \\
        --rdzv-id cache1 scripts/cache_activations.py --distributed ...

A failure on one rank is raised on every rank at the next step (no rank waits for a dead one). A rank that
finishes early waits for the slowest one inside a collective: ``init_from_env`` sets its timeout
(``SELFMODEL_DIST_TIMEOUT`` seconds, default 24 h).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from activations.cache import (
    KIND,
    SHARD,
    ActivationCache,
    CacheError,
    cache_activations,
    cache_key,
    dataset_hash,
    model_provenance,
    shard_rows,
)
from artifacts import (
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
from models.loading import LoadedModel
from models.spec import ModelSpec

RANKS = "ranks"
RANK_DIR = "rank-{:05d}-of-{:05d}"
CHECK_FILE = ".shared-fs-check"
TIMEOUT_ENV = "SELFMODEL_DIST_TIMEOUT"


def init_from_env() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU, nccl on CUDA, each
    CUDA rank on ``cuda:LOCAL_RANK``); (rank, world). Already initialised: its rank and world."""
    if not dist.is_initialized():
        if "WORLD_SIZE" not in os.environ:
            raise CacheError("--distributed needs torchrun (WORLD_SIZE, RANK, MASTER_ADDR unset); launch with "
                             "'torchrun --nproc_per_node N scripts/cache_activations.py --distributed ...'")
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        timeout = _dt.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 24 * 3600)))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
    return dist.get_rank(), dist.get_world_size()


def shutdown() -> None:
    """Leave the process group: a barrier first, so no rank tears down its gloo/nccl connections while another is
    still in a collective (gloo then aborts the process: "terminate called without an active exception"), then
    ``destroy_process_group``. Does nothing when no group is initialised."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def rank_spec(spec: ModelSpec) -> ModelSpec:
    """``spec`` on this rank's GPU (``cuda:LOCAL_RANK``) when its device is ``auto``/``cuda`` and CUDA is present,
    and it is not spread by a ``device_map``; otherwise unchanged."""
    if spec.device_map or spec.device not in ("auto", "cuda") or not torch.cuda.is_available():
        return spec
    return ModelSpec.from_dict({**spec.to_dict(), "device": f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"})


def rank_shards(n_rows: int, rows_per_shard: int, rank: int, world: int) -> list[int]:
    """The shard indices of the single-process layout that ``rank`` of ``world`` caches: r, r+W, r+2W, ..."""
    return list(range(rank, (n_rows + rows_per_shard - 1) // rows_per_shard, world))


def cache_activations_distributed(model_spec: ModelSpec | str | None, examples: Sequence[dict[str, Any]],
                                  sites: str | list[str], positions: str | list[str], out_dir: str | os.PathLike,
                                  batch_size: int = 8, *, shard_size: int = 256, loaded: LoadedModel | None = None,
                                  overwrite: bool = False, progress: bool = True, **options: Any) -> Path:
    """``cache_activations`` split over the ranks of the initialised process group; every rank calls it with the
    same arguments and gets ``out_dir``, a finished single-process-layout cache. ``options`` go to
    ``cache_activations`` (backend, dtype, padding_side, chat_template, too_long). ``loaded``: this rank's model."""
    if not dist.is_initialized():
        raise CacheError("torch.distributed is not initialised; call activations.distributed.init_from_env() "
                         "under torchrun (or dist.init_process_group) first")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = Path(out_dir)
    if not examples:
        raise CacheError("no examples to cache; the dataset is empty")
    if len({ex.get("id") for ex in examples}) != len(examples):
        raise CacheError("example ids are not unique; give every example a distinct 'id'")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CacheError(f"batch_size is {batch_size!r}; it must be a positive integer")
    spec = loaded.spec if loaded is not None else (
        model_spec if isinstance(model_spec, ModelSpec) else ModelSpec(base=model_spec or ModelSpec().base))
    rows_per_shard = shard_rows(shard_size, batch_size)
    data_sha = dataset_hash(examples)
    request = hash_jsonable({"model": model_provenance(spec), "dataset_sha256": data_sha,
                             "args": {"sites": sites, "positions": positions, "batch_size": batch_size,
                                      "shard_size": rows_per_shard, **options}})
    with folder_lock(out) if rank == 0 else contextlib.nullcontext():  # rank 0 holds the folder for the whole job
        state = _step(lambda: _prepare(out, request, overwrite) if rank == 0 else None)[0]
        if state == "done":
            return out
        _step(lambda: _check_shared(out, state, rank))
        records = _step(lambda: _cache_rank(spec, examples, sites, positions, out, batch_size, rows_per_shard,
                                            rank, world, data_sha, loaded, progress, options))
        _step(lambda: _merge(out, spec, examples, data_sha, request, world, records) if rank == 0 else None)
    return out


def _step(fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` on this rank, then gather every rank's outcome: their results, or on every rank an error
    naming the rank that failed (a failure is never left for the others to wait on)."""
    err: BaseException | None = None
    result = None
    try:
        result = fn()
    except Exception as exc:
        err = exc
    outcomes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(outcomes, (None if err is None else f"{type(err).__name__}: {err}", result))
    if err is not None:
        raise err
    failed = [(r, e) for r, (e, _) in enumerate(outcomes) if e is not None]
    if failed:
        r, e = failed[0]
        raise CacheError(f"rank {r} failed ({e}); fix that and re-run: finished shards are kept")
    return [res for _, res in outcomes]


def _prepare(out: Path, request: str, overwrite: bool) -> str:
    """Rank 0: "done" when ``out`` holds this request's finished cache; else claim the folder (clearing a cache of
    other inputs only with ``overwrite``) and write the token every rank must then see."""
    claim_folder(out, KIND)
    manifest = read_manifest(out)
    if manifest is not None:
        if (manifest.get("distributed") or {}).get("request") == request:
            return "done"
        if not overwrite:
            raise CacheError(f"{out}: holds a finished cache that this distributed request did not make (other "
                             "inputs, or one process made it); use it as it is, choose another out_dir, or pass "
                             "overwrite=True (--overwrite) to replace it")
        clear_folder(out, KIND)
    token = uuid.uuid4().hex
    (out / RANKS).mkdir(exist_ok=True)
    with atomic_path(out / RANKS / CHECK_FILE) as tmp:
        tmp.write_text(token)
    return token


def _check_shared(out: Path, token: str, rank: int) -> None:
    path = out / RANKS / CHECK_FILE
    seen = path.read_text() if path.exists() else None
    if seen != token:
        raise CacheError(f"{out}: rank {rank} on host {socket.gethostname()} does not see the file rank 0 wrote "
                         f"there ({path}); out_dir must be on a filesystem all ranks share (NFS, Lustre, ...)")


def _cache_rank(spec: ModelSpec, examples: Sequence[dict[str, Any]], sites: Any, positions: Any, out: Path,
                batch_size: int, rows_per_shard: int, rank: int, world: int, data_sha: str,
                loaded: LoadedModel | None, progress: bool, options: dict[str, Any]) -> dict[str, Any] | None:
    """This rank's shards as a sub-cache + ``rank.json``; the record (None for a rank with no shard)."""
    shards = rank_shards(len(examples), rows_per_shard, rank, world)
    if not shards:
        return None
    sub = out / RANKS / RANK_DIR.format(rank, world)
    rows = [i for s in shards for i in range(s * rows_per_shard, min(len(examples), (s + 1) * rows_per_shard))]
    mine = [examples[i] for i in rows]
    cache_activations(rank_spec(spec) if loaded is None else None, mine, sites, positions, sub, batch_size,
                      shard_size=rows_per_shard, loaded=loaded, overwrite=True, progress=progress, **options)
    manifest = read_manifest(sub)
    rec_path = sub / "rank.json"
    old = _read_json(rec_path)
    if old is not None and old.get("key") == manifest["key"]:  # finished earlier (its shards may be merged already)
        return old
    if manifest["n_shards"] != len(shards) or manifest["params"]["shard_size"] != rows_per_shard:
        raise CacheError(f"{sub}: holds {manifest['n_shards']} shards of {manifest['params']['shard_size']} rows; "
                         f"the plan was {len(shards)} of {rows_per_shard}: the cache's shard layout is not "
                         "fixed-size row blocks, so it cannot be split by shard")
    files = {}
    for k, g in enumerate(shards):
        f = sub / SHARD.format(k)
        files[SHARD.format(g)] = {"local": f.name, "size": f.stat().st_size, "sha256": hash_file(f)}
    record = {"rank": rank, "world": world, "host": socket.gethostname(), "folder": sub.name, "key": manifest["key"],
              "shards": shards, "n_rows": len(rows),
              "files": files, "dataset_sha256": data_sha, "subset_sha256": manifest["inputs"]["dataset_sha256"],
              "model": manifest["inputs"]["model"]}
    atomic_write_json(rec_path, record)
    return record


def _merge(out: Path, spec: ModelSpec, examples: Sequence[dict[str, Any]], data_sha: str, request: str, world: int,
           records: list[dict[str, Any] | None]) -> None:
    """Rank 0: move every shard to its single-process name, then write index.jsonl and manifest.json last."""
    records = [r for r in records if r is not None]
    index: dict[int, list[dict[str, Any]]] = {}
    params = None
    meta: dict[str, Any] = {}
    for rec in records:
        sub = out / RANKS / rec["folder"]
        sub_cache = ActivationCache(sub)
        if params is None:
            params, meta = sub_cache.manifest["params"], sub_cache.manifest
        elif sub_cache.manifest["params"] != params:
            raise CacheError(f"{sub}: was cached with other parameters than rank 0's; re-run with overwrite=True")
        by_local: dict[int, list[dict[str, Any]]] = {}
        for row in sub_cache.index:
            by_local.setdefault(row["shard"], []).append(row)
        for name, f in rec["files"].items():
            g = int(name.split("-")[1].split(".")[0])
            src, dst = sub / f["local"], out / name
            if src.exists():
                os.replace(src, dst)
            elif not (dst.exists() and dst.stat().st_size == f["size"] and hash_file(dst) == f["sha256"]):
                raise CacheError(f"{dst}: missing or changed, and {src} is gone; re-run with overwrite=True")
            index[g] = by_local[int(f["local"].split("-")[1].split(".")[0])]
    n_shards = (len(examples) + params["shard_size"] - 1) // params["shard_size"]
    if sorted(index) != list(range(n_shards)):
        raise CacheError(f"{out}: shards {sorted(set(range(n_shards)) - set(index))} were cached by no rank")
    rows = []
    for g in range(n_shards):
        for row in index[g]:
            rows.append({**row, "row": len(rows), "shard": g})
    if [r["id"] for r in rows] != [ex.get("id") for ex in examples]:
        raise CacheError(f"{out}: the ranks' rows are not the examples in order; re-run with overwrite=True")
    with atomic_path(out / "index.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    inputs = {**model_provenance(spec), "dataset_sha256": data_sha}
    write_manifest(out, KIND, inputs=inputs, params=params, key=cache_key(inputs, params), n_rows=len(rows),
                   n_shards=n_shards, d_model=meta["d_model"], n_layers=meta["n_layers"],
                   distributed={"request": request, "world": world, "ranks": records})
    (out / "progress.json").unlink(missing_ok=True)
    shutil.rmtree(out / RANKS, ignore_errors=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
