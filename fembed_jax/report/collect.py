"""Gather what the report shows: queue states, result records with their statistics, saved
predictions, legacy records, held-out test results and the one-feature reference.

The run store's record is what is shown. Files on disk are checked against it and every
problem becomes a warning of the report, never a silent change: a results.json that is damaged
(fails its seal) or disagrees with the store, predictions that are missing or damaged (their
digest in results.json no longer matches) or stale (their AUCs are not the record's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from fembed_jax import results_io, stats
from fembed_jax.predictions import (Predictions, PredictionsDamagedError, PredictionsError,
                                    load_predictions)

TEST_RESULTS_FILENAME = "test_results.json"
# Per-seed AUCs recomputed from val_predictions.npz must match results.json to this tolerance,
# or the file is from another run (stale) and is not used.
_AUC_MATCH_TOL = 1e-5


@dataclasses.dataclass
class Entry:
    """One result as the report shows it (a fembed run or a legacy record)."""

    exp_id: str
    source: str  # "fembed" | "legacy"
    record: dict[str, Any]
    stats: dict[str, Any]
    config: dict[str, Any]
    current: bool | None = None  # fembed: the queue still holds the config this result ran
    predictions: Predictions | None = None

    @property
    def legacy(self) -> bool:
        return self.source == "legacy"

    @property
    def label(self) -> str:
        return f"{self.exp_id} (legacy)" if self.legacy else self.exp_id + ("" if self.current is not False else " †")

    @property
    def priority(self) -> str | None:
        return self.config.get("priority") or self.record.get("priority")

    @property
    def tier(self) -> str | None:
        return self.config.get("tier") or self.record.get("tier")

    @property
    def rank_key(self) -> tuple:
        typical = self.stats.get("typical") or {}
        low = typical.get("ci_low")
        return (-(low if low is not None else -1.0),
                -(self.stats["precision"]["mean"] or 0.0),
                -(self.stats["auc"]["mean"] or 0.0),
                self.exp_id, self.source)


@dataclasses.dataclass
class Reference:
    """The volatility-only baseline: logistic regression on ATR14/Close."""

    result: dict[str, Any] | None
    predictions: Predictions | None
    source: str
    error: str | None = None


@dataclasses.dataclass
class ReportData:
    outputs_dir: Path
    store_path: Path
    registry: Any  # fembed_jax.registry.Registry or None
    queue: dict[str, dict[str, Any]]
    entries: list[Entry]
    test_results: dict[str, dict[str, Any]]
    reference: Reference | None
    warnings: list[str]
    generated_at: str
    n_boot: int
    seed: int
    block_length: int

    @property
    def fembed(self) -> list[Entry]:
        return [e for e in self.entries if not e.legacy]

    @property
    def legacy(self) -> list[Entry]:
        return [e for e in self.entries if e.legacy]

    def ranked(self) -> list[Entry]:
        return sorted((e for e in self.entries if e.stats.get("typical")), key=lambda e: e.rank_key)

    def state_of(self, exp_id: str) -> str:
        """Queue state; an experiment never queued is pending."""
        row = self.queue.get(exp_id)
        return row["state"] if row else "pending"

    def typical_auc_std(self) -> float | None:
        """Median seed std of AUC over fembed results: the noise a single seed carries."""
        values = [e.stats["auc"]["std"] for e in self.fembed if e.stats["auc"]["std"] is not None]
        return float(np.median(values)) if values else None


def _config_of(record: dict[str, Any], registry: Any) -> dict[str, Any]:
    config = dict(record.get("config") or {})
    exp_id = record.get("exp_id")
    if not config and registry is not None and exp_id in registry:
        config = registry.get(exp_id).to_dict()
    for key in ("exp_id", "priority", "tier", "d_embed", "description"):
        if config.get(key) is None and record.get(key) is not None:
            config[key] = record[key]
    return config


def check_predictions(pred: Predictions, record: dict[str, Any]) -> str | None:
    """Why ``pred`` does not belong to ``record`` (None when it does)."""
    seeds = record.get("seeds")
    if isinstance(seeds, list) and [int(s) for s in seeds if s is not None] != [int(s) for s in pred.seeds]:
        return f"seeds {list(map(int, pred.seeds))} differ from results.json's {seeds}"
    per_seed = record.get("val_metrics_per_seed") or []
    if len(per_seed) != pred.n_seeds:
        return f"{pred.n_seeds} seeds of predictions, {len(per_seed)} in results.json"
    for k, m in enumerate(per_seed):
        if m.get("n_samples") is not None and int(m["n_samples"]) != pred.n_windows:
            return f"{pred.n_windows} windows, results.json has {m['n_samples']}"
        if m.get("auc") is None or not np.all(np.isfinite(pred.probs[k])):
            continue
        auc = stats.auc_rank(pred.probs[k], pred.labels)
        if auc is None or abs(auc - float(m["auc"])) > _AUC_MATCH_TOL:
            return f"seed {m.get('seed')}: AUC {auc} from the predictions, {m['auc']} in results.json"
    return None


def results_file_problem(outputs_dir: Path, exp_id: str, record: dict[str, Any]) -> str | None:
    """Why outputs/<exp_id>/results.json does not back the store's ``record`` (None when it
    does, or when there is no such file: a store-only result is no disagreement)."""
    rewrite = "the report shows the run store's record; `fembed run` rewrites the file from it"
    try:
        path = results_io.results_path(outputs_dir, exp_id)
    except ValueError:
        return None  # an id that is no directory name has no results.json
    try:
        on_disk = results_io.read_results(path)
    except FileNotFoundError:
        return None
    except results_io.ResultsFileError as exc:
        return f"results.json is damaged ({exc}); {rewrite}"
    except OSError as exc:
        return f"results.json cannot be read ({exc}); {rewrite}"
    if on_disk.get("run_hash") != record.get("run_hash"):
        return (f"results.json belongs to another run (run hash {on_disk.get('run_hash')!r}, the "
                f"run store's is {record.get('run_hash')!r}); {rewrite}")
    if _content(on_disk) != _content(record):
        return ("results.json differs from the run store's record of the same run; the report "
                "shows the run store's record")
    return None


def _content(record: dict[str, Any]) -> str:
    """Digest of a record without the seal fields results.json adds to it."""
    return results_io.content_digest({k: v for k, v in record.items() if k not in results_io.SEAL_KEYS})


def _load_checked(outputs_dir: Path, exp_id: str, record: dict[str, Any],
                  warnings: list[str]) -> Predictions | None:
    """The run's predictions when they can be used; otherwise None and a warning saying why."""
    try:
        pred = load_predictions(outputs_dir, exp_id)
    except PredictionsDamagedError as exc:
        warnings.append(f"{exp_id}: val_predictions.npz not used: {exc}")
        return None
    except PredictionsError as exc:
        warnings.append(str(exc))
        return None
    if pred is not None:
        problem = check_predictions(pred, record)
        if problem:
            warnings.append(f"{exp_id}: val_predictions.npz not used ({problem}; a stale file?)")
            return None
    return pred


