"""Where an experiment's checkpoints lie on disk (fembed_jax.checkpoint writes them), for the
readers that must not load jax (`fembed clean`): checkpoints/<ID>/<epoch>/ is one orbax step
holding the items below; selected/ holds one such step of a finished run's selected weights."""

from __future__ import annotations

from pathlib import Path

STATE_ITEM = "state"
META_ITEM = "meta"  # JSON: the caller's fields plus config_hash (the run hash) and epoch
META_FILE = Path(META_ITEM) / "metadata"  # the meta item's file inside a step
SELECTED_DIR = "selected"  # under an experiment's directory: the selected weights of a finished run
ORBAX_TMP = ".orbax-checkpoint-tmp"  # orbax's suffix of a step still being written
# What a finished experiment keeps (`fembed run --keep`, `fembed clean --keep`, Checkpointer.free):
# its selected weights only, its last state (which holds them too), or every step.
KEEP = ("best", "last", "all")
