"""The exception hierarchy jobs turn into one-line messages and non-zero exit codes.

Every error a user can cause (bad config, missing input, wrong column, empty result) derives from
:class:`EmbedpipeError`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EmbedpipeError(Exception):
    """Base class for errors caused by the user's input, configuration or data."""

    exit_code = 2


class ConfigError(EmbedpipeError, ValueError):
    """A configuration key is unknown or its value is invalid; the message names the key."""


class InputError(EmbedpipeError, ValueError):
    """An input path is missing, unreadable or of the wrong format."""


class SchemaError(InputError):
    """A required column is missing or has the wrong type; the message lists what was found."""

    def __init__(self, message: str, *, missing: list[str] | None = None, present: list[str] | None = None):
        details = []
        if missing:
            details.append(f"missing: {', '.join(missing)}")
        if present is not None:
            details.append(f"present: {', '.join(present) or '(none)'}")
        super().__init__(message + (f" ({'; '.join(details)})" if details else ""))
        self.missing = missing or []
        self.present = present or []


class EmptyResultError(EmbedpipeError):
    """A job would produce an empty output (empty corpus, nothing above min_count, ...)."""


class TableError(InputError):
    """An embedding table breaks the format (wrong dimension, NULL or duplicate keys, NaN/Inf, bad manifest)."""


class OutputError(EmbedpipeError):
    """The output path cannot be written (e.g. it exists and is not a directory this job owns)."""


class TrainingDivergedError(EmbedpipeError):
    """The training loss became NaN or infinite.

    ``param`` names the trainer core's setting to lower (e.g. ``lr``), so that a caller whose config
    spells it differently can name its own key; None when the error was rebuilt from text.
    """

    exit_code = 3

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param
