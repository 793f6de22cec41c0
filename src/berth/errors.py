"""Typed errors every layer raises; the CLI turns them into `Error: ...` and an exit code."""


class BerthError(Exception):
    """A failure the user can act on. `exit_code` follows docker: 125 engine error,
    126 cannot invoke, 127 command not found, 1 for a missing object outside `run`."""

    exit_code = 125

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InvalidArgument(BerthError):
    pass


class NotFound(BerthError):
    pass


class Conflict(BerthError):
    pass


class CannotInvoke(BerthError):
    exit_code = 126


class CommandNotFound(BerthError):
    exit_code = 127
