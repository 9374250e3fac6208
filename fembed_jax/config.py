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

SEED_BASE = 42  # the original's seed; seed k of an experiment is SEED_BASE + k (runner and TUI)
# Values of `selection_windows`; what they mean is fembed_jax.data.splits.selection_masks.
SELECTION_RULES = ("alternate", "all")
DEFAULT_SELECTION_RULE = "alternate"  # the protocol fembed ranks results under (report)

# What each config field is for. Every field has at least one role (tests/test_config.py), and
# every list of fields elsewhere is derived from these with `fields_with`:
#   name     names the experiment; never changes what training produces (not hashed)
#   data     selects the dataset it trains on (one loaded dataset per distinct value)
#   model    shapes the network and so its parameter count (catalog.param_counts)
#   program  changes the compiled training program, not the parameters (dropout, batch)
#   member   a value the program takes per member (experiment x seed) as an array: experiments
#            differing only in these share one program
#   loop     read by the Python epoch loop (epochs, early stopping, selection)
ROLES = ("name", "data", "model", "program", "member", "loop")


def _field(default: Any = dataclasses.MISSING, *roles: str, factory: Any = dataclasses.MISSING):
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"roles": frozenset(roles)})
    return dataclasses.field(default=default, metadata={"roles": frozenset(roles)})


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

    exp_id: str = _field(dataclasses.MISSING, "name")
    priority: str = _field(dataclasses.MISSING, "name")
    tier: str = _field(dataclasses.MISSING, "data")
    num_features: int = _field(dataclasses.MISSING, "data", "model")  # given by the tier
    description: str = _field("", "name")
    d_embed: int | None = _field(None, "model")
    d_model: int = _field(128, "model")
    n_layers: int = _field(4, "model")
    n_heads: int = _field(8, "model")
    d_ff: int = _field(512, "model")
    dropout: float = _field(0.5, "program")
    head_dropout: float = _field(0.0, "program")
    weight_decay: float = _field(0.0, "member")
    learning_rate: float = _field(1e-4, "member")
    batch_size: int = _field(128, "program")
    epochs: int = _field(50, "loop")
    context_length: int = _field(80, "data", "model")
    patch_length: int = _field(16, "model")
    stride: int = _field(8, "model")
    use_revin: bool = _field(True, "model")
    # A member value: a program whose members' losses span several families switches per member
    # (losses.program_loss_fn), so the loss never splits a group.
    loss: str = _field("bce", "member")
    loss_params: FrozenParams = _field(dataclasses.MISSING, "member", factory=FrozenParams)
    embedding: str = _field("none", "model")
    embedding_params: FrozenParams = _field(dataclasses.MISSING, "model", factory=FrozenParams)
    early_stop_metric: str = _field("val_auc", "loop")
    patience: int = _field(15, "loop")
    min_delta: float = _field(0.001, "loop")
    task: str = _field("threshold_1pct", "data")
    horizon: int = _field(1, "data")
    selection: str = _field("best", "loop")
    # Which validation windows early stopping reads and which the val metrics are scored on
    # (fembed_jax.data.splits.selection_masks); a program evaluates one set, so it is a program field.
    selection_windows: str = _field(DEFAULT_SELECTION_RULE, "program", "loop")
    seeds: int = _field(5, "member")

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
        return {k: v for k, v in self.to_dict().items() if k not in fields_with("name")}

    @property
    def config_hash(self) -> str:
        """sha256 (16 hex) of the canonical JSON of every field that can change a result."""
        canonical = json.dumps(self.hashed_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)


CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExperimentConfig))


def roles_of(name: str) -> frozenset[str]:
    return next(f.metadata["roles"] for f in dataclasses.fields(ExperimentConfig) if f.name == name)


def fields_with(*roles: str) -> tuple[str, ...]:
    """The config fields having any of `roles`, in declaration order."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown config field role(s) {sorted(unknown)}; roles are {ROLES}")
    return tuple(f.name for f in dataclasses.fields(ExperimentConfig) if f.metadata["roles"] & set(roles))


def default_early_stop_metric(loss: str) -> str:
    from fembed_jax.loss_specs import EARLY_STOP_METRIC  # the one home of this fact

    return EARLY_STOP_METRIC.get(loss, "val_auc")


def structure_key(cfg: ExperimentConfig) -> tuple:
    """What changes the compiled training program: every field whose role is data, model or
    program. Experiments with equal keys can share one program (train/schedule.py groups them;
    fembed_jax.estimate times one per key)."""

    def value(name: str):
        raw = getattr(cfg, name)
        return tuple(sorted(raw.items())) if isinstance(raw, Mapping) else raw

    return tuple((name, value(name)) for name in fields_with("data", "model", "program"))
