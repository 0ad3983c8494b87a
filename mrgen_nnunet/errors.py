"""The one exception users see as a single line: `mrgen-nnunet: error: <what> (<where>) — <how to fix>`."""

from __future__ import annotations


class MRGenError(Exception):
    """A user-facing error. `where` names the file or option, `fix` says what to do."""

    def __init__(self, what: str, where: object | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        message = what
        if where is not None:
            message += f" ({where})"
        if fix:
            message += f" — {fix}"
        super().__init__(message)


class NotReadyError(MRGenError):
    """A command group that exists but is not implemented yet (exit code 2)."""
