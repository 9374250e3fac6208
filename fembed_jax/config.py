"""Typed, frozen experiment configurations and their stable hash.

An ``ExperimentConfig`` is what the registry resolves one experiment to (defaults + overrides).
Everything downstream (model, loss, engine, results, checkpoints) reads only this object, and the
``config_hash`` of the fields that change a result keys results and checkpoints: the same resolved
config always gives the same hash, on any machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

# Losses whose early stopping watches val_loss in the original runner (get_early_stop_metric).

SEED_BASE = 42  # the original's seed; seed k of an experiment is SEED_BASE + k (runner and TUI)

# Fields that describe an experiment but never change what training produces.
_NOT_HASHED = frozenset({"exp_id", "priority", "description"})


class FrozenParams(Mapping):
    """A read-only, hashable mapping for loss/embedding parameters (keys sorted)."""

    __slots__ = ("_items",)

    def __init__(self, data: Mapping[str, Any] | None = None):
        self._items = tuple(sorted(dict(data or {}).items()))

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenParams({dict(self._items)!r})"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One fully resolved experiment. Field meanings follow the original's ExperimentSpec."""

    exp_id: str
    priority: str
    tier: str
    num_features: int
    description: str = ""
    d_embed: int | None = None
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 8
    d_ff: int = 512
    dropout: float = 0.5
    head_dropout: float = 0.0
    weight_decay: float = 0.0
    learning_rate: float = 1e-4
    batch_size: int = 128
    epochs: int = 50
    context_length: int = 80
    patch_length: int = 16
    stride: int = 8
    use_revin: bool = True
    loss: str = "bce"
    loss_params: FrozenParams = dataclasses.field(default_factory=FrozenParams)
    embedding: str = "none"
    embedding_params: FrozenParams = dataclasses.field(default_factory=FrozenParams)
    early_stop_metric: str = "val_auc"
    patience: int = 15
    min_delta: float = 0.001
    task: str = "threshold_1pct"
    horizon: int = 1
    selection: str = "best"
    seeds: int = 5

    def __post_init__(self):
        # Accept plain dicts from callers; store them frozen so the config stays immutable.
        for name in ("loss_params", "embedding_params"):
            value = getattr(self, name)
            if not isinstance(value, FrozenParams):
                object.__setattr__(self, name, FrozenParams(value))

    @property
    def num_patches(self) -> int:
        return (self.context_length - self.patch_length) // self.stride + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field (params as dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, FrozenParams) else value
        return out

    def hashed_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}

    @property
    def config_hash(self) -> str:
        """sha256 (16 hex) of the canonical JSON of every field that can change a result."""
        canonical = json.dumps(self.hashed_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)


CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExperimentConfig))


def default_early_stop_metric(loss: str) -> str:
    from fembed_jax.loss_specs import EARLY_STOP_METRIC  # the one home of this fact

    return EARLY_STOP_METRIC.get(loss, "val_auc")
