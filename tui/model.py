"""What the TUI shows, computed from a store snapshot and the registry (no Textual here).

Every function is pure: the same snapshot, registry and clock give the same rows, which is
what lets the views update in place and the snapshot tests stay stable.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from fembed_jax.config import CONFIG_FIELDS, SEED_BASE, ExperimentConfig
from fembed_jax.estimate import queue_eta
from fembed_jax.liveness import owner_pid, shown_state

NOT_QUEUED = "not queued"
# "stalled" and "interrupted" are running rows as fembed_jax.liveness judges their owner
# (interrupted is also a pending row with epochs trained: a stopped run). The order is also the Queue's: what needs a look (running, then what stopped) before the rest.
QUEUE_STATES = ("running", "stalled", "interrupted", "failed", "pending", "done", "skipped", NOT_QUEUED)
UNFINISHED = ("running", "stalled", "interrupted", "failed", "pending")  # queued, no result of it yet
LEGACY_COPY = "#legacy"  # row key suffix of a legacy record kept beside a fembed result


@dataclasses.dataclass(frozen=True)
class Reported:
    """A fembed result as `fembed report` judges it, by the report's own code (tui/reported.py
    runs it in the poll thread): what it is compared with, and its seed ensemble's AUC and
    PR-AUC on the report windows with their bootstrap 95% intervals."""

    protocol: str | None  # report.collect.protocol_flag: None under the report's selection protocol
    data: tuple | None  # report.data_identity.record_data_key: None when the record does not say
    scored: bool = False  # False: the intervals are not computed yet (a later poll brings them)
    auc: Mapping[str, Any] | None = None  # stats' ensemble_auc {"auc", "low", "high"}; None: no predictions
    pr_auc: Mapping[str, Any] | None = None  # stats' ensemble_pr_auc {"pr_auc", "low", "high"}


@dataclasses.dataclass(frozen=True)
class StoreSnapshot:
    """One poll of the run store (fembed_jax.store.RunStore), as plain data."""

    path: pathlib.Path
    exists: bool
    experiments: tuple[dict, ...] = ()  # queue rows; "config" holds the parsed config_json
    results: tuple[dict, ...] = ()  # summary columns, legacy, current (no record)
    records: Mapping[str, dict] = dataclasses.field(default_factory=dict)  # exp_id -> record
    epochs: Mapping[str, tuple[dict, ...]] = dataclasses.field(default_factory=dict)
    error: str | None = None
    # outputs/legacy/<ID>.json (fembed_jax.legacy.legacy_copies): the store keeps one result per
    # id, so a legacy record that a fembed result superseded is only there.
    legacy_copies: Mapping[str, dict] = dataclasses.field(default_factory=dict)
    # owner (host:pid:token) -> its latest machine sample (fembed_jax.resources.sample keys,
    # plus "epoch", "recorded_at" and "source": "live" when this host sampled the runner now,
    # "store" when the runner recorded it); see machine_samples_of
    machine: Mapping[str, dict] = dataclasses.field(default_factory=dict)
    logs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # exp_id -> logtail.LogLines
    # run hash -> the estimate a run or dry run remembered on this machine (the "runs" of
    # fembed_jax.estimate's cache): the time of what has not started, and of what has no pace yet
    estimates: Mapping[str, dict] = dataclasses.field(default_factory=dict)
    # exp_id -> Reported, for the fembed results (not the legacy ones)
    reported: Mapping[str, Reported] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """An experiment as the TUI lists it: identity plus the config fields the tables show."""

    exp_id: str
    priority: str | None
    tier: str | None
    d_embed: int | None
    loss: str | None
    embedding: str | None
    epochs: int | None
    seeds: int | None
    description: str
    config: ExperimentConfig | None  # the queued config if the store has one, else the registry's
    registered: ExperimentConfig | None  # the registry's config (None: not in the registry)


@dataclasses.dataclass(frozen=True)
class Progress:
    """Training progress of a running experiment. ``eta_s`` assumes no seed stops early."""

    epochs_done: int
    epochs_max: int
    seeds_active: int
    seeds_total: int
    elapsed_s: float | None
    eta_s: float | None
    best_auc: float | None = None  # best val AUC of any seed so far (this config)
    # Why eta_s is None while it runs: "compiling" (no epoch of this attempt yet: the first
    # one compiles the program) or "timing" (one epoch: its time includes the compile).
    eta_note: str = ""

    @property
    def compiling(self) -> bool:
        return self.eta_note == "compiling"


@dataclasses.dataclass(frozen=True)
class QueueSummary:
    """The queued experiments in scope as one line: how far the queue is, and roughly how long
    what is left takes (``eta_s`` None: nothing to extrapolate from, or nothing runs)."""

    done: int
    failed: int
    queued: int  # in the store (not "not queued")
    left: int  # running, stalled, interrupted or pending
    eta_s: float | None
    running: int = 0  # running or stalled (a runner is at work)
    eta_note: str = ""  # "compiling" / "timing": a running experiment has no pace yet
    estimated_s: float | None = None  # what is left by the remembered estimates alone (all known)


@dataclasses.dataclass(frozen=True)
class QueueRow:
    exp: Experiment
    state: str
    attempts: int
    epochs_run: int
    progress: Progress | None
    note: str  # the error of a failed experiment, the owner of a running one
    legacy_result: bool
    # time left by the estimate remembered for its run hash (fembed_jax.estimate.queue_eta);
    # None: not left, or no estimate of it on this machine
    estimate_s: float | None = None


@dataclasses.dataclass(frozen=True)
class ResultRow:
    exp: Experiment
    params: int | None
    precision_mean: float | None
    precision_std: float | None
    tp_total: int | None
    pred_pos_total: int | None
    recall_mean: float | None
    auc_mean: float | None
    auc_std: float | None
    collapsed: bool | None
    epochs: int | None
    seconds: float | None
    legacy: bool
    current: bool | None  # False: the result is of an older config than the one queued now
    seeds: int | None = None  # seeds the result is a mean of (a legacy record: one)
    copy: bool = False  # a legacy record kept in outputs/legacy/ beside the store's fembed result
    reported: Reported | None = None  # a fembed result as the report judges it (None: legacy, or not polled)

    @property
    def ensemble_auc(self) -> float | None:
        return _point(self.reported.auc if self.reported else None, "auc")

    @property
    def ensemble_pr_auc(self) -> float | None:
        return _point(self.reported.pr_auc if self.reported else None, "pr_auc")

    @property
    def key(self) -> str:
        """The row's key in the Results table: the id, or id#legacy for a kept legacy copy."""
        return self.exp.exp_id + LEGACY_COPY if self.copy else self.exp.exp_id

    def filter_item(self, state: str) -> dict[str, object]:
        return _filter_item(self.exp, "legacy" if self.legacy else state)


