"""`fembed run --set KEY=VALUE`: run a variant of the selected experiments as derived
experiments with their own ids (FE-06.SET-3F9A2C) and hashes, recorded in registry/derived.toml
so that list, show, report and the TUI know them afterwards."""

from __future__ import annotations

from fembed_jax.config import ExperimentConfig
from fembed_jax.config_diff import differences_from_defaults
from fembed_jax.grids import apply, derived_id, parse_set, set_suffix
from fembed_jax.registry import Registry, RegistryError, check_tables, record_derived

from .common import UsageError


def derived_configs(registry: Registry, configs: list[ExperimentConfig], items: list[str],
                    record: bool) -> list[ExperimentConfig]:
    """The --set variants of ``configs``; with ``record`` they are written to derived.toml."""
    try:
        overrides = parse_set(items)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if any(key.split(".")[0] in ("id", "priority") for key in overrides):
        raise UsageError("--set cannot change id or priority (a derived experiment keeps its base's)")
    shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
    tables = []
    for cfg in configs:
        table = {"id": derived_id(cfg.exp_id, set_suffix(overrides)), "priority": cfg.priority,
                 "tier": cfg.tier, "description": f"{cfg.description} [--set {shown}]",
                 **differences_from_defaults(cfg, dict(registry.defaults))}
        try:
            tables.append(apply(table, overrides))
        except ValueError as exc:
            raise UsageError(f"--set {exc}") from exc
    try:
        made = list(check_tables(registry, tables, "--set"))
    except RegistryError as exc:
        raise UsageError(str(exc)) from exc
    if record:
        record_derived(registry.path, tables)
    return made
