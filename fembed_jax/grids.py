"""Experiments made from other experiments: [[grids]] in the registry and `fembed run --set`.

Both become ordinary [[experiments]] tables before validation, so every check, `list`, `show`,
`run`, `report` and the TUI treat them like any other. Their ids are the base id with a suffix,
``LF-40.GAMMA-2`` or ``FE-06.SET-3F9A2C``: upper case like every id (filters fold case), and only
letters, digits, '_' and '-' after one dot, so an id can never name a path outside outputs/.

    [[grids]]
    name = "gamma"                # ids LF-40.GAMMA-1, LF-40.GAMMA-2, ...
    base = "LF-40"                # the experiment whose table is varied
    priority = "LF-P5"            # optional: default the base's priority
    vary = { "loss_params.gamma" = [1.0, 2.0, 3.0] }   # every combination of the lists
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Mapping
from typing import Any

GRID_KEYS = frozenset({"name", "base", "priority", "vary"})
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,23}")
SUFFIX = r"(?:\.[A-Z0-9][A-Z0-9_-]{0,31})?"
MAX_POINTS = 1000  # a grid larger than this is a typo, not a sweep this tool can run


def derived_id(base: str, suffix: str) -> str:
    return f"{base}.{suffix.upper()}"


def apply(entry: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an experiment table with dotted keys (``loss_params.gamma``) set."""
    out = copy.deepcopy(dict(entry))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        table = out
        for key in parents:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ValueError(f"{dotted}: {key} is not a table")
        table[leaf] = value
    return out


def flatten(vary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"loss_params": {"gamma": [1, 2]}} (dotted TOML keys) -> {"loss_params.gamma": [1, 2]}."""
    out: dict[str, Any] = {}
    for key, value in vary.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def expand(grid: Any, experiments: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict], list[tuple[str, str | None]]]:
    """The experiment tables of one [[grids]] table, or the problems (message, field) that
    stop it; ``experiments`` maps the registry's ids to their raw tables."""
    if not isinstance(grid, Mapping):
        return [], [("each [[grids]] entry must be a table", None)]
    problems: list[tuple[str, str | None]] = []
    for key in grid:
        if key not in GRID_KEYS:
            problems.append((f"unknown key (known: {', '.join(sorted(GRID_KEYS))})", key))
    name, base = grid.get("name"), grid.get("base")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append((f"must be 1-24 letters, digits or '_', got {name!r}", "name"))
    if base not in experiments:
        problems.append((f"no experiment {base!r} to vary", "base"))
    vary = flatten(grid.get("vary") or {}) if isinstance(grid.get("vary", {}), Mapping) else None
    if not vary:
        problems.append(("must list at least one field with its values, e.g. "
                         "vary = { \"loss_params.gamma\" = [1.0, 2.0] }", "vary"))
    elif any(not isinstance(v, list) or not v for v in vary.values()):
        bad = next(k for k, v in vary.items() if not isinstance(v, list) or not v)
        problems.append(("each varied field needs a non-empty list of values", f"vary.{bad}"))
    if problems:
        return [], problems
    points = list(itertools.product(*vary.values()))
    if len(points) > MAX_POINTS:
        return [], [(f"{len(points)} combinations, more than {MAX_POINTS}", "vary")]
    tables = []
    for number, values in enumerate(points, start=1):
        overrides = dict(zip(vary, values))
        table = apply(experiments[base], overrides)
        table["id"] = derived_id(base, f"{name}-{number}")
        if "priority" in grid:
            table["priority"] = grid["priority"]
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
        table["description"] = f"{experiments[base].get('description', base)} [grid {name}: {shown}]"
        tables.append(table)
    return tables, []


def parse_set(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` arguments: values are read as TOML (3e-4, true, "x", [1, 2]), and a
    bare word that is not TOML as a string (``--set loss=focal``)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. --set learning_rate=3e-4")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        overrides[key] = value
    return overrides


def set_suffix(overrides: Mapping[str, Any]) -> str:
    """The suffix of a --set experiment: the same overrides always give the same id."""
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()
    return f"SET-{digest[:6]}"


def to_toml(table: Mapping[str, Any]) -> str:
    """One [[experiments]] table as TOML text (tables inline, None left out)."""
    import tomli_w

    def value(v: Any) -> str:
        if isinstance(v, Mapping):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return tomli_w.dumps({"v": v}).removeprefix("v = ").rstrip("\n")

    return "[[experiments]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items() if v is not None)
