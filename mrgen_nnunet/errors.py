"""The one exception users see as a single line: `mrgen-nnunet: error: <what> (<where>) — <how to fix>`."""

from __future__ import annotations

import errno


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


_OS_FIXES = {
    errno.EACCES: "check write permission or choose another folder",
    errno.EPERM: "check write permission or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.ENOTDIR: "a file stands where a folder is needed: pass a folder path or remove the file",
    errno.EISDIR: "a folder stands where a file is needed: pass a file path",
    errno.EEXIST: "a file or folder is in the way: remove it or choose another path",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ENOSPC: "free disk space or choose another folder",
    errno.ENOENT: "check the path",
}


def os_error(exc: OSError) -> MRGenError:
    """An OSError (permission, read-only file system, a file where a folder should be, ...) as a one-line error
    naming the path."""
    where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return MRGenError((exc.strerror or type(exc).__name__).lower(), where,
                      _OS_FIXES.get(exc.errno, "check the path and rerun with --debug for details"))