def _point(interval: Mapping[str, Any] | None, key: str) -> float | None:
    return None if interval is None else interval.get(key)


def exp_id_of(key: str) -> str:
    """The experiment of a table row key (a kept legacy copy's key names its experiment)."""
    return key[: -len(LEGACY_COPY)] if key.endswith(LEGACY_COPY) else key


def config_from_json(data: Mapping[str, Any]) -> ExperimentConfig | None:
    """An ExperimentConfig from the store's config_json, or None if it does not fit one."""
    try:
        return ExperimentConfig(**{k: v for k, v in data.items() if k in CONFIG_FIELDS})
    except (TypeError, ValueError):
        return None


def parse_config_json(text: str | None) -> dict:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def experiments(registry_configs: Sequence[ExperimentConfig], snap: StoreSnapshot) -> dict[str, Experiment]:
    """Every experiment the registry or the store knows, registry order first."""
    registered = {cfg.exp_id: cfg for cfg in registry_configs}
    queued = {row["exp_id"]: row for row in snap.experiments}
    out: dict[str, Experiment] = {}
    for exp_id in [*registered, *(e for e in queued if e not in registered),
                   *(r["exp_id"] for r in snap.results if r["exp_id"] not in registered)]:
        if exp_id in out:
            continue
        row = queued.get(exp_id)
        cfg = config_from_json(row.get("config") or {}) if row else None
        cfg = cfg or registered.get(exp_id)
        if cfg is not None:
            out[exp_id] = Experiment(exp_id, cfg.priority, cfg.tier, cfg.d_embed, cfg.loss, cfg.embedding,
                                     cfg.epochs, cfg.seeds, cfg.description, cfg, registered.get(exp_id))
        else:  # a legacy result of an experiment no registry defines: what its record says
            out[exp_id] = _from_record(exp_id, row, snap.records.get(exp_id) or {})
    return out