def _read_test_results(path: Path) -> dict[str, Any] | None:
    """A test_results.json, None when it cannot be used (unreadable, or fails its seal)."""
    try:
        return results_io.read_results(path)
    except (OSError, ValueError):
        return None


def collect(outputs_dir: str | Path, registry: Any = None, *, n_boot: int = stats.DEFAULT_BOOTSTRAP,
            seed: int = 0, block_length: int = 1, reference: Reference | None = None) -> ReportData:
    """Read the store at outputs_dir/fembed.db (if any), predictions, legacy copies, test results."""
    from fembed_jax.legacy import legacy_copies
    from fembed_jax.store import DB_FILENAME, RunStore

    outputs_dir = Path(outputs_dir)
    store_path = outputs_dir / DB_FILENAME
    queue: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    if store_path.exists():
        with RunStore(store_path, readonly=True) as store:
            queue = {row["exp_id"]: row for row in store.experiments()}
            rows = store.results()
    warnings: list[str] = []
    kw = dict(n_boot=n_boot, seed=seed, block_length=block_length)
    order = {cfg.exp_id: i for i, cfg in enumerate(registry.experiments)} if registry is not None else {}

    fembed: list[Entry] = []
    legacy_records: dict[str, dict[str, Any]] = legacy_copies(outputs_dir)
    for row in rows:
        record = row["record"]
        if row.get("legacy"):
            legacy_records[row["exp_id"]] = record
            continue
        problem = results_file_problem(outputs_dir, row["exp_id"], record)
        if problem:
            warnings.append(f"{row['exp_id']}: {problem}")
        pred = _load_checked(outputs_dir, row["exp_id"], record, warnings)
        fembed.append(Entry(row["exp_id"], "fembed", record, stats.experiment_stats(record, pred, **kw),
                            _config_of(record, registry), row.get("current"), pred))
    legacy = [Entry(exp_id, "legacy", record, stats.experiment_stats(record, **kw),
                    _config_of(record, registry))
              for exp_id, record in legacy_records.items()]
    big = len(order) + 1
    fembed.sort(key=lambda e: (order.get(e.exp_id, big), e.exp_id))
    legacy.sort(key=lambda e: (order.get(e.exp_id, big), e.exp_id))

    test_results = {}
    if outputs_dir.is_dir():
        for path in sorted(outputs_dir.glob(f"*/{TEST_RESULTS_FILENAME}")):
            data = _read_test_results(path)
            if data is None:
                warnings.append(f"{path}: unreadable or damaged, not shown")
            else:
                test_results[path.parent.name] = data
    return ReportData(outputs_dir=outputs_dir, store_path=store_path, registry=registry, queue=queue,
                      entries=fembed + legacy, test_results=test_results, reference=reference,
                      warnings=warnings,
                      generated_at=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                      n_boot=n_boot, seed=seed, block_length=block_length)


