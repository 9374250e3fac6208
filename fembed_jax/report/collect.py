"""Gather what the report shows: queue states, result records with their statistics, saved
predictions, legacy records, held-out test results, and which results are like with like.

The run store's record is what is shown. Files on disk are checked against it and every
problem becomes a warning of the report, never a silent change: a results.json that is damaged
(fails its seal) or disagrees with the store, predictions that are missing or damaged (their
digest in results.json no longer matches) or stale (their AUCs are not the record's).

Like with like: a fembed result is ranked and counted as done only when it ran on the report's
data (the data the reference is computed on, else the data most results used) and with the
registry's epochs and seeds. Quick runs (`fembed run --epochs/--seeds`) join with
``include_quick``; results on other data never do. Legacy records are never ranked.

Walk-forward folds (`fembed run --folds K`, fembed_jax.folds): fold 1 is the result under the
experiment's own id; folds 2..K ran on earlier periods, so they are never ranked beside fold 1's
and are shown, fold by fold and across folds, in their own section (report.folds).

Every val number is scored on a result's report windows (the validation windows its early
stopping never read: fembed_jax.data.splits). A result of another selection protocol (the
original's, which selects and scores on every window) is flagged "other protocol" and never
ranked beside them: its numbers carry the selection's optimism and cover other windows.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from fembed_jax import results_io, stats
from fembed_jax.config import DEFAULT_SELECTION_RULE
from fembed_jax.data.splits import report_mask
from fembed_jax.folds import split_fold
from fembed_jax.predictions import (Predictions, PredictionsDamagedError, PredictionsError,
                                    load_predictions)
from fembed_jax.report.baselines import Reference
from fembed_jax.report.data_identity import describe_data, record_data_key

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
    # Why this fembed result is not like with like ("quick: ...", "other data: ..."); empty when it is.
    flags: list[str] = dataclasses.field(default_factory=list)

    @property
    def legacy(self) -> bool:
        return self.source == "legacy"

    @property
    def quick(self) -> bool:
        return any(f.startswith("quick") for f in self.flags)

    @property
    def other_data(self) -> bool:
        return any(f.startswith("other data") for f in self.flags)

    @property
    def other_protocol(self) -> bool:
        return any(f.startswith("other protocol") for f in self.flags)

    @property
    def fold(self) -> int:
        """Its walk-forward fold: 1 for an experiment's own id, k for ``<id>.fold<k>``."""
        return 1 if self.legacy else split_fold(self.exp_id)[1]

    @property
    def label(self) -> str:
        if self.legacy:
            return f"{self.exp_id} (legacy)"
        return (self.exp_id + (" †" if self.current is False else "") + (" [quick]" if self.quick else "")
                + (" [other data]" if self.other_data else "")
                + (" [other protocol]" if self.other_protocol else ""))

    @property
    def priority(self) -> str | None:
        return self.config.get("priority") or self.record.get("priority")

    @property
    def tier(self) -> str | None:
        return self.config.get("tier") or self.record.get("tier")

    @property
    def pr_auc(self) -> float | None:
        """The ranking key: the seed ensemble's average precision (None without predictions)."""
        return (self.stats.get("ensemble_pr_auc") or {}).get("pr_auc")

    @property
    def train_base_rate(self) -> float | None:
        """The train split's positive rate of this run's data (None for legacy and older records)."""
        splits = (self.record.get("data") or {}).get("splits") or {}
        return (splits.get("train") or {}).get("base_rate")


def quick_reason(record: dict[str, Any], registry: Any) -> str | None:
    """"quick: 2 of 50 epochs, 2 of 5 seeds" when the record trained fewer epochs or seeds than
    the registry's config of the experiment says; None otherwise, or when the registry does not
    know the experiment."""
    exp_id = record.get("exp_id")
    if registry is None or exp_id not in registry:
        return None
    cfg = registry.get(exp_id)
    epochs = (record.get("hyperparameters") or {}).get("epochs")
    seeds = len(record.get("seeds") or [])
    parts = []
    if epochs is not None and int(epochs) < cfg.epochs:
        parts.append(f"{int(epochs)} of {cfg.epochs} epochs")
    if seeds and seeds < cfg.seeds:
        parts.append(f"{seeds} of {cfg.seeds} seeds")
    return "quick: " + ", ".join(parts) if parts else None


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
    include_quick: bool = False
    primary_data: tuple | None = None  # data_key of the data results are ranked on
    baselines: dict[str, Reference] = dataclasses.field(default_factory=dict)  # tier -> logistic
    # walk-forward fold k > 1 -> the volatility reference on that fold's windows (report.folds)
    fold_references: dict[int, Reference] = dataclasses.field(default_factory=dict)
    _judged: Any = dataclasses.field(default=None, repr=False)
    _folds: Any = dataclasses.field(default=None, repr=False)  # report.folds.fold_results, computed once

    @property
    def fembed(self) -> list[Entry]:
        return [e for e in self.entries if not e.legacy]

    @property
    def legacy(self) -> list[Entry]:
        return [e for e in self.entries if e.legacy]

    def like_with_like(self, entry: Entry) -> bool:
        return (not entry.legacy and not entry.other_data and not entry.other_protocol and entry.fold == 1
                and (self.include_quick or not entry.quick))

    @property
    def comparable(self) -> list[Entry]:
        """fembed results that may be ranked, counted and judged against each other."""
        return [e for e in self.fembed if self.like_with_like(e)]

    def ranked(self) -> list[Entry]:
        """Comparable results with saved predictions, by ensemble PR-AUC (then AUC, then id).
        Precision at 0.5 is never the key: it rewards over-confident weights."""
        def key(e: Entry):
            auc = (e.stats.get("ensemble_auc") or {}).get("auc")
            return -e.pr_auc, -(auc if auc is not None else 0.0), e.exp_id
        return sorted((e for e in self.comparable if e.pr_auc is not None), key=key)

    @property
    def judged(self):
        """Paired comparisons and their corrected verdicts (report.judge), computed once."""
        if self._judged is None:
            from fembed_jax.report.judge import judge

            self._judged = judge(self)
        return self._judged

    def state_of(self, exp_id: str) -> str:
        """Queue state; an experiment never queued is pending."""
        row = self.queue.get(exp_id)
        return row["state"] if row else "pending"

    def counted_state(self, exp_id: str) -> str:
        """state_of, with a done experiment whose result is not like with like as "quick"
        (quick run or other data): it is not counted as done."""
        state = self.state_of(exp_id)
        if state == "done":
            entry = next((e for e in self.fembed if e.exp_id == exp_id), None)
            if entry is not None and not self.like_with_like(entry):
                return "quick"
        return state

    def test_access(self) -> dict[str, list[str]]:
        """exp_id -> how its test split was read ("fembed evaluate", "fembed run --eval-test")."""
        out: dict[str, list[str]] = collections.defaultdict(list)
        for exp_id in self.test_results:
            out[exp_id].append("fembed evaluate")
        for e in self.fembed:
            if e.record.get("test_metrics_per_seed"):
                out[e.exp_id].append("fembed run --eval-test")
        return dict(sorted(out.items()))


