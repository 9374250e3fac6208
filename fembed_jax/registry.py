"""Load and validate the experiment registry (registry/experiments.toml).

Validation collects every problem before it reports, and each message names the file, the line,
the experiment id and the field, so a user fixes a bad registry in one pass. Nothing runs on an
invalid registry: ``load_registry`` raises ``RegistryError`` instead of returning one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fembed_jax.config import CONFIG_FIELDS, ExperimentConfig, default_early_stop_metric

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = REPO_ROOT / "registry" / "experiments.toml"

ID_PATTERN = re.compile(r"^[A-Z]{2,4}-\d{1,4}$")
# P1..P12 (FE), LF-P1.., AE-P1..; a new family may use its own 2-4 letter prefix (XX-P3).
PRIORITY_PATTERN = re.compile(r"^(?:[A-Z]{2,4}-)?P\d{1,3}$")

EMBEDDING_TYPES = ("none", "linear", "progressive", "bottleneck", "variational", "multihead",
                   "gated_residual", "attention")
# Parameters each advanced embedding accepts (spec §2), with their checks.
EMBEDDING_PARAMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "linear": (),
    "progressive": ("num_layers",),
    "bottleneck": ("compression_ratio", "use_skip"),
    "variational": ("latent_dim", "compression_ratio", "beta"),
    "multihead": ("num_heads", "head_dim", "combine_method"),
    "gated_residual": ("hidden_dim",),
    "attention": ("num_heads", "use_position"),
}
TASKS = ("threshold_0.5pct", "threshold_1pct", "threshold_2pct", "threshold_3pct", "threshold_5pct")

# Keys an experiment table may hold: its identity plus every overridable config field.
_DERIVED = {"exp_id", "num_features"}
EXPERIMENT_KEYS = frozenset({"id", "priority", "tier", "description"}
                            | (set(CONFIG_FIELDS) - _DERIVED))
DEFAULT_KEYS = frozenset(set(CONFIG_FIELDS) - _DERIVED - {"priority", "tier", "description",
                                                         "d_embed", "embedding",
                                                         "embedding_params", "loss_params"})
TOP_LEVEL_KEYS = frozenset({"defaults", "tiers", "data", "experiments"})
TIER_KEYS = frozenset({"features", "file"})

_INT_FIELDS = {"d_embed", "d_model", "n_layers", "n_heads", "d_ff", "batch_size", "epochs",
               "context_length", "patch_length", "stride", "patience", "horizon", "seeds"}
_FLOAT_FIELDS = {"dropout", "head_dropout", "weight_decay", "learning_rate", "min_delta"}
_STR_FIELDS = {"priority", "tier", "description", "loss", "embedding", "early_stop_metric",
               "task", "selection"}


class RegistryError(ValueError):
    """An invalid registry; ``errors`` lists every problem found, one line each."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s) in the registry:\n" + "\n".join(errors))


@dataclasses.dataclass(frozen=True)
class TierSpec:
    name: str
    features: int
    file: str | None = None


@dataclasses.dataclass(frozen=True)
class Registry:
    path: Path
    experiments: tuple[ExperimentConfig, ...]
    tiers: Mapping[str, TierSpec]
    data: Mapping[str, Any]
    defaults: Mapping[str, Any]

    def get(self, exp_id: str) -> ExperimentConfig:
        for cfg in self.experiments:
            if cfg.exp_id == exp_id:
                return cfg
        raise KeyError(f"{self.path}: no experiment {exp_id!r}")

    def __contains__(self, exp_id: str) -> bool:
        return any(cfg.exp_id == exp_id for cfg in self.experiments)

    @property
    def priorities(self) -> list[str]:
        return list(dict.fromkeys(cfg.priority for cfg in self.experiments))

    def select(self, priorities: Iterable[str] = (), exp_ids: Iterable[str] = (),
               tiers: Iterable[str] = (), losses: Iterable[str] = (),
               embeddings: Iterable[str] = ()) -> list[ExperimentConfig]:
        """Experiments matching every given filter (a filter left empty matches all), in
        registry order. Unknown priorities or ids raise KeyError naming them."""
        priorities, exp_ids = list(priorities), list(exp_ids)
        unknown = [p for p in priorities if p not in self.priorities]
        unknown += [e for e in exp_ids if e not in self]
        if unknown:
            raise KeyError(f"{self.path}: unknown priority or experiment id: {', '.join(unknown)}")
        filters = [(priorities, "priority"), (exp_ids, "exp_id"), (list(tiers), "tier"),
                   (list(losses), "loss"), (list(embeddings), "embedding")]
        return [cfg for cfg in self.experiments
                if all(not wanted or getattr(cfg, field) in wanted for wanted, field in filters)]


