"""Per-experiment checkpoints (checkpoints/<EXP_ID>/) on orbax-checkpoint's CheckpointManager.

One orbax step per saved epoch, holding two items:

* ``state`` — any pytree of jax/numpy arrays (seed-stacked params, optax state with its
  namedtuples, early-stopping arrays, PRNG key *data* as uint32); restored against an abstract
  target so container types come back as they were saved.
* ``meta``  — a small JSON object: the caller's fields plus ``run_hash`` (``config_hash`` in steps of
  older fembed versions, still read),
  ``epoch``, ``state_sha256`` (a SHA-256 over every leaf's dtype, shape and bytes) and ``meta_sha256``
  (a SHA-256 of the canonical JSON of all the other meta fields, state_sha256 included).

Why the digests: orbax/tensorstore detect truncated or missing files, but flipped bytes inside
an array chunk restore silently as different numbers (checked on orbax 0.12.8), and a meta
file changed in one digit (a loss in the history, the epoch) is still valid JSON. Comparing
both digests after restore turns every kind of damage into an error, so ``restore_latest`` can
fall back to the previous step instead of resuming from corrupted weights or a wrong history.
Everything a resume trusts is covered: the state by state_sha256, the meta (history, seeds,
run hash, epoch, and state_sha256 itself) by meta_sha256, and the step's directory name by
the check that it equals the meta's epoch. Steps of format 1 (fembed before meta_sha256) are
still restored, their meta unverified, with a logged warning: they are what `fembed evaluate`
reads of runs finished by that release.

Two more kinds of checkpoint, both of the same two items:

* a step saved *inside* an epoch (fit.py, on a stop request) is the step of the epoch in
  progress; its meta has ``position`` and its state a ``position`` entry. Saving the end of that
  epoch later replaces it (steps >= the epoch saved are deleted first). ``restore_latest`` takes
  a function of the meta for such differing targets.
* ``selected/`` holds one step of part of a finished experiment's state (its selected weights:
  ``save_selected``); its meta lists the ``items`` kept. ``free("best")`` then deletes the
  per-epoch steps and ``restore_latest`` falls back to it, restoring just those items: what
  `fembed evaluate` reads, at an eighth of the size of the two last steps (no optimizer state,
  no second copy of the weights).

Crash safety comes from orbax: a step is written to ``<step>.orbax-checkpoint-tmp`` and
renamed to ``<step>`` only when complete; unfinished tmp dirs are never listed as steps, are
removed at start-up, and are replaced if the same step is saved again.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import pathlib
import shutil
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from fembed_jax import faults
from fembed_jax.atomic import fsync_directory
from fembed_jax.checkpoint_layout import KEEP, META_ITEM, SELECTED_DIR, STATE_ITEM, meta_run_hash
from fembed_jax.results_io import content_digest, to_jsonable

__all__ = ["Checkpointer", "CheckpointWarning", "Freed", "KEEP", "RestoredCheckpoint", "meta_digest",
           "state_digest"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2  # 2: meta carries meta_sha256
_UNSEALED_FORMAT = 1  # saved before meta_sha256 existed
_META_DIGEST = "meta_sha256"
_RESERVED_META = ("epoch", "state_sha256", _META_DIGEST, "checkpoint_format", "saved_at", "config_hash")
_INTERNAL_META = ("state_sha256", _META_DIGEST, "checkpoint_format")  # not handed back to callers


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped (damaged, other config) while looking for one to resume from."""


class RestoredCheckpoint(NamedTuple):
    epoch: int
    state: Any
    meta: dict[str, Any]


class Freed(NamedTuple):
    before: int  # bytes of the experiment's checkpoints
    after: int
    kept: str  # what is left: "best", "last" or "all"


def tree_bytes(root: pathlib.Path) -> int:
    """Bytes of the files under ``root`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def _host_array(leaf: Any) -> np.ndarray:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        leaf = jax.random.key_data(leaf)
    array = np.asarray(leaf)
    # Not np.ascontiguousarray unconditionally: it turns 0-d arrays into shape (1,).
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def state_digest(state: Any) -> str:
    """SHA-256 over the leaves of ``state`` in flatten order.

    Arrays contribute ``dtype|shape|bytes``. 0-d leaves contribute their Python value
    (``type|repr``): targets made by ``jax.eval_shape`` turn a saved Python ``int`` into an
    int32 0-d array, and orbax hands numpy scalars back as 0-d arrays; the number is what
    has to survive, not its container.
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        array = _host_array(leaf)
        if array.ndim == 0:
            value = array.item()
            digest.update(f"0d|{type(value).__name__}|{value!r};".encode())
            continue
        digest.update(f"{array.dtype.str}|{array.shape};".encode())
        digest.update(memoryview(array).cast("B") if array.size else b"")
    return digest.hexdigest()