def _from_record(exp_id: str, row: Mapping | None, record: Mapping) -> Experiment:
    loss = record.get("loss_function") if isinstance(record.get("loss_function"), Mapping) else {}
    emb = record.get("embedding") if isinstance(record.get("embedding"), Mapping) else {}
    hyper = record.get("hyperparameters") if isinstance(record.get("hyperparameters"), Mapping) else {}
    d_embed = record.get("d_embed")
    return Experiment(
        exp_id, record.get("priority") or (row or {}).get("priority"), record.get("tier") or (row or {}).get("tier"),
        d_embed, loss.get("loss_fn", "bce" if record else None),
        emb.get("type") or (("linear" if d_embed else "none") if record else None),
        hyper.get("epochs"), len(record.get("seeds") or []) or None, str(record.get("description") or ""),
        None, None)


def _filter_item(exp: Experiment, state: str) -> dict[str, object]:
    return {"exp_id": exp.exp_id, "priority": exp.priority, "tier": exp.tier, "loss": exp.loss,
            "embedding": exp.embedding, "state": state}


def progress(row: Mapping[str, Any], exp: Experiment, epoch_rows: Sequence[Mapping[str, Any]],
             now: float) -> Progress:
    """Epoch e/max, seeds still training, elapsed time and an ETA at the current epoch rate.

    The rate counts only the epochs of the current attempt (a resumed run's earlier epochs were
    timed by another process), and never the attempt's first epoch, which also pays for
    compiling the program: from two epochs on it is the time between the first and the last
    epoch recorded over the epochs between them. Before that the ETA is None, with
    ``eta_note`` "compiling" (the first epoch is running) or "timing" (the second is).
    ETA = rate * (max epochs - done).
    """
    seeds_total = exp.seeds or len({r["seed"] for r in epoch_rows}) or 0
    epochs_done = len({r["epoch"] for r in epoch_rows}) or int(row.get("epochs_run") or 0)
    epochs_max = max(exp.epochs or 0, epochs_done)
    if epoch_rows:
        last = max(r["epoch"] for r in epoch_rows)
        seeds_active = sum(1 for r in epoch_rows if r["epoch"] == last and r.get("active"))
    else:
        seeds_active = seeds_total
    started = row.get("started_at")
    elapsed = max(0.0, now - started) if started else None
    eta, note = None, ""
    attempt = row.get("attempts")
    this_attempt = [r for r in epoch_rows if r.get("attempt") == attempt]
    if seeds_active and epochs_done < epochs_max:
        finished = sorted({r["epoch"]: r["recorded_at"] for r in this_attempt}.values())
        if len(finished) >= 2:
            rate = (finished[-1] - finished[0]) / (len(finished) - 1)
            eta = max(0.0, rate) * (epochs_max - epochs_done)
        else:
            note = "timing" if finished else "compiling"
    else:  # every seed stopped, or the last epoch is recorded: only the wrap-up is left
        eta = 0.0
    aucs = [r["val_auc"] for r in epoch_rows if r.get("val_auc") is not None]
    return Progress(epochs_done, epochs_max, seeds_active, seeds_total, elapsed, eta,
                    max(aucs) if aucs else None, note)


