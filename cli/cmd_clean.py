"""`fembed clean`: free the disk space no result needs, listing it first (like `dvc gc`).

What it frees, per checkpoint folder checkpoints/<ID>/:

* a done experiment's checkpoints beyond ``--keep`` (best: its selected weights; last: its last
  step), through Checkpointer.free, which checks the selected weights before it deletes a step;
* checkpoints of another run hash than the run store's current one (an old config or other
  data: never resumed, never evaluated), whatever the experiment's state;
* folders of ids neither the registry nor the run store knows (orphans); with ``--untracked``
  also those of registry experiments this run store never queued (a run with another --outputs);
* leftovers: unfinished saves of a crashed run, damaged steps (when an intact one remains);
* with ``--caches``: the tier data, compiled programs and parameter counts under the cache dir.

Safety: an experiment a live runner holds (fembed_jax.liveness) is skipped, and the claim is
checked again right before each folder is touched; a folder written in the last STALE_AFTER_S
seconds is skipped too (a runner of another outputs folder may be writing it). A running or
pending experiment's checkpoints of its current run are never touched, and a done one always
keeps restorable weights. Deletions are crash-safe: an entry is renamed into
checkpoints/.fembed-clean-trash/ (atomic, so never half deleted in place) before it is removed,
and Checkpointer.free deletes oldest first; what a SIGKILL leaves in the trash the next clean
removes. The listing reads only files and the store (no jax import).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from fembed_jax import faults, fmt
from fembed_jax.atomic import fsync_directory
from fembed_jax.catalog import cache_dir
from fembed_jax.checkpoint_layout import KEEP, META_FILE, ORBAX_TMP, SELECTED_DIR, meta_run_hash
from fembed_jax.liveness import STALE_AFTER_S, judge

from .common import UsageError, add_filter_options, console, err_console, guarded, note, registry_from_args, select
from .paths import add_path_options, data_config_from_args, paths_from_args, store_path

TRASH_DIR = ".fembed-clean-trash"

WHAT = {  # {s}: the plural ending
    "beyond-keep": "step{s} beyond --keep {keep}",
    "old-config": "step{s} of another run hash (old config or data)",
    "orphan": "not in the registry nor the run store",
    "untracked": "never queued in this run store",
    "damaged": "damaged step{s} (never restored)",
    "unfinished-save": "unfinished save{s} (crash leftovers)",
    "unfinished-clean": "item{s} left by an interrupted clean",
}
TIER_FILE = re.compile(r"^\.?a\d+-[0-9a-f]{16}-v\d+\.parquet(\.[0-9a-f]+\.tmp)?$")
CACHES = {  # kind -> what rebuilds it (numbers: BENCHMARKS.md)
    "tier data": "rebuilt by `fembed data build` or the next run (about a second for the built-in data)",
    "compiled programs": "recompiled by the next run of each model shape (several seconds each)",
    "parameter counts": "recounted by the next `fembed list` / `fembed run` (traces each model shape)",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "clean", help="free disk space: checkpoints no result needs, old configs, orphans (dry run by default)",
        description="List, per experiment, what can be deleted without losing a result: checkpoints "
                    "of done experiments beyond --keep, checkpoints of an old config or other data "
                    "(another run hash than the run store's), folders of unknown ids, crash "
                    "leftovers; with --caches also the tier data and compiled-program caches. "
                    "Nothing is deleted without --yes. An experiment a live runner holds is never "
                    "touched, and a done one keeps the weights `fembed evaluate` restores.",
        epilog="examples:\n"
               "  fembed clean                        what would be freed (changes nothing)\n"
               "  fembed clean --yes                  free it\n"
               "  fembed clean --keep last --yes      keep each done experiment's last training state\n"
               "  fembed clean --caches --json        the plan, caches included, for scripts\n"
               "exit codes: 0 done (or nothing to free), 2 bad input (no run store, unknown id), "
               "1 a deletion failed",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--yes", "-y", action="store_true", help="delete what the listing shows")
    parser.add_argument("--keep", choices=KEEP, default="best",
                        help="what a done experiment keeps: best = its selected weights (default), "
                             "last = its last training state, all = every step (frees only old "
                             "configs, orphans and leftovers)")
    parser.add_argument("--caches", action="store_true",
                        help="also the tier data, compiled programs and parameter counts of the "
                             "cache dir (rebuilt on demand, which costs time)")
    parser.add_argument("--untracked", action="store_true",
                        help="also folders of registry experiments this run store never queued "
                             "(kept by default: a run with another --outputs may own them)")
    parser.add_argument("--json", action="store_true", help="print the plan (or with --yes the result) as JSON")
    add_filter_options(parser)
    add_path_options(parser, data=False)
    parser.set_defaults(func=run)


@dataclasses.dataclass
class Item:
    kind: str  # a key of WHAT
    path: Path
    bytes: int
    run_hash: str | None = None


@dataclasses.dataclass
class Target:
    """One checkpoint folder and what clean would do with it."""

    exp_id: str
    state: str  # the store's state as views show it, or orphan / untracked / trash
    run_hash: str | None
    folder: Path
    items: list[Item] = dataclasses.field(default_factory=list)
    free_keep: str | None = None  # Checkpointer.free(free_keep) after the items are gone
    skipped: str | None = None
    note: str | None = None
    freed: int | None = None
    error: str | None = None

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)


def _walk(root: Path) -> tuple[int, float]:
    """(bytes, newest file mtime) of the files under ``root`` (a file counts itself)."""
    total, newest = 0, 0.0
    paths = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # removed while we look
            continue
        total += stat.st_size
        newest = max(newest, stat.st_mtime)
    return total, newest


def _step_hash(step: Path) -> str | None:
    """The run hash a step was saved for, or None when its meta cannot be read (damaged)."""
    try:
        meta = json.loads((step / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("epoch") != int(step.name):
        return None
    return meta_run_hash(meta)


def _entries(folder: Path) -> list[tuple[Path, str, str | None, bool]]:
    """(path, "step" | "damaged" | "unfinished-save", run hash, in selected/) of a folder's
    checkpoint entries; anything else in it is not ours and is left alone."""
    found = []
    for parent, selected in ((folder, False), (folder / SELECTED_DIR, True)):
        if not parent.is_dir():
            continue
        for path in sorted(parent.iterdir(), key=lambda p: p.name):
            if ORBAX_TMP in path.name:
                found.append((path, "unfinished-save", None, selected))
            elif path.name.isdigit() and path.is_dir():
                run_hash = _step_hash(path)
                found.append((path, "step" if run_hash else "damaged", run_hash, selected))
    return sorted(found, key=lambda e: (e[3], int(e[0].name) if e[0].name.isdigit() else -1))


def _is_checkpoint_folder(folder: Path) -> bool:
    """Only orbax steps, selected/ and unfinished saves (or nothing): a folder fembed made."""
    return all(p.is_dir() and (p.name.isdigit() or p.name == SELECTED_DIR or ORBAX_TMP in p.name)
               for p in folder.iterdir())


def _held(row: dict, now: float) -> str | None:
    """Who holds a running experiment, if that runner is alive (or only late)."""
    if row.get("state") != "running":
        return None
    verdict = judge(row.get("claimed_by"), row.get("heartbeat_at"), row.get("started_at"), now)
    return None if verdict.dead else f"{row.get('claimed_by') or '?'} ({verdict.reason})"


def plan_folder(folder: Path, row: dict | None, in_registry: bool, keep: str, untracked: bool,
                now: float) -> Target:
    """What clean may delete of checkpoints/<ID>/ given the store's row of ID (None: unknown)."""
    exp_id = folder.name
    if row is None:
        state = "untracked" if in_registry else "orphan"
        size, newest = _walk(folder)
        target = Target(exp_id, state, None, folder)
        if not _is_checkpoint_folder(folder):
            target.note = "holds files that are not checkpoints: left alone"
        elif state == "untracked" and not untracked:
            target.note = f"kept ({fmt.size(size)}): a run with another --outputs may own it; --untracked deletes it"
        else:
            target.items.append(Item(state, folder, size))
    else:
        state = row["state"]
        target = Target(exp_id, state, row.get("run_hash"), folder)
        holder = _held(row, now)
        if holder:
            target.skipped = f"held by {holder}"
            return target
        if state == "running":
            target.state = "interrupted"  # its runner is dead: like pending, it resumes
        newest = _walk(folder)[1]
        _plan_entries(target, keep)
    if target.items and now - newest < STALE_AFTER_S:
        target.skipped = (f"written {max(now - newest, 0):.0f}s ago, perhaps by a runner of another "
                          f"outputs folder; clean again in {STALE_AFTER_S - (now - newest):.0f}s")
    return target


