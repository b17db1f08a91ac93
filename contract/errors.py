"""One error hierarchy: each kind of problem a user can act on, with its exit code.

The CLI prints ``error: <message>`` for any of these and exits with ``exit_code``; nothing here
is a bug in the tool, so none of them ever shows a traceback.
"""
from __future__ import annotations

from pathlib import Path


class CnnbpError(Exception):
    """A problem the user can act on, told in one paragraph."""

    exit_code = 2


class UsageError(CnnbpError):
    """Command-line arguments that cannot work together (``-o`` missing, a bad port…)."""


class DataError(CnnbpError):
    """A ``--data`` source that cannot be read or does not fit the net."""


class ArtifactError(CnnbpError):
    """A run directory or bundle that is missing, corrupt, or not this tool's."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


class ClientError(CnnbpError):
    """A request, or a file given to ``predict``, that a model cannot take (HTTP 4xx)."""


class ServerError(CnnbpError):
    """A server that cannot be reached, or that failed on its side."""

    exit_code = 1


class RefusedError(CnnbpError):
    """The tool declines to act: the result would be wrong, or would destroy something."""

    exit_code = 1
