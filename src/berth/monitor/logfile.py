"""Docker's json-file log format, written by whoever holds a container's stdio.

One JSON object per line in <container dir>/<id>-json.log:
    {"log":"hello\\n","stream":"stdout","time":"2026-11-27T23:25:02.123456789Z"}
`log` keeps the trailing newline; a line longer than 16 KiB is written in 16 KiB pieces
without one (docker's partial messages), and so is an unterminated last line."""

import os
import time

from berth import fastjson
from berth.units import format_rfc3339_nano_ns

MAX_LINE = 16 * 1024


class LogWriter:
    __slots__ = ("fd", "pending")

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.pending = {"stdout": b"", "stderr": b""}

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
        stamp = format_rfc3339_nano_ns(time.time_ns())
        out = "".join(
            fastjson.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": stamp}) + "\n"
            for line in lines
        )
        os.write(self.fd, out.encode())

    def close(self) -> None:
        self.flush()
        os.close(self.fd)