def meta_digest(meta: Mapping[str, Any]) -> str:
    """SHA-256 of a step's meta item without its own ``meta_sha256`` field (canonical JSON:
    the same after orbax's JSON round trip)."""
    return content_digest({key: value for key, value in meta.items() if key != _META_DIGEST})


def _meta_problem(meta: Any, step: int) -> str | None:
    """Why a step's meta item cannot be trusted (None when it can).

    A meta of format 1 has no digest to check; it is accepted (see the module docstring), but
    its epoch must still be the step's.
    """
    if not isinstance(meta, dict):
        return f"metadata is a {type(meta).__name__}, not an object"
    saved = meta.get(_META_DIGEST)
    if saved is None and meta.get("checkpoint_format") != _UNSEALED_FORMAT:
        return f"metadata has no {_META_DIGEST} (damaged)"
    if saved is not None and saved != meta_digest(meta):
        return "metadata does not match its digest (edited or damaged after it was saved)"
    if meta.get("epoch") != step:
        return f"metadata is of epoch {meta.get('epoch')!r}, not of its step {step}"
    return None


def _abstract_leaf(leaf: Any) -> Any:
    """Restore target of one leaf.

    Arrays become ShapeDtypeStructs with their sharding. A ShapeDtypeStruct without a
    sharding (``jax.eval_shape`` of an init function) gets the default device: orbax would
    otherwise fall back to the sharding saved in the checkpoint and refuse ("Topology
    mismatch") when the run resumes on another device count, e.g. after toggling
    ``--xla_force_host_platform_device_count``. numpy scalars, which orbax cannot restore
    into, are targeted as 0-d arrays; Python scalars pass through.
    """
    if isinstance(leaf, jax.ShapeDtypeStruct):
        if leaf.sharding is not None:
            return leaf
        default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=default)
    if isinstance(leaf, np.generic):
        leaf = np.asarray(leaf)
    if isinstance(leaf, (jax.Array, np.ndarray)):
        return _orbax().utils.to_shape_dtype_struct(leaf)
    return leaf


@functools.cache
def _orbax():
    """orbax.checkpoint, imported on first use: the import takes 1-2 s, and a fresh run needs it
    only for its first save, after the first epoch has trained."""
    import orbax.checkpoint as ocp

    return ocp


@functools.cache
def _step_directory_class() -> type:
    class _StepDirectory(_orbax().path.atomicity.AtomicRenameTemporaryPath):
        """orbax's write-to-tmp-then-rename directory (of a step, and of each item inside it),
        with fault points just before the rename: written but not yet part of a checkpoint
        (faults.py)."""

        async def finalize(self, *args: Any, **kwargs: Any) -> None:
            faults.hit("checkpoint.step_written" if self.get_final().name.isdigit()
                       else "checkpoint.item_written")
            await super().finalize(*args, **kwargs)

    return _StepDirectory


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first[:300]}"