def queue_rows(exps: Mapping[str, Experiment], snap: StoreSnapshot, now: float) -> list[QueueRow]:
    queued = {row["exp_id"]: row for row in snap.experiments}
    legacy = {r["exp_id"] for r in snap.results if r.get("legacy")} | set(snap.legacy_copies)
    shown = {exp_id: shown_state(row, now) for exp_id, row in queued.items()}
    last_epoch_at = {exp_id: max(r["recorded_at"] for r in rows)
                     for exp_id, rows in snap.epochs.items() if rows}
    estimates = queue_eta([dict(row, shown_state=shown[exp_id][0]) for exp_id, row in queued.items()],
                          last_epoch_at=last_epoch_at, now=now, cache={"runs": snap.estimates}).per_row
    rows = []
    for exp_id, exp in exps.items():
        row = queued.get(exp_id)
        if row is None:
            rows.append(QueueRow(exp, NOT_QUEUED, 0, 0, None, "", exp_id in legacy))
            continue
        state, note = shown[exp_id]
        prog = progress(row, exp, snap.epochs.get(exp_id, ()), now) if state in ("running", "stalled") else None
        if state == "failed":
            note = row.get("error") or ""
        elif state == "running":
            note = row.get("claimed_by") or ""
        rows.append(QueueRow(exp, state, int(row.get("attempts") or 0), int(row.get("epochs_run") or 0),
                             prog, note, exp_id in legacy, estimates.get(exp_id)))
    # By state in QUEUE_STATES order, registry order within a state (a stable sort): a running
    # experiment is at the top, not row 47 of 183 among the "not queued" ones.
    rows.sort(key=lambda r: QUEUE_STATES.index(r.state) if r.state in QUEUE_STATES else len(QUEUE_STATES))
    return rows


def queue_summary(rows: Sequence[QueueRow], results: Sequence[ResultRow]) -> QueueSummary:
    """Done/queued of ``rows`` and an ETA for the rest of the queue, while something runs.

    What is left is each running experiment's own ETA (its pace; before it has one, the estimate
    remembered for its run) plus each pending or interrupted one's estimate. An experiment with
    no estimate counts as the mean training time of the finished experiments in ``results``
    (fembed results of the current config); before any has finished, as the running ones'
    projected total time (elapsed + ETA).
    """
    queued = [r for r in rows if r.state != NOT_QUEUED]
    count = lambda *states: sum(1 for r in queued if r.state in states)  # noqa: E731
    running = [r for r in queued if r.state in ("running", "stalled") and r.progress is not None]
    running_left = [r.progress.eta_s if r.progress.eta_s is not None else r.estimate_s for r in running]
    waiting = [r for r in queued if r.state in ("pending", "interrupted")]
    eta = None
    if running and all(left is not None for left in running_left):
        ids = {r.exp.exp_id for r in queued if r.state == "done"}
        times = [r.seconds for r in results
                 if r.exp.exp_id in ids and not r.legacy and r.current is not False and r.seconds]
        if not times:
            times = [r.progress.elapsed_s + left for r, left in zip(running, running_left)
                     if r.progress.elapsed_s is not None]
        typical = sum(times) / len(times) if times else None
        waits = [r.estimate_s if r.estimate_s is not None else typical for r in waiting]
        if all(w is not None for w in waits):
            eta = sum(running_left) + sum(waits)
    notes = {r.progress.eta_note for r in running}
    note = next((n for n in ("compiling", "timing") if n in notes), "") if eta is None else ""
    left = [r.estimate_s for r in queued if r.state in ("running", "stalled", "interrupted", "pending")]
    estimated = sum(left) if left and all(v is not None for v in left) else None
    return QueueSummary(count("done"), count("failed"), len(queued), len(left), eta, len(running), note,
                        estimated)


def queue_filter_item(row: QueueRow) -> dict[str, object]:
    return _filter_item(row.exp, row.state)