def volatility_reference(data_config: Any = None, *, tier: str = "a20", n_boot: int = stats.DEFAULT_BOOTSTRAP,
                         seed: int = 0, block_length: int = 1) -> Reference:
    """The ATR14/Close logistic-regression reference on ``tier``'s windows of ``data_config``.

    Validation windows are defined by dates, so every tier has the same decision days; the
    smallest tier is the cheapest to build. Errors (no data, no network for a user file) are
    returned in ``Reference.error``, not raised: a report without the reference is still useful.
    """
    try:
        from fembed_jax.data import DataConfig, load_dataset
        from fembed_jax.data.tierstore import tier_frame

        cfg = data_config or DataConfig()
        dataset = load_dataset(tier, cfg)
        frame = tier_frame(cfg, tier).frame
        if len(frame) != dataset.matrix.shape[0]:
            raise ValueError(f"tier {tier}: frame has {len(frame)} rows, the dataset {dataset.matrix.shape[0]}")
        feature = stats.volatility_feature(frame)
        result = stats.volatility_reference(feature, dataset.starts, dataset.labels, dataset.context_length,
                                            n_boot=n_boot, seed=seed, block_length=block_length)
    except Exception as exc:  # noqa: BLE001 - reported in the document instead
        return Reference(None, None, source="", error=f"{type(exc).__name__}: {exc}")
    probs = result.pop("probs")
    pred = Predictions(probs=np.asarray(probs, np.float32)[None, :],
                       labels=np.asarray(dataset.labels["val"], np.float32),
                       starts=np.asarray(dataset.starts["val"]), seeds=np.zeros(1, np.int64),
                       dates=dataset.decision_dates("val"))
    return Reference(result, pred, source=f"{dataset.source_id.split('|')[0]} [{tier}], "
                                          f"val {dataset.val_start} to {dataset.test_start}")
