"""The Detail view of one experiment: summary, per-seed metrics, training curves, run log, config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.events import Resize
from textual.markup import escape
from textual.widgets import DataTable, Label, Log, Static

from fembed_jax.config_diff import differences_from_defaults

from . import fmt
from .logtail import MAX_LINES, LogLines
from .model import Curves, Experiment, QueueRow, ResultRow, curves, legacy_copy_row, per_seed, seed_value
from .plots import CurvePlot, legend

SEED_COLUMNS = (("seed", "seed"), ("precision", "precision"), ("tp", "TP/pred+"), ("ci", "95% CI"),
                ("recall", "recall"), ("auc", "AUC"), ("best", "best ep"), ("flags", "flags"))
LIVE_COLUMNS = (("seed", "seed"), ("epochs", "epochs"), ("train_loss", "train loss"),
                ("val_loss", "val loss"), ("val_auc", "val AUC"), ("best_auc", "best AUC"),
                ("state", "state"))
_HIDDEN_FIELDS = {"exp_id", "description"}
LIVE_STATES = ("running", "stalled", "interrupted")  # their epoch rows are the story, not an old result
CURVES_HEADING = "Training curves (every seed on one scale per metric; x: epoch)"
# metric key, plot title, which end is best
PLOTS = (("val_auc", "val AUC", True), ("val_loss", "val loss", False), ("train_loss", "train loss", False))
WIDE = 110  # from this width on the three plots stand side by side, else one under another


class DetailView(VerticalScroll):
    """Everything about ``exp_id``; ``show`` is called on every poll while it is visible."""

    def compose(self) -> ComposeResult:
        yield Static("Select an experiment in the Queue or Results view and press Enter.", id="detail-title")
        yield Static(id="detail-summary")
        yield Label("Per-seed validation metrics", id="seeds-heading", classes="heading")
        yield DataTable(id="seeds-table", cursor_type="none", zebra_stripes=True)
        yield Label(CURVES_HEADING, id="curves-heading", classes="heading")
        yield Label("[dim]No epochs recorded yet.[/dim]", id="curves-none")
        yield Static(id="curves-legend")
        with Grid(id="curves-plots"):
            for key, title, higher in PLOTS:
                yield CurvePlot(title, higher, id=f"plot-{key}")
        yield Label("Run log", id="log-heading", classes="heading")
        yield Label(id="log-none")
        yield Log(id="run-log", max_lines=MAX_LINES, auto_scroll=True)
        yield Label("Config (* differs from the registry defaults)", classes="heading")
        yield Static(id="detail-config")

    def on_mount(self) -> None:
        self.exp_id: str | None = None
        self._seed_mode: str | None = None
        self._log_state: tuple | None = None  # (path, generation, lines shown)
        self.query_one("#run-log", Log).display = False

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE, "-wide")

    def show(self, exp: Experiment | None, queue: QueueRow | None, result: ResultRow | None,
             record: Mapping | None, epoch_rows: Sequence[Mapping], defaults: Mapping, masked: bool,
             legacy_copy: Mapping | None = None, log: LogLines | None = None,
             log_name: str | None = None) -> None:
        """``legacy_copy``: the original system's record kept in outputs/legacy/ beside the
        store's fembed result (shown under it, for comparison). ``log``: the tail of the run's
        log file (None: not read yet); ``log_name`` the path to show (masked: its contents are
        not shown, they hold times)."""
        self.exp_id = exp.exp_id if exp else None
        if exp is None:
            return
        state = queue.state if queue else "done"
        self.query_one("#detail-title", Static).update(
            f"[b]{exp.exp_id}[/b] · {exp.priority or '-'} · {exp.tier or '-'} · loss {exp.loss or '-'} · "
            f"embedding {exp.embedding or '-'}"
            f"{f' (d_embed {exp.d_embed})' if exp.d_embed else ''} · [b]{state}[/b]\n"
            f"[dim]{escape(exp.description)}[/dim]")
        old = result is not None and result.current is False
        self.query_one("#detail-summary", Static).update(
            self._summary(exp, queue, result, record, masked, legacy_copy))
        self._show_seeds(record, epoch_rows, state, old)
        self._show_curves(curves(epoch_rows, record))
        heading = CURVES_HEADING
        if old and epoch_rows:
            heading = "Training curves of the current attempt (not of the older result above)"
        self.query_one("#curves-heading", Label).update(heading)
        self.query_one("#curves-none", Label).update(
            "[dim]Legacy records have no per-epoch history.[/dim]" if result is not None and result.legacy
            and not epoch_rows else "[dim]No epochs recorded yet.[/dim]")
        self._show_log(log, log_name, masked)
        self.query_one("#detail-config", Static).update(self._config(exp, defaults))

    def _summary(self, exp: Experiment, queue: QueueRow | None, result: ResultRow | None,
                 record: Mapping | None, masked: bool, legacy_copy: Mapping | None) -> str:
        lines = []
        if result is not None and result.current is False:
            lines.append("[b yellow]result of an older config[/]" + _older_config(exp, record)
                         + ", not of the one queued now:")
        if result is not None:
            lines.append(_result_line(result, masked))
        if legacy_copy is not None and (result is None or not result.legacy):
            lines.append("[i]legacy result (original system, one seed), kept in outputs/legacy/:[/i] "
                         + _result_line(legacy_copy_row(exp, legacy_copy), masked, legacy_note=False))
        if queue is not None and queue.progress is not None:
            p = queue.progress
            best = f" · best val AUC {p.best_auc:.3f}" if p.best_auc is not None else ""
            lines.append(f"[b yellow]running[/]: epoch {p.epochs_done}/{p.epochs_max} · seeds "
                         f"{p.seeds_active}/{p.seeds_total} training{best} · {fmt.duration(p.elapsed_s, masked)} "
                         f"elapsed · ETA {fmt.eta(p.eta_s, p.eta_note, masked)}")
        if queue is not None and queue.state == "failed":
            lines.append(f"[b red]failed[/] (attempt {queue.attempts}): {escape(queue.note)}")
        if queue is not None and queue.state in ("interrupted", "stalled"):
            what = ("the next `fembed run` of it resumes from its last checkpoint"
                    if queue.state == "interrupted" else "still holds its claim")
            # the note names the dead or late runner, or says after which epoch a run stopped
            lines.append(f"[b magenta]{queue.state}[/]: {escape(queue.note)}; {what}")
        if not lines:
            lines.append("[dim]No result yet.[/dim]")
        return "\n".join(lines)

    def _show_seeds(self, record: Mapping | None, epoch_rows: Sequence[Mapping], state: str, old: bool) -> None:
        table = self.query_one("#seeds-table", DataTable)
        seeds = per_seed(record)
        # A running (or stalled, or interrupted) experiment shows its live seeds even when an
        # older result exists.
        mode = "live" if (state in LIVE_STATES and epoch_rows) or not seeds else "final"
        if mode != self._seed_mode:
            table.clear(columns=True)
            for key, label in SEED_COLUMNS if mode == "final" else LIVE_COLUMNS:
                table.add_column(label, key=key)
            self._seed_mode = mode
        table.clear()
        heading = self.query_one("#seeds-heading", Label)
        if mode == "final":
            heading.update("Per-seed validation metrics of the older config's result" if old else
                           "Per-seed validation metrics (weights of the selected epoch)")
            for i, m in enumerate(seeds):
                flags = " ".join(f for f in ("collapsed", "diverged") if m.get(f))
                ci = (f"{m['precision_ci_low']:.3f}–{m['precision_ci_high']:.3f}"
                      if m.get("precision_ci_low") is not None and m.get("precision_ci_high") is not None else "-")
                table.add_row(
                    "-" if m.get("seed") is None else str(m["seed"]), fmt.number(m.get("precision")),
                    fmt.ratio(m.get("true_positives"), m.get("n_positive_preds")), ci,
                    fmt.number(m.get("recall")), fmt.number(m.get("auc")),
                    # results.json counts epochs from 0 (-1: none); every view counts from 1, as the curves do
                    "-" if (m.get("best_epoch") is None or m["best_epoch"] < 0) else str(m["best_epoch"] + 1), flags, key=str(i))
            return
        heading.update("Per-seed progress (latest epoch)" if epoch_rows else "Per-seed metrics: none yet")
        by_seed: dict[int, list[Mapping]] = {}
        for r in epoch_rows:
            by_seed.setdefault(int(r["seed"]), []).append(r)
        for seed, rows in sorted(by_seed.items()):
            last = rows[-1]
            aucs = [r["val_auc"] for r in rows if r.get("val_auc") is not None]
            table.add_row(str(seed_value(seed)), str(len(rows)), fmt.number(last.get("train_loss"), 4),
                          fmt.number(last.get("val_loss"), 4), fmt.number(last.get("val_auc")),
                          fmt.number(max(aucs) if aucs else None),
                          "training" if last.get("active") and state in ("running", "stalled") else "stopped",
                          key=str(seed))

    def _show_curves(self, data: Curves) -> None:
        has_data = any(v is not None for values in data.val_auc.values() for v in values) or any(
            v is not None for values in data.val_loss.values() for v in values)
        self.query_one("#curves-none").display = not has_data
        self.query_one("#curves-legend").display = has_data
        self.query_one("#curves-plots").display = has_data
        if not has_data:
            return
        self.query_one("#curves-legend", Static).update(legend(list(data.val_auc or data.val_loss)))
        for key, _, _ in PLOTS:
            self.query_one(f"#plot-{key}", CurvePlot).show(data.metric(key))

    def _show_log(self, log: LogLines | None, name: str | None, masked: bool) -> None:
        widget = self.query_one("#run-log", Log)
        note = self.query_one("#log-none", Label)
        shown = escape(name or (str(log.path) if log else "run.log"))
        heading = self.query_one("#log-heading", Label)
        if log is None or not log.exists:
            heading.update("Run log")
            note.update(f"[dim]No run log yet ({shown}): the runner writes one per run.[/dim]"
                        if log is None or log.error is None else f"[red]{escape(log.error)}[/red]")
            note.display, widget.display = True, False
            self._log_state = None
            return
        if masked:  # snapshot mode: log lines carry times; say it is there, not what it says
            heading.update(f"Run log ({shown})")
            note.update("[dim]Present; not shown in snapshot mode.[/dim]")
            note.display, widget.display = True, False
            return
        heading.update(f"Run log (last {MAX_LINES} lines of {shown})")
        note.display, widget.display = False, True
        state = self._log_state
        if state is None or state[:2] != (log.path, log.generation) or log.total < state[2]:
            widget.clear()
            widget.write_lines(log.lines)
        elif log.total > state[2]:
            new = min(log.total - state[2], len(log.lines))
            widget.write_lines(log.lines[len(log.lines) - new:])
        self._log_state = (log.path, log.generation, log.total)

    def _config(self, exp: Experiment, defaults: Mapping) -> Table | str:
        cfg = exp.config
        if cfg is None:
            return "[dim]No config: this experiment is only known from a legacy result.[/dim]"
        diffs = differences_from_defaults(cfg, defaults)
        registered = exp.registered.to_dict() if exp.registered else None
        grid = Table.grid(padding=(0, 2))
        for _ in range(2):
            grid.add_column(style="bold", no_wrap=True)
            grid.add_column(overflow="fold")
        cells = []
        for key, value in cfg.to_dict().items():
            if key in _HIDDEN_FIELDS:
                continue
            text = Text(_value(value))
            if registered is not None and registered.get(key) != value:
                text.append(f" (registry {_value(registered.get(key))})", style="yellow")
            cells.append((Text(("* " if key in diffs else "  ") + key, style="green" if key in diffs else ""), text))
        half = (len(cells) + 1) // 2
        for left, right in zip(cells[:half], cells[half:] + [(Text(""), Text(""))]):
            grid.add_row(*left, *right)
        return grid


def _result_line(result: ResultRow, masked: bool, legacy_note: bool = True) -> str:
    return (f"precision {fmt.mean_std(result.precision_mean, result.precision_std)} "
            f"(TP/pred+ {fmt.ratio(result.tp_total, result.pred_pos_total)}) · "
            f"recall {fmt.number(result.recall_mean)} · AUC {fmt.mean_std(result.auc_mean, result.auc_std)} · "
            f"epochs {result.epochs if result.epochs is not None else '-'} · "
            f"time {fmt.duration(result.seconds, masked)}"
            + (" · [b red]collapsed[/]" if result.collapsed else "")
            + (" · [i]legacy result (original system, one seed)[/i]" if result.legacy and legacy_note else ""))


def _older_config(exp: Experiment, record: Mapping | None) -> str:
    """" (seeds 2, epochs 40; queued now: seeds 5, epochs 50)" from the record's config, or
    the fields of it that differ from the queued one; "" when the record does not say."""
    old = (record or {}).get("config")
    if not isinstance(old, Mapping) or exp.config is None:
        return ""
    new = exp.config.to_dict()
    keys = [k for k in ("seeds", "epochs") if old.get(k) != new.get(k)]
    keys += [k for k in new if k not in keys and k not in _HIDDEN_FIELDS and k in old
             and old.get(k) != new.get(k)][: max(0, 3 - len(keys))]
    if not keys:
        return ""
    return escape(f" ({', '.join(f'{k} {_value(old.get(k))}' for k in keys)}; queued now: "
                  f"{', '.join(f'{k} {_value(new.get(k))}' for k in keys)})")


def _value(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}" if value else "{}"
    return "-" if value is None else str(value)
