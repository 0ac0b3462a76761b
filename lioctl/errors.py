"""The two failure kinds users see: a failed operation (exit 1) and bad usage (exit 2)."""


class LioError(Exception):
    """An operation failed; the message names the object and the reason."""

    exit_code = 1


class UsageError(LioError):
    """The command line itself is wrong."""

    exit_code = 2
