"""`fembed run`: train the selected experiments (K seeds each), resumable, with a live display."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fembed_jax import estimate, fmt, runtime
from fembed_jax.catalog import param_counts
from fembed_jax.checkpoint_layout import KEEP
from fembed_jax.estimate import totals
from fembed_jax.train.group import NOTHING_NEW
from fembed_jax.train.local import run_queue
from fembed_jax.train.plan import RunOptions, check_data, describe_result, make_plan
from fembed_jax.train.ray_backend import RayUnavailable, import_ray, run_queue_ray

from .common import (UsageError, add_filter_options, console, err_console, fail, guarded, note,
                     registry_from_args, select)
from .derive import derived_configs
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
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan with estimated time, checkpoint disk and memory per "
                             "experiment, and exit (a program shape not measured on this machine "
                             "yet is timed for a few steps first)")
    parser.add_argument("--json", action="store_true",
                        help="with --dry-run: print the plan and its estimates as one JSON object")
    parser.add_argument("--no-measure", action="store_true",
                        help="estimate from cached measurements and FLOPs only (time nothing)")
    parser.add_argument("--force", action="store_true", help="rerun experiments that are done")
    parser.add_argument("--eval-test", action="store_true",
                        help="also score the test split (never used for selection)")
    parser.add_argument("--keep", choices=KEEP, default="best",
                        help="checkpoints kept once an experiment is done: best = its selected "
                             "weights, all `fembed evaluate` needs (default); last = also its last "
                             "training state; all = every step kept during training")
    parser.add_argument("--chunk-steps", type=int, metavar="N",
                        help="training steps between two checks for Ctrl-C/SIGTERM (default: "
                             "about 5 seconds' worth, measured); results do not depend on it")
    parser.add_argument("--folds", type=int, default=1, metavar="K",
                        help="walk-forward folds: train each experiment on K consecutive "
                             "validation/test periods, each on what precedes it (fold 1 = the "
                             "registry's split, fold k = ID.foldk, one validation period earlier "
                             "each); the report shows the spread across folds (default 1)")
    add_path_options(parser)
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
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
    for name in ("seeds", "epochs", "chunk_steps", "folds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    configs = select(registry, args)
    if not configs:
        raise UsageError("no experiment matches the filters")
    if args.set:
        configs = derived_configs(registry, configs, args.set, record=not args.dry_run)
    outputs, checkpoints = paths_from_args(args, registry)
    options = RunOptions(outputs_dir=outputs, checkpoints_dir=checkpoints,
                         data_config=data_config_from_args(args, registry),
                         seeds=args.seeds, epochs=args.epochs, force=args.force,
                         evaluate_test=args.eval_test, group=args.group, devices=devices,
                         keep=args.keep, chunk_steps=args.chunk_steps, folds=args.folds)
    from fembed_jax.store import DB_FILENAME, RunStore

    # The plan reads the store (if any) and writes nothing: bad data or a refused replace
    # leave no trace.
    store_path = outputs / DB_FILENAME
    if store_path.exists():
        with RunStore(store_path, readonly=True) as store:
            plan = make_plan(configs, options, store)
    else:
        plan = make_plan(configs, options)
    checked = check_data(plan, options)
    for line in checked.notes:
        note(args, f"[yellow]note:[/] {escape(line)}")
    if args.json and not args.dry_run:
        raise UsageError("--json prints the plan of a --dry-run; add --dry-run")
    if args.dry_run:
        _print_plan(plan, args.force, *_estimates(plan, options, args, measure=not args.no_measure),
                    as_json=args.json, splits=checked.splits)
        if not args.json:
            _print_splits(checked.splits, options.evaluate_test)
        return 0
    _refuse_replacing(plan, force=args.force)

    if args.backend == "ray":
        try:
            import_ray()
        except RayUnavailable as exc:
            raise UsageError(str(exc)) from exc

        runtime.configure("cpu", 1)  # the driver only counts parameters: leave the GPUs to Ray

        # fembed never sets RAY_AUTH_MODE: it says which one is in force, never turns it off.
        auth = os.environ.get("RAY_AUTH_MODE") or "Ray's default (token for local instances since Ray 2.59)"
        device = (f"Ray tasks ({args.address or 'local Ray instance'}), --device {args.device}, "
                  f"Ray authentication: {auth}")
    else:
        runtime.configure(args.device, devices)
        try:
            device = runtime.describe_device(runtime.training_devices(devices))
        except (RuntimeError, ValueError) as exc:
            raise UsageError(f"--device {args.device} --devices {args.devices}: {exc}") from exc
    todo = sum(item.status != "done" for item in plan)
    console.print(f"fembed run: {len(plan)} experiment(s), {todo} to train, "
                  f"{len(plan) - todo} done already; device {device}; outputs {outputs}")
    _print_splits(checked.splits, options.evaluate_test)
    if args.backend != "ray" and todo:
        estimates, groups = _estimates(plan, options, args, measure=False)
        if estimates:
            console.print(_total_line(estimates, groups), highlight=False)
    try:
        with _Display(todo, quiet=getattr(args, "quiet", False)) as display:
            if args.backend == "ray":
                try:
                    summary = run_queue_ray(plan, options, address=args.address,
                                            progress=display.event, cpus_per_task=args.ray_cpus or 1,
                                            device=args.device)
                except RayUnavailable as exc:
                    return fail(f"{exc}; nothing was trained")
            else:
                summary = run_queue(plan, options, progress=display.event)
    except KeyboardInterrupt:  # a second Ctrl-C
        console.print("[yellow]stopped at once[/] by a second Ctrl-C: the steps since the last "
                      "checkpoint are lost, the checkpoint is kept; the same command resumes from it.",
                      highlight=False)
        return _leave(130)
    _print_summary(summary)
    return _leave(summary.exit_code) if summary.signal_name else summary.exit_code


def _leave(code: int) -> int:
    """The exit code of a stopped run; with a computation still running (given up on by the
    stop, or cut off by a second Ctrl-C), leave now: the interpreter's exit would wait for it,
    for minutes on a large experiment. Everything is written by then (store commits,
    checkpoints fsynced, claims released)."""
    from fembed_jax.train.engine import in_flight

    if in_flight():
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr, console.file, err_console.file):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _refuse_replacing(plan, force: bool) -> None:
    """A finished result is never destroyed without --force (a quick look, or a run on other
    data, would otherwise silently replace a full run)."""
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


def _estimates(plan, options, args, *, measure: bool):
    """({exp_id: Estimate}, groups) of the plan's work (fembed_jax.estimate); ({}, []) when
    nothing is to train or the estimate fails (it never stops a run: one note says why)."""
    if not any(item.status != "done" for item in plan):
        return {}, []
    from fembed_jax.store import DB_FILENAME, RunStore

    done_epochs: dict[str, int] = {}
    store_path = options.outputs_dir / DB_FILENAME
    try:
        if store_path.exists():  # an interrupted experiment resumes: only its other epochs count
            hashes = {item.exp_id: item.run_hash for item in plan}
            with RunStore(store_path, readonly=True) as store:
                done_epochs = {row["exp_id"]: int(row.get("epochs_run") or 0) for row in store.experiments()
                               if hashes.get(row["exp_id"]) == row["run_hash"] and row["state"] != "done"}
        runtime.configure(args.device, options.devices)

        def measuring(cfgs, members) -> None:
            note(args, f"timing a few steps of {', '.join(c.exp_id for c in cfgs)} "
                       f"({members} members) for the estimate…")

        return estimate.estimate_plan(plan, options, measure_missing=measure, done_epochs=done_epochs,
                                      on_measure=measuring)
    except Exception as exc:  # noqa: BLE001 - an estimate must never stop a run or a plan
        note(args, f"[yellow]note:[/] no estimate ({escape(type(exc).__name__)}: {escape(str(exc)[:200])})")
        return {}, []


def _total_line(estimates, groups) -> str:
    total = totals(estimates.values(), groups, estimates)
    unknown = (f" ({total['unknown']} without an estimate: counting their FLOPs ran out of time; "
               f"the counts are cached, so another dry run adds more)") if total["unknown"] else ""
    line = (f"estimate: {fmt.duration(total['seconds'])} on this device{unknown} ({total['source']}); "
            f"checkpoints {fmt.size(total['checkpoint_peak_bytes'])} at peak, "
            f"{fmt.size(total['checkpoint_after_bytes'])} after; peak memory "
            f"{fmt.size(total['peak_memory_bytes'])}")
    if total["over_a_day"]:
        line += (f"; {total['over_a_day']} experiment(s) over a day here, "
                 f"~{fmt.duration(total['gpu_seconds'])} on a GPU")
    return line


def _print_splits(layouts: list[dict], evaluate_test: bool) -> None:
    """One line per split layout the run trains on: where each split's decisions fall, and how
    the validation windows divide between early stopping and the reported metrics."""
    folded = any(layout["fold"] > 1 for layout in layouts)
    for layout in layouts:
        train, val, test = layout["train"], layout["val"], layout["test"]
        fold = f"fold {layout['fold']} " if folded else ""
        counts = f"{train['windows_min']:,}" + (
            f"–{train['windows_max']:,}" if train["windows_max"] != train["windows_min"] else "")
        if val["rule"] == "all":
            use = "early stopping and metrics on all"
        else:
            use = f"early stopping on {val['selection']:,}, metrics on the other {val['report']:,}"
        held = "scored with --eval-test" if evaluate_test else "held out"
        console.print(
            f"splits {fold}({escape(layout['source'])}; {', '.join(layout['tiers'])}): "
            f"train {train['first_decision']}..{train['last_decision']} ({counts} windows) · "
            f"val {val['first_decision']}..{val['last_decision']} ({val['windows']:,} windows: {use}) · "
            f"test {test['first_decision']}..{test['last_decision']} ({test['windows']:,} windows, {held})",
            highlight=False)


def _print_plan(plan, force: bool, estimates=None, groups=None, *, as_json: bool = False,
                splits=None) -> None:
    estimates, groups = estimates or {}, groups or []
    group_of = {exp_id: group[0] for group in groups for exp_id in group}
    if as_json:
        keys = ("seconds", "source", "checkpoint_peak_bytes", "checkpoint_after_bytes",
                "peak_memory_bytes", "gpu_seconds")
        rows = []
        for item in plan:
            est = estimates.get(item.exp_id)
            queued = item.queued or {}
            rows.append({"exp_id": item.exp_id, "status": item.status, "group": group_of.get(item.exp_id),
                         "resumes_after_epoch": item.resumes_after() or None,
                         "retries_failure": queued.get("error") if queued.get("state") == "failed" else None,
                         "estimate": None if est is None else {**est.to_json(), **{k: getattr(est, k) for k in keys}}})
        total = totals(estimates.values(), groups, estimates)
        print(json.dumps({"experiments": rows, "total": total, "splits": splits or []}, indent=1))
        return
    counts = param_counts([item.cfg for item in plan])
    table = Table(title=f"plan: {len(plan)} experiment(s)", title_justify="left", header_style="bold")
    for column in ("id", "priority", "tier", "params", "seeds", "epochs", "loss", "embedding", "action",
                   "time", "disk peak/after", "memory"):
        table.add_column(column)
    long_ones = []
    for item in plan:
        cfg = item.cfg
        if item.status == "replace":
            action = (f"train, replacing {describe_result(item.replaces)}"
                      + ("" if force else " (refused without --force)"))
        else:
            action = {"done": "skip (done)", "run": "train", "rerun": "train again (--force)"}[item.status]
        failed = item.status == "run" and (item.queued or {}).get("state") == "failed"
        if failed:
            error = ((item.queued.get("error") or "").splitlines() or ["?"])[0]
            action = f"retry (failed {item.queued.get('attempts') or 1}×: {escape(error[:80])})"
        elif item.resumes_after():
            action = f"resume after epoch {item.resumes_after()}/{cfg.epochs}"
        group = group_of.get(item.exp_id)
        if group and group != item.exp_id:
            action += f" (with {group})"
        est = estimates.get(item.exp_id)
        cells = ("-", "-", "-")
        if est is not None:
            flag = " [red]>1 day[/]" if est.over_a_day else ""
            cells = (fmt.duration(est.seconds) + flag,
                     f"{fmt.size(est.checkpoint_peak_bytes)}/{fmt.size(est.checkpoint_after_bytes)}",
                     fmt.size(est.peak_memory_bytes))
            if est.over_a_day:
                long_ones.append((cfg.exp_id, est))
        table.add_row(cfg.exp_id, cfg.priority, cfg.tier, f"{counts[cfg.exp_id]:,}", str(cfg.seeds),
                      str(cfg.epochs), cfg.loss, cfg.embedding, action, *cells)
    console.print(table)
    if estimates:
        sources = sorted({e.source for e in estimates.values()})
        console.print("time: every epoch run (early stopping can only shorten it), shared programs "
                      "split by seeds; from " + "; ".join(sources), highlight=False)
        for exp_id, est in long_ones:
            console.print(f"[red]{exp_id}[/]: {fmt.duration(est.seconds)} on this device; a GPU would take "
                          f"~{fmt.duration(est.gpu_seconds)} ({est.gpu_source})", highlight=False)
        console.print(_total_line(estimates, groups), highlight=False)


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
        where = "; ".join(f"{exp_id} {position}" for exp_id, position in summary.positions.items())
        saved = any(position != NOTHING_NEW for position in summary.positions.values())
        console.print(f"[yellow]stopped by {summary.signal_name}[/]: {where or summary.interrupted}; "
                      + ("that position is checkpointed and the same command resumes from there."
                         if saved else "the same command resumes from the last checkpoint."),
                      highlight=False)
    elif summary.signal_name:
        console.print(f"[yellow]stopped by {summary.signal_name}[/] between experiments; the same "
                      "command goes on with the rest of the queue.")


LOG_EVERY_S = 30.0  # progress lines when stdout is not a terminal


class _Display:
    """Progress of the queue. On a terminal: rich bars, one for the queue and one per experiment
    in training (a group trains several at once). Elsewhere (a log file, a pipe, a batch job),
    where rich draws nothing live: one line per experiment in training every LOG_EVERY_S.
    -q: neither, nor the notes; results, failures and what a stop request does still print."""
    def __init__(self, total: int, *, quiet: bool = False, live: bool | None = None):
        self.quiet = quiet
        self.live = console.is_terminal if live is None else live
        self.progress = None
        if self.live and not quiet:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[where]}"),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=console, transient=False)
        self.total = total
        self.done = 0
        self.queue_task = None
        self.exps: dict[str, _Training] = {}  # exp_id -> its state while it trains
        self.last_log = time.monotonic()

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
            self.queue_task = self.progress.add_task("queue", total=self.total, where=f"0/{self.total}",
                                                     info="")
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def _print(self, message: str, *, note: bool = False, error: bool = False) -> None:
        if note and self.quiet:
            return
        target = err_console if error else (self.progress.console if self.progress else console)
        target.print(message, highlight=False)

    def event(self, kind: str, **info) -> None:
        cfg = info.get("cfg")
        if kind == "start":
            if len(info.get("group") or ()) > 1 and cfg.exp_id == info["group"][0]:
                self._print(f"one compiled program for {len(info['group'])} experiments: "
                            f"{', '.join(info['group'])}", note=True)
            exp = _Training(cfg, f"{cfg.exp_id} ({info['position'] + 1}/{info['total']})", info["seeds"])
            self.exps[cfg.exp_id] = exp
            if self.progress is not None:
                exp.task = self.progress.add_task(exp.label, total=cfg.epochs, where=exp.where(),
                                                  info=exp.info())
            elif not self.live:
                self._print(f"{exp.label}: training {exp.seeds} seed(s), up to {cfg.epochs} epochs",
                            note=True)
        elif kind in ("step", "epoch"):
            exp = self.exps.get(cfg.exp_id)
            if exp is None:
                return
            report = info["report"]
            if kind == "step":
                exp.at(report.epoch, report.step, report.steps, report.stop)
            else:
                exp.at(report.epoch + 1, 0, exp.steps, report.stop)
            if self.progress is not None:
                self.progress.update(exp.task, completed=exp.progress, where=exp.where(), info=exp.info())
            elif not self.live:
                self._log_lines()
        elif kind == "signal":
            again = " (Ctrl-C again quits at once, keeping the last checkpoint)" if info["name"] == "SIGINT" else ""
            self._print(f"[yellow]{info['name']}[/]: stopping after the steps in progress; their "
                        f"position will be checkpointed{again}")
        elif kind == "stopping":
            self._print(f"stopping: saving the position inside epoch {info['epoch'] + 1} "
                        f"(step {info['step']}/{info['steps']}) of {escape(cfg.exp_id)}…")
        elif kind == "freed":
            self._print(f"{escape(cfg.exp_id)}: checkpoints {fmt.size(info['before'])} → "
                        f"{fmt.size(info['after'])} (kept {_KEPT[info['kept']]})", note=True)
        elif kind in ("end", "failed", "interrupted", "busy"):
            exp = self.exps.pop(cfg.exp_id, None)
            if exp is not None and exp.task is not None:
                self.progress.remove_task(exp.task)
            if kind != "interrupted":
                self.done += 1
                if self.progress is not None:
                    self.progress.update(self.queue_task, completed=self.done,
                                         where=f"{self.done}/{self.total}")
            if kind == "end":
                agg = info["record"]["val_metrics"]
                self._print(f"{cfg.exp_id}: precision {fmt.num(agg.get('precision'))} recall "
                            f"{fmt.num(agg.get('recall'))} AUC {fmt.num(agg.get('auc'))} "
                            f"({'mean of ' + str(cfg.seeds) + ' seeds' if cfg.seeds > 1 else '1 seed'})")
            elif kind == "failed":
                self._print(f"[red]{cfg.exp_id} failed[/]: {escape(info['error'])}", error=True)
            elif kind == "busy":
                self._print(f"{cfg.exp_id}: claimed by another runner, left to it")

    def _log_lines(self) -> None:
        """One line per experiment in training, at most every LOG_EVERY_S (not on a terminal)."""
        now = time.monotonic()
        if self.quiet or now - self.last_log < LOG_EVERY_S:
            return
        self.last_log = now
        stamp = time.strftime("%H:%M:%S")
        for exp in self.exps.values():
            eta = exp.eta()
            self._print(f"[{stamp}] {escape(exp.label)}: {exp.where()}, {exp.info()}"
                        f"{', ETA ≤ ' + eta if eta else ''}; queue {self.done}/{self.total} done")


_KEPT = {"best": "the selected weights", "last": "the last training state",
         "all": "every step"}


class _Training:
    """What the display knows of one experiment in training, and its measured pace."""

    def __init__(self, cfg, label: str, seeds: int):
        self.cfg, self.label, self.seeds = cfg, label, seeds
        self.task = None
        self.epoch, self.step, self.steps = 0, 0, 0  # epoch in progress (from 0), its batches done
        self.active, self.best = seeds, None
        self.first: tuple[float, float] | None = None  # (time, progress) of the first report
        self.latest: tuple[float, float] | None = None

    @property
    def progress(self) -> float:
        """Epochs done, with the epoch in progress as a fraction."""
        return self.epoch + (self.step / self.steps if self.steps else 0.0)

    def at(self, epoch: int, step: int, steps: int, stop) -> None:
        self.epoch, self.step, self.steps = epoch, step, steps
        self.active = int(stop.active.sum())
        seen = [b for b in stop.best_metric if b > float("-inf")]
        self.best = max(seen) if seen else None
        point = (time.monotonic(), self.progress)
        self.first = self.first or point
        self.latest = point

    def where(self) -> str:
        epochs = self.cfg.epochs
        if self.step:
            return f"epoch {self.epoch + 1}/{epochs} step {self.step}/{self.steps}"
        return f"{self.epoch}/{epochs} epochs"

    def info(self) -> str:
        best = ""
        if self.best is not None:
            best = (f"  best AUC {self.best:.3f}" if self.cfg.early_stop_metric == "val_auc"
                    else f"  best val loss {-self.best:.4f}")
        return f"seeds {self.active}/{self.seeds} training{best}"

    def eta(self) -> str | None:
        """Time left if every remaining epoch runs (early stopping may end it sooner), from the
        pace measured since the first report."""
        if not self.first or self.latest[0] <= self.first[0] or self.latest[1] <= self.first[1]:
            return None
        rate = (self.latest[1] - self.first[1]) / (self.latest[0] - self.first[0])
        return fmt.duration((self.cfg.epochs - self.progress) / rate)