def _plan_entries(target: Target, keep: str) -> None:
    entries = _entries(target.folder)
    current = [path for path, kind, h, sel in entries if kind == "step" and h == target.run_hash and not sel]
    selected = [path for path, kind, h, sel in entries if kind == "step" and h == target.run_hash and sel]
    for path, kind, run_hash, _sel in entries:
        if kind == "step" and run_hash != target.run_hash:
            target.items.append(Item("old-config", path, _walk(path)[0], run_hash))
        elif kind == "unfinished-save":
            target.items.append(Item(kind, path, _walk(path)[0]))
        elif kind == "damaged" and (current or selected):  # never the last thing left
            target.items.append(Item(kind, path, _walk(path)[0]))
    if target.state != "done":
        return  # pending, failed, interrupted: their current checkpoints are what they resume from
    if not current and not selected:
        target.note = "no checkpoint of its current run: `fembed evaluate` cannot restore it"
        return
    if keep == "all":
        return
    if keep == "best" and not selected and len(current) > 1:
        target.note = "no selected weights saved (a run with --keep all?): keeps its last step"
    beyond = current if keep == "best" and selected else current[:-1] + (selected if current else [])
    target.items += [Item("beyond-keep", path, _walk(path)[0], target.run_hash) for path in beyond]
    if beyond:
        target.free_keep = keep