def default_registry_path() -> Path:
    return Path(os.environ.get("FEMBED_REGISTRY", DEFAULT_REGISTRY))


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Parse, validate and resolve a registry file; raises RegistryError listing all problems."""
    path = Path(path) if path is not None else default_registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError([f"{path}: cannot read the registry: {exc.strerror or exc}"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError([f"{path}: not valid TOML: {exc}"]) from exc
    return _Validator(path, text, raw).run()


class _Validator:
    def __init__(self, path: Path, text: str, raw: dict):
        self.path, self.raw = path, raw
        self.errors: list[str] = []
        self.lines = text.splitlines()
        self.block_starts = [i for i, line in enumerate(self.lines)
                             if line.strip().startswith("[[experiments]]")]

    # -- locating problems ------------------------------------------------------------------
    def _line_of(self, index: int | None, field: str | None) -> int | None:
        """1-based line of an experiment's field (or of its table header)."""
        if index is None or index >= len(self.block_starts):
            return None
        start = self.block_starts[index]
        end = self.block_starts[index + 1] if index + 1 < len(self.block_starts) else len(self.lines)
        if field:
            key = field.split(".")[0]
            for i in range(start, end):
                if re.match(rf"\s*{re.escape(key)}\s*=", self.lines[i]):
                    return i + 1
        return start + 1

    def _line_of_table(self, header: str) -> int | None:
        for i, line in enumerate(self.lines):
            if line.strip() == f"[{header}]":
                return i + 1
        return None

    def error(self, message: str, exp_id: str | None = None, field: str | None = None,
              index: int | None = None, line: int | None = None) -> None:
        line = line if line is not None else self._line_of(index, field)
        where = f"{self.path}:{line}" if line else f"{self.path}"
        who = f" {exp_id}:" if exp_id else ""
        what = f" field '{field}':" if field else ""
        self.errors.append(f"{where}:{who}{what} {message}")

    # -- the checks -----------------------------------------------------------------------
    def run(self) -> Registry:
        for key in self.raw:
            if key not in TOP_LEVEL_KEYS:
                self.error(f"unknown top-level table '{key}' (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
        defaults = self._defaults()
        tiers = self._tiers()
        data = self.raw.get("data", {})
        if not isinstance(data, dict):
            self.error("[data] must be a table")
            data = {}
        experiments = self.raw.get("experiments", [])
        if not isinstance(experiments, list) or not experiments:
            self.error("no [[experiments]] defined")
            experiments = []
        configs, seen = [], {}
        for index, entry in enumerate(experiments):
            cfg = self._experiment(index, entry, defaults, tiers)
            if cfg is None:
                continue
            if cfg.exp_id in seen:
                self.error(f"duplicate id (first defined at line {self._line_of(seen[cfg.exp_id], 'id')})",
                           cfg.exp_id, "id", index)
            else:
                seen[cfg.exp_id] = index
            configs.append(cfg)
        if self.errors:
            raise RegistryError(self.errors)
        return Registry(self.path, tuple(configs), tiers, dict(data), defaults)

    def _defaults(self) -> dict[str, Any]:
        table = self.raw.get("defaults", {})
        line = self._line_of_table("defaults")
        if not isinstance(table, dict):
            self.error("[defaults] must be a table", line=line)
            return {}
        for key in table:
            if key not in DEFAULT_KEYS:
                self.error(f"unknown key in [defaults] (known: {', '.join(sorted(DEFAULT_KEYS))})",
                           field=key, line=line)
        return {k: v for k, v in table.items() if k in DEFAULT_KEYS}

    def _tiers(self) -> dict[str, TierSpec]:
        table = self.raw.get("tiers", {})
        if not isinstance(table, dict) or not table:
            self.error("[tiers] must define at least one tier")
            return {}
        tiers = {}
        for name, spec in table.items():
            line = self._line_of_table(f"tiers.{name}")
            if not isinstance(spec, dict):
                self.error(f"tier '{name}' must be a table with 'features'", line=line)
                continue
            for key in spec:
                if key not in TIER_KEYS:
                    self.error(f"unknown key in tier '{name}' (known: features, file)", field=key, line=line)
            features = spec.get("features")
            if not _is_int(features) or features <= 0:
                self.error(f"tier '{name}' needs a positive integer 'features', got {features!r}",
                           field="features", line=line)
                continue
            tiers[name] = TierSpec(name, features, spec.get("file"))
        return tiers

    def _experiment(self, index: int, entry: Any, defaults: dict, tiers: dict) -> ExperimentConfig | None:
        if not isinstance(entry, dict):
            self.error("each [[experiments]] entry must be a table", index=index)
            return None
        exp_id = entry.get("id")
        if not isinstance(exp_id, str) or not ID_PATTERN.match(exp_id):
            self.error(f"id must look like 'FE-01' (letters-dash-digits), got {exp_id!r}",
                       field="id", index=index)
            exp_id = str(exp_id)
        err = lambda msg, field=None: self.error(msg, exp_id, field, index)  # noqa: E731

        for key in entry:
            if key not in EXPERIMENT_KEYS:
                err(f"unknown key (known: {', '.join(sorted(EXPERIMENT_KEYS))})", key)
        for key in ("priority", "tier"):
            if key not in entry:
                err("missing (required)", key)
        merged = {**defaults, **{k: v for k, v in entry.items() if k in EXPERIMENT_KEYS and k != "id"}}

        ok = self._check_types(merged, err)
        priority = merged.get("priority")
        if isinstance(priority, str) and not PRIORITY_PATTERN.match(priority):
            err(f"unknown priority pattern {priority!r} (expected P<n> or <FAMILY>-P<n>, e.g. LF-P3)",
                "priority")
        tier = merged.get("tier")
        if isinstance(tier, str) and tier not in tiers:
            err(f"unknown tier {tier!r} (known: {', '.join(tiers)})", "tier")
            ok = False
        if not ok or "priority" not in merged or "tier" not in merged:
            return None

        d_embed = merged.get("d_embed")
        embedding = merged.get("embedding", "linear" if d_embed is not None else "none")
        merged["embedding"] = embedding
        merged.setdefault("loss", "bce")
        merged.setdefault("early_stop_metric", default_early_stop_metric(merged["loss"]))
        self._check_values(merged, err)
        self._check_loss(merged, err)
        self._check_embedding(merged, err)

        fields = {k: v for k, v in merged.items() if k in CONFIG_FIELDS}
        try:
            return ExperimentConfig(exp_id=exp_id, num_features=tiers[tier].features, **fields)
        except TypeError as exc:  # a field the dataclass rejects: already reported above
            err(str(exc))
            return None

    def _check_types(self, merged: dict, err) -> bool:
        ok = True
        for key, value in merged.items():
            if key in ("loss_params", "embedding_params"):
                if not isinstance(value, dict):
                    err(f"must be a table such as {{ gamma = 2.0 }}, got {value!r}", key)
                    ok = False
            elif key in _INT_FIELDS and not _is_int(value):
                err(f"must be an integer, got {value!r}", key)
                ok = False
            elif key in _FLOAT_FIELDS and not (_is_number(value) and math.isfinite(value)):
                err(f"must be a finite number, got {value!r}", key)
                ok = False
            elif key in _STR_FIELDS and not isinstance(value, str):
                err(f"must be a string, got {value!r}", key)
                ok = False
            elif key == "use_revin" and not isinstance(value, bool):
                err(f"must be true or false, got {value!r}", key)
                ok = False
        return ok

    def _check_values(self, m: dict, err) -> None:
        for key in ("d_model", "n_layers", "n_heads", "d_ff", "batch_size", "epochs",
                    "context_length", "patch_length", "stride", "patience", "horizon", "seeds"):
            if key in m and m[key] <= 0:
                err(f"must be positive, got {m[key]}", key)
        if m.get("d_embed") is not None and m["d_embed"] <= 0:
            err(f"must be positive, got {m['d_embed']}", "d_embed")
        for key in ("dropout", "head_dropout"):
            if key in m and not 0.0 <= m[key] < 1.0:
                err(f"must be in [0, 1), got {m[key]}", key)
        if "learning_rate" in m and m["learning_rate"] <= 0:
            err(f"must be positive, got {m['learning_rate']}", "learning_rate")
        for key in ("weight_decay", "min_delta"):
            if key in m and m[key] < 0:
                err(f"must be >= 0, got {m[key]}", key)
        d_model, n_heads = m.get("d_model", 0), m.get("n_heads", 0)
        if d_model > 0 and n_heads > 0 and d_model % n_heads:
            err(f"d_model {d_model} is not divisible by n_heads {n_heads}", "n_heads")
        if m.get("patch_length", 0) > m.get("context_length", 0) > 0:
            err(f"patch_length {m['patch_length']} exceeds context_length {m['context_length']}",
                "patch_length")
        if m.get("selection", "best") not in ("best", "last"):
            err(f"must be 'best' or 'last', got {m['selection']!r}", "selection")
        if m.get("task", "threshold_1pct") not in TASKS:
            err(f"unknown task {m['task']!r} (known: {', '.join(TASKS)})", "task")
        if m["early_stop_metric"] not in ("val_auc", "val_loss"):
            err(f"must be 'val_auc' or 'val_loss', got {m['early_stop_metric']!r}", "early_stop_metric")

    def _check_loss(self, m: dict, err) -> None:
        from fembed_jax import losses  # local: keeps `fembed list` start-up free of jax until needed

        name = m["loss"]
        if name not in losses.LOSS_NAMES:
            err(f"unknown loss {name!r} (known: {', '.join(losses.LOSS_NAMES)})", "loss")
            return
        for problem in losses.validate_loss_params(name, dict(m.get("loss_params", {}))):
            err(problem, "loss_params")

    def _check_embedding(self, m: dict, err) -> None:
        kind, d_embed = m["embedding"], m.get("d_embed")
        params = m.get("embedding_params", {})
        if kind not in EMBEDDING_TYPES:
            err(f"unknown embedding type {kind!r} (known: {', '.join(EMBEDDING_TYPES)})", "embedding")
            return
        if kind != "none" and d_embed is None:
            err(f"embedding type {kind!r} requires d_embed", "embedding")
        if kind == "none" and d_embed is not None:
            err("embedding 'none' contradicts d_embed (drop d_embed, or pick an embedding)", "embedding")
        for key in params:
            if key not in EMBEDDING_PARAMS[kind]:
                known = ", ".join(EMBEDDING_PARAMS[kind]) or "none"
                err(f"unknown parameter {key!r} for the {kind} embedding (known: {known})",
                    f"embedding_params.{key}")
        for key, value in params.items():
            problem = _embedding_param_problem(kind, key, value, d_embed)
            if problem:
                err(problem, f"embedding_params.{key}")


def _embedding_param_problem(kind: str, key: str, value: Any, d_embed: int | None) -> str | None:
    if key in ("num_layers", "num_heads", "head_dim", "latent_dim"):
        if not _is_int(value) or value < 1:
            return f"must be a positive integer, got {value!r}"
        if kind == "attention" and key == "num_heads" and d_embed and d_embed % value:
            return f"d_embed {d_embed} is not divisible by the attention embedding's num_heads {value}"
    if key == "hidden_dim" and (not _is_int(value) or value < 0):
        return f"must be a non-negative integer (0 = 2*d_embed), got {value!r}"
    if key == "compression_ratio" and not (_is_number(value) and 0 < value < 1):
        return f"must be in (0, 1), got {value!r}"
    if key == "beta" and not (_is_number(value) and value >= 0):
        return f"must be >= 0, got {value!r}"
    if key in ("use_skip", "use_position") and not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    if key == "combine_method" and value not in ("concat", "sum"):
        return f"must be 'concat' or 'sum', got {value!r}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
