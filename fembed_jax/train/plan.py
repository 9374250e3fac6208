"""What a `fembed run` would do, before anything is claimed or written.

The options of a run, the identity of a result (run hash: config + where the data came from),
one plan item per selected experiment (done, run, rerun, replace), the groups that share one
compiled program, and the check that every needed dataset loads and fits the registry. Both
queue backends (local.py, ray_backend.py) start from a plan; `fembed run --dry-run` prints it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from fembed_jax import folds
from fembed_jax.config import SEED_BASE, ExperimentConfig, fields_with  # seed k is SEED_BASE + k
from fembed_jax.liveness import make_owner


@dataclasses.dataclass(frozen=True)
class RunOptions:
    outputs_dir: Path
    checkpoints_dir: Path
    data_config: Any  # fembed_jax.data.DataConfig
    seeds: int | None = None  # override cfg.seeds
    epochs: int | None = None  # cap cfg.epochs
    force: bool = False
    evaluate_test: bool = False
    group: bool = True  # train structurally identical experiments in one program
    devices: int | str = 1  # devices the member axis is sharded over: a count or "all"
    keep: str = "best"  # checkpoints kept once done: "best" (selected weights), "last", "all"
    chunk_steps: int | None = None  # steps between stop checks (None: a few seconds' worth)
    folds: int = 1  # walk-forward folds per experiment (fembed_jax.folds); 1: the registry's split
    owner: str = dataclasses.field(default_factory=make_owner)

    @property
    def store_path(self) -> Path:
        from fembed_jax.store import default_store_path

        return default_store_path(self.outputs_dir)


@dataclasses.dataclass
class PlanItem:
    cfg: ExperimentConfig
    run_hash: str
    # "done" (will be skipped), "run", "rerun" (done, again with --force), "replace" (another
    # run's finished result of this id is in the store: training replaces it, so the CLI asks
    # for --force first)
    status: str
    replaces: dict | None = None  # with "replace": the stored result's summary row
    # the store's queue row of this run hash, if queued before (its state, attempts, error and
    # epochs_run: a failed one is retried, a stopped one resumes)
    queued: dict | None = None
    # the DataConfig it trains on: the run's, with the split dates of its fold (folds.py)
    data_config: Any = None

    def resumes_after(self) -> int:
        """Epochs an earlier attempt of this run trained (checkpointed): where it resumes; 0 none."""
        row = self.queued or {}
        return int(row.get("epochs_run") or 0) if self.status == "run" and row.get("state") != "failed" else 0

    @property
    def exp_id(self) -> str:
        return self.cfg.exp_id


def resolve(cfg: ExperimentConfig, options: RunOptions) -> ExperimentConfig:
    """Apply the command line's --seeds / --epochs to a registry config."""
    changes = {}
    if options.seeds is not None:
        changes["seeds"] = options.seeds
    if options.epochs is not None and options.epochs < cfg.epochs:
        changes["epochs"] = options.epochs
    return cfg.replace(**changes) if changes else cfg


def data_identity(data_config: Any) -> str:
    """Where the data comes from, without building it: the DataConfig fields (not the cache
    folder) plus size and mtime of any user file, so replacing the file counts as new data."""
    fields = {k: v for k, v in dataclasses.asdict(data_config).items() if k != "cache_dir"}
    if fields.get("test_end") is None:  # added with folds: absent, the identity (and hash) of before
        fields.pop("test_end", None)
    for key in ("source", "vix", "tier_dir"):
        value = fields.get(key)
        if value and value != "builtin" and Path(value).exists():
            stat = Path(value).stat()
            fields[key] = f"{value}@{stat.st_size}:{stat.st_mtime_ns}"
    return json.dumps(fields, sort_keys=True, default=str)


def run_hash(cfg: ExperimentConfig, data_config: Any) -> str:
    """Identity of a result: the experiment's config hash plus where its data came from."""
    blob = f"{cfg.config_hash}|{data_identity(data_config)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def seeds_of(cfg: ExperimentConfig) -> list[int]:
    return [SEED_BASE + k for k in range(cfg.seeds)]


def with_folds(configs: list[ExperimentConfig], k: int) -> list[ExperimentConfig]:
    """Each config followed by its folds 2..k (fembed_jax.folds: the id names the fold)."""
    return [cfg if fold == 1 else cfg.replace(exp_id=folds.fold_id(cfg.exp_id, fold))
            for cfg in configs for fold in range(1, k + 1)]


def make_plan(configs: list[ExperimentConfig], options: RunOptions, store=None) -> list[PlanItem]:
    """What running ``configs`` (each on ``options.folds`` folds) would do; ``store`` None (no
    store yet) means nothing is done."""
    plan = []
    for cfg in with_folds(configs, options.folds):
        cfg = resolve(cfg, options)
        data_config = folds.data_config_for(cfg.exp_id, options.data_config)
        h = run_hash(cfg, data_config)
        stored = store.result(cfg.exp_id) if store is not None else None
        if stored is not None and stored.get("legacy"):
            stored = None  # legacy records sit beside fembed's results; training never replaces them
        queued = store.experiment(cfg.exp_id) if store is not None else None
        if queued is not None and queued["run_hash"] != h:
            queued = None  # another run's row: queuing this one starts it afresh
        if stored is not None and stored["run_hash"] == h:
            plan.append(PlanItem(cfg, h, "rerun" if options.force else "done", queued=queued,
                                 data_config=data_config))
        elif stored is not None:
            plan.append(PlanItem(cfg, h, "replace", replaces=stored, queued=queued, data_config=data_config))
        else:
            plan.append(PlanItem(cfg, h, "run", queued=queued, data_config=data_config))
    return plan


