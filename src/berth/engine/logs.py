"""Reading a container's json-file log (the format monitor/logfile.py writes): the entries
already there, filtered as docker's --tail/--since/--until filter them, and following the
file as it grows until the container has stopped for good."""

import os
import time

from berth import fastjson
from berth.engine.containers import is_running
from berth.errors import NotImplementedYet
from berth.units import format_rfc3339_nano_ns, parse_rfc3339_ns

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

    def filter(self, entries):
        """The entries it admits, until it has ended."""
        for entry in entries:
            if self.admits(entry):
                yield entry
            elif self.ended:
                return


def read_logs(record: dict, since_ns: int | None = None, until_ns: int | None = None,
              tail: int | None = None):
    """The entries in the container's log now, oldest first, across its rotated files (plain
    or gzipped). `tail` keeps the last N (None or negative: all, 0: none), chosen before
    since/until filter them, as in docker. A last line still being written is left out."""
    path, max_files = log_source(record)
    chain = _open_chain(path, max_files)
    try:
        yield from Window(since_ns, until_ns).filter(_chain_entries(chain, tail, {}))
    finally:
        _close_chain(chain)


def follow_logs(engine, container_id: str, since_ns: int | None = None, until_ns: int | None = None,
                tail: int | None = None, poll: float = POLL_SECONDS):
    """read_logs, then every entry appended after it, until the container is neither running
    nor restarting (or was removed) and all it wrote has been read, or `until` has passed.
    Survives restarts (the log is appended to, never truncated by them) and rotations (the
    file read to its end, then the files rotated after it, then the new one), and waits for
    the newline of a line being written."""
    try:
        record = engine.load(container_id)
    except FileNotFoundError:
        return
    path, max_files = log_source(record)
    window = Window(since_ns, until_ns)
    stamps = {}
    chain = _open_chain(path, max_files)
    fd, pos = -1, 0
    try:
        if chain and not chain[-1].gz and _same_file(chain[-1].fd, path):
            fd, pos = os.dup(chain[-1].fd), chain[-1].end  # the current file, followed from there
        yield from window.filter(_chain_entries(chain, tail, stamps))
        if window.ended:
            return
        _close_chain(chain)
        chain = []
        liveness = _Liveness()
        while True:
            # Look at the state before reading: whatever was written before it stopped is
            # then in the file when we read it.
            writing = liveness.check(engine, container_id)
            if fd < 0:
                fd = _open(path)
                pos = 0
            if fd >= 0:
                rotated = not _same_file(fd, path)  # checked first: a rotated file is complete
                size = os.fstat(fd).st_size
                if size < pos:  # truncated (max-file 1, or by hand): start over rather than wait forever
                    pos = 0
                if size > pos:
                    end = size if rotated else _complete_end(fd, size, floor=pos)
                    yield from window.filter(_decode_range(fd, pos, end, stamps))
                    if window.ended:
                        return
                    pos = end
                if rotated:
                    chain = _rotated_after(fd, path, max_files)
                    yield from window.filter(_chain_entries(chain, None, stamps))
                    if window.ended:
                        return
                    _close_chain(chain)
                    chain = []
                    os.close(fd)
                    fd = -1
                    continue
            if not writing:
                return
            if until_ns is not None and time.time_ns() > until_ns:
                return
            time.sleep(poll)
    finally:
        if fd >= 0:
            os.close(fd)
        _close_chain(chain)


def log_source(record: dict) -> tuple[str, int]:
    """(the container's log file, how many files its rotation keeps); docker's error for a
    driver that keeps nothing to read."""
    log_config = (record.get("HostConfig") or {}).get("LogConfig") or {}
    driver = log_config.get("Type") or "json-file"
    if driver == "json-file" and not log_config.get("Config"):
        return record.get("LogPath") or "", 1
    from berth.engine.logconfig import log_file, rotation  # lazy: only a container with a LogConfig

    path = log_file(record)
    if not path:
        raise NotImplementedYet("configured logging driver does not support reading")  # dockerd's 501
    return path, rotation(driver, log_config["Config"])[1]


# -- an entry as docker's logs print it --------------------------------------------------

def entry_bytes(entry: LogEntry, timestamps: bool = False, details: bool = False) -> bytes:
    """The entry's text as `docker logs` prints it (the API sends the same bytes): its
    --details attributes, then its --timestamps time, first."""
    data = encode_text(entry.text)
    if details:
        data = details_prefix(entry.attrs) + data
    if timestamps:
        data = format_timestamp(entry.time_ns).encode() + b" " + data
    return data


