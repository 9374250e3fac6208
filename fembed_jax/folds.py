"""Walk-forward folds: one experiment trained and scored on K consecutive periods.

A single validation period says little about the next one: the spread across periods is the
largest source of variance in such benchmarks (Bouthillier et al. 2021). ``fembed run --folds K``
trains each experiment K times:

* fold 1 is the registry's split (val_start, test_start, test to the end of the data), under the
  experiment's own id, so a finished ordinary run is fold 1 and is not trained again;
* fold k > 1 moves both boundaries back by k - 1 steps of one validation period (val_start to
  test_start) and ends its test period where fold k - 1's begins, so the K test periods are
  consecutive and never overlap; it trains on every window before its validation period;
* fold k's result is stored as ``<id>.fold<k>``. Its dates follow from its id and the registry's
  split alone, so ``--folds 3`` and later ``--folds 5`` share folds 1 to 3.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

FOLD_MARK = ".fold"
_FOLD_ID = re.compile(rf"^(?P<base>.+){re.escape(FOLD_MARK)}(?P<k>[2-9]|[1-9][0-9]+)$")


def fold_id(exp_id: str, k: int) -> str:
    """The store id of fold ``k`` of ``exp_id`` (fold 1 is the experiment's own id)."""
    if k < 1:
        raise ValueError(f"fold numbers start at 1, got {k}")
    return exp_id if k == 1 else f"{exp_id}{FOLD_MARK}{k}"


def split_fold(exp_id: str) -> tuple[str, int]:
    """("FE-06", 2) for "FE-06.fold2"; (exp_id, 1) for an id that names no fold."""
    match = _FOLD_ID.match(exp_id)
    return (match["base"], int(match["k"])) if match else (exp_id, 1)


def _step(val_start, test_start) -> dict[str, int]:
    """One validation period as DateOffset arguments: whole months when both boundaries fall on
    the same day of the month (2015-01-01 to 2017-01-01: 24 months), else days."""
    if val_start.day == test_start.day:
        return {"months": (test_start.year - val_start.year) * 12 + test_start.month - val_start.month}
    return {"days": (test_start - val_start).days}


def fold_data_config(data_config: Any, k: int) -> Any:
    """``data_config`` (a DataConfig) with fold ``k``'s split dates; fold 1 is ``data_config``."""
    if k == 1:
        return data_config
    import pandas as pd  # not at import: the registry (and so the CLI's start) imports this module

    val, test = pd.Timestamp(data_config.val_start), pd.Timestamp(data_config.test_start)
    step = _step(val, test)
    back = pd.DateOffset(**{unit: n * (k - 1) for unit, n in step.items()})
    day = lambda t: str(t.date())  # noqa: E731 - the date strings DataConfig takes
    return dataclasses.replace(data_config, val_start=day(val - back), test_start=day(test - back),
                               test_end=day(test - back + pd.DateOffset(**step)))


def data_config_for(exp_id: str, data_config: Any) -> Any:
    """The data config a stored id trains on: its fold's dates."""
    return fold_data_config(data_config, split_fold(exp_id)[1])


def describe(data_config: Any, k: int) -> str:
    """'fold 2 (val from 2013-01-01, test 2015-01-01 to 2017-01-01)' for messages."""
    cfg = fold_data_config(data_config, k)
    end = f" to {cfg.test_end}" if cfg.test_end else " to the end of the data"
    return f"fold {k} (val from {cfg.val_start}, test {cfg.test_start}{end})"
