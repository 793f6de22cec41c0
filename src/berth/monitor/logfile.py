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
child forked for it (the writer goes on meanwhile; the next rotation waits for it). `attrs`
(--log-opt labels/env/tag) go into every entry, as docker's "attrs"."""

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
            self.lost_reason = self.lost_reason or _reason(err)
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
            self._reap_compressor(os.WNOHANG)
        start = 0
        while start < len(pieces):
            end = len(pieces) if self.max_size <= 0 else self._before_rotation(pieces, start)
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
            self.lost_reason = _reason(err)
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

    def _before_rotation(self, pieces: list[bytes], start: int) -> int:
        """Rotate if the log is full, then how far pieces[start:] fit: as docker checks before
        each entry, the one that fills the log is written whole."""
        if self.size >= self.max_size:
            self._rotate()
        end, size = start + 1, self.size + len(pieces[start])
        while end < len(pieces) and size < self.max_size:
            size += len(pieces[end])
            end += 1
        return end

    def _rotate(self) -> None:
        """docker's rotation (loggerutils.rotate). A failure leaves the log as it is, tried
        again once another max_size has been written to it."""
        self.size = 0
        try:
            if self.max_files < 2:
                os.ftruncate(self.fd, 0)
                return
            if self.compress:
                self._wait_compressor()
            last = f"{self.path}.{self.max_files - 1}"
            for name in (last, last + ".gz"):
                _remove(name)
            for i in range(self.max_files - 1, 1, -1):
                for ext in ("", ".gz"):  # a .1 whose compressor died stays as it is, and moves on
                    _rename(f"{self.path}.{i - 1}{ext}", f"{self.path}.{i}{ext}")
            os.rename(self.path, self.path + ".1")
        except OSError as err:
            self.lost_reason = self.lost_reason or _reason(err)
            return
        os.close(self.fd)
        self.fd = -1
        if self._open() and self.compress:
            self._start_compressor()

    def _start_compressor(self) -> None:
        """Fork a child that gzips <log>.1 into <log>.1.gz. It holds an flock on <log>.1 while
        it works: a later rotation, even by another supervisor of the container, waits for it."""
        rotated = self.path + ".1"
        try:
            fd = os.open(rotated, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            import fcntl  # lazy: only a compressed rotation

            fcntl.flock(fd, fcntl.LOCK_EX)
            self.compressor = os.fork()
            if self.compressor == 0:
                try:
                    os.setpgid(0, 0)  # the caller's terminal signals are not ours
                    _gzip_rotated(fd, rotated)
                finally:
                    os._exit(0)
        except OSError:
            self.compressor = 0
        finally:
            os.close(fd)  # the child's copy keeps the lock

    def _reap_compressor(self, flags: int) -> None:
        """Reap our compressor once it is done (waiting for it without WNOHANG)."""
        try:
            if os.waitpid(self.compressor, flags)[0] == 0:
                return
        except ChildProcessError:  # reaped with the container's orphans
            pass
        self.compressor = 0

    def _wait_compressor(self) -> None:
        """Wait until no child gzips <log>.1 (ours, or one a previous supervisor forked)."""
        if self.compressor:
            self._reap_compressor(0)
        try:
            fd = os.open(self.path + ".1", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            import fcntl  # lazy: only a compressed rotation

            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)

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


def _gzip_rotated(fd: int, path: str) -> None:
    """In the compressor child: <path> (open on `fd`) -> <path>.gz, then <path> goes, unless it
    is another file by now. gzip.BestSpeed, as docker."""
    os.closerange(3, fd)  # nothing of the supervisor's (pipes, sockets) is held by this child
    os.closerange(fd + 1, 65536)
    import zlib  # lazy: only the compressor child

    from berth.fs import write_all  # lazy: only the compressor child

    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = os.open(path + ".gz", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        while chunk := os.read(fd, 1 << 20):
            write_all(out, packer.compress(chunk))
        write_all(out, packer.flush())
    finally:
        os.close(out)
    if os.stat(path).st_ino == os.fstat(fd).st_ino:
        os.unlink(path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename(source: str, target: str) -> None:
    try:
        os.rename(source, target)
    except FileNotFoundError:
        pass


def _reason(err: OSError) -> str:
    """In Go's words, as docker says them: "no space left on device"."""
    return os.strerror(err.errno or 0).lower() if err.errno else str(err)
