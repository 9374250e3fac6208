"""The command line's own error: bad input from the user (cli/common.guarded prints it as one
line, exit code 2). Its own module so that cli/paths can raise it without importing common."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit code 2."""
