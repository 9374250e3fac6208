"""Tier frames for a DataConfig: read from a tier_dir as they are, or built from raw and cached.

Cache files: <cache_dir>/<tier>-<source sha256[:16]>-v<CODE_VERSION>.parquet. The key changes when
the raw data (or VIX) or the feature code version changes, so a stale file is never read; it is
simply not found and the tier is rebuilt. Writes are atomic.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd

from fembed_jax.data.build import CODE_VERSION, TIER_COUNTS, build_tier_frames, feature_names, tiers_upto
from fembed_jax.data.config import TIERS, DataConfig
from fembed_jax.data.sources import RawSource, load_raw
from fembed_jax.data.tierfiles import NON_FEATURES, file_sha256, read_cached, read_tier_file, write_parquet_atomic


@dataclasses.dataclass(frozen=True)
class TierFrame:
    tier: str
    frame: pd.DataFrame  # Date, OHLCV, features
    feature_names: tuple[str, ...]
    source_id: str
    path: Path | None  # the file it was read from / cached to
    built: bool  # True when computed now (not read from cache or tier_dir)


def source_id_for(src: RawSource) -> str:
    return f"{src.label}|vix={src.vix_kind}|sha256={src.content_hash[:16]}|fembed-data-v{CODE_VERSION}"


def cache_path(cfg: DataConfig, src: RawSource, tier: str) -> Path:
    return cfg.resolved_cache_dir() / f"{tier}-{src.content_hash[:16]}-v{CODE_VERSION}.parquet"


def _from_tier_dir(cfg: DataConfig, tier: str) -> TierFrame:
    path = cfg.tier_file(tier)
    frame = read_tier_file(path, TIER_COUNTS[tier], tier)
    names = tuple(c for c in frame.columns if c not in NON_FEATURES)
    sid = f"tier_file:{path.name}|sha256={file_sha256(path)[:16]}|fembed-data-v{CODE_VERSION}"
    return TierFrame(tier, frame, names, sid, path, built=False)


def build_and_cache(
    cfg: DataConfig, tiers: tuple[str, ...], force: bool = False, timings: dict[str, float] | None = None
) -> dict[str, TierFrame]:
    """Tier frames for `tiers` from the raw source, read from cache unless missing (or `force`).

    Missing tiers are computed together (features once, on the full raw frame) and every tier
    up to the highest one requested is cached, since the lower ones come at no extra cost.
    """
    if cfg.tier_dir is not None:
        return {t: _from_tier_dir(cfg, t) for t in tiers}
    src = load_raw(cfg)
    sid = source_id_for(src)
    out: dict[str, TierFrame] = {}
    missing = []
    for tier in tiers:
        path = cache_path(cfg, src, tier)
        frame = None if force else read_cached(path, feature_names(tier))
        if frame is None:
            missing.append(tier)
        else:
            out[tier] = TierFrame(tier, frame, feature_names(tier), sid, path, built=False)
    if missing:
        top = max(missing, key=TIERS.index)
        todo = tuple(t for t in tiers_upto(top) if t in missing or not cache_path(cfg, src, t).is_file())
        start = time.perf_counter()
        frames = build_tier_frames(src.frame, todo, src.label, timings)
        if timings is not None:
            timings["total"] = time.perf_counter() - start
        for tier, frame in frames.items():
            path = cache_path(cfg, src, tier)
            write_parquet_atomic(frame, path)
            if tier in missing:
                out[tier] = TierFrame(tier, frame, feature_names(tier), sid, path, built=True)
    return {t: out[t] for t in tiers}


def tier_frame(cfg: DataConfig, tier: str) -> TierFrame:
    return build_and_cache(cfg, (tier,))[tier]