def describe_result(stored: dict) -> str:
    """'5 seeds x 50 epochs on builtin:sp500 data' for a stored result (what a replace would lose)."""
    record = stored.get("record") or {}
    seeds = len(record.get("seeds") or ()) or "?"
    epochs = (record.get("hyperparameters") or {}).get("epochs", "?")
    source = ((record.get("data") or {}).get("source_id") or "?").split("|")[0]
    return f"{seeds} seed{'' if seeds == 1 else 's'} x {epochs} epochs on {source} data"


def plan_groups(todo: list[PlanItem], enabled: bool = True) -> list[list[PlanItem]]:
    """The queue's training units: experiments sharing one compiled program (see schedule.py)."""
    from fembed_jax.catalog import param_counts
    from fembed_jax.train.schedule import make_groups

    counts = param_counts([item.cfg for item in todo]) if enabled and len(todo) > 1 else {}
    return make_groups(todo, cfg_of=lambda item: item.cfg,
                       params_of=lambda item: counts.get(item.cfg.exp_id, 0), enabled=enabled,
                       data_of=lambda item: item.data_config)  # one program trains on one dataset


def dataset_for(item: PlanItem, cache: dict):
    """The dataset `item` trains on, loaded once per value of its data fields and split in `cache`."""
    from fembed_jax.data import load_dataset

    cfg = item.cfg
    key = (*(getattr(cfg, name) for name in fields_with("data")), item.data_config)
    if key not in cache:
        cache[key] = load_dataset(cfg.tier, item.data_config, task=cfg.task, horizon=cfg.horizon,
                                  context_length=cfg.context_length)
    return cache[key]


def check_features(items: list[PlanItem], dataset) -> None:
    for item in items:
        if dataset.matrix.shape[1] != item.cfg.num_features:
            raise ValueError(f"{item.cfg.exp_id}: tier {item.cfg.tier} data has "
                             f"{dataset.matrix.shape[1]} features, the registry says "
                             f"{item.cfg.num_features}")


@dataclasses.dataclass(frozen=True)
class DataCheck:
    """What check_data found: the data's notes (an unused Adj Close, a short calendar gap), each
    once, and the split layouts the plan trains on (see split_layouts)."""
    notes: list[str]
    splits: list[dict]


def check_data(plan: list[PlanItem], options: RunOptions) -> DataCheck:
    """Load every dataset the plan's work needs, once, and check each experiment against it, so
    bad data is reported (DataError) before anything is claimed or written."""
    from fembed_jax.data import DataError

    datasets: dict = {}
    notes: dict[str, None] = {}
    used = []
    for item in plan:
        if item.status != "done":
            try:
                dataset = dataset_for(item, datasets)
                check_features([item], dataset)
            except ValueError as exc:  # DataError is one; a registry/data mismatch is bad input too
                base, fold = folds.split_fold(item.exp_id)
                where = f"{base} {folds.describe(options.data_config, fold)}: " if fold > 1 else ""
                raise DataError(where + str(exc)) from exc
            notes.update(dict.fromkeys(getattr(dataset, "notes", ())))
            used.append((item.cfg, dataset))
    return DataCheck(list(notes), split_layouts(used))


def split_layouts(used: list[tuple[ExperimentConfig, Any]]) -> list[dict]:
    """The distinct train/val/test layouts of (config, dataset) pairs, each once with the tiers
    on it: the decision dates and windows of every split, and how the validation windows divide
    between early stopping and the reported metrics. Tiers differ only in where training starts
    (their indicators' warm-up), so they share a layout; train gives the range of window counts."""
    from fembed_jax.data.splits import selection_masks

    layouts: dict[tuple, dict] = {}
    infos: dict[int, dict] = {}  # id(dataset) -> its split_info(): datasets repeat over experiments
    for cfg, dataset in used:
        if id(dataset) not in infos:
            infos[id(dataset)] = dataset.split_info()
        info = infos[id(dataset)]
        select, report = selection_masks(info["val"]["windows"], cfg.selection_windows)
        val = dict(info["val"], rule=cfg.selection_windows, selection=int(select.sum()),
                   report=int(report.sum()))
        fold = folds.split_fold(cfg.exp_id)[1]
        key = (fold, dataset.source_id, json.dumps(val, sort_keys=True), json.dumps(info["test"], sort_keys=True),
               info["train"]["last_decision"])
        layout = layouts.setdefault(key, {
            "fold": fold, "source": dataset.source_id, "tiers": [], "val_start": str(dataset.val_start),
            "test_start": str(dataset.test_start),
            "train": {"first_decision": info["train"]["first_decision"],
                      "last_decision": info["train"]["last_decision"], "windows": []},
            "val": val, "test": info["test"]})
        if cfg.tier not in layout["tiers"]:
            layout["tiers"].append(cfg.tier)
        train = layout["train"]
        train["windows"].append(info["train"]["windows"])
        train["first_decision"] = min(train["first_decision"], info["train"]["first_decision"])
    for layout in layouts.values():
        counts = layout["train"].pop("windows")
        layout["train"]["windows_min"], layout["train"]["windows_max"] = min(counts), max(counts)
    return list(layouts.values())
