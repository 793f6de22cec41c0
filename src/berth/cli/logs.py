"""`berth logs`: print a container's json-file log the way `docker logs` does: stdout entries
to our stdout, stderr entries to our stderr, bytes exactly as logged; and docker's
--since/--until parsing (timetypes.GetTimestamp), done client-side as docker does."""

import os
import sys
import time

from berth.cli.flags import BOOL, STRING, Command, Flag, help_text, parse
from berth.engine.logs import details_prefix, encode_text, follow_logs, format_timestamp, parse_tail, read_logs
from berth.errors import InvalidArgument
from berth.gotime import get_timestamp, parse_unix_timestamp

LOGS = Command("logs", "berth logs [OPTIONS] CONTAINER", "Fetch the logs of a container",
               [Flag("details", None, BOOL, False, "Show extra details provided to logs"),
                Flag("follow", "f", BOOL, False, "Follow log output"),
                Flag("since", None, STRING, "", 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or '
                                                'relative (e.g. "42m" for 42 minutes)'),
                Flag("tail", "n", STRING, "all", 'Number of lines to show from the end of the logs (default "all")'),
                Flag("timestamps", "t", BOOL, False, "Show timestamps"),
                Flag("until", None, STRING, "", 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
                                                'relative (e.g. "42m" for 42 minutes)')],
               min_args=1, max_args=1)


def cmd_logs(engine, argv: list[str]) -> int:
    opts, args = parse(LOGS, argv)
    if opts.help:
        sys.stdout.write(help_text(LOGS))
        return 0
    record = engine.get(args[0])
    now_ns = time.time_ns()
    since_ns = _bound("since", opts.since, now_ns)
    until_ns = _bound("until", opts.until, now_ns)
    tail = parse_tail(opts.tail)
    if opts.follow:
        entries = follow_logs(engine, record["Id"], since_ns, until_ns, tail)
    else:
        entries = read_logs(record, since_ns, until_ns, tail)
    printer = Printer(opts.timestamps, opts.details, flush_each=opts.follow)
    try:
        for entry in entries:
            printer.write(entry)
        printer.flush()
    except KeyboardInterrupt:
        _quietly_flush(printer)
    except BrokenPipeError:
        _silence_stdio()
    return 0


class Printer:
    """Writes entries to our stdout/stderr as bytes. Each stream is flushed before the other
    is written, so `2>&1` keeps the log's order."""

    __slots__ = ("timestamps", "details", "flush_each", "streams", "last", "second")

    def __init__(self, timestamps: bool, details: bool, flush_each: bool):
        self.timestamps = timestamps
        self.details = details
        self.flush_each = flush_each
        self.streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
        self.last = None
        self.second = (None, b"")  # the last second formatted, and its text

    def write(self, entry) -> None:
        out = self.streams.get(entry.stream, self.streams["stdout"])
        if self.last is not None and self.last is not out:
            self.last.flush()
        self.last = out
        data = encode_text(entry.text)
        if self.details:
            data = details_prefix(entry.attrs) + data
        if self.timestamps:
            data = self._stamp(entry.time_ns) + data
        out.write(data)
        if self.flush_each:
            out.flush()

    def _stamp(self, time_ns: int) -> bytes:
        seconds, fraction = divmod(time_ns, 1_000_000_000)
        if self.second[0] != seconds:
            self.second = (seconds, format_timestamp(seconds * 1_000_000_000)[:-11].encode())
        return self.second[1] + b".%09dZ " % fraction

    def flush(self) -> None:
        if self.last is not None:
            self.last.flush()






def _quietly_flush(printer: Printer) -> None:
    try:
        printer.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        _silence_stdio()


def _silence_stdio() -> None:
    """Our reader went away: send what is still buffered nowhere, so exiting does not
    complain about a broken pipe."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.dup2(null, sys.stderr.fileno())
    os.close(null)



def _bound(name: str, value: str, now_ns: int) -> int | None:
    """--since/--until as the CLI sends them and the daemon reads them back; None: no bound."""
    if value == "":
        return None
    try:
        stamp = get_timestamp(value, now_ns)
        seconds, nanos = parse_unix_timestamp(stamp)
    except ValueError as err:
        raise InvalidArgument(f'invalid value for "{name}": {err}') from None
    if name == "until" and stamp == "0":
        return None
    return seconds * 1_000_000_000 + nanos
