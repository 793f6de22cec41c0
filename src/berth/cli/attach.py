"""`berth attach`: our stdin, stdout and stderr on a running container's, through its
supervisor's attach socket (berth.engine.attach), until it ends or we detach."""

import os
import sys

from berth.cli.flags import BOOL, STRING, Command, Flag, help_text, parse
from berth.cli.run import detach_keys
from berth.cli.terminal import Attached
from berth.engine.attach import attach
from berth.errors import BerthError

ATTACH = Command("attach", "berth attach [OPTIONS] CONTAINER",
                 "Attach local standard input, output, and error streams to a running container", [
                     Flag("detach-keys", None, STRING, None, "Override the key sequence for detaching a container"),
                     Flag("no-stdin", None, BOOL, False, "Do not attach STDIN"),
                     Flag("sig-proxy", None, BOOL, True, "Proxy all received signals to the process"),
                 ], min_args=1, max_args=1)


def cmd_attach(engine, argv: list[str]) -> int:
    opts, args = parse(ATTACH, argv)
    if opts.help:
        sys.stdout.write(help_text(ATTACH))
        return 0
    keys = detach_keys(opts)
    record = engine.get(args[0])
    attached = Attached(record["Config"]["Tty"], opts.sig_proxy, keys)
    try:
        session = attach(engine, record["Id"], stdin=not opts.no_stdin, size=attached.size())
        if session.tty and session.stdin and not os.isatty(0):
            session.close()
            raise BerthError("the input device is not a TTY")
        code = attached.stream(session)
    finally:
        attached.close()
    if code is None:  # docker's attach reports a detach as its error
        print("read escape sequence", file=sys.stderr)
        return 1
    return code