def result_rows(exps: Mapping[str, Experiment], snap: StoreSnapshot) -> list[ResultRow]:
    """The store's results, then each kept legacy copy whose experiment's stored result is a
    fembed one (or gone): FE-68's original beside FE-68's fembed result."""
    rows = []
    legacy_in_store = set()
    for r in snap.results:
        exp = exps.get(r["exp_id"]) or _from_record(r["exp_id"], None, snap.records.get(r["exp_id"]) or {})
        record = snap.records.get(r["exp_id"]) or {}
        if r.get("legacy"):
            legacy_in_store.add(r["exp_id"])
        rows.append(ResultRow(
            exp, _params(record), r.get("precision_mean"), r.get("precision_std"), r.get("tp_total"),
            r.get("pred_pos_total"), r.get("recall_mean"), r.get("auc_mean"), r.get("auc_std"),
            r.get("collapsed"), r.get("epochs"), r.get("seconds"), bool(r.get("legacy")), r.get("current"),
            _seed_count(record, bool(r.get("legacy"))),
            reported=None if r.get("legacy") else snap.reported.get(r["exp_id"])))
    for exp_id, record in sorted(snap.legacy_copies.items()):
        if exp_id not in legacy_in_store:
            rows.append(legacy_copy_row(exps.get(exp_id) or _from_record(exp_id, None, record), record))
    return rows


def legacy_copy_row(exp: Experiment, record: Mapping[str, Any]) -> ResultRow:
    """A ResultRow of a legacy record from outputs/legacy/ (its summary has the store's columns)."""
    summary = record.get("summary") if isinstance(record.get("summary"), Mapping) else {}
    seconds = summary.get("seconds")
    return ResultRow(
        exp, _params(record), summary.get("precision_mean"), None, summary.get("tp_total"),
        summary.get("pred_pos_total"), summary.get("recall_mean"), summary.get("auc_mean"), None,
        summary.get("collapsed"), None, seconds if isinstance(seconds, (int, float)) else None,
        True, None, 1, copy=True)


def _params(record: Mapping[str, Any]) -> int | None:
    params = record.get("parameters") if isinstance(record.get("parameters"), Mapping) else {}
    return params.get("actual")


def _seed_count(record: Mapping[str, Any], legacy: bool) -> int | None:
    if legacy:
        return 1  # the original trained one seed
    seeds = record.get("seeds") or record.get("val_metrics_per_seed")
    return len(seeds) if isinstance(seeds, list) else None


# -- sorting and "best" --------------------------------------------------------------------------

# Result columns: key, header, sort key, which end is best (None: no best).
RESULT_COLUMNS: tuple[tuple[str, str, Any, str | None], ...] = (
    # Metrics right after the id: at 80 columns they are what fits without scrolling.
    ("id", "id", lambda r: r.exp.exp_id, None),
    ("precision", "precision", lambda r: r.precision_mean, "max"),
    ("tp", "TP/pred+", lambda r: r.tp_total, None),
    ("recall", "recall", lambda r: r.recall_mean, "max"),
    ("auc", "AUC", lambda r: r.auc_mean, "max"),
    # The seed ensemble on the report windows, as `fembed report` has it (Reported).
    ("auc_ci", "AUC (95% CI)", lambda r: r.ensemble_auc, "max"),
    ("pr_auc", "PR-AUC (95% CI)", lambda r: r.ensemble_pr_auc, "max"),
    ("collapse", "collapse", lambda r: r.collapsed, None),
    ("epochs", "epochs", lambda r: r.epochs, None),
    ("time", "time", lambda r: r.seconds, None),
    ("priority", "priority", lambda r: _priority_key(r.exp.priority), None),
    ("tier", "tier", lambda r: _tier_key(r.exp.tier), None),
    ("d_embed", "d_embed", lambda r: r.exp.d_embed, None),
    ("loss", "loss", lambda r: r.exp.loss, None),
    ("embedding", "embedding", lambda r: r.exp.embedding, None),
    ("params", "params", lambda r: r.params, None),
)
RESULT_COLUMN_KEYS = tuple(c[0] for c in RESULT_COLUMNS)
_SORT_KEY = {c[0]: c[2] for c in RESULT_COLUMNS}
BEST = {c[0]: c[3] for c in RESULT_COLUMNS if c[3]}


