"""`fembed init [DIR]`: make a folder a fembed project (its own registry, outputs, checkpoints)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .common import UsageError, console, guarded
from .paths import REGISTRY_IN_PROJECT, find_project, packaged_registry


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "init", help="start a project: copy the registry into DIR/registry/",
        description="Make DIR (default: the working folder) a fembed project: registry/experiments.toml "
                    "(a copy of the 183-experiment registry to edit), outputs/ and checkpoints/. "
                    "Every fembed command run in DIR or below then uses them.",
        epilog="example:\n  mkdir sweep && cd sweep && fembed init && fembed run --priority P1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=".", metavar="DIR", help="the project folder (default: .)")
    parser.set_defaults(func=run)


@guarded
def run(args: argparse.Namespace) -> int:
    root = Path(args.folder).expanduser().resolve()
    registry = root / REGISTRY_IN_PROJECT
    if registry.exists():
        raise UsageError(f"{registry} exists already: {root} is a project")
    enclosing = find_project(root)
    root.mkdir(parents=True, exist_ok=True)
    registry.parent.mkdir(exist_ok=True)
    shutil.copyfile(packaged_registry(), registry)
    for folder in ("outputs", "checkpoints"):
        (root / folder).mkdir(exist_ok=True)
    console.print(f"fembed project at {root}: registry {registry}, outputs/ and checkpoints/ beside it",
                  highlight=False)
    if enclosing is not None:
        console.print(f"note: it lies inside the project {enclosing}; commands run in {root} now use "
                      "this one", highlight=False)
    console.print("next: fembed list, then e.g. fembed run --priority P1", highlight=False)
    return 0
