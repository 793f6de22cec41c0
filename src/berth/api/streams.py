"""A container's streams: attach (the hijacked connection docker's `run` and `attach` use) and
logs. Attach moves bytes between the client and a berth.engine.attach Session, as the CLI's
`attach` moves them between a terminal and one; before a start it waits as docker's `run`
(create, attach, wait, start) needs: a StartWaiter. Logs are engine.logs' entries."""

import select

from berth.api.http import MULTIPLEXED, RAW, STDERR, STDOUT, Hijack, Stream, frame
from berth.engine.attach import (
    DEFAULT_DETACH_KEYS,
    EscapeDetector,
    StartWaiter,
    attach,
    check_attachable,
    parse_detach_keys,
)
from berth.engine.containers import is_running
from berth.engine.logs import entry_bytes, follow_logs, log_source, parse_tail, read_logs
from berth.errors import BerthError, InvalidArgument
from berth.gotime import parse_unix_timestamp

STREAMS = {"stdout": STDOUT, "stderr": STDERR}
HUNG_UP = select.POLLHUP | select.POLLERR | select.POLLNVAL


def content_type(req, tty: bool) -> str:
    """dockerd's: the multiplexed type names frames since API 1.42; a tty's stream is raw."""
    version = tuple(int(part) for part in req.version.split("."))
    return RAW if tty or version < (1, 42) else MULTIPLEXED


def _wanted(req) -> tuple[str, ...]:
    return tuple(name for name in ("stdout", "stderr") if req.flag(name))


# -- logs ------------------------------------------------------------------------------------

def logs(req) -> Stream:
    record = req.engine.get(req.params["id"])
    wanted = _wanted(req)
    if not wanted:
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    log_source(record)  # docker's 501 for a driver that keeps nothing, before any header goes
    since_ns, until_ns = _bound(req, "since"), _bound(req, "until")
    tail = parse_tail(req.arg("tail") or "all")
    if req.flag("follow"):
        entries = follow_logs(req.engine, record["Id"], since_ns, until_ns, tail)
    else:
        entries = read_logs(record, since_ns, until_ns, tail)
    tty = bool(record["Config"]["Tty"])
    shape = _LogShape(tty, req.flag("timestamps"), req.flag("details"))
    return Stream(shape.chunks(entries, wanted), content_type(req, tty))


class _LogShape:
    """Log entries as the API sends them: raw with a tty, else one stdcopy frame each."""

    __slots__ = ("tty", "timestamps", "details")

    def __init__(self, tty: bool, timestamps: bool = False, details: bool = False):
        self.tty = tty
        self.timestamps = timestamps
        self.details = details

    def chunks(self, entries, wanted: tuple[str, ...]):
        for entry in entries:
            if entry.stream in wanted:
                data = entry_bytes(entry, self.timestamps, self.details)
                yield data if self.tty else frame(STREAMS[entry.stream], data)


def _bound(req, name: str) -> int | None:
    """since/until: the Unix timestamps ("seconds[.nanoseconds]") docker's CLI sends; 0 is none."""
    value = req.arg(name)
    if not value or value == "0":
        return None
    try:
        seconds, nanos = parse_unix_timestamp(value)
    except ValueError as err:
        raise InvalidArgument(f"invalid value for {name}: {err}") from None
    return seconds * 1_000_000_000 + nanos


# -- attach ----------------------------------------------------------------------------------

def attach_stream(req) -> Hijack:
    req.body()  # (none) read to its end: only then may the connection switch protocols
    record = req.engine.get(req.params["id"])
    keys = parse_detach_keys(req.arg("detachKeys") or DEFAULT_DETACH_KEYS)
    if is_running(record) or record["State"]["Restarting"]:
        check_attachable(record)  # docker's refusals: restarting, paused
    tty = bool(record["Config"]["Tty"])
    wanted = _wanted(req)
    options = AttachOptions(req.flag("stdin"), wanted, keys, req.flag("logs"), req.flag("stream"))

    def run(sock, early: bytes) -> None:
        client = Client(sock, early)
        try:
            options.serve(req.engine, record, client)
        except (BerthError, OSError):
            pass  # the connection is hijacked: there is nobody to answer; closing it says the rest

    return Hijack(run, content_type(req, tty))


