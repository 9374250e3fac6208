"""fembed's data layer: raw OHLCV (+VIX) -> nested feature tiers -> labels -> date splits -> windows.

    from fembed_jax.data import load_dataset, DataConfig
    ds = load_dataset("a100")                      # built-in S&P 500 1999-2018
    x = ds.matrix[ds.starts["train"][:, None] + np.arange(ds.context_length)]   # (B, 80, F)
    y = ds.labels["train"]
"""

from fembed_jax.data.build import CODE_VERSION, TIER_COUNTS, WARMUP_ROWS, feature_names
from fembed_jax.data.config import TIERS, DataConfig
from fembed_jax.data.dataset import Dataset, load_dataset
from fembed_jax.data.errors import DataError
from fembed_jax.data.labels import THRESHOLDS as TASK_THRESHOLDS

__all__ = [
    "CODE_VERSION",
    "DataConfig",
    "DataError",
    "Dataset",
    "TASK_THRESHOLDS",
    "TIERS",
    "TIER_COUNTS",
    "WARMUP_ROWS",
    "feature_names",
    "load_dataset",
]
