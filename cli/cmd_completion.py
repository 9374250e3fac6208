"""`fembed completion bash|zsh|tcsh`: a shell completion script for every command and flag."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "completion", help="print a shell completion script",
        description="Print a completion script for fembed's commands and flags (made by shtab).",
        epilog="examples:\n  fembed completion bash > ~/.local/share/bash-completion/completions/fembed\n"
               "  fembed completion zsh > \"${fpath[1]}/_fembed\"",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shtab

    from .main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
