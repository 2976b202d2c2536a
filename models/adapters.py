"""One base model in memory with several LoRA adapters, switched by name.

``load_adapters(spec, {name: adapter_dir})`` loads the base once, straight onto its device
(``device_map``, ``"auto"`` included), and attaches every adapter with peft **unmerged**: each LoRA
layer keeps its own A and B beside the untouched base weight and adds ``B A x * scale`` only while its
adapter is selected. Switching is a flag, and the base weights are never rewritten (merging would rewrite
them at every switch, and round them in bf16).

``shared.use(name)`` selects one adapter for a block (``None``: every adapter off, the base model) and
yields a ``LoadedModel`` view whose ``spec`` is the spec of that adapter alone, so provenance
(``models.provenance.spec_hash``, manifests, cache folders) is what a separate load would give.
``view.active()`` selects a view's adapter again, for code that holds two views of one model
(``steering.experiment.run_ablation``: base = adapter off, tuned = adapter on).

Scores with an adapter selected equal those of a model loaded with that adapter alone, and with none
selected those of the base model, in float32 bit for bit (``tests/test_models_adapters.py``).

``each_model(specs)`` iterates ``{name: ModelSpec}``, loading each base once and selecting each spec's
adapter in turn: the probes, evals and identity stages score the base and every tune on one model.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from artifacts import SelfModelError
from models.loading import LoadedModel, ModelLoadError, attach_adapter, find_blocks, load_model
from models.spec import ModelSpec


class AdapterView(LoadedModel):
    """A ``LoadedModel`` sharing its model with other views; ``active()`` selects its adapter (or none).

    Its ``model`` is there only while its adapter is the one selected; anywhere else it raises, so a result
    can never be computed under one adapter and recorded under another spec. Shape properties (``n_layers``,
    ``d_model``, ``config``, ``device``, ``dtype``) work at any time.
    """

    def __init__(self, shared: SharedModel, spec: ModelSpec, key: str | None):
        self.shared, self.key, self.spec, self.tokenizer = shared, key, spec, shared.tokenizer

    @property
    def model(self) -> Any:  # type: ignore[override]
        if self.shared.selected != self.key:
            raise SelfModelError(f"the model of {self.spec.slug} is used while another adapter of the shared model "
                                 f"is selected ({self.shared.selected or 'none'}); run it inside `with view.active():`")
        return self.shared.model

    @property
    def base_model(self) -> Any:
        return self.shared.model.get_base_model() if self.shared.peft else self.shared.model

    @property
    def device(self) -> Any:
        return next(self.shared.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.shared.model.parameters()).dtype

    @property
    def n_layers(self) -> int:
        return len(find_blocks(self.shared.model))

    def active(self) -> contextlib.AbstractContextManager:
        return self.shared.select(self.key)

    def __repr__(self) -> str:
        return f"AdapterView({self.spec}, adapter key {self.key})"

    __eq__ = object.__eq__
    __hash__ = object.__hash__


class SharedModel:
    """A base model with named LoRA adapters attached (unmerged); ``use(name)`` selects one, ``None`` none."""

    def __init__(self, base: LoadedModel):
        if base.spec.adapter:
            raise SelfModelError(f"SharedModel needs the base model without an adapter; got {base.spec}")
        self.base_spec = base.spec
        self.model, self.tokenizer, self._config = base.model, base.tokenizer, base.config
        self.specs: dict[str | None, ModelSpec] = {None: base.spec}
        self._keys: dict[str | None, str | None] = {None: None}  # name -> peft adapter name
        self._by_dir: dict[str, str] = {}  # resolved adapter dir -> peft adapter name
        self._selected: str | None = None

    @property
    def selected(self) -> str | None:
        """The peft name of the adapter selected now (None: the base model)."""
        return self._selected

    @property
    def peft(self) -> bool:
        return bool(self._by_dir)

    @property
    def names(self) -> list[str]:
        return [n for n in self.specs if n is not None]

    def add(self, name: str, spec: ModelSpec) -> None:
        """Attach ``spec.adapter`` as ``name`` (a spec without adapter names the base). The same folder twice
        is attached once."""
        if spec.with_adapter(None) != self.base_spec:
            raise SelfModelError(f"{name}: spec {spec} is not on the shared base {self.base_spec}; load it alone")
        if name in self.specs:
            raise SelfModelError(f"adapter name {name!r} is given twice; give each model spec its own name")
        key = None
        if spec.adapter:
            if not Path(spec.adapter).is_dir():
                raise ModelLoadError(f"{spec.adapter}: adapter folder not found; pass the folder written by "
                                     "scripts/tune_identity.py")
            where = str(Path(spec.adapter).resolve())
            key = self._by_dir.get(where)
            if key is None:
                key = f"adapter{len(self._by_dir)}"  # peft module keys: no dots or slashes from folder names
                self.model = attach_adapter(self.model, spec, self._config, key)
                self.model.eval()
                self._by_dir[where] = key
                self._switch(self._selected, force=True)  # attaching never changes what is selected
        self.specs[name] = spec
        self._keys[name] = key

    def view(self, name: str | None) -> AdapterView:
        """The ``LoadedModel`` of ``name`` (None: the base); run it inside ``view.active()`` or ``use(name)``."""
        if name not in self.specs:
            raise SelfModelError(f"no adapter named {name!r} on this model; it holds {self.names}")
        return AdapterView(self, self.specs[name], self._keys[name])

    @contextlib.contextmanager
    def use(self, name: str | None) -> Iterator[AdapterView]:
        view = self.view(name)
        with view.active():
            yield view

    @contextlib.contextmanager
    def select(self, key: str | None) -> Iterator[None]:
        """Switch to peft adapter ``key`` (None: all off) for the block, then back to what was selected."""
        before = self._selected
        self._switch(key)
        try:
            yield
        finally:
            self._switch(before)

    def _switch(self, key: str | None, force: bool = False) -> None:
        if not self._by_dir or (key == self._selected and not force):
            return
        tuner = self.model.base_model  # peft's LoraModel
        if key is None:
            tuner.disable_adapter_layers()  # what peft's disable_adapter() does: the base layers alone
        else:
            tuner.enable_adapter_layers()
            self.model.set_adapter(key, inference_mode=True)  # frozen: no grads on a scoring model
        self._selected = key


def load_adapters(spec: ModelSpec, adapters: Mapping[str, str | Path]) -> SharedModel:
    """Load ``spec``'s base once and attach each ``{name: adapter_dir}`` (none selected on return: the base)."""
    shared = SharedModel(load_model(spec.with_adapter(None)))
    for name, path in adapters.items():
        shared.add(name, spec.with_adapter(str(path)))
    return shared


def each_model(specs: Mapping[str, ModelSpec], loaded: LoadedModel | None = None) -> Iterator[tuple[str, LoadedModel]]:
    """Yield ``(name, LoadedModel)`` for each spec in order, its adapter selected for the body of the loop.

    Specs that differ only in their adapter share one base in memory (adapters toggled, unmerged); a spec
    on another base (or dtype, device) is loaded after the previous one is freed. ``loaded``: a model already
    in memory, yielded for the spec equal to its own. A yielded view is valid only in its loop iteration.
    """
    groups: dict[ModelSpec, list[str]] = {}
    for name, spec in specs.items():
        if loaded is None or spec != loaded.spec:
            groups.setdefault(spec.with_adapter(None), []).append(name)
    shared: SharedModel | None = None
    for name, spec in specs.items():
        if loaded is not None and spec == loaded.spec:
            yield name, loaded
            continue
        base = spec.with_adapter(None)
        if shared is None or shared.base_spec != base:
            shared = None
            gc.collect()
            shared = SharedModel(load_model(base))
            for n in groups[base]:
                shared.add(n, specs[n])
        with shared.use(name) as view:
            yield name, view
    del shared
    gc.collect()
