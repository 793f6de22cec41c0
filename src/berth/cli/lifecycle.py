"""Commands that change a container's state: stop, kill, wait, restart, pause, unpause,
rename, port."""

import sys

from berth.cli.flags import INT, STRING, Command, Flag, parse_or_help
from berth.errors import BerthError, InvalidArgument

STOP = Command("stop", "berth stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
               [Flag("signal", "s", STRING, None, "Signal to send to the container"),
                Flag("timeout", "t", INT, None, "Seconds to wait before killing the container"),
                Flag("time", None, INT, None, "Deprecated: use --timeout", hidden=True)], min_args=1)
RESTART = Command("restart", "berth restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
                  [Flag("signal", "s", STRING, None, "Signal to send to the container"),
                   Flag("timeout", "t", INT, None, "Seconds to wait before killing the container"),
                   Flag("time", None, INT, None, "Deprecated: use --timeout", hidden=True)], min_args=1)
KILL = Command("kill", "berth kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
               [Flag("signal", "s", STRING, "KILL", "Signal to send to the container")], min_args=1)
WAIT = Command("wait", "berth wait CONTAINER [CONTAINER...]",
               "Block until one or more containers stop, then print their exit codes", min_args=1)
PAUSE = Command("pause", "berth pause CONTAINER [CONTAINER...]",
                "Pause all processes within one or more containers", min_args=1)
UNPAUSE = Command("unpause", "berth unpause CONTAINER [CONTAINER...]",
                  "Unpause all processes within one or more containers", min_args=1)
RENAME = Command("rename", "berth rename CONTAINER NEW_NAME", "Rename a container", min_args=2, max_args=2)
PORT = Command("port", "berth port CONTAINER [PRIVATE_PORT[/PROTO]]",
               "List port mappings or a specific mapping for the container", min_args=1, max_args=2)


def _each(engine, refs: list[str], action, verb: str) -> int:
    """Run `action(record)` for each container; report each failure like docker, go on."""
    failed = []
    for ref in refs:
        try:
            action(engine.get(ref))
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed.append(ref)
    return 1 if failed else 0


def _signal_option(name: str | None) -> int | None:
    if not name:
        return None
    from berth.signals import parse_signal  # lazy: only -s/--signal

    try:
        return parse_signal(name)
    except BerthError:
        raise InvalidArgument(f"Invalid signal: {name}") from None  # docker: exit 1 outside run/create


def _timeout(opts) -> int | None:
    """--timeout (docker 28's spelling), or the --time it deprecates, with docker's warning."""
    if opts.given("time"):
        print("Flag --time has been deprecated, use --timeout instead", file=sys.stderr)
        if not opts.given("timeout"):
            return opts.time
    return opts.timeout


def cmd_stop(engine, argv) -> int:
    opts, args = parse_or_help(STOP, argv)
    if opts.help:
        return 0
    signum, timeout = _signal_option(opts.signal), _timeout(opts)
    return _each(engine, args, lambda r: engine.stop(r, timeout, signum), "stop")


def cmd_restart(engine, argv) -> int:
    from berth.engine.lifecycle import restart  # lazy: only restart

    opts, args = parse_or_help(RESTART, argv)
    if opts.help:
        return 0
    signum, timeout = _signal_option(opts.signal), _timeout(opts)
    return _each(engine, args, lambda r: restart(engine, r, timeout, signum), "restart")


def cmd_kill(engine, argv) -> int:
    from berth.signals import parse_signal  # lazy: only -s/--signal

    opts, args = parse_or_help(KILL, argv)
    if opts.help:
        return 0
    try:
        signum = parse_signal(opts.signal)
    except BerthError:
        raise InvalidArgument(f"Invalid signal: {opts.signal}") from None  # docker: exit 1
    return _each(engine, args, lambda r: engine.kill(r, signum), "kill")


def cmd_wait(engine, argv) -> int:
    from berth.engine.lifecycle import wait  # lazy: only wait

    opts, args = parse_or_help(WAIT, argv)
    if opts.help:
        return 0
    failed = 0
    for ref in args:
        try:
            record = engine.get(ref)
            print(wait(engine, record["Id"]), flush=True)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def cmd_pause(engine, argv) -> int:
    opts, args = parse_or_help(PAUSE, argv)
    if opts.help:
        return 0
    return _each(engine, args, lambda r: engine.pause(r, True), "pause")


def cmd_unpause(engine, argv) -> int:
    opts, args = parse_or_help(UNPAUSE, argv)
    if opts.help:
        return 0
    return _each(engine, args, lambda r: engine.pause(r, False), "unpause")


def cmd_rename(engine, argv) -> int:
    opts, args = parse_or_help(RENAME, argv)
    if opts.help:
        return 0
    record = engine.get(args[0])
    engine.rename(record, args[1])
    return 0


def cmd_port(engine, argv) -> int:
    opts, args = parse_or_help(PORT, argv)
    if opts.help:
        return 0
    from berth.engine.ports import port_lines  # lazy: only port

    lines = port_lines(engine.get(args[0]), args[1] if len(args) > 1 else None, args[0])
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
