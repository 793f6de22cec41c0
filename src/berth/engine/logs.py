"""Reading a container's json-file log (the format monitor/logfile.py writes): the entries
already there, filtered as docker's --tail/--since/--until filter them, and following the
file as it grows until the container has stopped for good."""

import os
import time

from berth import fastjson
from berth.engine.containers import is_running
from berth.units import parse_rfc3339_ns

POLL_SECONDS = 0.05
# With an engine that cannot tell whether a container's supervisor is alive, a record that
# says "running" while its process is gone is believed for this long, then taken as stopped.
STALE_RUNNING_SECONDS = 2.0
_CHUNK = 1 << 20
_BLOCK = 64 * 1024


class LogEntry:
    """One json-file line: its stream, its time (Unix ns), its text exactly as written (a
    partial line has no trailing newline) and its extra attributes (`logs --details`).
    Unpacks as (stream, time_ns, text)."""

    __slots__ = ("stream", "time_ns", "text", "attrs")

    def __init__(self, stream: str, time_ns: int, text: str, attrs: dict | None = None):
        self.stream = stream
        self.time_ns = time_ns
        self.text = text
        self.attrs = attrs or {}

    def __iter__(self):
        return iter((self.stream, self.time_ns, self.text))

    def __repr__(self) -> str:
        return f"LogEntry({self.stream!r}, {self.time_ns}, {self.text!r})"


class Window:
    """docker's forwarder: skip entries before `since` until the first one at or after it
    (later ones pass even if the clock went back), and end at the first one after `until`."""

    __slots__ = ("since_ns", "until_ns", "ended")

    def __init__(self, since_ns: int | None, until_ns: int | None):
        self.since_ns = since_ns
        self.until_ns = until_ns
        self.ended = False

    def admits(self, entry: LogEntry) -> bool:
        if self.since_ns is not None:
            if entry.time_ns < self.since_ns:
                return False
            self.since_ns = None
        if self.until_ns is not None and entry.time_ns > self.until_ns:
            self.ended = True
            return False
        return True


def read_logs(record: dict, since_ns: int | None = None, until_ns: int | None = None,
              tail: int | None = None):
    """The entries in the container's log now, oldest first. `tail` keeps the last N
    (None or negative: all, 0: none), chosen before since/until filter them, as in docker.
    A last line still being written is left out."""
    fd = _open(record.get("LogPath") or "")
    if fd < 0:
        return
    try:
        end = _complete_end(fd, os.fstat(fd).st_size)
        window = Window(since_ns, until_ns)
        for entry in _decode_range(fd, _tail_start(fd, end, tail), end, {}):
            if window.admits(entry):
                yield entry
            elif window.ended:
                return
    finally:
        os.close(fd)


def follow_logs(engine, container_id: str, since_ns: int | None = None, until_ns: int | None = None,
                tail: int | None = None, poll: float = POLL_SECONDS):
    """read_logs, then every entry appended after it, until the container is neither running
    nor restarting (or was removed) and all it wrote has been read, or `until` has passed.
    Survives restarts (the log is appended to, never truncated) and waits for the newline
    of a line being written."""
    try:
        record = engine.load(container_id)
    except FileNotFoundError:
        return
    path = record.get("LogPath") or ""
    window = Window(since_ns, until_ns)
    stamps = {}
    fd = _open(path)
    pos = 0
    try:
        if fd >= 0:
            pos = _complete_end(fd, os.fstat(fd).st_size)
            for entry in _decode_range(fd, _tail_start(fd, pos, tail), pos, stamps):
                if window.admits(entry):
                    yield entry
                elif window.ended:
                    return
        liveness = _Liveness()
        while True:
            # Look at the state before reading: whatever was written before it stopped is
            # then in the file when we read it.
            writing = liveness.check(engine, container_id)
            if fd < 0:
                fd = _open(path)
                pos = 0
            if fd >= 0:
                size = os.fstat(fd).st_size
                if size < pos:  # truncated by hand: start over rather than wait forever
                    pos = 0
                if size > pos:
                    end = _complete_end(fd, size, floor=pos)
                    for entry in _decode_range(fd, pos, end, stamps):
                        if window.admits(entry):
                            yield entry
                        elif window.ended:
                            return
                    pos = end
            if not writing:
                return
            if until_ns is not None and time.time_ns() > until_ns:
                return
            time.sleep(poll)
    finally:
        if fd >= 0:
            os.close(fd)


