"""`berth exec`: run a command in a running container."""

import os
import sys

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse

EXEC = Command("exec", "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container", [
    Flag("detach", "d", BOOL, False, "Detached mode: run command in the background"),
    Flag("interactive", "i", BOOL, False, "Keep STDIN open even if not attached"),
    Flag("tty", "t", BOOL, False, "Allocate a pseudo-TTY"),
    Flag("user", "u", STRING, None, "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("env", "e", LIST, (), "Set environment variables"),
    Flag("env-file", None, LIST, (), "Read in a file of environment variables"),
    Flag("workdir", "w", STRING, None, "Working directory inside the container"),
    Flag("privileged", None, BOOL, False, "Give extended privileges to the command"),
], interspersed=False, min_args=2)


def cmd_exec(engine, argv) -> int:
    from berth.cli.run import SignalForwarder, expand_env, read_env_file
    from berth.runtime.reap import wait_exit_code

    opts, args = parse(EXEC, argv)
    if opts.help:
        sys.stdout.write(help_text(EXEC))
        return 0
    record = engine.get(args[0])
    env = []
    for path in opts.env_file:
        env.extend(read_env_file(path))
    env.extend(expand_env(opts.env))
    tty = opts.tty and not opts.detach
    size = None
    if tty:
        from berth.runtime.console import get_winsize

        size = get_winsize(0) or get_winsize(1)
    if opts.detach:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        stdio, fds = None, (null, null, null)
    elif tty:  # the runtime gives the process its own pty: these are placeholders
        stdio, fds = None, (os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), 1, 2)
    else:  # pipes we pump, never our own fds: they may be the caller's terminal
        from berth.monitor.supervisor import Stdio

        stdio = Stdio(tty=False, open_stdin=False, attach_stdin=opts.interactive)
        fds = stdio.container
    forwarder = None if tty or opts.detach else SignalForwarder()
    try:
        launched = engine.exec(record, args[1:], user=opts.user, env=env, workdir=opts.workdir, tty=tty,
                               privileged=opts.privileged, stdio=fds, console_size=size, wait=not opts.detach)
    except BaseException:
        if stdio is not None:
            stdio.close()
        if forwarder:
            forwarder.restore()
        raise
    finally:
        if stdio is None:
            for fd in set(fds):
                if fd > 2:
                    os.close(fd)
    if opts.detach:
        return 0
    if tty:
        from berth.cli.terminal import proxy

        try:
            proxy(launched.console_fd, opts.interactive)
        finally:
            os.close(launched.console_fd)
        return wait_exit_code(launched.pid)
    from berth.monitor.supervisor import pump_exec

    stdio.started()
    forwarder.target(launched.pid)
    try:
        return pump_exec(launched, stdio)
    finally:
        stdio.close()
        forwarder.restore()
