"""Where a command reads and writes: outputs/, checkpoints/ and the data source."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fembed_jax.registry import Registry

from .common import UsageError


def add_path_options(parser: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        parser.add_argument("--data", metavar="PATH",
                            help="raw daily OHLCV file (CSV/parquet) or a folder of ready tier "
                                 "parquets; default: the registry's [data] (built-in S&P 500)")
    parser.add_argument("--outputs", metavar="DIR",
                        help="run store and results (default: outputs/ beside registry/, or $FEMBED_OUTPUTS)")
    parser.add_argument("--checkpoints", metavar="DIR",
                        help="checkpoints (default: checkpoints/ beside registry/, or $FEMBED_CHECKPOINTS)")


def project_root(registry_path: Path) -> Path:
    """registry/experiments.toml lives in a project; outputs/ and checkpoints/ sit beside registry/."""
    folder = registry_path.resolve().parent
    return folder.parent if folder.name == "registry" else folder


def outputs_dir(args: argparse.Namespace, registry_path: Path) -> Path:
    chosen = getattr(args, "outputs", None) or os.environ.get("FEMBED_OUTPUTS")
    return Path(chosen).expanduser() if chosen else project_root(registry_path) / "outputs"


def paths_from_args(args: argparse.Namespace, registry: Registry) -> tuple[Path, Path]:
    checkpoints = getattr(args, "checkpoints", None) or os.environ.get("FEMBED_CHECKPOINTS")
    checkpoints = (Path(checkpoints).expanduser() if checkpoints
                   else project_root(registry.path) / "checkpoints")
    return outputs_dir(args, registry.path), checkpoints


def data_config_from_args(args: argparse.Namespace, registry: Registry):
    """The registry's [data] table (tier file names from [tiers]), then --data on top."""
    from fembed_jax.data.config import DataConfig
    from fembed_jax.data.errors import DataError

    table = dict(registry.data)
    files = {name: spec.file for name, spec in registry.tiers.items() if spec.file}
    if files and "tier_files" not in table:
        table["tier_files"] = files
    try:
        config = DataConfig.from_mapping(table, registry.path)
        if getattr(args, "data", None):
            config = config.with_data_path(args.data)
    except DataError as exc:
        raise UsageError(str(exc)) from exc
    return config
