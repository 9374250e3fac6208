"""Results: the record of every finished experiment (results.json), its sortable summary
columns, and the history of the fembed results that later runs replaced."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from fembed_jax import faults
from fembed_jax.metrics import COLLAPSE_RANGE
from fembed_jax.results_io import dumps
from fembed_jax.store.db import StoreBase, finite_or_none, row_dict

__all__ = ["SUMMARY_COLUMNS", "ResultStore", "archive_result", "summarize_result"]

SUMMARY_COLUMNS = (
    "precision_mean",
    "precision_std",
    "recall_mean",
    "auc_mean",
    "auc_std",
    "tp_total",
    "pred_pos_total",
    "collapsed",
    "epochs",
    "seconds",
    "finished_at",
)
# The columns results and result_history share (result_history adds replaced_at).
_HISTORY_COLUMNS = ("exp_id", "run_hash", "results_json", "precision_mean", "precision_std",
                    "recall_mean", "auc_mean", "auc_std", "tp_total", "pred_pos_total", "collapsed",
                    "epochs", "seconds", "finished_at", "recorded_at")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(round(float(value)))


def _iso_to_unix(value: Any) -> float | None:
    if not isinstance(value, str):
        return finite_or_none(value)
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def summarize_result(
    record: Mapping[str, Any], summary: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The sortable summary columns of a result record.

    Sources, first match wins per column: the explicit ``summary`` argument, the record's own
    top-level ``"summary"`` object (fembed records should carry one with exactly the
    ``SUMMARY_COLUMNS`` keys), then fields of the original's record format (spec §6.2):
    precision/recall/auc from ``val_metrics``, predicted positives ``n_positive_preds``,
    TP = round(precision * n_positive_preds), collapsed = pred_range < 0.1,
    seconds = training_time_min * 60, finished_at from ``timestamp``. Stds stay None for a
    single-seed legacy record.
    """
    unknown = set(summary or ()) - set(SUMMARY_COLUMNS)
    if unknown:
        raise ValueError(f"unknown summary column(s) {sorted(unknown)}; known: {SUMMARY_COLUMNS}")
    given: dict[str, Any] = {}
    embedded = record.get("summary")
    if isinstance(embedded, Mapping):  # extra keys in the record's own summary are ignored
        given.update(embedded)
    given.update(summary or {})

    val = record.get("val_metrics") if isinstance(record.get("val_metrics"), Mapping) else {}
    training = record.get("training") if isinstance(record.get("training"), Mapping) else {}
    fallback: dict[str, Any] = {
        # 0 predicted positives: precision is undefined, not 0
        "precision_mean": None if val.get("n_positive_preds") == 0 else val.get("precision"),
        "recall_mean": val.get("recall"),
        "auc_mean": val.get("auc"),
        "pred_pos_total": val.get("n_positive_preds"),
        "finished_at": record.get("timestamp"),
    }
    if val.get("precision") is not None and val.get("n_positive_preds") is not None:
        fallback["tp_total"] = float(val["precision"]) * float(val["n_positive_preds"])
    if val.get("pred_range") is not None:
        fallback["collapsed"] = float(val["pred_range"]) < COLLAPSE_RANGE
    if training.get("training_time_min") is not None:
        fallback["seconds"] = float(training["training_time_min"]) * 60.0

    def pick(column: str) -> Any:
        if column in ("precision_mean", "precision_std") and column in given:
            return given[column]  # an explicit None (undefined precision) is not a missing value
        value = given.get(column)
        return fallback.get(column) if value is None else value

    out: dict[str, Any] = {}
    for column in ("precision_mean", "precision_std", "recall_mean", "auc_mean", "auc_std", "seconds"):
        out[column] = finite_or_none(pick(column))
    for column in ("tp_total", "pred_pos_total", "epochs"):
        out[column] = _int_or_none(pick(column))
    collapsed = pick("collapsed")
    out["collapsed"] = None if collapsed is None else int(bool(collapsed))
    out["finished_at"] = _iso_to_unix(pick("finished_at"))
    return out


def archive_result(db: sqlite3.Connection, exp_id: str, now: float, keep_hash: str | None = None) -> None:
    """Copy the fembed result of ``exp_id`` to result_history before it is replaced (not
    when the replacement is of the same run hash: that is the same result again)."""
    columns = ", ".join(_HISTORY_COLUMNS)
    db.execute(
        f"INSERT OR IGNORE INTO result_history ({columns}, replaced_at) SELECT {columns}, ?"
        " FROM results WHERE exp_id = ? AND legacy = 0 AND run_hash IS NOT ?",
        (now, exp_id, keep_hash),
    )
    faults.hit("store.archive")



