"""Docker's json-file log format, written by whoever holds a container's stdio.

One JSON object per line in <container dir>/<id>-json.log:
    {"log":"hello\\n","stream":"stdout","time":"2026-11-27T23:25:02.123456789Z"}
`log` keeps the trailing newline; a line longer than 16 KiB is written in 16 KiB pieces
without one (docker's partial messages), and so is an unterminated last line.

A log that cannot be written (a full disk, a quota, a file system gone read-only) never
stops whoever holds the container's stdio: lines are dropped while it lasts, as docker's
json-file driver drops them, and the loss is told once, by a line of its own (stderr)
when writing works again:
    {"log":"berth: 12 log lines lost from ... to ...: no space left on device\n",...}

Rotation is docker's json-file rotation: before an entry is written to a log of `max_size`
bytes or more, <log>.1 becomes <log>.2 and so on (the one beyond `max_files` - 1 goes), the log
becomes <log>.1 and a new one is begun; with `compress`, <log>.1 is gzipped to <log>.1.gz by a
child forked for it (the writer goes on meanwhile; the next rotation waits for it): that is
monitor.logrotate's RotatingLogWriter, loaded only for a log with a max-size (lean.open_writer).
`attrs` (--log-opt labels/env/tag) go into every entry, as docker's "attrs"."""

import os
import time

from berth import fastjson
from berth.units import format_rfc3339_nano_ns

MAX_LINE = 16 * 1024


class LogWriter:
    __slots__ = ("path", "fd", "pending", "lost", "lost_since", "lost_reason", "torn", "max_size", "max_files",
                 "compress", "attrs", "size", "compressor")

    def __init__(self, path: str, max_size: int = -1, max_files: int = 1, compress: bool = False,
                 attrs: dict | None = None):
        self.path = path
        self.max_size = max_size  # -1: never rotated
        self.max_files = max_files
        self.compress = compress
        self.attrs = attrs or None
        self.size = 0
        self.compressor = 0  # the child gzipping <log>.1, until reaped
        self.pending = {"stdout": b"", "stderr": b""}
        self.lost = 0  # entries dropped since the last write that worked
        self.lost_since = 0  # when the first of them was dropped (Unix ns)
        self.lost_reason = ""
        self.torn = False  # a failed write left part of an entry: end it before the next
        self.fd = -1
        self._open()

    def _open(self) -> bool:
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:  # a new log on a full or read-only disk: lines wait for it
            self.lost_reason = self.lost_reason or reason(err)
            return False
        if self.max_size > 0:
            self.size = os.fstat(self.fd).st_size
        return True

    def write(self, stream: str, data: bytes) -> None:
        buffered = self.pending[stream] + data
        lines = []
        while True:
            newline = buffered.find(b"\n")
            if newline < 0 or newline >= MAX_LINE:
                if len(buffered) >= MAX_LINE:
                    lines.append(buffered[:MAX_LINE])
                    buffered = buffered[MAX_LINE:]
                    continue
                break
            lines.append(buffered[:newline + 1])
            buffered = buffered[newline + 1:]
        self.pending[stream] = buffered
        if lines:
            self._emit(stream, lines)

    def flush(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self._emit(stream, [rest])
                self.pending[stream] = b""

    def _emit(self, stream: str, lines: list[bytes]) -> None:
        now = time.time_ns()
        stamp = format_rfc3339_nano_ns(now)
        pieces = [b"\n"] if self.torn else []  # a torn piece becomes a line of its own, which readers skip
        notice = len(pieces) if self.lost else -1
        if self.lost:
            pieces.append(self._loss_notice(stamp).encode())
        first = len(pieces)
        if self.attrs is None:
            pieces += [(fastjson.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": stamp})
                        + "\n").encode() for line in lines]
        else:  # docker's field order: log, stream, attrs, time
            pieces += [(fastjson.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "attrs": self.attrs,
                                        "time": stamp}) + "\n").encode() for line in lines]
        if self.fd < 0 and not self._open():
            self._dropped(len(pieces) - first, now)
            return
        if self.compressor:
            self._reap_compressor(os.WNOHANG)  # (a RotatingLogWriter's)
        start = 0
        while start < len(pieces):
            end = len(pieces) if self.max_size <= 0 else self._before_rotation(pieces, start)  # (rotating)
            if not self._write(pieces, start, end, first, notice, now):
                return
            start = end
        self.lost = 0
        self.lost_reason = ""
        self.torn = False

    def _write(self, pieces: list[bytes], start: int, end: int, first: int, notice: int, now: int) -> bool:
        """Write pieces[start:end]; on failure, count what is lost (of all the pieces) and say False."""
        data = b"".join(pieces[start:end])
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, data[written:])
        except OSError as err:
            self.size += written
            self.lost_reason = reason(err)
            done, left = start, written
            while done < len(pieces) and left >= len(pieces[done]):
                left -= len(pieces[done])
                done += 1
            self.torn = left > 0 or self.torn and done == start
            if 0 <= notice < done:  # the loss so far is told: what follows is a new one
                self.lost = 0
            self._dropped(len(pieces) - max(first, done), now)
            return False
        self.size += written
        self.torn = False  # the piece that ends a torn entry, if any, was the first
        return True

    def _dropped(self, count: int, now: int) -> None:
        if count and not self.lost:
            self.lost_since = now
        self.lost += count

    def _loss_notice(self, stamp: str) -> str:
        since = format_rfc3339_nano_ns(self.lost_since)
        text = f"berth: {self.lost} log lines lost from {since} to {stamp}: {self.lost_reason or 'write error'}\n"
        return fastjson.dumps({"log": text, "stream": "stderr", "time": stamp}) + "\n"

    def spec(self) -> dict:
        """What makes an equal writer (open_log) in another process: the lean monitor's."""
        return {"path": self.path, "max_size": self.max_size, "max_files": self.max_files,
                "compress": self.compress, "attrs": self.attrs}

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def reason(err: OSError) -> str:
    """In Go's words, as docker says them: "no space left on device"."""
    return os.strerror(err.errno or 0).lower() if err.errno else str(err)
