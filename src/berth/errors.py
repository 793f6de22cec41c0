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


def from_kind(kind: str | None, message: str) -> BerthError:
    """The error a (kind, message) pair stands for, e.g. one read from a fork pipe."""
    return KINDS.get(kind or "system", BerthError)(message)


def start_exit_code(err: BaseException) -> int:
    """State.ExitCode of a container whose start failed, as dockerd records it: 127 for a
    command not found, 126 for one that cannot be run, 128 otherwise."""
    kind = getattr(err, "kind", None)
    return {"command_not_found": 127, "cannot_invoke": 126}.get(kind, 128)