class _Project:
    """What planning needs: the folders, the store's rows and the registry's ids."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        registry = registry_from_args(args)
        self.outputs, self.checkpoints = paths_from_args(args, registry)
        self.store = store_path(args, registry.path)
        self.registry_ids = {cfg.exp_id for cfg in registry.experiments}
        self.scope = self._scope(registry)
        self.registry = registry

    def _scope(self, registry) -> set[str] | None:
        args = self.args
        if not (args.priority or args.exp_id or args.tier or args.loss or args.embedding):
            return None
        foreign = [e for e in args.exp_id if e not in self.registry_ids]
        if foreign and not (args.priority or args.tier or args.loss or args.embedding):
            # Ids the registry no longer has may still be cleaned by name (orphans).
            known = set(self.rows()) | {p.name for p in self._folders()}
            unknown = [e for e in foreign if e not in known]
            if unknown:
                select(registry, argparse.Namespace(**{**vars(args), "exp_id": unknown}))  # its error
            ours = [e for e in args.exp_id if e in self.registry_ids]
            args = argparse.Namespace(**{**vars(args), "exp_id": ours})
            chosen = {cfg.exp_id for cfg in select(registry, args)} if args.exp_id else set()
            return chosen | set(foreign)
        return {cfg.exp_id for cfg in select(registry, args)}

    def rows(self) -> dict[str, dict]:
        from fembed_jax.store import RunStore

        if not self.store.exists():
            return {}
        with RunStore(self.store, readonly=True) as store:
            return {row["exp_id"]: row for row in store.experiments()}

    def live_runners(self) -> list[str]:
        now = time.time()
        return [holder for row in self.rows().values() if (holder := _held(row, now))]

    def _folders(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        return sorted((p for p in self.checkpoints.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: p.name)

    def plan(self, only: str | None = None) -> list[Target]:
        rows, now = self.rows(), time.time()
        targets = []
        for folder in self._folders():
            if only is not None and folder.name != only:
                continue
            if self.scope is not None and folder.name not in self.scope:
                continue
            targets.append(plan_folder(folder, rows.get(folder.name), folder.name in self.registry,
                                       self.args.keep, self.args.untracked, now))
        trash = self.checkpoints / TRASH_DIR
        if only is None and trash.is_dir() and any(trash.iterdir()):
            left = Target("(interrupted clean)", "trash", None, trash)
            left.items = [Item("unfinished-clean", p, _walk(p)[0]) for p in sorted(trash.iterdir())]
            targets.insert(0, left)
        order = {exp_id: k for k, exp_id in enumerate(rows)}
        return sorted(targets, key=lambda t: (t.state != "trash", order.get(t.exp_id, len(order)), t.exp_id))

    def caches(self) -> list[dict]:
        data_dir = data_config_from_args(self.args, self.registry).resolved_cache_dir()
        found = {
            "tier data": [p for p in (sorted(data_dir.iterdir()) if data_dir.is_dir() else [])
                          if p.is_file() and (TIER_FILE.match(p.name) or p.name.startswith("builtin-source-v"))],
            "compiled programs": [p for p in [cache_dir() / "jax"] if p.is_dir()],
            "parameter counts": [p for p in [cache_dir() / "param_counts.json"] if p.is_file()],
        }
        return [{"kind": kind, "paths": paths, "bytes": sum(_walk(p)[0] for p in paths),
                 "rebuilt_by": CACHES[kind]} for kind, paths in found.items() if paths]


def _discard(path: Path, trash: Path, exp_id: str) -> int:
    """Delete ``path``: renamed into the trash first (one atomic step: the entry is gone from its
    folder at once, never half deleted there), then removed."""
    size = _walk(path)[0]
    if path.parent != trash:
        trash.mkdir(exist_ok=True)
        moved = trash / f"{exp_id}.{path.name}.{uuid.uuid4().hex[:8]}"
        os.rename(path, moved)
        fsync_directory(path.parent)
        faults.hit("clean.trashed")
        path = moved
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    return size


def _execute(project: _Project, target: Target) -> Target:
    """Delete what ``target`` lists, planned again from the store and the disk right before
    (the claim re-checked: a runner may have taken the experiment since the listing)."""
    trash = project.checkpoints / TRASH_DIR
    if target.state != "trash":
        fresh = project.plan(only=target.exp_id)
        if not fresh:
            target.items, target.note, target.free_keep = [], "gone since the listing", None
            return target
        target = fresh[0]
        if target.skipped:
            return target
    target.freed = 0
    try:
        for item in target.items:
            if item.kind != "beyond-keep":
                target.freed += _discard(item.path, trash, target.exp_id)
                faults.hit("clean.between")
        selected = target.folder / SELECTED_DIR
        if selected.is_dir() and not any(selected.iterdir()):
            selected.rmdir()  # all it held was of another run
        if target.free_keep:
            from fembed_jax.checkpoint import Checkpointer

            try:
                with Checkpointer(target.folder, target.run_hash) as checkpointer:
                    freed = checkpointer.free(target.free_keep)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - orbax's own errors: what is left still restores
                target.error = f"{target.folder}: checkpoints not freed ({type(exc).__name__}: {exc})"
                return target
            target.freed += freed.before - freed.after
            if freed.kept != target.free_keep:
                target.note = "kept its last step: the selected weights did not prove intact"
            faults.hit("clean.between")
    except OSError as exc:
        target.error = f"{exc.filename or target.folder}: {exc.strerror or exc}"
    return target


@guarded
def run(args: argparse.Namespace) -> int:
    project = _Project(args)
    if not project.store.exists() and not args.caches:
        raise UsageError(f"no run store at {project.store}: nothing to judge the checkpoints in "
                         f"{project.checkpoints} against (pass the --outputs of the run; --caches "
                         "cleans only the caches)")
    targets = project.plan() if project.store.exists() else []
    if not project.store.exists():
        note(args, f"[yellow]note:[/] no run store at {escape(str(project.store))}: checkpoints left alone")
    caches = project.caches() if args.caches or not args.json else []
    runners = project.live_runners() if args.caches else []
    if runners:  # they may be reading the tier data or writing compiled programs right now
        for cache in caches:
            cache["skipped"] = f"in use by the live runner {runners[0]}"
    if args.yes:
        targets = [_execute(project, t) if t.items and not t.skipped else t for t in targets]
        if args.caches:
            for cache in caches:
                if cache.get("skipped"):
                    continue
                try:
                    cache["freed"] = sum(_discard(p, p.parent, "cache") for p in cache["paths"])
                except OSError as exc:
                    cache["error"] = f"{exc.filename}: {exc.strerror or exc}"
        trash = project.checkpoints / TRASH_DIR
        if trash.is_dir() and not any(trash.iterdir()):
            trash.rmdir()
    if args.json:
        print(json.dumps(_as_json(project, targets, caches if args.caches else [], args), indent=1))
    else:
        _print(project, targets, caches, args)
    for failed in [t.error and f"{t.exp_id}: {t.error}" for t in targets] + [c.get("error") for c in caches]:
        if failed:
            err_console.print(f"[bold red]error:[/] {escape(failed)}", highlight=False)
    return 1 if any(t.error for t in targets) or any(c.get("error") for c in caches) else 0


def _what(target: Target, keep: str) -> str:
    kinds = dict.fromkeys(item.kind for item in target.items)
    parts = []
    for kind in kinds:
        count = sum(item.kind == kind for item in target.items)
        label = WHAT[kind].format(keep=keep, s="" if count == 1 else "s")
        parts.append(label if kind in ("orphan", "untracked") else f"{count} {label}")
    return "; ".join(parts)


def _print(project: _Project, targets: list[Target], caches: list[dict], args) -> None:
    done = args.yes
    shown = [t for t in targets if t.items or t.skipped or t.note or t.error]
    console.print(f"checkpoints: {escape(str(project.checkpoints))} (run store {escape(str(project.store))}, "
                  f"--keep {args.keep})", highlight=False)
    if shown:
        table = Table(header_style="bold", title_justify="left",
                      title="freed" if done else "would be freed")
        for column in ("id", "state", "what", "freed" if done else "size", "note"):
            table.add_column(column, justify="right" if column in ("size", "freed") else "left")
        for t in shown:
            if t.skipped:
                size, what, remark = "-", "", f"[yellow]skipped:[/] {escape(t.skipped)}"
            elif t.error:
                size, what, remark = fmt.size(t.freed or 0), _what(t, args.keep), f"[red]failed:[/] {escape(t.error)}"
            else:
                size = fmt.size(t.freed if done and t.freed is not None else t.bytes) if t.items else "-"
                what, remark = _what(t, args.keep), escape(t.note or "")
            table.add_row(escape(t.exp_id), t.state, what, size, remark)
        console.print(table)
    total = sum(t.freed or 0 for t in targets) if done else sum(t.bytes for t in targets if not t.skipped)
    count = sum(1 for t in targets if t.items and not t.skipped and (not done or t.freed is not None))
    skipped = sum(1 for t in targets if t.skipped)
    where = f"{count} checkpoint folder(s)" + (f", {skipped} skipped" if skipped else "")
    if caches and args.caches:
        table = Table(header_style="bold", title_justify="left", title="caches (--caches)")
        for column in ("cache", "freed" if done else "size", "rebuilt by"):
            table.add_column(column, justify="right" if column in ("size", "freed") else "left")
        for c in caches:
            remark = (f"[red]failed:[/] {escape(c['error'])}" if c.get("error") else
                      f"[yellow]skipped:[/] {escape(c['skipped'])}" if c.get("skipped") else escape(c["rebuilt_by"]))
            table.add_row(c["kind"], fmt.size(c.get("freed") or 0 if done else c["bytes"]), remark)
        console.print(table)
        total += (sum(c.get("freed") or 0 for c in caches) if done
                  else sum(c["bytes"] for c in caches if not c.get("skipped")))
        where += " and the caches"
    if done:
        console.print(f"freed {fmt.size(total)}: {where}", highlight=False)
        return
    if total or skipped:
        console.print(f"total: {fmt.size(total)} in {where}", highlight=False)
    if caches and not args.caches:
        console.print(f"caches: {fmt.size(sum(c['bytes'] for c in caches))} of tier data and compiled "
                      "programs, kept (--caches frees them; rebuilding costs time)", highlight=False)
    if total:
        console.print(f"run [bold]{escape(_yes_command(args))}[/] to delete", highlight=False)
    else:
        console.print("nothing to free" + (" (run again once the skipped ones are free)" if skipped else ""))


def _yes_command(args) -> str:
    """This command again with --yes (the same selection)."""
    words = ["fembed clean"]
    if args.keep != "best":
        words.append(f"--keep {args.keep}")
    words += [flag for flag, on in (("--caches", args.caches), ("--untracked", args.untracked)) if on]
    for name, flag in (("priority", "-p"), ("exp_id", "-e"), ("tier", "--tier"), ("loss", "--loss"),
                       ("embedding", "--embedding")):
        words += [f"{flag} {value}" for value in getattr(args, name)]
    words += [f"--{name} {getattr(args, name)}" for name in ("outputs", "checkpoints") if getattr(args, name, None)]
    return " ".join([*words, "--yes"])


def _as_json(project: _Project, targets: list[Target], caches: list[dict], args) -> dict:
    return {
        "checkpoints": str(project.checkpoints), "store": str(project.store), "keep": args.keep,
        "deleted": bool(args.yes), "caches_included": bool(args.caches),
        "experiments": [{
            "id": t.exp_id, "state": t.state, "run_hash": t.run_hash, "bytes": t.bytes,
            "freed": t.freed, "skipped": t.skipped, "note": t.note, "error": t.error,
            "items": [{"kind": i.kind, "path": str(i.path), "bytes": i.bytes, "run_hash": i.run_hash}
                      for i in t.items],
        } for t in targets],
        "caches": [{"kind": c["kind"], "paths": [str(p) for p in c["paths"]], "bytes": c["bytes"],
                    "freed": c.get("freed"), "rebuilt_by": c["rebuilt_by"], "skipped": c.get("skipped"),
                    "error": c.get("error")}
                   for c in caches],
        "total_bytes": (sum(t.bytes for t in targets if not t.skipped)
                        + sum(c["bytes"] for c in caches if not c.get("skipped"))),
        "freed_bytes": (sum(t.freed or 0 for t in targets) + sum(c.get("freed") or 0 for c in caches))
        if args.yes else None,
    }
