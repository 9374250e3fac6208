"""`fembed run`: train the selected experiments (K seeds each), resumable, with a live display."""

from __future__ import annotations

import argparse

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .common import (UsageError, add_filter_options, console, err_console, fail, guarded, note,
                     registry_from_args, select)
from .paths import add_path_options, data_config_from_args, paths_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="train experiments (resumable; skips done ones)",
        description="Train the selected experiments, K seeds each in one compiled program. Done "
                    "experiments (same config and data) are skipped; an interrupted one resumes "
                    "from its last checkpoint; a failing one is recorded and the queue goes on.",
        epilog="examples:\n"
               "  fembed run --priority AE-P5\n"
               "  fembed run --exp-id FE-06 --exp-id FE-50 --seeds 3\n"
               "  fembed run --all --dry-run\n"
               "  fembed run --exp-id FE-06 --epochs 2 --seeds 2      (a quick look)\n"
               "  fembed run --priority P1 --data ~/data/SPY.csv       (your own OHLCV)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_filter_options(parser)
    parser.add_argument("--all", action="store_true", help="every experiment, in registry order")
    parser.add_argument("--seeds", type=int, metavar="K", help="seeds per experiment (default: registry, 5)")
    parser.add_argument("--epochs", type=int, metavar="N", help="cap the epochs (a quick look)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto picks a GPU when JAX sees one (default)")
    parser.add_argument("--devices", metavar="N|all",
                        help="shard the (experiment, seed) axis over N devices: GPUs, or on a CPU "
                             "N host devices (default 1; 'all' = every GPU / one per core)")
    parser.add_argument("--no-group", dest="group", action="store_false",
                        help="train each experiment in its own program (default: experiments "
                             "with identical structure share one compiled program)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: train here (default); ray: each group of experiments as a "
                             "Ray task on a cluster (pip install 'fembed[ray]'; see "
                             "docs/scale-out.md). The run store stays here")
    parser.add_argument("--address", metavar="ADDR",
                        help="with --backend ray: the Ray cluster (e.g. HEAD:6379 or 'auto'); "
                             "default: start a local Ray instance")
    parser.add_argument("--ray-cpus", type=float, metavar="N",
                        help="with --backend ray: CPUs per task when training on CPUs (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="run a variant: e.g. --set learning_rate=3e-4 --set loss_params.gamma=3 "
                             "(repeatable; a derived experiment BASE.SET-xxxxxx, recorded in "
                             "registry/derived.toml)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--force", action="store_true", help="rerun experiments that are done")
    parser.add_argument("--eval-test", action="store_true",
                        help="also score the test split (never used for selection)")
    add_path_options(parser)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    from fembed_jax.train.runner import RunOptions, check_data, make_plan, run_queue

    registry = registry_from_args(args)
    if not (args.all or args.priority or args.exp_id or args.tier or args.loss or args.embedding):
        raise UsageError("say what to run: --all, --priority P, --exp-id ID (or a --tier/--loss/"
                         "--embedding filter); see fembed run --help")
    filters = [f"--{name.replace('_', '-')}" for name in ("priority", "exp_id", "tier", "loss", "embedding")
               if getattr(args, name)]
    if args.all and filters:
        raise UsageError(f"--all runs every experiment; it cannot be combined with {', '.join(filters)}")
    devices = _devices_arg(args.devices or "1")
    if args.backend != "ray":
        given = [flag for flag, value in (("--address", args.address), ("--ray-cpus", args.ray_cpus))
                 if value is not None]
        if given:
            raise UsageError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} --backend ray")
    elif args.devices is not None:
        raise UsageError("--devices shards one machine's devices; with --backend ray each task "
                         "uses the devices Ray gives it (see docs/scale-out.md)")
    if args.ray_cpus is not None and args.ray_cpus <= 0:
        raise UsageError(f"--ray-cpus must be positive, got {args.ray_cpus}")
    for name in ("seeds", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    configs = select(registry, args)
    if not configs:
        raise UsageError("no experiment matches the filters")
    if args.set:
        from .derive import derived_configs

        configs = derived_configs(registry, configs, args.set, record=not args.dry_run)
    outputs, checkpoints = paths_from_args(args, registry)
    options = RunOptions(outputs_dir=outputs, checkpoints_dir=checkpoints,
                         data_config=data_config_from_args(args, registry),
                         seeds=args.seeds, epochs=args.epochs, force=args.force,
                         evaluate_test=args.eval_test, group=args.group, devices=devices)
    from fembed_jax.store import DB_FILENAME, RunStore

    # The plan reads the store (if any) and writes nothing: bad data or a refused replace
    # leave no trace.
    store_path = outputs / DB_FILENAME
    if store_path.exists():
        with RunStore(store_path, readonly=True) as store:
            plan = make_plan(configs, options, store)
    else:
        plan = make_plan(configs, options)
    for line in check_data(plan, options):
        note(args, f"[yellow]note:[/] {escape(line)}")
    if args.dry_run:
        _print_plan(plan, args.force)
        return 0
    _refuse_replacing(plan, force=args.force)

    if args.backend == "ray":
        from fembed_jax.train.ray_backend import RayUnavailable, import_ray

        try:
            import_ray()
        except RayUnavailable as exc:
            raise UsageError(str(exc)) from exc
        from fembed_jax import runtime

        runtime.configure("cpu", 1)  # the driver only counts parameters: leave the GPUs to Ray
        import os

        # fembed never sets RAY_AUTH_MODE: it says which one is in force, never turns it off.
        auth = os.environ.get("RAY_AUTH_MODE") or "Ray's default (token for local instances since Ray 2.59)"
        device = (f"Ray tasks ({args.address or 'local Ray instance'}), --device {args.device}, "
                  f"Ray authentication: {auth}")
    else:
        from fembed_jax import runtime

        runtime.configure(args.device, devices)
        try:
            device = runtime.describe_device(runtime.training_devices(devices))
        except (RuntimeError, ValueError) as exc:
            raise UsageError(f"--device {args.device} --devices {args.devices}: {exc}") from exc
    todo = sum(item.status != "done" for item in plan)
    console.print(f"fembed run: {len(plan)} experiment(s), {todo} to train, "
                  f"{len(plan) - todo} done already; device {device}; outputs {outputs}")
    with _Display(todo) as display:
        if args.backend == "ray":
            from fembed_jax.train.ray_backend import RayUnavailable, run_queue_ray

            try:
                summary = run_queue_ray(plan, options, address=args.address,
                                        progress=display.event, cpus_per_task=args.ray_cpus or 1,
                                        device=args.device)
            except RayUnavailable as exc:
                return fail(f"{exc}; nothing was trained")
        else:
            summary = run_queue(plan, options, progress=display.event)
    _print_summary(summary)
    return summary.exit_code


def _refuse_replacing(plan, force: bool) -> None:
    """A finished result is never destroyed without --force (a quick look, or a run on other
    data, would otherwise silently replace a full run)."""
    from fembed_jax.train.runner import describe_result

    if force:
        return
    clashes = [item for item in plan if item.status == "replace"]
    if clashes:
        lines = "; ".join(f"{item.cfg.exp_id} holds {describe_result(item.replaces)}, this run is "
                          f"{item.cfg.seeds} seed(s) x {item.cfg.epochs} epochs" for item in clashes[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise UsageError(f"{len(clashes)} experiment(s) have a finished result of another run that "
                         f"this run would replace: {lines}{more}. Nothing was trained. Pass --force "
                         "to replace them, or --outputs DIR to keep both")


def _devices_arg(value: str) -> int | str:
    if value == "all":
        return "all"
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise UsageError(f"--devices must be a positive number or 'all', got {value!r}")
    return count


def _print_plan(plan, force: bool) -> None:
    from fembed_jax.catalog import param_counts
    from fembed_jax.train.runner import describe_result

    counts = param_counts([item.cfg for item in plan])
    table = Table(title=f"plan: {len(plan)} experiment(s)", title_justify="left", header_style="bold")
    for column in ("id", "priority", "tier", "params", "seeds", "epochs", "loss", "embedding", "action"):
        table.add_column(column)
    for item in plan:
        cfg = item.cfg
        if item.status == "replace":
            action = (f"train, replacing {describe_result(item.replaces)}"
                      + ("" if force else " (refused without --force)"))
        else:
            action = {"done": "skip (done)", "run": "train", "rerun": "train again (--force)"}[item.status]
        table.add_row(cfg.exp_id, cfg.priority, cfg.tier, f"{counts[cfg.exp_id]:,}", str(cfg.seeds),
                      str(cfg.epochs), cfg.loss, cfg.embedding, action)
    console.print(table)


def _print_summary(summary) -> None:
    parts = [f"{len(summary.done)} trained", f"{len(summary.skipped)} skipped (done)"]
    if summary.busy:
        parts.append(f"{len(summary.busy)} claimed by another runner")
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    console.print("finished: " + ", ".join(parts))
    # A failure shared by several experiments (bad data, say) is printed once.
    by_error: dict[str, list[str]] = {}
    for exp_id, error in summary.failed.items():
        by_error.setdefault(error, []).append(exp_id)
    for error, exp_ids in by_error.items():
        err_console.print(f"  [red]{', '.join(exp_ids)}[/] failed: {escape(error)}", highlight=False)
    if summary.interrupted:
        console.print(f"[yellow]stopped by {summary.signal_name}[/] during {summary.interrupted}; "
                      "the last epoch is checkpointed and the same command resumes it.")
    elif summary.signal_name:
        console.print(f"[yellow]stopped by {summary.signal_name}[/] between experiments; the same "
                      "command goes on with the rest of the queue.")


class _Display:
    """rich progress: one bar for the queue, one per experiment in training (a group trains
    several at once)."""

    def __init__(self, total: int):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False)
        self.total = total
        self.queue_task = None
        self.exp_tasks: dict[str, object] = {}  # exp_id -> its bar while it trains

    def __enter__(self):
        self.progress.__enter__()
        self.queue_task = self.progress.add_task("queue", total=self.total, info="")
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def event(self, kind: str, **info) -> None:
        cfg = info.get("cfg")
        if kind == "start":
            if len(info.get("group") or ()) > 1 and cfg.exp_id == info["group"][0]:
                self.progress.console.print(
                    f"one compiled program for {len(info['group'])} experiments: "
                    f"{', '.join(info['group'])}")
            self.exp_tasks[cfg.exp_id] = self.progress.add_task(
                f"{cfg.exp_id} ({info['position'] + 1}/{info['total']})", total=cfg.epochs,
                info=f"seeds {info['seeds']}/{info['seeds']}")
        elif kind == "epoch":
            report = info["report"]
            aucs = [a for a in report.stop.best_metric if a > float("-inf")]
            best = (f"best {'AUC' if cfg.early_stop_metric == 'val_auc' else '-loss'} "
                    f"{max(aucs):.3f}" if aucs else "")
            self.progress.update(self.exp_tasks[cfg.exp_id], completed=report.epoch + 1,
                                 info=f"seeds {int(report.stop.active.sum())}/{len(report.trained)} "
                                      f"training  {best}")
        elif kind in ("end", "failed", "interrupted"):
            task = self.exp_tasks.pop(cfg.exp_id, None)
            if task is not None:
                self.progress.remove_task(task)
            if kind != "interrupted":
                self.progress.advance(self.queue_task)
            if kind == "end":
                agg = info["record"]["val_metrics"]
                self.progress.console.print(
                    f"{cfg.exp_id}: precision {_fmt(agg.get('precision'))} recall "
                    f"{_fmt(agg.get('recall'))} AUC {_fmt(agg.get('auc'))} "
                    f"({'mean of ' + str(cfg.seeds) + ' seeds' if cfg.seeds > 1 else '1 seed'})")
            elif kind == "failed":
                err_console.print(f"[red]{cfg.exp_id} failed[/]: {escape(info['error'])}",
                                  highlight=False)
        elif kind == "busy":
            task = self.exp_tasks.pop(cfg.exp_id, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.console.print(f"{cfg.exp_id}: claimed by another runner, left to it")
            self.progress.advance(self.queue_task)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