def _config_of(record: dict[str, Any], registry: Any) -> dict[str, Any]:
    config = dict(record.get("config") or {})
    exp_id = record.get("exp_id")
    if not config and registry is not None and exp_id in registry:
        config = registry.get(exp_id).to_dict()
    for key in ("exp_id", "priority", "tier", "d_embed", "description"):
        if config.get(key) is None and record.get(key) is not None:
            config[key] = record[key]
    return config


def selection_rule(record: dict[str, Any]) -> str:
    """The record's selection protocol; a record from before the field selected on every window."""
    return (record.get("selection_windows") or {}).get("rule") or "all"


def protocol_flag(record: dict[str, Any]) -> str | None:
    """"other protocol: ..." for a result not selected under the report's protocol."""
    rule = selection_rule(record)
    if rule == DEFAULT_SELECTION_RULE:
        return None
    return (f"other protocol: selection_windows = {rule!r} (the epoch was chosen on the windows "
            f"it is scored on)" if rule == "all" else f"other protocol: selection_windows = {rule!r}")


def scored_predictions(pred: Predictions, record: dict[str, Any]) -> Predictions:
    """``pred`` (every validation window, as saved) on the windows the record is scored on."""
    return pred.windows(report_mask(selection_rule(record), pred.n_windows))


def check_predictions(pred: Predictions, record: dict[str, Any]) -> str | None:
    """Why ``pred`` (on the record's scored windows) does not belong to ``record`` (None when it does)."""
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


def load_checked(outputs_dir: Path, exp_id: str, record: dict[str, Any],
                 warnings: list[str]) -> Predictions | None:
    """The run's predictions on its scored windows when they can be used; otherwise None and a
    warning saying why. Public: the monitor (tui/reported.py) scores results through it too."""
    try:
        pred = load_predictions(outputs_dir, exp_id)
    except PredictionsDamagedError as exc:
        warnings.append(f"{exp_id}: val_predictions.npz not used: {exc}")
        return None
    except PredictionsError as exc:
        warnings.append(str(exc))
        return None
    if pred is not None:
        pred = scored_predictions(pred, record)
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


def _primary_data(reference: Reference | None, fembed: list[Entry]) -> tuple | None:
    """The reference's data when it was computed, else the data most fembed results used."""
    if reference is not None and reference.data_key is not None:
        return reference.data_key
    keys = [k for k in (record_data_key(e.record) for e in fembed) if k is not None]
    return collections.Counter(keys).most_common(1)[0][0] if keys else None


def collect(outputs_dir: str | Path, registry: Any = None, *, n_boot: int = stats.DEFAULT_BOOTSTRAP,
            seed: int = 0, block_length: int = 1, reference: Reference | None = None,
            include_quick: bool = False) -> ReportData:
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
        pred = load_checked(outputs_dir, row["exp_id"], record, warnings)
        fembed.append(Entry(row["exp_id"], "fembed", record, stats.experiment_stats(record, pred, **kw),
                            _config_of(record, registry), row.get("current"), pred))
    primary = _primary_data(reference, fembed)
    for entry in fembed:
        quick = quick_reason(entry.record, registry)
        key = record_data_key(entry.record)
        entry.flags = [quick] if quick else []
        protocol = protocol_flag(entry.record)
        if protocol:
            entry.flags.append(protocol)
        if entry.fold > 1:  # an earlier period by design: only its source must be the report's
            entry.flags.append(f"walk-forward fold {entry.fold}: {describe_data(key)}")
            if primary is not None and key is not None and key[0] != primary[0]:
                entry.flags.append(f"other data: {describe_data(key)}")
        elif primary is not None and key is not None and key != primary:
            entry.flags.append(f"other data: {describe_data(key)}")
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
                      n_boot=n_boot, seed=seed, block_length=block_length, include_quick=include_quick,
                      primary_data=primary)
