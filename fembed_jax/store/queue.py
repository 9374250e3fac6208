"""The queue: one row per experiment, claimed by one runner at a time, with a heartbeat.

State machine of ``experiments.state`` (every transition one ``BEGIN IMMEDIATE`` transaction,
so the read-then-update of a claim is atomic across processes)::

    pending --claim--> running --record_result--> done
                          |--release(pending)--> pending      (interrupted, will resume)
                          |--mark_failed-------> failed  --claim--> running
                          |--release(skipped)--> skipped
    running with a stale heartbeat (or a dead owner process on this host) --claim--> running
    any --reset--> pending;  done --sync_queue with a new config hash--> pending
    failed, skipped or running with a dead owner --requeue--> pending

Who is dead is fembed_jax.liveness's decision.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fembed_jax import faults
from fembed_jax.liveness import STALE_AFTER_S, judge
from fembed_jax.results_io import to_jsonable
from fembed_jax.store.db import StoreBase, StoreError, row_dict
from fembed_jax.store.results import archive_result
from fembed_jax.store.schema import STATES

__all__ = ["QueueStore", "SyncReport"]

log = logging.getLogger("fembed_jax.store")


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """What ``sync_queue`` did: ids added, ids reset because their config changed, ids kept."""

    added: tuple[str, ...]
    reset: tuple[str, ...]
    unchanged: tuple[str, ...]


def _config_fields(config: Any) -> tuple[str, str | None, str | None, str, str]:
    """(exp_id, priority, tier, run_hash, config_json) of an ExperimentConfig or a mapping."""
    if isinstance(config, Mapping):
        data = dict(config)
        run_hash = data.pop("run_hash", None)
    else:
        # An ExperimentConfig queued directly (tests, tools) is keyed by its config hash; the
        # runner queues mappings carrying the run hash (config + data, train.plan.run_hash).
        run_hash = getattr(config, "config_hash", None)
        if hasattr(config, "to_dict"):
            data = dict(config.to_dict())
        elif dataclasses.is_dataclass(config):
            # Not dataclasses.asdict: it deep-copies and read-only mappings cannot be copied.
            data = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        else:
            raise TypeError(f"cannot queue {type(config).__name__}: expected ExperimentConfig or mapping")
    exp_id = data.get("exp_id")
    if not isinstance(exp_id, str) or not exp_id:
        raise ValueError(f"queued config without an exp_id: {data!r:.120}")
    if not isinstance(run_hash, str) or not run_hash:
        raise ValueError(f"experiment {exp_id}: config has no run_hash")
    config_json = json.dumps(to_jsonable(data), sort_keys=True, allow_nan=False)
    priority = data.get("priority")
    tier = data.get("tier")
    return exp_id, (None if priority is None else str(priority)), (None if tier is None else str(tier)), run_hash, config_json


class QueueStore(StoreBase):
    """The queue's state machine and its readers."""

    def sync_queue(self, configs: Iterable[Any]) -> SyncReport:
        """Make the queue match ``configs`` (ExperimentConfig objects or mappings with
        ``exp_id`` and ``run_hash``), in the given order.

        New experiments become pending. A known experiment whose config hash changed is reset
        to pending whatever its state (its old result no longer describes this config; a
        runner still training the old config loses its claim and sees ``heartbeat`` return
        False). Same hash: state untouched, registry order/priority/tier refreshed.
        Experiments absent from ``configs`` are left as they are.
        """
        rows = [_config_fields(config) for config in configs]
        seen: set[str] = set()
        for exp_id, *_ in rows:
            if exp_id in seen:
                raise ValueError(f"experiment {exp_id} appears twice in the queue")
            seen.add(exp_id)
        added, reset, unchanged = [], [], []
        now = self._clock()
        with self._write() as db:
            known = {
                row["exp_id"]: row["run_hash"]
                for row in db.execute("SELECT exp_id, run_hash FROM experiments")
            }
            for order, (exp_id, priority, tier, run_hash, config_json) in enumerate(rows):
                old_hash = known.get(exp_id)
                if old_hash is None:
                    db.execute(
                        "INSERT INTO experiments (exp_id, queue_order, priority, tier, run_hash,"
                        " config_json, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                        (exp_id, order, priority, tier, run_hash, config_json, now),
                    )
                    added.append(exp_id)
                elif old_hash != run_hash:
                    db.execute(
                        "UPDATE experiments SET queue_order = ?, priority = ?, tier = ?,"
                        " run_hash = ?, config_json = ?, state = 'pending', attempts = 0,"
                        " error = NULL, claimed_by = NULL, heartbeat_at = NULL, started_at = NULL,"
                        " finished_at = NULL, epochs_run = 0, updated_at = ? WHERE exp_id = ?",
                        (order, priority, tier, run_hash, config_json, now, exp_id),
                    )
                    reset.append(exp_id)
                else:
                    db.execute(
                        "UPDATE experiments SET queue_order = ?, priority = ?, tier = ?, config_json = ?"
                        " WHERE exp_id = ?",
                        (order, priority, tier, config_json, exp_id),
                    )
                    unchanged.append(exp_id)
        if reset:
            log.info("run store %s: config changed, reset to pending: %s", self.path, ", ".join(reset))
        return SyncReport(tuple(added), tuple(reset), tuple(unchanged))

    def _claim_verdict(
        self,
        row: sqlite3.Row,
        owner: str,
        now: float,
        stale_after_s: float,
        max_attempts: int | None,
        retry_failed: bool,
    ) -> bool:
        state = row["state"]
        if max_attempts is not None and row["attempts"] >= max_attempts and state != "running":
            return False
        if state == "pending" or (state == "failed" and retry_failed):
            return True
        if state != "running":
            return False
        if row["claimed_by"] == owner:
            return True
        verdict = judge(row["claimed_by"], row["heartbeat_at"], row["started_at"], now, stale_after_s)
        if verdict.dead:
            log.warning("run store %s: %s takes over %s from %s (%s)",
                        self.path, owner, row["exp_id"], row["claimed_by"], verdict.reason)
            return True
        return False

    def _take(self, db: sqlite3.Connection, row: sqlite3.Row, owner: str, now: float) -> None:
        if row["state"] == "running" and row["claimed_by"] == owner:
            db.execute("UPDATE experiments SET heartbeat_at = ?, updated_at = ? WHERE exp_id = ?", (now, now, row["exp_id"]))
            return
        db.execute(
            "UPDATE experiments SET state = 'running', claimed_by = ?, heartbeat_at = ?,"
            " started_at = ?, finished_at = NULL, error = NULL, attempts = attempts + 1,"
            " updated_at = ? WHERE exp_id = ?",
            (owner, now, now, now, row["exp_id"]),
        )

    def claim(
        self,
        exp_id: str,
        owner: str,
        stale_after_s: float = STALE_AFTER_S,
        *,
        max_attempts: int | None = None,
    ) -> bool:
        """Atomically claim ``exp_id`` for ``owner``; True if ``owner`` now holds it.

        Succeeds for pending or failed experiments, for running ones whose heartbeat is older
        than ``stale_after_s`` (or whose owner process on this host is gone), and
        idempotently for the current owner. Counts an attempt. Done/skipped: False.
        """
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
            if row is None:
                raise StoreError(f"run store {self.path}: unknown experiment {exp_id} (sync the queue first)")
            if not self._claim_verdict(row, owner, now, stale_after_s, max_attempts, retry_failed=True):
                return False
            self._take(db, row, owner, now)
            faults.hit("store.claim")
            return True

    def claim_next(
        self,
        owner: str,
        *,
        exp_ids: Sequence[str] | None = None,
        stale_after_s: float = STALE_AFTER_S,
        retry_failed: bool = False,
        max_attempts: int | None = None,
    ) -> str | None:
        """Claim the first claimable experiment in queue order (optionally among ``exp_ids``).

        Failed experiments are retried only with ``retry_failed`` (so a deterministic failure
        cannot loop a runner forever). Returns the claimed id or None.
        """
        now = self._clock()
        wanted = None if exp_ids is None else set(exp_ids)
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM experiments WHERE state IN ('pending', 'failed', 'running')"
                " ORDER BY queue_order, exp_id"
            ).fetchall()
            for row in rows:
                if wanted is not None and row["exp_id"] not in wanted:
                    continue
                if row["state"] == "running" and row["claimed_by"] == owner:
                    continue  # already ours: not "next"
                if self._claim_verdict(row, owner, now, stale_after_s, max_attempts, retry_failed):
                    self._take(db, row, owner, now)
                    return str(row["exp_id"])
        return None

    def heartbeat(self, exp_id: str, owner: str) -> bool:
        """Refresh ``owner``'s claim; False means the claim was lost (taken over or reset)."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE experiments SET heartbeat_at = ?, updated_at = ?"
                " WHERE exp_id = ? AND claimed_by = ? AND state = 'running'",
                (now, now, exp_id, owner),
            )
            return cursor.rowcount == 1

    def release(self, exp_id: str, owner: str, state: str = "pending", error: str | None = None) -> bool:
        """Give up ``owner``'s claim, leaving the experiment in ``state``.

        ``pending``: interrupted, resume later; ``failed`` (with ``error``); ``skipped``.
        (``done`` only through ``record_result``.) False if ``owner`` did not hold the claim.
        """
        if state not in ("pending", "failed", "skipped"):
            raise ValueError(f"release of {exp_id}: state must be pending, failed or skipped, not {state!r}")
        now = self._clock()
        finished = None if state == "pending" else now
        with self._write() as db:
            cursor = db.execute(
                "UPDATE experiments SET state = ?, error = ?, claimed_by = NULL, heartbeat_at = NULL,"
                " finished_at = ?, updated_at = ? WHERE exp_id = ? AND claimed_by = ? AND state = 'running'",
                (state, error, finished, now, exp_id, owner),
            )
            return cursor.rowcount == 1

    def mark_failed(self, exp_id: str, owner: str, error: str) -> bool:
        """``release(exp_id, owner, "failed", error)``."""
        return self.release(exp_id, owner, "failed", error)

    def reset(self, exp_id: str) -> bool:
        """Forget every run of ``exp_id`` (for ``--force``): pending, 0 attempts, no claim,
        epochs and its (non-legacy) result deleted. False if the experiment is unknown."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE experiments SET state = 'pending', attempts = 0, error = NULL, claimed_by = NULL,"
                " heartbeat_at = NULL, started_at = NULL, finished_at = NULL, epochs_run = 0,"
                " updated_at = ? WHERE exp_id = ?",
                (now, exp_id),
            )
            db.execute("DELETE FROM epochs WHERE exp_id = ?", (exp_id,))
            archive_result(db, exp_id, now)
            db.execute("DELETE FROM results WHERE exp_id = ? AND legacy = 0", (exp_id,))
            return cursor.rowcount == 1

    def requeue(self, exp_id: str) -> str:
        """Put a failed, skipped or interrupted (owner dead, fembed_jax.liveness) experiment back
        to pending, keeping its epochs and checkpoints so the next run resumes it. Returns the
        state it had; raises StoreError for one that is done or held by a live runner."""
        with self._write() as db:
            row = db.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
            if row is None:
                raise StoreError(f"{exp_id}: not in the run store {self.path}")
            state = row["state"]
            if state == "running":
                verdict = judge(row["claimed_by"], row["heartbeat_at"], row["started_at"], self._clock())
                if not verdict.dead:
                    raise StoreError(f"{exp_id}: held by the live runner {row['claimed_by']} "
                                     f"({verdict.reason}); stop it first")
                state = "interrupted"
            elif state in ("done", "pending"):
                raise StoreError(f"{exp_id}: {state}; nothing to re-queue"
                                 + (" (fembed run --force trains it again)" if state == "done" else ""))
            db.execute("UPDATE experiments SET state = 'pending', error = NULL, claimed_by = NULL,"
                       " heartbeat_at = NULL, updated_at = ? WHERE exp_id = ?", (self._clock(), exp_id))
            return state

    # -- readers -----------------------------------------------------------------------------

    def experiments(
        self,
        *,
        state: str | Iterable[str] | None = None,
        tier: str | None = None,
        exp_ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Queue rows in registry order, optionally filtered by state(s), tier and ids."""
        where, params = [], []
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            bad = set(states) - set(STATES)
            if bad:
                raise ValueError(f"unknown state(s) {sorted(bad)}; known: {STATES}")
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params += states
        if tier is not None:
            where.append("tier = ?")
            params.append(tier)
        if exp_ids is not None:
            ids = list(exp_ids)
            where.append(f"exp_id IN ({', '.join('?' for _ in ids)})")
            params += ids
        sql = "SELECT * FROM experiments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY queue_order, exp_id"
        with self._lock:
            return [row_dict(row) for row in self._db.execute(sql, params).fetchall()]

    def experiment(self, exp_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
        return None if row is None else row_dict(row)

    def counts(self) -> dict[str, int]:
        """Number of experiments per state (every state present, zeros included)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM experiments GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({state: n for state, n in rows})
        return counts
