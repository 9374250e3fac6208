"""What `fembed report` says of each fembed result (model.Reported), for the Results table.

Every figure comes from the report's own code, in the poll worker thread: the predictions the
report would use (report.collect.load_checked: the saved val_predictions.npz on the record's
scored windows, checked against the record) and stats.experiment_stats at the report's default
bootstrap (2,000 resamples, seed 0, block length 1), so the monitor and the report cannot
disagree. The two bootstraps are not cheap (~40 ms for a tiny run's 36 windows and 2 seeds,
~0.3-0.6 s for 500-2,000 windows and 5 seeds), so a result is scored once per stored version
(exp_id, recorded_at), and a poll stops scoring once it has spent ``budget_s``: a store of 183
results fills its table over a few minutes of polls instead of freezing the monitor. What a
result is compared with (its protocol and data) is cheap and taken for every result at once.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Mapping, Sequence

from .model import Reported

BUDGET_S = 0.3  # scoring time a poll may spend; the rest waits for the next poll


class ReportedResults:
    """Reported of the fembed results under ``outputs_dir``; use from one thread (the poller's).

    ``budget_s`` None scores everything in one call (the snapshot tests' single read)."""

    def __init__(self, outputs_dir: str | pathlib.Path, budget_s: float | None = BUDGET_S,
                 clock: Callable[[], float] = time.perf_counter):
        self.outputs_dir = pathlib.Path(outputs_dir)
        self.budget_s = budget_s
        self.clock = clock
        self._cache: dict[tuple[str, float], Reported] = {}

    def update(self, results: Sequence[Mapping], records: Mapping[str, dict]) -> dict[str, Reported]:
        """exp_id -> Reported of each fembed result in ``results`` (the store's summary rows);
        the ones not scored yet have ``scored`` False until a later call scores them."""
        keys = {r["exp_id"]: (r["exp_id"], r["recorded_at"]) for r in results if not r.get("legacy")}
        if not keys:
            self._cache = {}
            return {}
        # The report package reads data with pandas (fembed_jax.data): imported here, in the
        # poll thread and only once there are results, never when the monitor starts.
        from fembed_jax.report.collect import protocol_flag
        from fembed_jax.report.data_identity import record_data_key

        self._cache = {key: self._cache[key] for key in keys.values() if key in self._cache}
        for exp_id, key in keys.items():
            if key not in self._cache:
                record = records.get(exp_id) or {}
                self._cache[key] = Reported(protocol_flag(record), record_data_key(record))
        started = self.clock()
        for exp_id, key in keys.items():
            if self._cache[key].scored:
                continue
            self._cache[key] = self.scored(exp_id, records.get(exp_id) or {}, self._cache[key])
            # Checked after scoring: a poll scores at least one result, so a slow one still gets done.
            if self.budget_s is not None and self.clock() - started >= self.budget_s:
                break
        return {exp_id: self._cache[key] for exp_id, key in keys.items()}

    def scored(self, exp_id: str, record: dict, reported: Reported) -> Reported:
        """``reported`` with the ensemble's intervals (None without usable predictions)."""
        from fembed_jax import stats
        from fembed_jax.report.collect import load_checked

        try:
            # The report's warnings (a damaged or stale file) are its to show; here: "-".
            pred = load_checked(self.outputs_dir, exp_id, record, [])
            figures = stats.experiment_stats(record, pred) if pred is not None else {}
        except Exception:  # noqa: BLE001 - a file the report cannot score either: no figures, no crash
            figures = {}
        return Reported(reported.protocol, reported.data, True, figures.get("ensemble_auc"),
                        figures.get("ensemble_pr_auc"))