class ResultStore(StoreBase):
    """Storing result records and reading results and their history."""

    def record_result(
        self,
        exp_id: str,
        run_hash: str | None,
        result: Mapping[str, Any],
        *,
        summary: Mapping[str, Any] | None = None,
        legacy: bool = False,
    ) -> bool:
        """Store a result record (the dict written to results.json) and its summary columns.

        A fembed result replaces any earlier result of ``exp_id`` and marks the experiment done
        (claim released) if the queue still holds the same ``run_hash``; returns whether it
        did. ``legacy=True`` (an imported result of the original system) never touches the
        queue and never replaces a fembed result; returns whether it was stored.
        """
        columns = summarize_result(result, summary)
        results_json = dumps(result, indent=None)
        now = self._clock()
        names = ", ".join(SUMMARY_COLUMNS)
        placeholders = ", ".join("?" for _ in SUMMARY_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in SUMMARY_COLUMNS)
        params = (exp_id, run_hash, results_json, *(columns[c] for c in SUMMARY_COLUMNS), int(legacy), now)
        sql = (
            f"INSERT INTO results (exp_id, run_hash, results_json, {names}, legacy, recorded_at)"
            f" VALUES (?, ?, ?, {placeholders}, ?, ?) ON CONFLICT (exp_id) DO UPDATE SET"
            f" run_hash = excluded.run_hash, results_json = excluded.results_json, {updates},"
            f" legacy = excluded.legacy, recorded_at = excluded.recorded_at"
        )
        with self._write() as db:
            if legacy:
                cursor = db.execute(sql + " WHERE results.legacy = 1", params)
                return cursor.rowcount == 1
            archive_result(db, exp_id, now, keep_hash=run_hash)
            db.execute(sql, params)
            cursor = db.execute(
                "UPDATE experiments SET state = 'done', error = NULL, claimed_by = NULL,"
                " heartbeat_at = NULL, finished_at = ?, updated_at = ? WHERE exp_id = ? AND run_hash = ?",
                (now, now, exp_id, run_hash),
            )
            faults.hit("store.record_result")
            return cursor.rowcount == 1

    # -- readers -----------------------------------------------------------------------------

    def _result_dict(self, row: sqlite3.Row, with_record: bool) -> dict[str, Any]:
        out = row_dict(row)
        queued_hash = out.pop("queued_hash", None)
        # current: does this result describe the experiment's config as queued now?
        out["current"] = None if queued_hash is None else (out["run_hash"] == queued_hash)
        raw = out.pop("results_json")
        if with_record:
            out["record"] = json.loads(raw)
        return out

    def results(self, *, include_legacy: bool = True, with_record: bool = True) -> list[dict[str, Any]]:
        """All results (summary columns, ``legacy``, ``current``, and the parsed ``record``)."""
        sql = (
            "SELECT r.*, e.run_hash AS queued_hash FROM results r"
            " LEFT JOIN experiments e ON e.exp_id = r.exp_id"
        )
        if not include_legacy:
            sql += " WHERE r.legacy = 0"
        sql += " ORDER BY COALESCE(e.queue_order, 1 << 30), r.exp_id"
        with self._lock:
            rows = self._db.execute(sql).fetchall()
        return [self._result_dict(row, with_record) for row in rows]

    def result(self, exp_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT r.*, e.run_hash AS queued_hash FROM results r"
                " LEFT JOIN experiments e ON e.exp_id = r.exp_id WHERE r.exp_id = ?",
                (exp_id,),
            ).fetchone()
        return None if row is None else self._result_dict(row, True)

    def history(self, exp_id: str) -> list[dict[str, Any]]:
        """Earlier fembed results of ``exp_id`` that other runs replaced, newest first (each
        with its parsed ``record`` and ``replaced_at``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM result_history WHERE exp_id = ? ORDER BY replaced_at DESC", (exp_id,)
            ).fetchall()
        out = []
        for row in rows:
            item = row_dict(row)
            item["record"] = json.loads(item.pop("results_json"))
            out.append(item)
        return out

    def is_done(self, exp_id: str, run_hash: str) -> bool:
        """True if a fembed (non-legacy) result of ``exp_id`` for ``run_hash`` is stored."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM results WHERE exp_id = ? AND run_hash = ? AND legacy = 0",
                (exp_id, run_hash),
            ).fetchone()
        return row is not None
