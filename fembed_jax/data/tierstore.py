"""Tier frames for a DataConfig: read from a tier_dir as they are, or built from raw and cached.

Cache files: <cache_dir>/<tier>-<source sha256[:16]>-v<CODE_VERSION>.parquet. The key changes when
the raw data (or VIX) or the feature code version changes, so a stale file is never read; it is
simply not found and the tier is rebuilt. Writes are atomic.

The built-in source's identity (its content hash) is remembered in
<cache_dir>/builtin-source-v<CODE_VERSION>.json with the version of the `arch` package that ships
the data: while that version is installed and the tiers are cached, a run reads its tier
without loading the raw data (importing `arch` alone takes over a second).
"""

from __future__ import annotations

import dataclasses
import json
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from fembed_jax.data.build import CODE_VERSION, build_tier_frames, feature_names, tiers_upto
from fembed_jax.data.config import TIERS, DataConfig
from fembed_jax.data.sources import RawSource, load_raw
from fembed_jax.data.tierfiles import features_digest, file_sha256, read_cached, read_tier_file, write_parquet_atomic


@dataclasses.dataclass(frozen=True)
class TierFrame:
    tier: str
    frame: pd.DataFrame  # Date, OHLCV, features
    feature_names: tuple[str, ...]
    source_id: str
    path: Path | None  # the file it was read from / cached to
    built: bool  # True when computed now (not read from cache or tier_dir)
    notes: tuple[str, ...] = ()  # non-fatal findings about the source, for the user (RawSource.notes)


def source_id_for(src: RawSource) -> str:
    return f"{src.label}|vix={src.vix_kind}|sha256={src.content_hash[:16]}|fembed-data-v{CODE_VERSION}"


def cache_path(cfg: DataConfig, src: RawSource, tier: str) -> Path:
    return cfg.resolved_cache_dir() / f"{tier}-{src.content_hash[:16]}-v{CODE_VERSION}.parquet"


def _from_tier_dir(cfg: DataConfig, tier: str) -> TierFrame:
    """A ready tier file, its features taken by name. Its source id also records the feature
    names (sha256): unlike a tier built here, the columns came from someone else's file.
    Built tiers keep ids without it (their names follow from tier and CODE_VERSION), so the
    built-in source id, which cached results carry, is unchanged."""
    path = cfg.tier_file(tier)
    names = feature_names(tier)
    frame, notes = read_tier_file(path, names, tier)
    sid = (f"tier_file:{path.name}|sha256={file_sha256(path)[:16]}|features={features_digest(names)[:16]}"
           f"|fembed-data-v{CODE_VERSION}")
    return TierFrame(tier, frame, names, sid, path, built=False, notes=notes)


def build_and_cache(
    cfg: DataConfig, tiers: tuple[str, ...], force: bool = False, timings: dict[str, float] | None = None
) -> dict[str, TierFrame]:
    """Tier frames for `tiers` from the raw source, read from cache unless missing (or `force`).

    Missing tiers are computed together (features once, on the full raw frame) and every tier
    up to the highest one requested is cached, since the lower ones come at no extra cost.
    """
    if cfg.tier_dir is not None:
        return {t: _from_tier_dir(cfg, t) for t in tiers}
    known = None if force else _known_builtin(cfg)
    if known is not None:
        sid = source_id_for(known)
        frames = {t: read_cached(cache_path(cfg, known, t), feature_names(t)) for t in tiers}
        if all(frame is not None for frame in frames.values()):
            # no notes to lose by not loading it: the built-in data has none (a test checks it)
            return {t: TierFrame(t, frames[t], feature_names(t), sid, cache_path(cfg, known, t), built=False)
                    for t in tiers}
    src = load_raw(cfg)
    _remember_builtin(cfg, src)
    sid = source_id_for(src)
    out: dict[str, TierFrame] = {}
    missing = []
    for tier in tiers:
        path = cache_path(cfg, src, tier)
        frame = None if force else read_cached(path, feature_names(tier))
        if frame is None:
            missing.append(tier)
        else:
            out[tier] = TierFrame(tier, frame, feature_names(tier), sid, path, built=False, notes=src.notes)
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
                out[tier] = TierFrame(tier, frame, feature_names(tier), sid, path, built=True, notes=src.notes)
    return {t: out[t] for t in tiers}


@dataclasses.dataclass(frozen=True)
class _KnownSource:
    """What the cache key and source id need of a RawSource, without its frame."""

    label: str
    vix_kind: str
    content_hash: str


def _builtin_memo(cfg: DataConfig) -> Path | None:
    if cfg.source != "builtin" or cfg.vix is not None:
        return None
    return cfg.resolved_cache_dir() / f"builtin-source-v{CODE_VERSION}.json"


def _arch_version() -> str | None:
    try:
        return metadata.version("arch")
    except metadata.PackageNotFoundError:
        return None


def _known_builtin(cfg: DataConfig) -> _KnownSource | None:
    memo = _builtin_memo(cfg)
    try:
        data = json.loads(memo.read_text()) if memo is not None else None
    except (OSError, ValueError):
        return None  # missing or damaged: load the raw data (and write it again)
    if not isinstance(data, dict) or data.get("arch") != _arch_version() or data.get("arch") is None:
        return None
    try:
        return _KnownSource(str(data["label"]), str(data["vix_kind"]), str(data["content_hash"]))
    except KeyError:
        return None


def _remember_builtin(cfg: DataConfig, src: RawSource) -> None:
    memo = _builtin_memo(cfg)
    if memo is None or _arch_version() is None:
        return
    from fembed_jax.results_io import atomic_write_text

    record = {"arch": _arch_version(), "label": src.label, "vix_kind": src.vix_kind,
              "content_hash": src.content_hash}
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo, json.dumps(record))
    except OSError:  # a read-only cache only costs the raw load next time
        pass


def tier_frame(cfg: DataConfig, tier: str) -> TierFrame:
    return build_and_cache(cfg, (tier,))[tier]
