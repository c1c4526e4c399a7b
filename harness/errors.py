"""Errors the CLI reports as one line with a non-zero exit.

Anything that is not a `HarnessError` is a bug and keeps its traceback.
"""


class HarnessError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 1


class ConfigError(HarnessError):
    """A config file, flag or field is invalid. Exit 2, nothing written."""

    exit_code = 2


class RunDirError(HarnessError):
    """A run directory cannot be used (e.g. made with another seed or model)."""

    exit_code = 2


class BackendError(HarnessError):
    """An inference engine is missing or failed to start."""

    exit_code = 3


class NoSpaceError(HarnessError):
    """The disk (or a quota) filled up while writing: every line written is kept, a rerun resumes."""

    exit_code = 1
