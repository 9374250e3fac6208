"""Load and validate the experiment registry (registry/experiments.toml).

Validation collects every problem before it reports, and each message names the file, the line,
the experiment id and the field, so a user fixes a bad registry in one pass. Nothing runs on an
invalid registry: ``load_registry`` raises ``RegistryError`` instead of returning one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fembed_jax import grids
from fembed_jax.folds import split_fold
from fembed_jax.config import CONFIG_FIELDS, SELECTION_RULES, ExperimentConfig, default_early_stop_metric

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REGISTRY = REPO_ROOT / "registry" / "experiments.toml"

# Used with fullmatch and [0-9]: `$` lets "FE-68\n" through and \d takes any script's digits (FE-٦٨).
# Grid and --set experiments add a suffix after a dot (fembed_jax.grids): LF-40.GAMMA-2.
ID_PATTERN = re.compile(r"[A-Z]{2,4}-[0-9]{1,4}" + grids.SUFFIX)
# `fembed run --set` records the experiments it makes here, beside the registry file.
DERIVED_FILE = "derived.toml"
# P1..P12 (FE), LF-P1.., AE-P1..; a new family may use its own 2-4 letter prefix (XX-P3).
PRIORITY_PATTERN = re.compile(r"(?:[A-Z]{2,4}-)?P[0-9]{1,3}")

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
TOP_LEVEL_KEYS = frozenset({"defaults", "tiers", "data", "experiments", "grids"})
TIER_KEYS = frozenset({"features", "file"})
# DataConfig's fields, spelled out here so loading a registry does not import pandas (a test keeps
# them equal); DATE_KEYS are those that hold dates.
DATE_KEYS = ("val_start", "test_start", "test_end")
DATA_KEYS = ("source", "vix", "tier_dir", "tier_files", *DATE_KEYS, "cache_dir")

# Sanity bounds on every size, far above what the suite uses (d_model <= 1024, n_layers <= 20,
# d_ff <= 4096, 500 features) yet low enough that a typo (an extra zero, 2**62) is reported here
# with its line instead of surfacing as an overflow or an allocation failure inside the model build.
_INT_MAX = {"d_embed": 65536, "d_model": 65536, "n_layers": 64, "n_heads": 65536, "d_ff": 262144,
            "batch_size": 1_000_000, "epochs": 100_000, "context_length": 100_000,
            "patch_length": 100_000, "stride": 100_000, "patience": 100_000, "horizon": 10_000,
            "seeds": 1024}
_EMBED_INT_MAX = {"num_layers": 64, "num_heads": 1024, "head_dim": 65536, "latent_dim": 65536,
                  "hidden_dim": 262144}
MAX_FEATURES = 65536
_FLOAT_FIELDS = {"dropout", "head_dropout", "weight_decay", "learning_rate", "min_delta"}
_STR_FIELDS = {"priority", "tier", "description", "loss", "embedding", "early_stop_metric",
               "task", "selection", "selection_windows"}


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
        """The experiment's config; a walk-forward fold's id ("FE-06.fold2", fembed_jax.folds)
        gives its experiment's config under that id."""
        base, fold = split_fold(exp_id)
        for cfg in self.experiments:
            if cfg.exp_id == base:
                return cfg if fold == 1 else cfg.replace(exp_id=exp_id)
        raise KeyError(f"{self.path}: no experiment {exp_id!r}")

    def __contains__(self, exp_id: str) -> bool:
        base = split_fold(exp_id)[0]
        return any(cfg.exp_id == base for cfg in self.experiments)

    @property
    def priorities(self) -> list[str]:
        return list(dict.fromkeys(cfg.priority for cfg in self.experiments))

    def select(self, priorities: Iterable[str] = (), exp_ids: Iterable[str] = (),
               tiers: Iterable[str] = (), losses: Iterable[str] = (),
               embeddings: Iterable[str] = ()) -> list[ExperimentConfig]:
        """Experiments matching every given filter (a filter left empty matches all), in
        registry order. A value nothing could match (an unknown priority, id, tier, loss or
        embedding) raises KeyError naming all of them; valid filters that match nothing give []."""
        from fembed_jax.loss_specs import LOSS_NAMES

        filters = {"priority": list(priorities), "exp_id": list(exp_ids), "tier": list(tiers),
                   "loss": list(losses), "embedding": list(embeddings)}
        named = [(v, self.priorities) for v in filters["priority"]]
        named += [(v, [cfg.exp_id for cfg in self.experiments]) for v in filters["exp_id"]]
        unknown = [v + (f" (did you mean {' or '.join(close)}?)" if (close := _close(v, known)) else "")
                   for v, known in named if v not in known]
        problems = [f"unknown priority or experiment id: {', '.join(unknown)}"] if unknown else []
        for name, known in (("tier", list(self.tiers)), ("loss", list(LOSS_NAMES)),
                            ("embedding", list(EMBEDDING_TYPES))):
            problems += [_unknown(f"{name} filter: unknown {name} {v!r}", v, known)
                         for v in filters[name] if v not in known]
        if problems:
            raise KeyError(f"{self.path}: " + "; ".join(problems))
        return [cfg for cfg in self.experiments
                if all(not wanted or getattr(cfg, field) in wanted for field, wanted in filters.items())]


