"""The one config diff: what a resolved config changes relative to the registry defaults
alone (`fembed show`, the TUI's detail view), and which fields differ among several configs
(`fembed compare`, where a config may be a legacy record's).

The baseline of an experiment is the config the registry's ``[defaults]`` would give it with
the same identity (id, priority, tier, features): early stopping watches the metric the loss
implies unless the defaults name one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fembed_jax.config import ExperimentConfig, default_early_stop_metric, fields_with

# What places the experiment rather than sets it: its names, and the tier (from the registry's
# [tiers] table, with the feature count it gives), never a setting that "differs".
_IDENTITY = {*fields_with("name"), "tier", "num_features"}
# Left out of a comparison: the names, and a legacy record's note of what it took from the registry.
_NOT_COMPARED = {*fields_with("name"), "filled_from_registry"}
MISSING = "-"  # the value shown for a field a config does not have
_ABSENT = object()


def baseline_config(cfg: ExperimentConfig, defaults: Mapping[str, object]) -> ExperimentConfig:
    """``cfg``'s identity with every other field from the registry defaults."""
    defaults = dict(defaults)
    base = ExperimentConfig(exp_id=cfg.exp_id, priority=cfg.priority, tier=cfg.tier,
                            num_features=cfg.num_features, **defaults)
    return base.replace(early_stop_metric=defaults.get("early_stop_metric",
                                                       default_early_stop_metric(base.loss)))


def differences_from_defaults(cfg: ExperimentConfig, defaults: Mapping[str, object]) -> dict[str, object]:
    """Fields whose value is not the one the registry defaults alone would give."""
    base = baseline_config(cfg, defaults).to_dict()
    return {key: value for key, value in cfg.to_dict().items()
            if key not in _IDENTITY and value != base[key]}


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"loss_params": {"gamma": 2}} -> {"loss_params.gamma": 2}; an empty mapping adds nothing
    (no parameters and absent parameters read the same: the defaults)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_differences(configs: list[Mapping[str, Any]], all_fields: bool = False) -> list[tuple[str, list[Any]]]:
    """(field, values) for every field whose values are not all equal (all fields with
    ``all_fields``); a field one config lacks counts as a difference and shows as MISSING.
    Identity fields are left out."""
    flat = [flatten(c) for c in configs]
    fields = list(dict.fromkeys(k for f in flat for k in f if k.split(".")[0] not in _NOT_COMPARED))
    rows = []
    for field in fields:
        values = [f.get(field, _ABSENT) for f in flat]
        same = all(v is not _ABSENT for v in values) and all(v == values[0] for v in values[1:])
        if all_fields or not same:
            rows.append((field, [MISSING if v is _ABSENT else v for v in values]))
    return rows
