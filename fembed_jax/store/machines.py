"""Machine samples: what the runner process cost the machine after each epoch of an experiment
(fembed_jax.resources.sample), so a monitor on another host sees it too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fembed_jax.store.db import StoreBase, finite_or_none

__all__ = ["MACHINE_COLUMNS", "MACHINE_SAMPLES_KEPT", "MachineStore"]

# fembed_jax.resources.KEYS as schema 3 spells them (the store does not follow that tuple: its
# columns only change with a migration).
MACHINE_COLUMNS = ("cpu_percent", "rss_mb", "gpu_util_percent", "gpu_mem_mb")
# Samples kept per experiment, the newest: one an epoch, so a week-long run (or one resumed again
# and again) does not grow the store without limit; the monitor shows the latest one only.
MACHINE_SAMPLES_KEPT = 1000
_SINCE_SCHEMA = 3  # the schema version that added machine_samples


class MachineStore(StoreBase):
    """Recording and reading machine samples."""

    def record_machine(
        self,
        exp_id: str,
        epoch: int | None,
        sample: Mapping[str, Any],
        *,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        """Record ``sample`` (MACHINE_COLUMNS; a missing, None or NaN value stored as NULL) taken
        by process ``pid`` on ``host`` after ``epoch`` of ``exp_id``; the oldest samples of
        ``exp_id`` beyond MACHINE_SAMPLES_KEPT are dropped."""
        values = [finite_or_none(sample.get(column)) for column in MACHINE_COLUMNS]
        columns = ", ".join(MACHINE_COLUMNS)
        with self._write() as db:
            db.execute(
                f"INSERT INTO machine_samples (exp_id, epoch, recorded_at, host, pid, {columns})"
                f" VALUES (?, ?, ?, ?, ?{', ?' * len(MACHINE_COLUMNS)})",
                (exp_id, None if epoch is None else int(epoch), self._clock(), host,
                 None if pid is None else int(pid), *values),
            )
            db.execute(
                "DELETE FROM machine_samples WHERE exp_id = ? AND rowid IN (SELECT rowid FROM"
                " machine_samples WHERE exp_id = ? ORDER BY recorded_at DESC, rowid DESC"
                " LIMIT -1 OFFSET ?)",
                (exp_id, exp_id, MACHINE_SAMPLES_KEPT),
            )

    def machine_samples(self, exp_id: str, last: int | None = None) -> list[dict[str, Any]]:
        """The samples of ``exp_id`` (only the newest ``last`` when given), oldest first:
        MACHINE_COLUMNS plus "epoch", "recorded_at", "host" and "pid". [] from a reader of a
        store older than the table."""
        columns = ", ".join(MACHINE_COLUMNS)
        with self._read() as db:
            version = db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()[0]
            if version < _SINCE_SCHEMA:
                return []
            rows = db.execute(
                f"SELECT epoch, recorded_at, host, pid, {columns} FROM machine_samples"
                " WHERE exp_id = ? ORDER BY recorded_at DESC, rowid DESC LIMIT ?",
                (exp_id, -1 if last is None else int(last)),
            ).fetchall()
        return [dict(row) for row in reversed(rows)]
