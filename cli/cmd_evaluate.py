"""`fembed evaluate ID --split test`: score a finished run's selected weights on the held-out split.

The weights come from the run's latest checkpoint (``best_params`` for selection "best",
``params`` for "last"), restored with the run hash the store recorded. The test result goes to
outputs/<ID>/test_results.json (+ test_predictions.npz) and nowhere else: not into the store,
not into any ranking. ``--split val`` re-scores the validation split instead: it checks the
restored weights reproduce results.json and writes val_predictions.npz for runs that have none.
"""

from __future__ import annotations

import argparse
import json

from rich.markup import escape

from fembed_jax import fmt, runtime
from fembed_jax.config import ExperimentConfig
from fembed_jax.folds import data_config_for
from fembed_jax.train.plan import run_hash as compute_run_hash

from .common import UsageError, console, fail, guarded, registry_from_args
from .paths import add_path_options, data_config_from_args, paths_from_args
from .paths import store_path as store_path_of


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a finished run's selected weights on the test split",
        description="Restore a finished experiment's selected weights from its checkpoint and score "
                    "them on the held-out test split (outputs/<ID>/test_results.json; never ranked). "
                    "--split val re-scores validation: it verifies the weights reproduce results.json "
                    "and writes outputs/<ID>/val_predictions.npz.",
        epilog="examples:\n  fembed evaluate FE-06 --split test\n  fembed evaluate FE-06 --split val",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_id", metavar="ID", help="experiment id")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="default: test")
    parser.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                        help="resamples for the ensemble AUC interval (default 2000)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto picks a GPU when JAX sees one (default)")
    add_path_options(parser, data=True)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.store import RunStore

    if args.bootstrap < 1:
        raise UsageError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    registry = registry_from_args(args)
    outputs, checkpoints = paths_from_args(args, registry)
    store_path = store_path_of(args, registry.path)
    if not store_path.exists():
        raise UsageError(f"no run store at {store_path}: run {args.exp_id} first")
    with RunStore(store_path, readonly=True) as store:
        queued = store.experiment(args.exp_id)
        result = store.result(args.exp_id)
    if queued is None:
        raise UsageError(f"{args.exp_id}: never run (not in the run store {store_path})")
    if queued["state"] != "done" or result is None or result.get("legacy") or not result.get("current"):
        return fail(f"{args.exp_id}: no finished run of its current config (state {queued['state']}); "
                    f"finish it with `fembed run --exp-id {args.exp_id}` first")
    config = json.loads(queued["config_json"])
    config.pop("config_hash", None)
    try:
        cfg = ExperimentConfig(**config)
    except TypeError as exc:
        return fail(f"{args.exp_id}: the stored config cannot be rebuilt ({exc})")
    data_config = data_config_for(cfg.exp_id, data_config_from_args(args, registry))  # a fold's dates
    if compute_run_hash(cfg, data_config) != queued["run_hash"]:
        raise UsageError(f"{args.exp_id}: the data differs from the run's (run hash "
                         f"{compute_run_hash(cfg, data_config)} vs {queued['run_hash']}); "
                         "pass the --data the run used")
    record = result["record"]
    seeds = [int(s) for s in record.get("seeds") or []]


    runtime.configure(args.device)
    try:
        runtime.training_devices(1)
    except ValueError as exc:
        raise UsageError(f"--device {args.device}: {exc}") from exc
    from fembed_jax.data import DataError, load_dataset
    from fembed_jax.train.engine import DeviceData, Engine
    from fembed_jax.train.evaluate import restore_selected

    try:
        dataset = load_dataset(cfg.tier, data_config, task=cfg.task, horizon=cfg.horizon,
                               context_length=cfg.context_length)
    except DataError as exc:
        raise UsageError(str(exc)) from exc
    data = DeviceData.from_dataset(dataset)
    engine = Engine(cfg, data)
    restored = restore_selected(cfg, engine, queued["run_hash"], seeds, checkpoints)
    if restored is None:
        return fail(f"{args.exp_id}: no usable checkpoint under {checkpoints / cfg.exp_id} "
                    f"for run hash {queued['run_hash']}")
    epoch, selected = restored
    probs, _loss = engine.evaluate(selected, args.split)
    if args.split == "val":
        return _write_val(args.exp_id, record, probs, dataset, outputs)
    return _write_test(args, cfg, record, queued["run_hash"], epoch, probs, dataset, outputs)


def _write_val(exp_id, record, probs, dataset, outputs) -> int:
    from fembed_jax.predictions import predictions_path, write_predictions
    from fembed_jax.train.evaluate import validation_mismatch

    labels = dataset.labels["val"]
    mismatch = validation_mismatch(record, probs, labels)
    if mismatch:
        return fail(f"{exp_id}: {mismatch}")
    path = write_predictions(predictions_path(outputs, exp_id), probs, labels, dataset.starts["val"],
                             record.get("seeds") or list(range(len(probs))), dataset.decision_dates("val"))
    console.print(f"{escape(exp_id)}: validation re-scored, matches results.json; wrote {escape(str(path))}",
                  highlight=False)
    return 0


def _write_test(args, cfg, record, run_hash, epoch, probs, dataset, outputs) -> int:
    from fembed_jax.predictions import predictions_path, write_predictions
    from fembed_jax.results_io import results_path, write_results
    from fembed_jax.train.evaluate import TEST_NOTE, scored_test_record

    labels = dataset.labels["test"]
    scored = scored_test_record(cfg, record, run_hash, epoch, probs, dataset, n_boot=args.bootstrap)
    path = write_results(results_path(outputs, cfg.exp_id).with_name("test_results.json"), scored)
    write_predictions(predictions_path(outputs, cfg.exp_id, "test_predictions.npz"), probs, labels,
                      dataset.starts["test"], scored["seeds"], dataset.decision_dates("test"))
    agg = scored["aggregate"]
    console.print(f"{escape(cfg.exp_id)} on the test split ({labels.size} windows, {int(labels.sum())} positive; "
                  f"checkpoint epoch {epoch}): precision {fmt.pm(agg['precision'])}, "
                  f"recall {fmt.pm(agg['recall'])}, AUC {fmt.pm(agg['auc'])}", highlight=False)
    console.print(f"wrote {escape(str(path))} (not ranked: {TEST_NOTE})", highlight=False)
    return 0
