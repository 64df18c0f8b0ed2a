"""Errors a user can fix: each message is one line naming the setting or file and the fix."""


class PyroVAEError(Exception):
    """Base class; run.py prints these as a single line instead of a traceback."""


class ConfigError(PyroVAEError, ValueError):
    """A setting has a value the project cannot use."""


class DataError(PyroVAEError):
    """A data file is missing, truncated, corrupt or of the wrong format."""


class DivergenceError(PyroVAEError, FloatingPointError):
    """The training loss became NaN or infinite."""


class OutputError(PyroVAEError, OSError):
    """An output could not be written (a full disk, a folder gone read-only); the old file is intact."""
