"""Reads the run store for the TUI: cheap queries each poll, heavy ones only on change.

Each poll runs a handful of autocommit SELECTs on a read-only connection (WAL: a reader never
blocks the runner's writes). Result records (JSON with per-seed metrics and history) are parsed
once per stored version, epoch rows are re-read only when the experiment's row changed; what
the report says of each result (tui/reported.py) is scored once per stored version, a bounded
time a poll. The poller never creates the store: until outputs/fembed.db exists it reports
``exists=False``.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time
from collections.abc import Callable, Iterable

from fembed_jax import estimate, resources
from fembed_jax.store import RunStore, StoreError

from .logtail import LogTail, run_log_path
from .model import StoreSnapshot, latest_machine_sample, local_pid, parse_config_json
from .reported import BUDGET_S, ReportedResults

LEGACY_DIRNAME = "legacy"  # fembed_jax.legacy.LEGACY_DIRNAME (a test checks): outputs/legacy/<ID>.json
LIVE_SAMPLE_S = 2.0  # a runner on this host is sampled at most this often (nvidia-smi is not free)
MAX_LOG_TAILS = 8  # log files followed at once (the selected experiment's, and a few before it)


class _Reread:
    """What `load(path)` gives, loaded again only when the path's mtime changes: its writers
    replace files by rename, which updates the file's mtime and its folder's. {} while the
    path does not exist."""

    def __init__(self, load: Callable[[pathlib.Path], dict]):
        self._load = load
        self._held: tuple[int, dict] | None = None  # (mtime, value)

    def get(self, path: pathlib.Path) -> dict:
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return {}
        if self._held is None or self._held[0] != stamp:
            self._held = (stamp, self._load(path))
        return self._held[1]


def _load_legacy_copies(folder: pathlib.Path) -> dict[str, dict]:
    from fembed_jax.legacy import legacy_copies  # numpy: paid only where copies exist

    return legacy_copies(folder.parent)


class StorePoller:
    """Polls the store at ``path``; use from one thread at a time (the TUI's poll worker).
    ``report_budget_s``: the time a poll may spend scoring results (ReportedResults)."""

    def __init__(self, path: str | pathlib.Path, report_budget_s: float | None = BUDGET_S):
        self.path = pathlib.Path(path)
        self._reported = ReportedResults(self.path.parent, report_budget_s)
        self._store: RunStore | None = None
        self._configs: dict[tuple[str, str], dict] = {}  # (exp_id, run_hash) -> config
        self._records: dict[str, tuple[float, dict]] = {}  # exp_id -> (recorded_at, record)
        self._epochs: dict[str, tuple[object, tuple[dict, ...]]] = {}  # exp_id -> (version, rows)
        self._copies = _Reread(_load_legacy_copies)  # outputs/legacy/ -> its legacy copies
        self._live: dict[str, tuple[float, dict]] = {}  # owner -> (monotonic time, live sample)
        self._tails: dict[str, LogTail] = {}  # exp_id -> its run.log follower (insertion = age)
        self._estimate_runs = _Reread(lambda path: estimate.load_cache(path)["runs"])
        self.clock = time.monotonic

    def poll(self, watch: Iterable[str] = ()) -> StoreSnapshot:
        """A snapshot with the epoch rows of every running experiment and of ``watch``."""
        if not self.path.exists():
            self.close()
            return StoreSnapshot(self.path, exists=False)
        try:
            if self._store is None:
                self._store = RunStore(self.path, readonly=True)
            return self._read(self._store, set(watch))
        except (sqlite3.Error, StoreError, OSError, ValueError) as exc:
            # A store mid-creation or replaced under us: reconnect on the next poll.
            self.close()
            return StoreSnapshot(self.path, exists=self.path.exists(), error=f"{type(exc).__name__}: {exc}")

    def _read(self, store: RunStore, watch: set[str]) -> StoreSnapshot:
        experiments = []
        for row in store.experiments():
            key = (row["exp_id"], row["run_hash"])
            if key not in self._configs:
                self._configs[key] = parse_config_json(row.get("config_json"))
            row = {k: v for k, v in row.items() if k != "config_json"}
            row["config"] = self._configs[key]
            experiments.append(row)
        results = store.results(with_record=False)
        records = {}
        for r in results:
            cached = self._records.get(r["exp_id"])
            if cached is None or cached[0] != r["recorded_at"]:
                full = store.result(r["exp_id"])
                cached = (r["recorded_at"], full["record"] if full else {})
                self._records[r["exp_id"]] = cached
            records[r["exp_id"]] = cached[1]
        versions = {row["exp_id"]: (row["run_hash"], row["updated_at"]) for row in experiments}
        wanted = {row["exp_id"] for row in experiments if row["state"] == "running"} | watch
        epochs = {}
        for exp_id in sorted(wanted):
            version = versions.get(exp_id, "unqueued")
            cached = self._epochs.get(exp_id)
            if cached is None or cached[0] != version:
                cached = (version, tuple(store.epochs(exp_id)))
                self._epochs[exp_id] = cached
            epochs[exp_id] = cached[1]
        return StoreSnapshot(self.path, True, tuple(experiments), tuple(results), records, epochs,
                             legacy_copies=self._legacy_copies(), machine=self._machine(store, experiments),
                             logs=self._logs(watch), estimates=self._estimates(),
                             reported=self._reported.update(results, records))

    def _machine(self, store: RunStore, experiments: list[dict]) -> dict[str, dict]:
        """Per runner at work, its latest sample: taken here now (at most every LIVE_SAMPLE_S)
        when it runs on this host, else the newest one it recorded in the store."""
        by_owner: dict[str, list[str]] = {}
        for row in experiments:
            if row["state"] == "running" and row.get("claimed_by"):
                by_owner.setdefault(row["claimed_by"], []).append(row["exp_id"])
        out = {}
        for owner, exp_ids in by_owner.items():
            stored = latest_machine_sample(store, exp_ids)
            pid = local_pid(owner)
            if pid is not None:
                now = self.clock()
                cached = self._live.get(owner)
                if cached is None or now - cached[0] >= LIVE_SAMPLE_S:
                    live = resources.sample(pid)
                    cached = (now, dict(live, source="live")) if live.get("rss_mb") is not None else (now, {})
                    self._live[owner] = cached
                if cached[1]:
                    sample = dict(cached[1])
                    if stored:  # GPU figures the live sample lacks: the runner's own (its device)
                        for key in ("gpu_util_percent", "gpu_mem_mb"):
                            if sample.get(key) is None and stored.get(key) is not None:
                                sample[key] = stored[key]
                    out[owner] = sample
                    continue
            if stored:
                out[owner] = stored
        for owner in [o for o in self._live if o not in by_owner]:
            del self._live[owner]
        return out

    def _logs(self, watch: set[str]) -> dict:
        """The run.log tail of each watched experiment (outputs/<ID>/run.log)."""
        out = {}
        for exp_id in sorted(watch):
            tail = self._tails.pop(exp_id, None) or LogTail(run_log_path(self.path.parent, exp_id))
            self._tails[exp_id] = tail  # most recently used last
            out[exp_id] = tail.read()
        while len(self._tails) > MAX_LOG_TAILS:
            del self._tails[next(iter(self._tails))]
        return out

    def _estimates(self) -> dict[str, dict]:
        """The estimates remembered per run hash (fembed_jax.estimate's cache)."""
        return self._estimate_runs.get(estimate.cache_path())

    def _legacy_copies(self) -> dict[str, dict]:
        """The legacy records import-legacy kept in outputs/legacy/."""
        return self._copies.get(self.path.parent / LEGACY_DIRNAME)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