def default_registry_path() -> Path:
    return Path(os.environ.get("FEMBED_REGISTRY", DEFAULT_REGISTRY))


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Parse, validate and resolve a registry file; raises RegistryError listing all problems."""
    path = Path(path) if path is not None else default_registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError([f"{path}: cannot read the registry: {exc.strerror or exc}"]) from exc
    raw = _parse(path, text)
    registry = _Validator(path, text, raw).run()
    derived = path.parent / DERIVED_FILE
    if not derived.is_file():
        return registry
    try:
        derived_text = derived.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError([f"{derived}: cannot read: {exc.strerror or exc}"]) from exc
    extra = _parse(derived, derived_text)
    unknown = sorted(set(extra) - {"experiments"})
    if unknown:
        raise RegistryError([f"{derived}: holds only [[experiments]] (written by fembed run --set), "
                             f"found {', '.join(unknown)}"])
    # The derived tables are checked against the registry's own [defaults], [tiers] and [data].
    base = {k: v for k, v in raw.items() if k not in ("experiments", "grids")}
    more = _Validator(derived, derived_text, {**base, "experiments": extra.get("experiments", [])}).run()
    clash = sorted({c.exp_id for c in more.experiments} & {c.exp_id for c in registry.experiments})
    if clash:
        raise RegistryError([f"{derived}: id(s) {', '.join(clash)} also in {path}"])
    return dataclasses.replace(registry, experiments=registry.experiments + more.experiments)


def _parse(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer past Python's 4300-digit limit
        raise RegistryError([f"{path}: not valid TOML: {exc}"]) from exc


def record_derived(registry_path: Path, tables: list[dict]) -> None:
    """Append experiment tables (from --set) to the registry's derived.toml, atomically; a
    table whose id is there already is not written twice."""
    from fembed_jax.atomic import atomic_write

    derived = Path(registry_path).parent / DERIVED_FILE
    text = derived.read_text(encoding="utf-8") if derived.is_file() else (
        "# Experiments made by `fembed run --set`; edit or delete entries as in the registry.\n")
    known = {t.get("id") for t in _parse(derived, text).get("experiments", [])}
    new = [t for t in tables if t["id"] not in known]
    if new:
        text += "".join("\n" + grids.to_toml(t) for t in new)
        atomic_write(derived, text.encode("utf-8"))


class _Validator:
    def __init__(self, path: Path, text: str, raw: dict):
        self.path, self.raw = path, raw
        self.errors: list[str] = []
        self.broken_tiers: set[str] = set()  # defined but invalid: reported once, where defined
        self.lines = text.splitlines()
        self.block_starts = [i for i, line in enumerate(self.lines)
                             if line.strip().startswith("[[experiments]]")]
        self.grid_starts = [i for i, line in enumerate(self.lines) if line.strip().startswith("[[grids]]")]
        self.generated_lines: dict[int, int | None] = {}  # experiment index of a grid point -> grid line

    # -- locating problems ------------------------------------------------------------------
    def _line_of(self, index: int | None, field: str | None) -> int | None:
        """1-based line of an experiment's field (or of its table header)."""
        if index in self.generated_lines:
            return self.generated_lines[index]
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

    def _line_of_key(self, header: str, key: str) -> int | None:
        """1-based line of `key` in the table [header], else of the header."""
        start = self._line_of_table(header)
        for i in range(start or len(self.lines), len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if re.match(rf"""\s*["']?{re.escape(key)}["']?\s*=""", self.lines[i]):
                return i + 1
        return start

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
                self.error(_unknown(f"unknown top-level table '{key}'", key, sorted(TOP_LEVEL_KEYS)))
        defaults = self._defaults()
        tiers = self._tiers()
        data = self._data()
        experiments = self.raw.get("experiments", [])
        if not isinstance(experiments, list) or not experiments:
            self.error("no [[experiments]] defined")
            experiments = []
        experiments = list(experiments) + self._grid_points(experiments)
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

    def _grid_points(self, experiments: list) -> list[dict]:
        """The experiment tables of every [[grids]] table; their problems name the grid's line."""
        tables = self.raw.get("grids", [])
        if not isinstance(tables, list):
            self.error("grids must be [[grids]] tables")
            return []
        by_id = {e["id"]: e for e in experiments if isinstance(e, dict) and isinstance(e.get("id"), str)}
        points = []
        for number, grid in enumerate(tables):
            line = self.grid_starts[number] + 1 if number < len(self.grid_starts) else None
            made, problems = grids.expand(grid, by_id)
            name = grid.get("name") if isinstance(grid, dict) else None
            for message, field in problems:
                self.error(message, f"grid {name}", field, line=line)
            for table in made:
                self.generated_lines[len(experiments) + len(points)] = line
                points.append(table)
        return points

    def _defaults(self) -> dict[str, Any]:
        """[defaults] checked once, so a bad default is one message, not one per experiment."""
        table = self.raw.get("defaults", {})
        if not isinstance(table, dict):
            self.error("[defaults] must be a table", line=self._line_of_table("defaults"))
            return {}
        kept = {}
        for key, value in table.items():
            line = self._line_of_key("defaults", key)
            if key not in DEFAULT_KEYS:
                self.error(_unknown("unknown key", key, sorted(DEFAULT_KEYS)), "[defaults]", key, line=line)
                continue
            problems = _value_problems(key, value)
            for field, problem in problems:
                self.error(problem, "[defaults]", field, line=line)
            if not problems:
                kept[key] = value
        return kept

    def _tiers(self) -> dict[str, TierSpec]:
        table = self.raw.get("tiers", {})
        if not isinstance(table, dict) or not table:
            self.error("[tiers] must define at least one tier")
            return {}
        tiers = {}
        self.broken_tiers = set(table)
        for name, spec in table.items():
            line = self._line_of_table(f"tiers.{name}")
            if not isinstance(spec, dict):
                self.error(f"tier '{name}' must be a table with 'features'", line=line)
                continue
            for key in spec:
                if key not in TIER_KEYS:
                    self.error(_unknown(f"unknown key in tier '{name}'", key, sorted(TIER_KEYS)),
                               field=key, line=self._line_of_key(f"tiers.{name}", key))
            features = spec.get("features")
            if not _is_int(features) or not 0 < features <= MAX_FEATURES:
                self.error(f"tier '{name}' needs an integer 'features' in 1..{MAX_FEATURES} "
                           f"(a sanity bound), got {features!r}", field="features",
                           line=self._line_of_key(f"tiers.{name}", "features"))
                continue
            tiers[name] = TierSpec(name, features, spec.get("file"))
            self.broken_tiers.discard(name)
        return tiers

    def _data(self) -> dict[str, Any]:
        """What of [data] can be told from the table alone, with lines; DataConfig checks the rest."""
        table = self.raw.get("data", {})
        if not isinstance(table, dict):
            self.error("[data] must be a table")
            return {}

        def err(msg, key):
            self.error(msg, "[data]", key, line=self._line_of_key("data", key))
        for key, value in table.items():
            if key not in DATA_KEYS:
                err(_unknown("unknown key", key, DATA_KEYS), key)
            elif key in DATE_KEYS:
                if _as_date(value) is None:
                    err(f"is not a date, got {value!r}", key)
            elif key != "tier_files" and not isinstance(value, str):
                err(f"must be a string, got {value!r}", key)
        val, test = _as_date(table.get("val_start")), _as_date(table.get("test_start"))
        if val and test and val >= test:
            err(f"must be before test_start {test}, got {val}", "val_start")
        end = _as_date(table.get("test_end"))
        if test and end and test >= end:
            err(f"must be after test_start {test}, got {end}", "test_end")
        return table

    def _experiment(self, index: int, entry: Any, defaults: dict, tiers: dict) -> ExperimentConfig | None:
        if not isinstance(entry, dict):
            self.error("each [[experiments]] entry must be a table", index=index)
            return None
        exp_id = entry.get("id")
        if not isinstance(exp_id, str) or not ID_PATTERN.fullmatch(exp_id):
            self.error(f"id must look like 'FE-01' (letters-dash-digits), got {exp_id!r}",
                       field="id", index=index)
            exp_id = str(exp_id)
        err = lambda msg, field=None: self.error(msg, exp_id, field, index)  # noqa: E731

        ok = True
        for key, value in entry.items():
            if key not in EXPERIMENT_KEYS:
                err(_unknown("unknown key", key, sorted(EXPERIMENT_KEYS)), key)
            elif key != "id":
                for field, problem in _value_problems(key, value):
                    err(problem, field)
                    ok = False
        for key in ("priority", "tier"):
            if key not in entry:
                err("missing (required)", key)
        merged = {**defaults, **{k: v for k, v in entry.items() if k in EXPERIMENT_KEYS and k != "id"}}

        priority = merged.get("priority")
        if isinstance(priority, str) and not PRIORITY_PATTERN.fullmatch(priority):
            err(f"unknown priority pattern {priority!r} (expected P<n> or <FAMILY>-P<n>, e.g. LF-P3)",
                "priority")
        tier = merged.get("tier")
        if isinstance(tier, str) and tier not in tiers:
            if tier not in self.broken_tiers:
                err(_unknown(f"unknown tier {tier!r}", tier, tiers), "tier")
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

    def _check_values(self, m: dict, err) -> None:
        """Checks across fields; each field on its own passed _value_problems."""
        d_model, n_heads = m.get("d_model", 0), m.get("n_heads", 0)
        if n_heads > d_model > 0:
            err(f"n_heads {n_heads} exceeds d_model {d_model}", "n_heads")
        elif d_model > 0 and n_heads > 0 and d_model % n_heads:
            err(f"d_model {d_model} is not divisible by n_heads {n_heads}", "n_heads")
        if m.get("patch_length", 0) > m.get("context_length", 0) > 0:
            err(f"patch_length {m['patch_length']} exceeds context_length {m['context_length']}",
                "patch_length")
        if m.get("selection", "best") not in ("best", "last"):
            err(f"must be 'best' or 'last', got {m['selection']!r}", "selection")
        if m.get("selection_windows", "alternate") not in SELECTION_RULES:
            err(_unknown(f"unknown selection_windows {m['selection_windows']!r}",
                         m["selection_windows"], SELECTION_RULES), "selection_windows")
        if m.get("task", "threshold_1pct") not in TASKS:
            err(_unknown(f"unknown task {m['task']!r}", m["task"], TASKS), "task")
        if m["early_stop_metric"] not in ("val_auc", "val_loss"):
            err(f"must be 'val_auc' or 'val_loss', got {m['early_stop_metric']!r}", "early_stop_metric")

    def _check_loss(self, m: dict, err) -> None:
        from fembed_jax import loss_specs as losses  # jax-free: loading a registry never starts jax

        name = m["loss"]
        if name not in losses.LOSS_NAMES:
            err(_unknown(f"unknown loss {name!r}", name, losses.LOSS_NAMES), "loss")
            return
        for problem in losses.validate_loss_params(name, dict(m.get("loss_params", {}))):
            err(problem, "loss_params")

    def _check_embedding(self, m: dict, err) -> None:
        kind, d_embed = m["embedding"], m.get("d_embed")
        params = m.get("embedding_params", {})
        if kind not in EMBEDDING_TYPES:
            err(_unknown(f"unknown embedding type {kind!r}", kind, EMBEDDING_TYPES), "embedding")
            return
        if kind != "none" and d_embed is None:
            err(f"embedding type {kind!r} requires d_embed", "embedding")
        if kind == "none" and d_embed is not None:
            err("embedding 'none' contradicts d_embed (drop d_embed, or pick an embedding)", "embedding")
        for key in params:
            if key not in EMBEDDING_PARAMS[kind]:
                err(_unknown(f"unknown parameter {key!r} for the {kind} embedding", key,
                             EMBEDDING_PARAMS[kind]), f"embedding_params.{key}")
        for key, value in params.items():
            problem = _embedding_param_problem(kind, key, value, d_embed)
            if problem:
                err(problem, f"embedding_params.{key}")


def _value_problems(key: str, value: Any) -> list[tuple[str, str]]:
    """(field, message) for one experiment or [defaults] value taken on its own."""
    bad_numbers = _bad_numbers(key, value)
    if bad_numbers:
        return bad_numbers
    problem = None
    if key in ("loss_params", "embedding_params"):
        if not isinstance(value, dict):
            problem = f"must be a table such as {{ gamma = 2.0 }}, got {value!r}"
    elif key in _INT_MAX:
        if not _is_int(value):
            problem = f"must be an integer, got {value!r}"
        elif value <= 0:
            problem = f"must be positive, got {value}"
        elif value > _INT_MAX[key]:
            problem = f"must be at most {_INT_MAX[key]} (a sanity bound), got {value}"
    elif key in _FLOAT_FIELDS:
        if not _is_number(value):
            problem = f"must be a finite number, got {value!r}"
        elif key in ("dropout", "head_dropout") and not 0.0 <= value < 1.0:
            problem = f"must be in [0, 1), got {value}"
        elif key == "learning_rate" and value <= 0:
            problem = f"must be positive, got {value}"
        elif key in ("weight_decay", "min_delta") and value < 0:
            problem = f"must be >= 0, got {value}"
    elif key in _STR_FIELDS and not isinstance(value, str):
        problem = f"must be a string, got {value!r}"
    elif key == "use_revin" and not isinstance(value, bool):
        problem = f"must be true or false, got {value!r}"
    return [(key, problem)] if problem else []


def _bad_numbers(field: str, value: Any) -> list[tuple[str, str]]:
    """Integers past int64 and inf/nan anywhere in `value`: jax and numpy cannot hold the first,
    and neither turns into a usable size, rate or loss weight."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _bad_numbers(f"{field}.{k}", v)]
    if isinstance(value, list):
        return [p for v in value for p in _bad_numbers(field, v)]
    if _is_int(value) and not -2**63 <= value < 2**63:
        return [(field, "integer out of the 64-bit range")]
    if isinstance(value, float) and not math.isfinite(value):
        return [(field, f"must be finite, got {value!r}")]
    return []


def _embedding_param_problem(kind: str, key: str, value: Any, d_embed: int | None) -> str | None:
    if key in _EMBED_INT_MAX:
        low = 0 if key == "hidden_dim" else 1
        if not _is_int(value) or not low <= value <= _EMBED_INT_MAX[key]:
            note = " (0 = 2*d_embed)" if key == "hidden_dim" else ""
            return f"must be an integer in {low}..{_EMBED_INT_MAX[key]}{note}, got {value!r}"
        if kind == "attention" and key == "num_heads" and d_embed and d_embed % value:
            return f"d_embed {d_embed} is not divisible by the attention embedding's num_heads {value}"
    if key == "compression_ratio" and not (_is_number(value) and 0 < value < 1):
        return f"must be in (0, 1), got {value!r}"
    if key == "beta" and not (_is_number(value) and value >= 0):
        return f"must be >= 0, got {value!r}"
    if key in ("use_skip", "use_position") and not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    if key == "combine_method" and value not in ("concat", "sum"):
        return f"must be 'concat' or 'sum', got {value!r}"
    return None


def _close(value: Any, known: Iterable[str]) -> list[str]:
    """The known names nearest `value`; a slip of case alone names just the one."""
    if not isinstance(value, str):
        return []
    by_folded = {k.casefold(): k for k in known}
    folded = value.casefold()
    close = [folded] if folded in by_folded else difflib.get_close_matches(folded, list(by_folded), n=3)
    return [by_folded[c] for c in close]


def _unknown(message: str, value: Any, known: Iterable[str]) -> str:
    """`message`, a "did you mean" for `value` where one is close, and the known names."""
    known = list(known)
    close = _close(value, known)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"{message}{hint} (known: {', '.join(known) or 'none'})"


def _as_date(value: Any) -> dt.date | None:
    """The date DataConfig reads from a [data] value, None where it reads none."""
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            import pandas as pd  # what DataConfig parses with; needed only for non-ISO spellings
            try:
                stamp = pd.Timestamp(value)
                return None if pd.isna(stamp) else stamp.date()
            except (ValueError, TypeError, OverflowError):
                pass
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_tables(registry: Registry, tables: list[dict], where: str) -> tuple[ExperimentConfig, ...]:
    """Experiment tables made outside the registry file (`--set`) validated against its
    [defaults], [tiers] and [data]; problems are reported as at ``where``."""
    tiers = {name: {"features": t.features, **({"file": t.file} if t.file else {})}
             for name, t in registry.tiers.items()}
    raw = {"defaults": dict(registry.defaults), "tiers": tiers, "data": dict(registry.data),
           "experiments": tables}
    text = "\n".join(grids.to_toml(t) for t in tables)
    return _Validator(Path(where), text, raw).run().experiments
