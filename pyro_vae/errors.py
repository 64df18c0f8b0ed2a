"""Errors a user can fix: each message is one line naming the setting or file and the fix."""


class PyroVAEError(Exception):
    """Base class; run.py prints these as a single line instead of a traceback and exits with ``exit_status``."""

    exit_status = 2


class ConfigError(PyroVAEError, ValueError):
    """A setting has a value the project cannot use."""


class DataError(PyroVAEError):
    """A data file is missing, truncated, corrupt or of the wrong format."""


class DivergenceError(PyroVAEError, FloatingPointError):
    """The training loss became NaN or infinite, or the validation ELBO fell below the untrained model's."""


class RunInterrupted(PyroVAEError):
    """SIGINT (Ctrl-C) or SIGTERM stopped training; ``exit_status`` is the shell's 128 + the signal's number."""

    def __init__(self, message: str, exit_status: int = 130) -> None:
        super().__init__(message)
        self.exit_status = exit_status

    def __reduce__(self):  # pickled to a sweep's launcher with its exit status
        return type(self), (str(self), self.exit_status)


class OutputError(PyroVAEError, OSError):
    """An output could not be written (a full disk, a folder gone read-only); the old file is intact."""