def encode_text(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: Go decodes it as U+FFFD
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def details_prefix(attrs: dict) -> bytes:
    """docker's attrsByteSlice: k=v pairs sorted by key, query-escaped, comma-separated, then a space."""
    return ",".join(f"{_query_escape(k)}={_query_escape(str(v))}" for k, v in sorted(attrs.items())).encode() + b" "


def _query_escape(s: str) -> str:
    """Go's url.QueryEscape."""
    out = []
    for byte in s.encode():
        ch = chr(byte)
        if ch.isascii() and (ch.isalnum() or ch in "-_.~"):
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def parse_tail(value: str) -> int:
    """The daemon's strconv.Atoi(tail): anything that is not an integer ("all") means all (-1)."""
    from berth.gotime import go_parse_int  # lazy: only logs

    try:
        return go_parse_int(value)
    except ValueError:
        return -1


def format_timestamp(time_ns: int) -> str:
    """docker's RFC3339NanoFixed in UTC: always nine fraction digits, so columns line up."""
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    return f"{format_rfc3339_nano_ns(seconds * 1_000_000_000)[:-1]}.{fraction:09d}Z"


class _Source:
    """One file of a log: an open fd, gzipped or not, read up to `end` (plain files)."""

    __slots__ = ("fd", "gz", "end", "start", "skip")

    def __init__(self, fd: int, gz: bool, end: int = 0):
        self.fd = fd
        self.gz = gz
        self.end = end
        self.start = 0  # plain: the offset to read from
        self.skip = 0  # gzipped: lines to skip

    def lines_from_end(self, wanted: int) -> int:
        """Set where the last `wanted` lines begin; how many lines that is (fewer if it has fewer)."""
        if self.gz:
            count = sum(chunk.count(b"\n") for chunk in _gunzip(self.fd))
            self.skip = max(0, count - wanted)
            return min(count, wanted)
        self.start, found = _tail_start(self.fd, self.end, wanted)
        return found

    def entries(self, stamps: dict):
        if self.gz:
            return _decode_lines(_gunzip(self.fd), self.skip, stamps)
        return _decode_range(self.fd, self.start, self.end, stamps)


def _open_chain(path: str, max_files: int) -> list[_Source]:
    """The log's files, oldest first: <path>.N (or .N.gz) down to <path>.1, then <path>.
    Opened newest first, so a rotation meanwhile shows as a file seen twice: then again."""
    if not path:
        return []
    for _ in range(10):
        chain, seen = [], set()
        for index in range(max_files):
            for name, gz in ((path, False),) if index == 0 else ((f"{path}.{index}", False),
                                                                 (f"{path}.{index}.gz", True)):
                fd = _open(name)
                if fd >= 0:
                    chain.append(_Source(fd, gz))
                    break
        for source in chain:
            stat = os.fstat(source.fd)
            seen.add((stat.st_dev, stat.st_ino))
            if not source.gz:
                source.end = _complete_end(source.fd, stat.st_size)
        if len(seen) == len(chain):
            return chain[::-1]
        _close_chain(chain)
    return []


def _rotated_after(fd: int, path: str, max_files: int) -> list[_Source]:
    """The files rotated after the one open on `fd` (found under its rotated name), oldest
    first; none if it cannot be found (gzipped or dropped by now)."""
    stat = os.fstat(fd)
    for index in range(1, max_files):
        try:
            moved = os.stat(f"{path}.{index}")
        except OSError:
            continue
        if (moved.st_dev, moved.st_ino) == (stat.st_dev, stat.st_ino):
            chain = _open_chain(path, index)  # <path> and the files newer than it
            if chain and not chain[-1].gz and _same_file(chain[-1].fd, path):
                os.close(chain.pop().fd)  # the current file is followed next, from its start
            return chain
    return []


def _chain_entries(chain: list[_Source], tail: int | None, stamps: dict):
    """The entries of the files, or of the last `tail` lines across them (None, negative: all)."""
    first = 0
    if tail is not None and tail >= 0:
        wanted, first = tail, len(chain)
        while wanted > 0 and first > 0:
            first -= 1
            wanted -= chain[first].lines_from_end(wanted)
    for source in chain[first:]:
        yield from source.entries(stamps)


def _close_chain(chain: list[_Source]) -> None:
    for source in chain:
        os.close(source.fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        named = os.stat(path)
    except OSError:
        return False
    stat = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (stat.st_dev, stat.st_ino)


def _gunzip(fd: int):
    """The bytes of a gzipped rotated file, in chunks, read from its start."""
    import zlib  # lazy: only gzipped rotated logs

    unpacker = zlib.decompressobj(zlib.MAX_WBITS | 16)
    pos = 0
    while chunk := os.pread(fd, _CHUNK, pos):
        pos += len(chunk)
        yield unpacker.decompress(chunk)
        if unpacker.eof:
            return
    yield unpacker.flush()


def _decode_lines(chunks, skip: int, stamps: dict):
    """Entries of the complete lines in a stream of chunks, after the first `skip` lines."""
    carry = b""
    for chunk in chunks:
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        for line in lines:
            if skip:
                skip -= 1
                continue
            entry = decode_line(line, stamps)
            if entry is not None:
                yield entry


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


def _tail_start(fd: int, end: int, tail: int) -> tuple[int, int]:
    """Offset where the last `tail` (> 0) lines before `end` begin, and how many lines that is
    (all there are, if fewer)."""
    if end == 0:
        return 0, 0
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
                return start + i + 1, found
        pos = start
    return 0, found + 1


def _decode_range(fd: int, start: int, end: int, stamps: dict):
    """Entries of the complete lines in [start, end)."""
    return _decode_lines(_chunks(fd, start, end), 0, stamps)


def _chunks(fd: int, start: int, end: int):
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(_CHUNK, end - pos), pos)
        if not chunk:
            return
        pos += len(chunk)
        yield chunk


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
