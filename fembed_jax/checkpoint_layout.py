"""Where an experiment's checkpoints lie on disk (fembed_jax.checkpoint writes them), for the
readers that must not load jax (`fembed clean`): checkpoints/<ID>/<epoch>/ is one orbax step
holding the items below; selected/ holds one such step of a finished run's selected weights."""

from __future__ import annotations

from pathlib import Path

STATE_ITEM = "state"
META_ITEM = "meta"  # JSON: the caller's fields plus run_hash and epoch
META_FILE = Path(META_ITEM) / "metadata"  # the meta item's file inside a step
SELECTED_DIR = "selected"  # under an experiment's directory: the selected weights of a finished run
ORBAX_TMP = ".orbax-checkpoint-tmp"  # orbax's suffix of a step still being written
def meta_run_hash(meta: dict) -> str | None:
    """The run hash a step's meta was saved for: "run_hash", or "config_hash" in steps written
    before fembed named it for what it holds."""
    value = meta.get("run_hash", meta.get("config_hash"))
    return str(value) if value else None


# What a finished experiment keeps (`fembed run --keep`, `fembed clean --keep`, Checkpointer.free):
# its selected weights only, its last state (which holds them too), or every step.
KEEP = ("best", "last", "all")
