"""Where a command reads and writes: the registry, outputs/, checkpoints/ and the data source.

A project is a folder holding registry/experiments.toml; fembed finds it from the working folder
upward (as git finds .git), so any sub-folder of a project works on that project. Outside any
project it uses the registry packaged with fembed and keeps outputs/ and checkpoints/ in the
working folder. `fembed init` makes the working folder a project.
"""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

from fembed_jax.registry import Registry

from .errors import UsageError

REGISTRY_IN_PROJECT = Path("registry") / "experiments.toml"


def add_path_options(parser: argparse.ArgumentParser, data: bool = True) -> None:
    if data:
        parser.add_argument("--data", metavar="PATH",
                            help="raw daily OHLCV file (CSV/parquet) or a folder of ready tier "
                                 "parquets; default: the registry's [data] (built-in S&P 500)")
        parser.add_argument("--val-start", metavar="DATE",
                            help="first day of the validation split (default: the registry's [data], 2015-01-01)")
        parser.add_argument("--test-start", metavar="DATE",
                            help="first day of the test split (default: the registry's [data], 2017-01-01)")
    parser.add_argument("--outputs", metavar="DIR",
                        help="run store and results (default: the project's outputs/, or $FEMBED_OUTPUTS)")
    parser.add_argument("--checkpoints", metavar="DIR",
                        help="checkpoints (default: $FEMBED_CHECKPOINTS, else the project's checkpoints/; "
                             "with --outputs naming another folder, checkpoints/ inside it)")


def packaged_registry() -> Path:
    """The registry shipped with fembed (all 183 experiments)."""
    return Path(str(resources.files("fembed_jax.registry_data") / "experiments.toml"))


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working folder) holding
    registry/experiments.toml."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / REGISTRY_IN_PROJECT).is_file():
            return folder
    return None


def registry_path(args: argparse.Namespace) -> Path:
    """--registry, else $FEMBED_REGISTRY, else the working folder's project, else the packaged one."""
    chosen = getattr(args, "registry", None) or os.environ.get("FEMBED_REGISTRY")
    if chosen:
        return Path(chosen).expanduser()
    project = find_project()
    return project / REGISTRY_IN_PROJECT if project else packaged_registry()


def project_root(registry_file: Path) -> Path:
    """A registry at <project>/registry/*.toml belongs to <project>; any other registry (the
    packaged one, a loose file) works in the working folder's project, or the working folder."""
    folder = registry_file.resolve().parent
    if folder.name == "registry" and registry_file.resolve() != packaged_registry().resolve():
        return folder.parent
    return find_project() or Path.cwd()


def outputs_dir(args: argparse.Namespace, registry_file: Path) -> Path:
    chosen = getattr(args, "outputs", None) or os.environ.get("FEMBED_OUTPUTS")
    return Path(chosen).expanduser() if chosen else project_root(registry_file) / "outputs"


def store_path(args: argparse.Namespace, registry_file: Path) -> Path:
    """The run store of the outputs folder a command works on."""
    from fembed_jax.store import DB_FILENAME

    return outputs_dir(args, registry_file) / DB_FILENAME


def paths_from_args(args: argparse.Namespace, registry: Registry) -> tuple[Path, Path]:
    """(outputs, checkpoints). A run into another outputs folder (a quick look with --outputs
    /tmp/quick) keeps its checkpoints there too: in the project's checkpoints/ they would
    replace the weights the project's own results were selected with."""
    outputs = outputs_dir(args, registry.path)
    chosen = getattr(args, "checkpoints", None) or os.environ.get("FEMBED_CHECKPOINTS")
    if chosen:
        return outputs, Path(chosen).expanduser()
    root = project_root(registry.path)
    if outputs.resolve() != (root / "outputs").resolve():
        return outputs, outputs / "checkpoints"
    return outputs, root / "checkpoints"


def data_config_from_args(args: argparse.Namespace, registry: Registry):
    """The registry's [data] table (tier file names from [tiers]), then --data on top."""
    from fembed_jax.data.config import DataConfig
    from fembed_jax.data.errors import DataError

    table = dict(registry.data)
    files = {name: spec.file for name, spec in registry.tiers.items() if spec.file}
    if files and "tier_files" not in table:
        table["tier_files"] = files
    for key in ("val_start", "test_start"):  # part of the data identity, so of the run hash
        if getattr(args, key, None):
            table[key] = getattr(args, key)
    try:
        config = DataConfig.from_mapping(table, registry.path)
        if getattr(args, "data", None):
            # Absolute, so results.json says which file it was wherever it is read.
            config = config.with_data_path(str(Path(args.data).expanduser().resolve()))
    except DataError as exc:
        given = [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in ("val_start", "test_start")
                 if getattr(args, k, None)]
        raise UsageError(f"{' '.join(given)}: {exc}" if given else str(exc)) from exc
    return config