class AttachOptions:
    """What the client asked to attach to: stdin, the output streams, the detach keys, the log
    replayed first (`logs`) and the live output (`stream`)."""

    __slots__ = ("stdin", "streams", "keys", "logs", "stream")

    def __init__(self, stdin: bool, streams: tuple[str, ...], keys: bytes, logs: bool, stream: bool):
        self.stdin = stdin
        self.streams = streams
        self.keys = keys
        self.logs = logs
        self.stream = stream

    def serve(self, engine, record: dict, client: "Client") -> None:
        tty = bool(record["Config"]["Tty"])
        session = None
        if self.stream and is_running(record):  # connected first: nothing is lost while the log replays
            session = attach(engine, record["Id"], self.stdin, block=True, streams=self.streams)
        if self.logs and self.streams:
            try:
                for chunk in _LogShape(tty).chunks(read_logs(record), self.streams):
                    client.send(chunk)
            except BerthError:  # a driver that keeps nothing to replay: only the live output
                pass
        if not self.stream:
            return
        if session is None:
            session = StartWaiter(engine, record, self.stdin, None, self.streams).wait(client.gone)
            if session is None:
                return
        pump(session, client, self.keys, tty)


class Client:
    """The hijacked connection's client. What it sends before the container runs is kept for
    its stdin; its half-close (docker's CloseWrite at the end of its input) is EOF for stdin,
    its hanging up the end of the attach (POLLHUP tells them apart on a unix socket)."""

    __slots__ = ("sock", "fd", "pending", "eof")

    def __init__(self, sock, early: bytes):
        self.sock = sock
        self.fd = sock.fileno()
        self.pending = bytearray(early)
        self.eof = False

    def gone(self) -> bool:
        """Whether the client hung up (what it sent meanwhile is kept)."""
        poller = select.poll()
        poller.register(self.fd, 0 if self.eof else select.POLLIN)
        for _, events in poller.poll(0):
            if events & HUNG_UP:
                return True
            if events & select.POLLIN:
                data = self.receive()
                if data is None:
                    return True
                self.pending += data
        return False

    def receive(self) -> bytes | None:
        """What the client sent (b"" once its writing side is closed); None if it is gone."""
        try:
            data = self.sock.recv(65536)  # blocking, and called once it is readable
        except OSError:
            return None
        if not data:
            self.eof = True
            if _hung_up(self.fd):
                return None
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def _hung_up(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, 0)
    return any(events & HUNG_UP for _, events in poller.poll(0))


def pump(session, client: Client, keys: bytes, tty: bool) -> None:
    """Copy the client's input to the container's stdin and its output to the client until the
    container ends, the client hangs up or types the detach keys (a tty's, as docker's)."""
    escape = EscapeDetector(keys) if keys and tty and session.stdin else None
    session.sock.setblocking(False)
    try:
        if _forward(session, client, bytes(client.pending), escape):
            return
        client.pending.clear()
        if client.eof:
            session.close_stdin()
        poller = select.poll()
        while True:
            poller.register(session.fd, select.POLLIN | (select.POLLOUT if session.outbox else 0))
            poller.register(client.fd, 0 if client.eof else select.POLLIN)
            try:
                ready = dict(poller.poll())
            except InterruptedError:
                continue
            events = ready.get(client.fd, 0)
            if events & select.POLLIN:
                data = client.receive()
                if data is None:
                    return
                if not data:
                    session.close_stdin()
                elif _forward(session, client, data, escape):
                    return
            elif events & HUNG_UP:
                return
            session.flush()
            if ready.get(session.fd, 0) & (select.POLLIN | HUNG_UP):
                frames = session.receive()
                if frames is None:
                    return  # the container ended
                for kind, payload in frames:
                    if kind in (STDOUT, STDERR):
                        client.send(payload if tty else frame(kind, payload))
    except OSError:
        return  # the client went away while we wrote to it: the container goes on
    finally:
        session.close()


def _forward(session, client: Client, data: bytes, escape: EscapeDetector | None) -> bool:
    """The client's input to the container's stdin; True when it held the detach keys."""
    if not data:
        return False
    detach = False
    if escape is not None:
        data, detach = escape.feed(data)
    session.write_stdin(data)
    if detach:
        session.flush(block=True)
    return detach


ROUTES = [
    ("POST", "/containers/{id}/attach", attach_stream),
    ("GET", "/containers/{id}/logs", logs),
]
