"""docker's syslog logging driver, in the supervisor: each line of output is one message to a
syslog server (stdout at priority info, stderr at err, of the container's facility), in the
format docker's driver sends (srslog's unix format by default, rfc3164, rfc5424, rfc5424micro),
each message ending in a newline as srslog ends them. The dual-logging cache (a LogWriter) gets
the same output, so `logs` still reads. A server that goes away costs the lines sent meanwhile,
never the container: the next line dials again."""

import os
import socket
import time

from berth.monitor.logfile import MAX_LINE, LogWriter

INFO, ERR = 6, 3
STREAM_TRANSPORTS = ("tcp", "unix")


class SyslogWriter:
    __slots__ = ("target", "cache", "sock", "pending", "hostname")

    def __init__(self, target: dict, cache: LogWriter | None):
        self.target = target
        self.cache = cache
        self.sock = None
        self.pending = {"stdout": b"", "stderr": b""}
        self.hostname = os.uname().nodename

    def write(self, stream: str, data: bytes) -> None:
        if self.cache is not None:
            self.cache.write(stream, data)
        buffered = self.pending[stream] + data
        while True:
            newline = buffered.find(b"\n")
            if newline < 0 or newline >= MAX_LINE:
                if len(buffered) < MAX_LINE:
                    break
                self._send(stream, buffered[:MAX_LINE])
                buffered = buffered[MAX_LINE:]
                continue
            self._send(stream, buffered[:newline])
            buffered = buffered[newline + 1:]
        self.pending[stream] = buffered

    def flush(self) -> None:
        if self.cache is not None:
            self.cache.flush()
        for stream, rest in self.pending.items():
            if rest:
                self._send(stream, rest)
                self.pending[stream] = b""

    def _send(self, stream: str, line: bytes) -> None:
        if not line:  # docker's driver sends no empty message
            return
        priority = self.target["facility"] << 3 | (ERR if stream == "stderr" else INFO)
        message = self._format(priority, line.decode("utf-8", "replace") + "\n").encode()
        for _ in range(2):  # a server that closed our stream: dial once more
            try:
                if self.sock is None:
                    self.sock = self._dial()
                self.sock.sendall(message)
                return
            except OSError:
                self._close_socket()

    def _format(self, priority: int, content: str) -> str:
        """srslog's formatters as docker picks them (syslog-format)."""
        fmt, tag, pid = self.target["format"], self.target["tag"], os.getpid()
        if fmt in ("rfc5424", "rfc5424micro"):
            return f"<{priority}>1 {_rfc3339(fmt == 'rfc5424micro')} {self.hostname} {tag} {pid} {tag} - {content}"
        stamp = time.strftime("%b %e %H:%M:%S")  # Go's time.Stamp: "Jan _2 15:04:05"
        if fmt == "rfc3164":
            return f"<{priority}>{stamp} {self.hostname} {tag}[{pid}]: {content}"
        return f"<{priority}>{stamp} {tag}[{pid}]: {content}"

    def _dial(self) -> socket.socket:
        transport, address = self.target["transport"], self.target["address"]
        if transport in ("unix", "unixgram"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if transport == "unix" else socket.SOCK_DGRAM)
        else:
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM)
            address = tuple(address)
        sock.settimeout(5)  # a stuck server must not stall the container's output for long
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def spec(self) -> dict:
        cache = self.cache.spec() if self.cache is not None else {}
        return {**cache, "syslog": self.target}

    def close(self) -> None:
        self.flush()
        if self.cache is not None:
            self.cache.close()
        self._close_socket()


def _rfc3339(micro: bool) -> str:
    now = time.time()
    t = time.localtime(now)
    offset = t.tm_gmtoff
    hours, minutes = abs(offset) // 3600, abs(offset) % 3600 // 60
    zone = "Z" if not offset else f"{'+' if offset > 0 else '-'}{hours:02d}:{minutes:02d}"
    fraction = f".{int(now % 1 * 1_000_000):06d}" if micro else ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + fraction + zone
