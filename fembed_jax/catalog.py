"""Parameter counts of the models fembed builds, cached on disk.

Counting traces the model with jax.eval_shape (no allocation), which costs ~0.1 s per config;
`fembed list` over 183 experiments would pay that every time, so counts are cached by the fields
that shape the model plus the models code version.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from fembed_jax.config import ExperimentConfig, fields_with

# Fields that determine the parameter shapes (dropout, loss, etc. do not).
SHAPE_FIELDS = fields_with("model")  # the fields a parameter count depends on


def _models_source_hash() -> str:
    """Counts are stale whenever the model code changes."""
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).parent / "models").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_dir() -> Path:
    """$FEMBED_CACHE, else .cache/ of the checkout fembed runs from, else the user's cache
    folder (an installed wheel must not write into site-packages)."""
    if os.environ.get("FEMBED_CACHE"):
        return Path(os.environ["FEMBED_CACHE"])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "registry" / "experiments.toml").is_file() and (checkout / "pyproject.toml").is_file():
        return checkout / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fembed"


def shape_key(cfg: ExperimentConfig) -> str:
    fields = {k: v for k, v in cfg.to_dict().items() if k in SHAPE_FIELDS}
    blob = json.dumps(fields, sort_keys=True) + _models_source_hash()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def param_counts(configs: Iterable[ExperimentConfig]) -> dict[str, int]:
    """exp_id -> number of parameters of the model fembed builds (RevIN included)."""
    path = cache_dir() / "param_counts.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    counts, missing = {}, False
    configs = list(configs)
    for cfg in configs:
        key = shape_key(cfg)
        if key not in cache:
            from fembed_jax.models import count_params  # jax import only when a count is missing

            cache[key] = int(count_params(cfg))
            missing = True
        counts[cfg.exp_id] = cache[key]
    if missing:
        from fembed_jax.atomic import atomic_write

        try:
            atomic_write(path, json.dumps(cache, indent=0, sort_keys=True).encode("utf-8"))
        except OSError:
            pass  # a read-only cache only costs time
    return counts