class _Liveness:
    """Whether the container may still write to its log."""

    __slots__ = ("stale_since",)

    def __init__(self):
        self.stale_since = None

    def check(self, engine, container_id: str) -> bool:
        try:
            record = engine.load(container_id)
        except FileNotFoundError:
            return False  # removed
        state = record["State"]
        if not (state.get("Running") or state.get("Restarting")):
            return False
        if state.get("Running") and is_running(record):
            self.stale_since = None
            return True
        # Exited but not yet recorded, or between restarts: whoever supervises it will write
        # more or record the end, if it is still there.
        monitor_alive = getattr(engine, "monitor_alive", None)
        if monitor_alive is not None:
            return monitor_alive(container_id)
        now = time.monotonic()
        if self.stale_since is None:
            self.stale_since = now
        return now - self.stale_since < STALE_RUNNING_SECONDS


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return -1


def _complete_end(fd: int, size: int, floor: int = 0) -> int:
    """Offset just past the last newline before `size` (and not before `floor`): bytes after
    it are a line still being written."""
    pos = size
    while pos > floor:
        start = max(floor, pos - _BLOCK)
        newline = os.pread(fd, pos - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        pos = start
    return floor


def _tail_start(fd: int, end: int, tail: int | None) -> int:
    """Offset where the last `tail` lines before `end` begin."""
    if tail is None or tail < 0:
        return 0
    if tail == 0:
        return end
    pos = end - 1  # the newline that ends the last line
    found = 0
    while pos > 0:
        start = max(0, pos - _BLOCK)
        chunk = os.pread(fd, pos - start, start)
        i = len(chunk)
        while True:
            i = chunk.rfind(b"\n", 0, i)
            if i < 0:
                break
            found += 1
            if found == tail:
                return start + i + 1
        pos = start
    return 0


def _decode_range(fd: int, start: int, end: int, stamps: dict):
    """Entries of the complete lines in [start, end)."""
    carry = b""
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(_CHUNK, end - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            entry = decode_line(line, stamps)
            if entry is not None:
                yield entry


def decode_line(line: bytes, stamps: dict | None = None) -> LogEntry | None:
    """One json-file line as an entry; None for a line that is not one (torn by a crash,
    or not ours): skipped, as docker's reader skips what it cannot decode."""
    try:
        obj = fastjson.loads(line)
        return LogEntry(obj.get("stream") or "stdout", _time_ns(obj["time"], stamps),
                        obj.get("log") or "", obj.get("attrs"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _time_ns(stamp: str, stamps: dict | None) -> int:
    """RFC 3339 -> Unix ns. The UTC "...:05[.fraction]Z" that writers use is parsed once
    per second seen; anything else goes through the full parser."""
    if stamps is not None and len(stamp) >= 20 and stamp[-1] == "Z" and stamp[19] in ".Z":
        head = stamp[:19]
        seconds = stamps.get(head)
        if seconds is None:
            if len(stamps) > 4096:
                stamps.clear()
            seconds = stamps[head] = parse_rfc3339_ns(head + "Z")
        if stamp[19] == "Z":
            if len(stamp) == 20:
                return seconds
        elif (fraction := stamp[20:-1]).isdigit() and fraction.isascii():
            return seconds + int(fraction[:9].ljust(9, "0"))
    return parse_rfc3339_ns(stamp)
