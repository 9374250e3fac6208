"""Results of the original PyTorch system (outputs/feature_embedding/*/results.json) as legacy records.

The original wrote one results.json per (tier, d_embed) directory, so only the last writer of
each directory survives (29 files for 183 experiments), each from ONE seed evaluated on the
FINAL epoch's weights (spec §6.3, §8.1 B1/B3/B15). ``normalise`` turns such a file into a
record the report, ``fembed compare`` and the run store read like a fembed record:

* ``val_metrics`` keeps every recorded field and gains ``true_positives`` = round(precision ·
  n_positive_preds), the Wilson interval of TP / predicted positives and ``collapsed``; with no
  predicted positive its precision is null: the original wrote 0 (sklearn's zero_division=0)
  for a precision that is undefined (``original`` keeps the 0);
* ``val_metrics_per_seed`` is that one seed; ``summary`` holds the store's summary columns;
* ``config`` is rebuilt from the recorded fields; with a registry that knows the experiment
  (same id, tier and d_embed), the fields the original never recorded (embedding type and parameters, weight decay) come
  from the registry, and so does an architecture the file got wrong (``config
  ["filled_from_registry"]`` lists them); ``notes`` says what was corrected;
* ``legacy_source`` names the file and its sha256; ``original`` keeps the file verbatim.

``import_legacy`` stores each as ``store.record_result(..., legacy=True)`` (never replacing a
fembed result of the same id) and keeps a copy at outputs/legacy/<ID>.json, so the report can
still show a legacy record beside the fembed result that superseded it in the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fembed_jax.metrics import COLLAPSE_RANGE, wilson_interval
from fembed_jax.stats import LEGACY_LABEL

__all__ = [
    "LEGACY_DIRNAME",
    "ImportReport",
    "LegacyFormatError",
    "find_legacy_files",
    "import_legacy",
    "legacy_copies",
    "load_legacy_file",
    "normalise",
]

LEGACY_DIRNAME = "legacy"  # outputs/legacy/<ID>.json
_ARCH_FIELDS = ("d_model", "n_layers", "n_heads", "d_ff", "context_length", "patch_length", "stride")
_HPARAM_FIELDS = ("dropout", "learning_rate", "batch_size", "epochs", "use_revin")


class LegacyFormatError(ValueError):
    """A legacy results.json that cannot be imported; the message names the file and field."""


def _number(where: str, field: str, value: Any, *, low: float | None = None,
            high: float | None = None, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LegacyFormatError(f"{where}: {field} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise LegacyFormatError(f"{where}: {field} = {value!r} is outside [{low}, {high}]")
    return float(value)


def _count(where: str, field: str, value: Any) -> int:
    number = _number(where, field, value, low=0)
    if abs(number - round(number)) > 1e-9:
        raise LegacyFormatError(f"{where}: {field} must be a whole number, got {value!r}")
    return int(round(number))


def _mapping(where: str, raw: Mapping, field: str, required: bool) -> dict:
    value = raw.get(field)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise LegacyFormatError(f"{where}: {field} must be an object, got {type(value).__name__}")
    return dict(value)


def normalise(raw: Any, source: str | os.PathLike[str] = "<memory>", *, sha256: str | None = None,
              registry: Any = None) -> dict[str, Any]:
    """The legacy record of one parsed original results.json (see the module docstring).

    ``registry`` (a fembed Registry) is optional: when it knows the experiment, recorded fields
    that disagree with it (the original logged default architectures for six overridden runs)
    are listed in ``notes``. Raises LegacyFormatError naming ``source`` and the field.
    """
    from fembed_jax.results_io import SAFE_EXP_ID

    where = str(source)
    if not isinstance(raw, Mapping):
        raise LegacyFormatError(f"{where}: expected a JSON object, found {type(raw).__name__}")
    exp_id = raw.get("exp_id")
    if not isinstance(exp_id, str) or not SAFE_EXP_ID.match(exp_id):
        raise LegacyFormatError(f"{where}: exp_id must be an experiment id such as FE-05, got {exp_id!r}")
    if raw.get("dry_run"):
        raise LegacyFormatError(f"{where}: a --dry-run record (no metrics)")
    val = _mapping(where, raw, "val_metrics", required=True)
    precision = _number(where, "val_metrics.precision", val.get("precision"), low=0, high=1)
    recall = _number(where, "val_metrics.recall", val.get("recall"), low=0, high=1)
    auc = _number(where, "val_metrics.auc", val.get("auc"), low=0, high=1, optional=True)
    predicted = _count(where, "val_metrics.n_positive_preds", val.get("n_positive_preds"))
    n_samples = _count(where, "val_metrics.n_samples", val.get("n_samples"))
    if predicted > n_samples:
        raise LegacyFormatError(f"{where}: val_metrics.n_positive_preds {predicted} > n_samples {n_samples}")
    tp_exact = precision * predicted
    true_positives = int(round(tp_exact))
    if abs(tp_exact - true_positives) > 0.01:
        raise LegacyFormatError(
            f"{where}: val_metrics.precision {precision} x n_positive_preds {predicted} = "
            f"{tp_exact:.3f} is not a whole number of true positives")
    notes: list[str] = []
    positive_rate = val.get("positive_rate", val.get("class_balance"))
    if positive_rate is not None and recall > 0:
        positives = _number(where, "val_metrics.positive_rate", positive_rate, low=0, high=1) * n_samples
        if abs(recall * positives - true_positives) > 0.51:
            notes.append(f"recall {recall:.3f} x {positives:.0f} positives does not give the "
                         f"{true_positives} true positives implied by precision")
    pred_range = _number(where, "val_metrics.pred_range", val.get("pred_range"), optional=True)
    ci_low, ci_high = wilson_interval(true_positives, predicted)
    collapsed = predicted == 0 or (pred_range is not None and pred_range < COLLAPSE_RANGE)
    if predicted == 0:
        precision = None  # undefined, not the 0 the original wrote
    val_metrics = {**val, "precision": precision, "true_positives": true_positives,
                   "precision_ci_low": ci_low, "precision_ci_high": ci_high, "collapsed": collapsed,
                   "n_positive_preds": predicted, "n_samples": n_samples}
    architecture = _mapping(where, raw, "architecture", required=False)
    hyper = _mapping(where, raw, "hyperparameters", required=False)
    loss = _mapping(where, raw, "loss_function", required=False)
    training = _mapping(where, raw, "training", required=False)
    if not loss:
        notes.append("no loss_function block (an early record): BCE assumed, early-stopping metric unknown")
    config = {
        "exp_id": exp_id, "priority": raw.get("priority"), "description": raw.get("description", ""),
        "tier": raw.get("tier"), "num_features": raw.get("num_features"), "d_embed": raw.get("d_embed"),
        **{k: architecture.get(k) for k in _ARCH_FIELDS},
        **{k: hyper.get(k) for k in _HPARAM_FIELDS},
        "weight_decay": None,  # not recorded by the original
        "loss": loss.get("loss_fn") or "bce",
        "loss_params": dict(loss.get("loss_params") or {}),
        "early_stop_metric": loss.get("early_stopping_metric"),
        "embedding": None,  # not recorded by the original
        "embedding_params": None,
        "selection": "last",
        "seeds": 1,
    }
    spec = registry.get(exp_id).to_dict() if registry is not None and exp_id in registry else None
    if spec is not None and (spec.get("tier"), spec.get("d_embed")) != (config["tier"], config["d_embed"]):
        notes.append(f"the registry's {exp_id} is another experiment (tier {spec.get('tier')}, d_embed "
                     f"{spec.get('d_embed')}): nothing is taken from it")
        spec = None
    if spec is not None:
        filled = []
        if spec.get("loss") != config["loss"]:
            notes.append(f"loss recorded as {config['loss']!r}, the registry says {spec.get('loss')!r}")
        for field in _ARCH_FIELDS:
            if config.get(field) is not None and spec.get(field) != config[field]:
                # The original logged its default architecture for overridden runs (its parameter
                # counts show the override was used): the registry's value is the one that ran.
                notes.append(f"{field} recorded as {config[field]!r}; the registry's {spec[field]!r} is used "
                             f"(check parameters.actual)")
                config[field] = spec[field]
                filled.append(field)
        for field in ("embedding", "embedding_params", "weight_decay"):  # never recorded
            config[field] = spec.get(field)
            filled.append(field)
        config["filled_from_registry"] = filled
    seconds = None
    if training.get("training_time_min") is not None:
        seconds = _number(where, "training.training_time_min", training["training_time_min"], low=0) * 60.0
    summary = {"precision_mean": precision, "recall_mean": recall, "auc_mean": auc,
               "tp_total": true_positives, "pred_pos_total": predicted, "collapsed": collapsed,
               "seconds": seconds, "finished_at": raw.get("timestamp")}
    seed_row = {**val_metrics, "seed": None, "diverged": False}
    return {
        "schema_version": 1,
        "legacy": True,
        "legacy_label": LEGACY_LABEL,
        "legacy_source": {"path": str(source), "directory": Path(str(source)).parent.name,
                          "sha256": sha256},
        "exp_id": exp_id,
        "priority": raw.get("priority"),
        "description": raw.get("description", ""),
        "tier": raw.get("tier"),
        "num_features": raw.get("num_features"),
        "d_embed": raw.get("d_embed"),
        "architecture": architecture,
        "hyperparameters": hyper,
        "loss_function": loss or {"loss_fn": "bce", "loss_params": {}, "early_stopping_metric": None},
        "parameters": raw.get("parameters"),
        "splits": raw.get("splits"),
        "training": training,
        "val_metrics": val_metrics,
        "val_metrics_per_seed": [seed_row],
        "summary": summary,
        "seeds": [None],
        "selection": "last",
        "config": config,
        "notes": notes,
        "timestamp": raw.get("timestamp"),
        "original": dict(raw),
    }


def load_legacy_file(path: str | os.PathLike[str], registry: Any = None) -> dict[str, Any]:
    """Read and normalise one original results.json; LegacyFormatError names what is wrong."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LegacyFormatError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LegacyFormatError(f"{path}: not valid JSON ({exc})") from exc
    return normalise(raw, path, sha256=hashlib.sha256(data).hexdigest(), registry=registry)


