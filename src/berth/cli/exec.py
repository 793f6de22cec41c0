"""`berth exec`: run a command in a running container (berth.engine.execs), our stdio on its."""

import os
import sys

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.cli.run import SignalForwarder, detach_keys, expand_env, refuse
from berth.cli.terminal import exec_with_terminal
from berth.engine.execs import ExecRequest, start_exec
from berth.errors import NotImplementedYet

EXEC = Command("exec", "berth exec [OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container", [
    Flag("detach", "d", BOOL, False, "Detached mode: run command in the background"),
    Flag("interactive", "i", BOOL, False, "Keep STDIN open even if not attached"),
    Flag("tty", "t", BOOL, False, "Allocate a pseudo-TTY"),
    Flag("user", "u", STRING, None, "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("env", "e", LIST, (), "Set environment variables"),
    Flag("env-file", None, LIST, (), "Read in a file of environment variables"),
    Flag("workdir", "w", STRING, None, "Working directory inside the container"),
    Flag("privileged", None, BOOL, False, "Give extended privileges to the command"),
    Flag("detach-keys", None, STRING, None, "Override the key sequence for detaching a container"),
], interspersed=False, min_args=2)


def cmd_exec(engine, argv) -> int:
    opts, args = parse(EXEC, argv)
    if opts.help:
        sys.stdout.write(help_text(EXEC))
        return 0
    if opts.detach_keys is not None:
        detach_keys(opts)  # its format is checked even where it cannot apply (docker's)
        if opts.tty and opts.interactive and not opts.detach:
            raise NotImplementedYet("--detach-keys: detaching from an exec session is not supported yet")
    if opts.tty and opts.interactive and not opts.detach and not os.isatty(0):
        engine.get(args[0])  # docker names a missing container first
        return refuse("the input device is not a TTY")
    env = []
    if opts.env_file:
        from berth.cli.run_files import read_env_file  # lazy: only --env-file

        for path in opts.env_file:
            env.extend(read_env_file(path))
    env.extend(expand_env(opts.env))
    req = ExecRequest(args[1:], user=opts.user, env=env, workdir=opts.workdir, tty=opts.tty,
                      privileged=opts.privileged, attach_stdin=opts.interactive, detach=opts.detach)
    if req.tty:
        return exec_with_terminal(engine, args[0], req)
    forwarder = None if req.detach else SignalForwarder()  # from before the start: see SignalForwarder
    try:
        session = start_exec(engine, args[0], req)
        if session is None:
            return 0
        forwarder.target(session.pid)
        return session.stream(0, 1, 2)
    finally:
        if forwarder is not None:
            forwarder.restore()