def sort_results(rows: Sequence[ResultRow], column: str | None, descending: bool) -> list[ResultRow]:
    """Rows ordered by ``column``; missing values last in either direction; ties by id."""
    if column is None:
        return list(rows)
    key = _SORT_KEY[column]
    present = [r for r in rows if key(r) is not None]
    missing = [r for r in rows if key(r) is None]
    present.sort(key=lambda r: (r.exp.exp_id, r.copy))
    present.sort(key=key, reverse=descending)
    return present + missing


def rankable(row: ResultRow) -> bool:
    """Can ``row`` be "best"? Not a collapsed model (predicting almost nothing positive can show
    a perfect precision by luck), nor a one-seed result: a legacy 6/10 is one draw, not a mean."""
    return not row.collapsed and not row.legacy and (row.seeds is None or row.seeds > 1)


def comparable(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """The rankable rows that are like with like, as the report ranks them: selected under the
    report's protocol (a result selected on the windows it is scored on carries that optimism)
    and on the data most of them share (one on other data is scored on other days). The
    report's own rules say what the protocol and the data of a record are (Reported:
    report.collect.protocol_flag, report.data_identity.record_data_key). A record that does not
    name its data counts as of any (as in the report); a row not judged yet (no Reported) counts."""
    healthy = [r for r in rows if rankable(r) and (r.reported is None or r.reported.protocol is None)]
    datas = collections.Counter(r.reported.data for r in healthy
                                if r.reported is not None and r.reported.data is not None).most_common(1)
    data = datas[0][0] if datas else None
    return [r for r in healthy if r.reported is None or r.reported.data in (None, data)]


def best_ids(rows: Sequence[ResultRow]) -> dict[str, set[str]]:
    """Per column with a best end, the row keys of the best comparable rows."""
    out: dict[str, set[str]] = {}
    healthy = comparable(rows)
    for column, end in BEST.items():
        values = [(_SORT_KEY[column](r), r.key) for r in healthy if _SORT_KEY[column](r) is not None]
        if values:
            target = (max if end == "max" else min)(v for v, _ in values)
            out[column] = {exp_id for v, exp_id in values if v == target}
    return out


def _priority_key(priority: str | None) -> tuple | None:
    """P2 before P10, FE priorities before LF-/AE-."""
    if priority is None:
        return None
    family, _, number = priority.rpartition("P")
    return (family, int(number) if number.isdigit() else 0)


def _tier_key(tier: str | None) -> tuple | None:
    if tier is None:
        return None
    digits = "".join(ch for ch in tier if ch.isdigit())
    return (int(digits) if digits else 0, tier)


# -- the detail view -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Curves:
    """Per seed label: val AUC, val loss and train loss per epoch (None where the seed did not
    train)."""

    val_auc: Mapping[str, list[float | None]]
    val_loss: Mapping[str, list[float | None]]
    train_loss: Mapping[str, list[float | None]] = dataclasses.field(default_factory=dict)

    def metric(self, name: str) -> Mapping[str, list[float | None]]:
        return {"val_auc": self.val_auc, "val_loss": self.val_loss, "train_loss": self.train_loss}[name]


CURVE_METRICS = ("val_auc", "val_loss", "train_loss")


def curves(epoch_rows: Sequence[Mapping[str, Any]], record: Mapping[str, Any] | None) -> Curves:
    """From the store's per-epoch rows, else from the record's history (older runs)."""
    label = lambda k: f"seed {seed_value(k, record)}"  # noqa: E731
    out: dict[str, dict[str, list]] = {m: {} for m in CURVE_METRICS}
    if epoch_rows:
        n = max(r["epoch"] for r in epoch_rows) + 1
        for r in epoch_rows:
            name = label(int(r["seed"]))
            for m in CURVE_METRICS:
                out[m].setdefault(name, [None] * n)[r["epoch"]] = r.get(m)
    else:
        for h in (record or {}).get("history") or []:
            trained = h.get("trained") or []
            for k, flag in enumerate(trained):
                name = label(k)
                for m in CURVE_METRICS:
                    out[m].setdefault(name, []).append(_at(h.get(m), k) if flag else None)
    ordered = {m: dict(sorted(series.items(), key=lambda kv: _seed_order(kv[0]))) for m, series in out.items()}
    return Curves(ordered["val_auc"], ordered["val_loss"], ordered["train_loss"])


def mean_curve(series: Mapping[str, Sequence[float | None]]) -> list[float | None]:
    """Per epoch, the mean over the seeds that have a value there (None where none has)."""
    n = max((len(v) for v in series.values()), default=0)
    out: list[float | None] = []
    for i in range(n):
        values = [v[i] for v in series.values() if i < len(v) and v[i] is not None]
        out.append(sum(values) / len(values) if values else None)
    return out


def shared_range(series: Mapping[str, Sequence[float | None]] | Sequence[Sequence[float | None]],
                 pad: float = 0.05) -> tuple[float, float] | None:
    """One y-range that covers every value of every series (a margin of ``pad`` of the span on
    each side; a flat curve gets a small span around its value); None without values."""
    lines = series.values() if isinstance(series, Mapping) else series
    values = [float(v) for line in lines for v in line if v is not None and math.isfinite(v)]
    if not values:
        return None
    lo, hi = min(values), max(values)
    span = hi - lo
    if span <= 0:
        span = max(abs(lo) * 0.02, 1e-3)
        return lo - span, hi + span
    return lo - pad * span, hi + pad * span


def downsample(values: Sequence[float | None], max_points: int) -> tuple[list[float], list[float]]:
    """(x, y) to plot, x the 1-based epoch: every epoch with a value, or, past ``max_points``
    epochs, the mean of each of ``max_points`` equal runs of epochs (a plot cannot show more
    points than it has cells; this keeps 5,000 epochs as cheap to draw as 100)."""
    points = [(i + 1.0, float(v)) for i, v in enumerate(values) if v is not None]
    max_points = max(1, int(max_points))
    if len(values) <= max_points:
        return [x for x, _ in points], [y for _, y in points]
    xs, ys = [], []
    per = len(values) / max_points
    buckets: dict[int, list[tuple[float, float]]] = {}
    for x, y in points:
        buckets.setdefault(min(max_points - 1, int((x - 1) / per)), []).append((x, y))
    for _, bucket in sorted(buckets.items()):
        xs.append(sum(x for x, _ in bucket) / len(bucket))
        ys.append(sum(y for _, y in bucket) / len(bucket))
    return xs, ys


def best_point(series: Mapping[str, Sequence[float | None]], higher_is_better: bool) -> tuple[str, int, float] | None:
    """(seed label, 1-based epoch, value) of the best value over all series."""
    best = None
    for name, values in series.items():
        for i, v in enumerate(values):
            if v is None:
                continue
            if best is None or (v > best[2] if higher_is_better else v < best[2]):
                best = (name, i + 1, float(v))
    return best


def seed_value(k: int, record: Mapping[str, Any] | None = None) -> int:
    """The seed of index ``k`` (the store keys epoch rows by index): the record's, else the
    runner's rule SEED_BASE + k."""
    seeds = list((record or {}).get("seeds") or [])
    return int(seeds[k]) if k < len(seeds) else SEED_BASE + k


def _at(values: Any, k: int) -> float | None:
    return values[k] if isinstance(values, list) and k < len(values) else None


def _seed_order(label: str) -> int:
    digits = "".join(ch for ch in label if ch.isdigit())
    return int(digits) if digits else 0


def per_seed(record: Mapping[str, Any] | None) -> list[dict]:
    """The record's per-seed validation metrics (a legacy record: its one val_metrics)."""
    if not record:
        return []
    rows = record.get("val_metrics_per_seed")
    if isinstance(rows, list) and rows:
        return [dict(r) for r in rows if isinstance(r, Mapping)]
    val = record.get("val_metrics")
    if not isinstance(val, Mapping):
        return []
    row = dict(val, seed=None)
    if row.get("true_positives") is None and row.get("precision") is not None and row.get("n_positive_preds"):
        # The original did not record TP; precision * predicted positives gives it back.
        row["true_positives"] = round(float(row["precision"]) * float(row["n_positive_preds"]))
    return [row]


# -- the machine header --------------------------------------------------------------------------

def machine_samples_of(store: Any, exp_id: str, last: int | None = None) -> list[dict]:
    """The machine samples the runner recorded for ``exp_id`` (the newest ``last`` when given),
    oldest first, through ``RunStore.machine_samples`` (each: fembed_jax.resources.sample's keys
    plus "epoch" and "recorded_at"); [] on a failed read."""
    try:
        rows = store.machine_samples(exp_id, last=last)
    except Exception:  # noqa: BLE001 - a half-migrated or damaged store: no header, no crash
        return []
    return [dict(r) for r in rows or () if isinstance(r, Mapping)]


def latest_machine_sample(store: Any, exp_ids: Sequence[str]) -> dict | None:
    """The newest recorded sample among ``exp_ids`` (one runner's experiments), or None."""
    latest = None
    for exp_id in exp_ids:
        for sample in machine_samples_of(store, exp_id, last=1):
            stamp = (sample.get("recorded_at") or 0.0, sample.get("epoch") or 0)
            if latest is None or stamp > latest[0]:
                latest = (stamp, dict(sample, exp_id=exp_id, source="store"))
    return latest[1] if latest else None


def local_pid(owner: str | None) -> int | None:
    """The pid of a runner ``host:pid:token`` on this host (one this process can sample)."""
    return owner_pid(owner)


def _megabytes(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def machine_text(sample: Mapping[str, Any] | None) -> str:
    """"CPU 187% · RSS 1.2 GB · GPU 43% 10.0 GB" from a sample; what is unknown is left out."""
    if not sample:
        return ""
    parts = []
    if sample.get("cpu_percent") is not None:
        parts.append(f"CPU {sample['cpu_percent']:.0f}%")
    if sample.get("rss_mb") is not None:
        parts.append(f"RSS {_megabytes(sample['rss_mb'])}")
    gpu = [f"{sample['gpu_util_percent']:.0f}%" if sample.get("gpu_util_percent") is not None else "",
           _megabytes(sample["gpu_mem_mb"]) if sample.get("gpu_mem_mb") is not None else ""]
    if any(gpu):
        parts.append("GPU " + " ".join(g for g in gpu if g))
    return " · ".join(parts)


def machine_line(rows: Sequence[QueueRow], snap: StoreSnapshot, now: float, masked: bool) -> str:
    """The header line: per runner at work on the running ``rows``, its experiments (marked
    "compiling" while their first epoch runs) and its CPU, RSS and GPU use; "" when there is
    nothing to say (nothing runs, no sample and nothing compiling)."""
    owners = {row["exp_id"]: row.get("claimed_by") for row in snap.experiments}
    groups: dict[str, list[QueueRow]] = {}
    for row in rows:
        if row.state in ("running", "stalled") and row.progress is not None:
            groups.setdefault(owners.get(row.exp.exp_id) or "", []).append(row)
    parts = []
    for owner, members in groups.items():
        sample = snap.machine.get(owner) if owner else None
        compiling = [r.exp.exp_id for r in members if r.progress is not None and r.progress.compiling]
        text = machine_text(sample)
        if not text and not compiling:
            continue
        ids = ", ".join(r.exp.exp_id for r in members[:3]) + (f" +{len(members) - 3}" if len(members) > 3 else "")
        pieces = [f"[b]{ids}[/b]"]
        if compiling:
            pieces.append("[b yellow]compiling[/] (first epoch)")
        if text:
            pid = owner.rsplit(":", 2)[1] if owner.count(":") >= 2 else owner
            where = f"pid {pid}" if local_pid(owner) else owner.rsplit(":", 1)[0]
            when = ""
            if sample and sample.get("source") == "store" and not masked:
                age = now - float(sample.get("recorded_at") or now)
                epoch = sample.get("epoch")
                when = f" (epoch {int(epoch) + 1}, {max(0, age):.0f}s ago)" if epoch is not None else f" ({max(0, age):.0f}s ago)"
            pieces.append(f"runner {where}: {text}{when}")
        parts.append(" · ".join(pieces))
    return " │ ".join(parts)