def find_legacy_files(directory: str | os.PathLike[str]) -> list[Path]:
    """results.json files of an original outputs/feature_embedding folder (one level down, the
    ``summary/`` folder skipped), or the folder's own results.json, or ``directory`` itself
    when it names a file."""
    root = Path(directory)
    if root.is_file():
        return [root]
    found = sorted(p for p in root.glob("*/results.json") if p.parent.name != "summary")
    if (root / "results.json").is_file():
        found.insert(0, root / "results.json")
    return found


@dataclasses.dataclass
class ImportReport:
    imported: list[str] = dataclasses.field(default_factory=list)  # stored (new or changed)
    unchanged: list[str] = dataclasses.field(default_factory=list)  # same record already stored
    beside_fembed: list[str] = dataclasses.field(default_factory=list)  # store holds a fembed result: copy only
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
    duplicates: list[str] = dataclasses.field(default_factory=list)  # messages

    @property
    def accepted(self) -> int:
        return len(self.imported) + len(self.unchanged) + len(self.beside_fembed)

    @property
    def warnings(self) -> int:
        return len(self.skipped) + len(self.duplicates)


def _comparable(record: Mapping[str, Any]) -> str:
    from fembed_jax.results_io import dumps

    return dumps(record, indent=None)


def import_legacy(store: Any, directory: str | os.PathLike[str], outputs_dir: str | os.PathLike[str],
                  registry: Any = None) -> ImportReport:
    """Import every legacy results.json under ``directory`` into ``store`` (idempotent).

    Malformed files are skipped and listed with their reason. Two files with the same exp_id:
    the one with the later timestamp wins, the other is listed in ``duplicates``.
    """
    from fembed_jax.results_io import atomic_write_text, dumps

    report = ImportReport()
    chosen: dict[str, dict[str, Any]] = {}
    for path in find_legacy_files(directory):
        try:
            record = load_legacy_file(path, registry)
        except LegacyFormatError as exc:
            report.skipped.append((str(path), str(exc)))
            continue
        exp_id = record["exp_id"]
        if exp_id in chosen:
            other = chosen[exp_id]
            keep, drop = ((record, other) if str(record.get("timestamp") or "") > str(other.get("timestamp") or "")
                          else (other, record))
            report.duplicates.append(f"{exp_id} is in both {keep['legacy_source']['path']} and "
                                     f"{drop['legacy_source']['path']}: kept the later one "
                                     f"({keep['legacy_source']['path']})")
            chosen[exp_id] = keep
        else:
            chosen[exp_id] = record
    copies = Path(outputs_dir) / LEGACY_DIRNAME
    for exp_id, record in chosen.items():
        atomic_write_text(copies / f"{exp_id}.json", dumps(record) + "\n")
        existing = store.result(exp_id)
        if existing is not None and not existing.get("legacy"):
            report.beside_fembed.append(exp_id)
            continue
        if existing is not None and _comparable(existing["record"]) == _comparable(record):
            report.unchanged.append(exp_id)
            continue
        store.record_result(exp_id, None, record, legacy=True)
        report.imported.append(exp_id)
    return report


def legacy_copies(outputs_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The legacy records kept at outputs/legacy/<ID>.json by import_legacy, by exp_id
    (unreadable copies are skipped: the store still holds what was imported)."""
    folder = Path(outputs_dir) / LEGACY_DIRNAME
    out: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict) and record.get("legacy") and isinstance(record.get("exp_id"), str):
            out[record["exp_id"]] = record
    return out


def legacy_record(result: Mapping[str, Any] | None, outputs_dir: str | os.PathLike[str],
                  exp_id: str) -> dict[str, Any] | None:
    """The legacy record of ``exp_id``: the store's result row ``result`` when that is the legacy
    one, else the copy import_legacy kept beside a fembed result; None if neither exists."""
    if result is not None and result.get("legacy"):
        return result["record"]
    return legacy_copies(outputs_dir).get(exp_id)
