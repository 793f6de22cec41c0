"""Typed errors every layer raises. An error says what kind of failure it is, never how a front
door reports it: the CLI maps kinds to docker's exit codes (cli.main.exit_code), the API service
to HTTP statuses. Errors crossing a fork pipe travel as (kind, message) and keep their kind."""


class BerthError(Exception):
    """A failure the user can act on: a message in docker's words, and its kind."""

    kind = "system"  # the host or berth failed (docker: 500)


class InvalidArgument(BerthError):
    kind = "invalid"  # the request is wrong (400)


class UsageError(InvalidArgument):
    """The command line itself (an unknown flag, a flag value of the wrong type): docker's CLI
    exits 125 for these whatever the command."""

    kind = "usage"


class NotFound(BerthError):
    kind = "not_found"  # (404)


class Conflict(BerthError):
    kind = "conflict"  # the object's state forbids it (409)


class NotImplementedYet(BerthError):
    kind = "not_implemented"  # docker can, berth cannot yet (501)


class CannotInvoke(BerthError):
    kind = "cannot_invoke"  # the container's command exists but cannot be run (docker: 126)


class CommandNotFound(BerthError):
    kind = "command_not_found"  # (docker: 127)


KINDS = {cls.kind: cls for cls in (BerthError, InvalidArgument, UsageError, NotFound, Conflict, NotImplementedYet,
                                   CannotInvoke, CommandNotFound)}


# The host's failures rather than berth's: a full, read-only or over-quota disk, a failing one,
# no memory or descriptors left. Their errnos, as docker (Go's syscall.Errno) words them.
# (Numbers, not the errno module: this module is on every command's path.)
HOST_ERRNOS = {
    28: "no space left on device",  # ENOSPC
    30: "read-only file system",  # EROFS
    122: "disk quota exceeded",  # EDQUOT
    5: "input/output error",  # EIO
    27: "file too large",  # EFBIG
    12: "cannot allocate memory",  # ENOMEM
    23: "too many open files in system",  # ENFILE
    24: "too many open files",  # EMFILE
}


def host_failure(err: BaseException) -> str | None:
    """A host failure (HOST_ERRNOS) in docker's words, saying what failed as Go's PathError does
    ("write /var/lib/berth/image/index.json: no space left on device"); None for any other error."""
    words = HOST_ERRNOS.get(getattr(err, "errno", None)) if isinstance(err, OSError) else None
    if words is None:
        return None
    op = getattr(err, "op", None)
    what = f"{op} {err.filename}" if op and err.filename else err.filename
    return f"{what}: {words}" if what else words


def from_kind(kind: str | None, message: str) -> BerthError:
    """The error a (kind, message) pair stands for, e.g. one read from a fork pipe."""
    return KINDS.get(kind or "system", BerthError)(message)


def start_exit_code(err: BaseException) -> int:
    """State.ExitCode of a container whose start failed, as dockerd records it: 127 for a
    command not found, 126 for one that cannot be run, 128 otherwise."""
    kind = getattr(err, "kind", None)
    return {"command_not_found": 127, "cannot_invoke": 126}.get(kind, 128)
