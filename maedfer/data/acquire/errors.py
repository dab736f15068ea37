"""The errors of acquisition: one line saying what, where, and how to fix it."""


class AcquireError(ValueError):
    """A source could not be acquired (one line: what, where, and how to fix it)."""


class ChecksumError(AcquireError):
    """The sha256 of a file differs from the expected one."""


class UnsafeArchiveError(AcquireError):
    """An archive member would be written outside the target folder (or is a special file)."""


class NotFoundError(AcquireError):
    """The server answered 404 for a URL."""
