"""The exceptions ferry raises in the notebook.

Every error of ferry's own is a :class:`FerryError`. An exception raised by
a function on the cluster is re-raised as its own type (``ZeroDivisionError``
stays ``ZeroDivisionError``), with the remote traceback attached as its
``__cause__`` (a :class:`RemoteTraceback`) and as ``.remote_traceback``.
"""

from __future__ import annotations


class FerryError(Exception):
    """Base class of ferry's own errors."""


class CLIError(FerryError):
    """The ferry command failed. ``.code`` is its exit code, ``.stderr`` what it said."""

    def __init__(self, message: str, *, args: list[str] | None = None, code: int = 1, stderr: str = ""):
        super().__init__(message)
        self.cmd = list(args or [])
        self.code = code
        self.stderr = stderr


class BadInput(CLIError, ValueError):
    """ferry refused the request as bad input (exit code 2)."""


class JobNotFound(CLIError, LookupError):
    """No such job, or not one of yours (exit code 4)."""


class SlurmUnavailable(CLIError):
    """Slurm could not be reached or refused the request (exit code 5)."""


class JobFailed(FerryError):
    """A job ended in a state other than ``succeeded``.

    ``.state``, ``.reason`` and ``.exit_code`` say how; ``.log_tail`` holds the
    last lines of its log.
    """

    def __init__(self, message: str, *, job_id: str = "", state: str = "", reason: str = "",
                 exit_code: int | None = None, log_tail: str = ""):
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.reason = reason
        self.exit_code = exit_code
        self.log_tail = log_tail


class PayloadError(FerryError, TypeError):
    """A function, its arguments or its result could not travel (pickling)."""


class VersionMismatch(FerryError):
    """The notebook's Python or cloudpickle differs from the sandbox's."""


class RemoteError(FerryError):
    """A remote exception whose type could not be recreated in the notebook.

    ``.type_name`` is the remote type's qualified name.
    """

    def __init__(self, message: str, *, type_name: str = ""):
        super().__init__(message)
        self.type_name = type_name


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised on the cluster.

    It is the ``__cause__`` of the re-raised exception, so a notebook shows
    the remote frames above the local ones, as concurrent.futures does.
    """

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return "\n\n" + self.tb.rstrip("\n") if self.tb else ""
