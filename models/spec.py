"""A model spec: base model (hub id, local directory or the embedded default) plus an optional adapter.

Everything downstream takes a ``ModelSpec``, never a loose model, so artifacts can name the model
that produced them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

EMBEDDED = "embedded:smollm2-135m-instruct"


@dataclass(frozen=True)
class ModelSpec:
    base: str = EMBEDDED
    adapter: str | None = None
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    device_map: str | None = None  # e.g. "auto" to spread a large model over several GPUs

    @property
    def is_embedded(self) -> bool:
        return self.base.startswith("embedded:")

    @property
    def slug(self) -> str:
        """A filesystem-safe short name: base name, plus adapter folder name if any."""
        base = self.base.split(":", 1)[-1].rstrip("/").split("/")[-1]
        parts = [] if self.adapter is None else self.adapter.rstrip("/").split("/")
        if len(parts) > 1 and re.fullmatch(r"seed\d+", parts[-1]):  # tune/<condition>/seed<k>: keep the condition
            parts[-1] = f"{parts[-2]}-{parts[-1]}"
        name = base if self.adapter is None else f"{base}+{parts[-1]}"
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)

    def with_adapter(self, adapter: str | None) -> ModelSpec:
        return dataclasses.replace(self, adapter=None if adapter is None else str(adapter))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})
