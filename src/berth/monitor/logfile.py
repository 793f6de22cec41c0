"""Docker's json-file log format, written by whoever holds a container's stdio.

One JSON object per line in <container dir>/<id>-json.log:
    {"log":"hello\\n","stream":"stdout","time":"2026-11-27T23:25:02.123456789Z"}
`log` keeps the trailing newline; a line longer than 16 KiB is written in 16 KiB pieces
without one (docker's partial messages), and so is an unterminated last line.

A log that cannot be written (a full disk, a quota, a file system gone read-only) never
stops whoever holds the container's stdio: lines are dropped while it lasts, as docker's
json-file driver drops them, and the loss is told once, by a line of its own (stderr)
when writing works again:
    {"log":"berth: 12 log lines lost from ... to ...: no space left on device\n",...}"""

import os
import time

from berth import fastjson
from berth.units import format_rfc3339_nano_ns

MAX_LINE = 16 * 1024


class LogWriter:
    __slots__ = ("path", "fd", "pending", "lost", "lost_since", "lost_reason", "torn")

    def __init__(self, path: str):
        self.path = path
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
            self.lost_reason = self.lost_reason or _reason(err)
            return False
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
        pieces += [
            (fastjson.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": stamp}) + "\n").encode()
            for line in lines
        ]
        if self.fd < 0 and not self._open():
            self._dropped(len(pieces) - first, now)
            return
        data = b"".join(pieces)
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, data[written:])
        except OSError as err:
            self.lost_reason = _reason(err)
            done, left = 0, written
            while done < len(pieces) and left >= len(pieces[done]):
                left -= len(pieces[done])
                done += 1
            self.torn = left > 0 or self.torn and done == 0
            if 0 <= notice < done:  # the loss so far is told: what follows is a new one
                self.lost = 0
            self._dropped(len(pieces) - max(first, done), now)
            return
        self.lost = 0
        self.lost_reason = ""
        self.torn = False

    def _dropped(self, count: int, now: int) -> None:
        if count and not self.lost:
            self.lost_since = now
        self.lost += count

    def _loss_notice(self, stamp: str) -> str:
        since = format_rfc3339_nano_ns(self.lost_since)
        text = f"berth: {self.lost} log lines lost from {since} to {stamp}: {self.lost_reason or 'write error'}\n"
        return fastjson.dumps({"log": text, "stream": "stderr", "time": stamp}) + "\n"

    def close(self) -> None:
        self.flush()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _reason(err: OSError) -> str:
    """In Go's words, as docker says them: "no space left on device"."""
    return os.strerror(err.errno or 0).lower() if err.errno else str(err)