def _fsync_tree(root: pathlib.Path) -> None:
    """fsync every file and directory under ``root`` (and root's parent, for the rename)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_directory(pathlib.Path(dirpath))
    fsync_directory(root.parent)


def _items_of(abstract_state: Any, meta: Mapping[str, Any]) -> Any:
    """The target of a ``selected/`` step: the caller's target, cut to the items it holds
    (``None`` for all: restored as saved)."""
    wanted = abstract_state(meta) if callable(abstract_state) else abstract_state
    if wanted is None:
        return None
    return {key: wanted[key] for key in meta.get("items", ())}


class Checkpointer:
    """Checkpoints of one experiment at ``directory``, tied to its ``run_hash`` (config + data;
    kept in each step's meta).

    ``save`` is synchronous and fsyncs the finished step, so once it returns the epoch is on
    disk. ``restore_latest`` resumes from the newest step that has the same run hash and
    restores intact; anything else is skipped with a ``CheckpointWarning`` naming the path.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        run_hash: str,
        max_to_keep: int = 2,
        *,
        fsync: bool = True,
    ) -> None:
        if max_to_keep < 1:
            raise ValueError(f"checkpoints in {directory}: max_to_keep must be >= 1, got {max_to_keep}")
        if not run_hash:
            raise ValueError(f"checkpoints in {directory}: run_hash is required")
        # orbax/tensorstore refuse relative paths ("Checkpoint path should be absolute").
        self.directory = pathlib.Path(directory).expanduser().absolute()
        self.run_hash = run_hash
        self.max_to_keep = max_to_keep
        self.fsync = fsync
        self._manager: Any = None  # orbax CheckpointManager, made on first use

    # -- lifecycle ---------------------------------------------------------------------------

    def _mgr(self) -> Any:
        if self._manager is None:
            ocp = _orbax()
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.max_to_keep,
                create=True,
                enable_async_checkpointing=False,
                cleanup_tmp_directories=True,  # leftovers of a crash mid-save
                temporary_path_class=_step_directory_class(),
            )
            self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=(STATE_ITEM, META_ITEM))
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpointer({str(self.directory)!r}, run_hash={self.run_hash!r}, max_to_keep={self.max_to_keep})"

    # -- operations --------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """Finalized steps (epochs) on disk, oldest first; unfinished tmp dirs never count."""
        if not self.directory.exists():
            return []
        manager = self._mgr()
        manager.reload()
        return sorted(manager.all_steps())

    def step_path(self, epoch: int) -> pathlib.Path:
        return self.directory / str(epoch)

    def save(self, epoch: int, state: Any, meta: Mapping[str, Any] | None = None) -> pathlib.Path:
        """Save ``state`` as step ``epoch`` and return its directory once it is durable.

        Steps >= ``epoch`` already on disk are deleted first: they belong to a run that is
        being redone (resume after a damaged step, or after a config change). orbax would
        otherwise refuse (step exists) or silently skip (step not after its latest).
        """
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"checkpoint {self.directory}: epoch must be >= 0, got {epoch}")
        user_meta = dict(to_jsonable(dict(meta or {})))
        given_hash = user_meta.pop("run_hash", self.run_hash)
        if given_hash != self.run_hash:
            raise ValueError(
                f"checkpoint {self.directory}: meta run_hash {given_hash!r} differs from the "
                f"checkpointer's {self.run_hash!r}"
            )
        clashing = [key for key in _RESERVED_META if key in user_meta]
        if clashing:
            raise ValueError(f"checkpoint {self.directory}: meta keys {clashing} are reserved")
        full_meta = {
            **user_meta,
            "run_hash": self.run_hash,
            "epoch": epoch,
            "state_sha256": state_digest(state),
            "checkpoint_format": CHECKPOINT_FORMAT,
            "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        full_meta[_META_DIGEST] = meta_digest(full_meta)
        manager = self._mgr()
        ocp = _orbax()
        manager.reload()
        for step in sorted(manager.all_steps()):
            if step >= epoch:
                log.info("checkpoint %s: replacing step %d (redoing epochs from %d)", self.directory, step, epoch)
                manager.delete(step)
        faults.hit("checkpoint.save_begin")
        saved = manager.save(
            epoch,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(full_meta)),
            force=True,
        )
        manager.wait_until_finished()
        if not saved:
            raise RuntimeError(f"checkpoint {self.step_path(epoch)}: orbax declined to save epoch {epoch}")
        path = self.step_path(epoch)
        faults.hit("checkpoint.renamed")
        if self.fsync:
            _fsync_tree(path)
        return path

    def restore_latest(self, abstract_state: Any) -> RestoredCheckpoint | None:
        """Newest usable checkpoint as ``(epoch, state, meta)``, or None.

        ``abstract_state`` is the target structure: a pytree of ``jax.ShapeDtypeStruct`` (e.g.
        from ``jax.eval_shape(init, key)``) or of concrete arrays shaped like the state; its
        container types (optax namedtuples) and dtypes are those returned. Steps are tried
        newest first; a step with unreadable files, whose meta fails its digest or names
        another epoch, from another config, or whose restored contents fail the state digest
        is skipped with a ``CheckpointWarning``: it is never resumed from.

        ``abstract_state`` may also be a function of a step's meta returning its target (steps
        saved inside an epoch hold more). When no per-epoch step is usable, the ``selected/``
        checkpoint (``save_selected``) is tried: its state holds only the items it lists.
        """
        found = self._restore_steps(abstract_state)
        if found is None and (self.directory / SELECTED_DIR).is_dir():
            found = self._selected().restore_latest(functools.partial(_items_of, abstract_state))
        return found

    def _restore_steps(self, abstract_state: Any) -> RestoredCheckpoint | None:
        steps = self.steps()
        if not steps:
            return None
        manager = self._mgr()
        ocp = _orbax()
        for step in reversed(steps):
            path = self.step_path(step)
            try:
                meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
            except Exception as err:  # damaged in any way: try an older step
                self._skip(path, f"unreadable metadata ({_short(err)})")
                continue
            problem = _meta_problem(meta, step)
            if problem:
                self._skip(path, problem)
                continue
            if meta_run_hash(meta) != self.run_hash:
                self._skip(path, f"saved for run {meta_run_hash(meta)!r}, not {self.run_hash!r}")
                continue
            try:
                wanted = abstract_state(meta) if callable(abstract_state) else abstract_state
                target = jax.tree.map(_abstract_leaf, wanted)
            except KeyError as err:  # the caller's target lacks an item this step holds
                self._skip(path, f"holds {err} that this restore does not expect")
                continue
            try:
                state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))).state
            except Exception as err:
                self._skip(path, f"cannot be restored ({_short(err)})")
                continue
            if meta.get("state_sha256") != state_digest(state):
                self._skip(path, "restored contents do not match the saved digest (damaged data, or the target's dtypes differ from the saved ones)")
                continue
            if _META_DIGEST not in meta:
                log.warning("checkpoint %s: saved by an older fembed (format %s): its metadata "
                            "(history, seeds) cannot be verified", path, meta.get("checkpoint_format"))
            user_meta = {k: v for k, v in meta.items() if k not in _INTERNAL_META}
            return RestoredCheckpoint(step, state, user_meta)
        return None

    def _skip(self, path: pathlib.Path, why: str) -> None:
        warnings.warn(f"checkpoint {path}: {why}; trying an older one", CheckpointWarning, stacklevel=3)

    # -- a finished experiment ----------------------------------------------------------------

    def _selected(self) -> Checkpointer:
        return Checkpointer(self.directory / SELECTED_DIR, self.run_hash, max_to_keep=1, fsync=self.fsync)

    def save_selected(self, epoch: int, state: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> pathlib.Path:
        """Save part of a finished experiment's state (a mapping: its selected weights and
        whatever else it needs) as ``selected/<epoch>``; it replaces any earlier one."""
        with self._selected() as selected:
            return selected.save(epoch, dict(state), {**dict(meta or {}), "items": sorted(state)})

    def free(self, keep: str) -> Freed:
        """Delete what a finished experiment no longer needs; returns the bytes before and after.

        "best": only ``selected/`` stays, once it proved intact (its digests checked); without
        one, "last" is done instead. "last": the newest per-epoch step (the last state, which
        also holds the best weights). "all": nothing is deleted. Steps go oldest first, so a
        crash midway leaves a restorable newest step.
        """
        if keep not in KEEP:
            raise ValueError(f"checkpoints in {self.directory}: keep must be one of {KEEP}, got {keep!r}")
        before = tree_bytes(self.directory)
        if keep == "all":
            return Freed(before, before, keep)
        steps = self.steps()
        if keep == "best" and not self._selected_intact():
            keep = "last"
        manager = self._mgr() if steps else None
        for step in steps if keep == "best" else steps[:-1]:
            manager.delete(step)
            faults.hit("checkpoint.step_deleted")
        if keep == "last" and steps:
            shutil.rmtree(self.directory / SELECTED_DIR, ignore_errors=True)
        if self.fsync and self.directory.exists():
            fsync_directory(self.directory)
        return Freed(before, tree_bytes(self.directory), keep)

    def _selected_intact(self) -> bool:
        """The selected/ step restores (as saved, no target) and matches both its digests."""
        if not (self.directory / SELECTED_DIR).is_dir():
            return False
        with self._selected() as selected, warnings.catch_warnings():
            warnings.simplefilter("ignore", CheckpointWarning)
            return selected.restore_latest(lambda meta: None) is not None

    def clear(self) -> None:
        """Delete every checkpoint of this experiment (``--force``, or its config changed)."""
        self.close()
        if self.directory.exists():
            shutil.rmtree(self.directory)
