"""Per-epoch metrics: one row per (experiment, run hash, epoch, seed). Epochs are 0-based."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fembed_jax import faults
from fembed_jax.store.db import StoreBase, finite_or_none, row_dict

__all__ = ["EpochStore"]


class EpochStore(StoreBase):
    """Recording, truncating and reading epoch rows."""

    def record_epoch(
        self,
        exp_id: str,
        run_hash: str,
        epoch: int,
        rows: Iterable[Mapping[str, Any]],
        *,
        attempt: int | None = None,
    ) -> None:
        """Upsert one epoch's metrics, one row per seed.

        Each row: ``seed`` (required), ``train_loss``, ``val_loss``, ``val_auc`` (None or NaN
        stored as NULL), ``active`` (seed still training), ``is_best`` (this epoch is the
        seed's best so far). A resumed run re-recording an epoch overwrites it. ``attempt``
        defaults to the experiment's current attempt count.
        """
        if epoch < 0:
            raise ValueError(f"experiment {exp_id}: epoch must be >= 0, got {epoch}")
        now = self._clock()
        values = []
        for row in rows:
            if "seed" not in row:
                raise ValueError(f"experiment {exp_id} epoch {epoch}: metrics row without 'seed': {dict(row)!r:.120}")
            values.append(
                (
                    int(row["seed"]),
                    finite_or_none(row.get("train_loss")),
                    finite_or_none(row.get("val_loss")),
                    finite_or_none(row.get("val_auc")),
                    int(bool(row.get("active", True))),
                    int(bool(row.get("is_best", False))),
                )
            )
        with self._write() as db:
            if attempt is None:
                found = db.execute("SELECT attempts FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
                attempt = int(found[0]) if found else 0
            db.executemany(
                "INSERT INTO epochs (exp_id, run_hash, epoch, seed, attempt, train_loss, val_loss,"
                " val_auc, active, is_best, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (exp_id, run_hash, epoch, seed) DO UPDATE SET"
                " attempt = excluded.attempt, train_loss = excluded.train_loss,"
                " val_loss = excluded.val_loss, val_auc = excluded.val_auc, active = excluded.active,"
                " is_best = excluded.is_best, recorded_at = excluded.recorded_at",
                [(exp_id, run_hash, epoch, seed, attempt, *rest, now) for seed, *rest in values],
            )
            db.execute(
                "UPDATE experiments SET updated_at = ?, epochs_run = (SELECT COUNT(DISTINCT epoch)"
                " FROM epochs WHERE exp_id = ? AND run_hash = ?) WHERE exp_id = ? AND run_hash = ?",
                (now, exp_id, run_hash, exp_id, run_hash),
            )
            faults.hit("store.record_epoch")

    def truncate_epochs(self, exp_id: str, run_hash: str, after_epoch: int) -> int:
        """Delete epochs later than ``after_epoch`` (call when resuming from that checkpoint:
        epochs a crashed attempt recorded past its last checkpoint are re-run). Returns rows deleted."""
        now = self._clock()
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM epochs WHERE exp_id = ? AND run_hash = ? AND epoch > ?",
                (exp_id, run_hash, after_epoch),
            )
            db.execute(
                "UPDATE experiments SET updated_at = ?, epochs_run = (SELECT COUNT(DISTINCT epoch)"
                " FROM epochs WHERE exp_id = ? AND run_hash = ?) WHERE exp_id = ? AND run_hash = ?",
                (now, exp_id, run_hash, exp_id, run_hash),
            )
            return cursor.rowcount

    def epochs(self, exp_id: str, run_hash: str | None = None) -> list[dict[str, Any]]:
        """Per-seed epoch rows of ``exp_id`` ordered by (epoch, seed), for ``run_hash``
        (default: the queue's current hash; every hash if the experiment is not queued)."""
        with self._read() as db:
            if run_hash is None:
                found = db.execute("SELECT run_hash FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
                run_hash = None if found is None else found[0]
            if run_hash is None:
                rows = db.execute("SELECT * FROM epochs WHERE exp_id = ? ORDER BY epoch, seed", (exp_id,)).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM epochs WHERE exp_id = ? AND run_hash = ? ORDER BY epoch, seed",
                    (exp_id, run_hash),
                ).fetchall()
        return [row_dict(row) for row in rows]
