"""A container's streams: attach (the hijacked connection docker's `run` and `attach` use, or
a websocket) and logs. Attach moves bytes between the client and a berth.engine.attach Session, as the CLI's
`attach` moves them between a terminal and one; before a start it waits as docker's `run`
(create, attach, wait, start) needs: a StartWaiter. Logs are engine.logs' entries."""

import select

from berth.api.http import MULTIPLEXED, RAW, STDERR, STDOUT, Hijack, Stream, frame
from berth.engine.attach import (
    DEFAULT_DETACH_KEYS,
    EscapeDetector,
    attach,
    check_attachable,
    parse_detach_keys,
)
from berth.engine.containers import is_running
from berth.engine.logs import entry_bytes, follow_logs, log_source, parse_tail, read_logs
from berth.engine.start_waiter import StartWaiter
from berth.errors import BerthError, InvalidArgument
from berth.gotime import parse_unix_timestamp

STREAMS = {"stdout": STDOUT, "stderr": STDERR}
HUNG_UP = select.POLLHUP | select.POLLERR | select.POLLNVAL


def content_type(req, tty: bool) -> str:
    """dockerd's: the multiplexed type names frames since API 1.42; a tty's stream is raw."""
    return RAW if tty or _version(req) < (1, 42) else MULTIPLEXED


def _version(req) -> tuple[int, ...]:
    return tuple(int(part) for part in req.version.split("."))


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
    chunks = _log_chunks(entries, wanted, tty, req.flag("timestamps"), req.flag("details"))
    return Stream(chunks, content_type(req, tty))


def _log_chunks(entries, wanted: tuple[str, ...], tty: bool, timestamps: bool, details: bool):
    """Log entries as the API sends them: raw with a tty, else one stdcopy frame each."""
    for entry in entries:
        if entry.stream in wanted:
            data = entry_bytes(entry, timestamps, details)
            yield data if tty else frame(STREAMS[entry.stream], data)


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
    record, options = _attach_request(req)

    def run(sock, early: bytes) -> None:
        options.serve_quietly(req.engine, record, Client(sock, early))

    return Hijack(run, content_type(req, bool(record["Config"]["Tty"])))


def attach_websocket(req) -> Hijack:
    """attach/ws: the same attach over a websocket (RFC 6455), its output raw."""
    key = req.headers.get("sec-websocket-key", "")
    if "websocket" not in req.headers.get("upgrade", "").lower() or not key:
        raise InvalidArgument("websocket: the client is not using the websocket protocol: "
                              "'upgrade' token not found in 'Connection' header")
    record, options = _attach_request(req)
    binary = _version(req) >= (1, 42)

    def run(sock, early: bytes) -> None:
        options.serve_quietly(req.engine, record, WebSocketClient(sock, early, binary))

    import base64  # lazy: only websockets
    import hashlib  # lazy: likewise

    accept = base64.b64encode(hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest()).decode()
    return Hijack(run, RAW, {"Upgrade": "websocket", "Sec-WebSocket-Accept": accept})


WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's


def _attach_request(req) -> tuple[dict, "AttachOptions"]:
    req.body()  # (none) read to its end: only then may the connection switch protocols
    record = req.engine.get(req.params["id"])
    keys = parse_detach_keys(req.arg("detachKeys") or DEFAULT_DETACH_KEYS)
    if is_running(record) or record["State"]["Restarting"]:
        check_attachable(record)  # docker's refusals: restarting, paused
    options = AttachOptions(req.flag("stdin"), _wanted(req), keys, req.flag("logs"), req.flag("stream"))
    options.wait_for_start(req.engine, record)
    return record, options


class AttachOptions:
    """What the client asked to attach to: stdin, the output streams, the detach keys, the log
    replayed first (`logs`) and the live output (`stream`)."""

    __slots__ = ("stdin", "streams", "keys", "logs", "stream", "waiter")

    def __init__(self, stdin: bool, streams: tuple[str, ...], keys: bytes, logs: bool, stream: bool):
        self.stdin = stdin
        self.streams = streams
        self.keys = keys
        self.logs = logs
        self.stream = stream
        self.waiter = None

    def wait_for_start(self, engine, record: dict) -> None:
        """A container not running yet: wait for its start from now, before the client hears
        back (docker's CLI starts it as soon as it has the answer)."""
        if self.stream and not is_running(record):
            self.waiter = StartWaiter(engine, record, self.stdin, None, self.streams)

    def serve_quietly(self, engine, record: dict, client: "Client") -> None:
        try:
            self.serve(engine, record, client)
        except (BerthError, OSError):
            pass  # the connection is hijacked: there is nobody to answer; closing it says the rest
        finally:
            if self.waiter is not None:
                self.waiter.close()

    def serve(self, engine, record: dict, client: "Client") -> None:
        tty = bool(record["Config"]["Tty"])
        session = None
        if self.stream and is_running(record):  # connected first: nothing is lost while the log replays
            session = attach(engine, record["Id"], self.stdin, block=True, streams=self.streams)
        if self.logs and self.streams:
            try:
                for entry in read_logs(record):
                    if entry.stream in self.streams:
                        client.output(STREAMS[entry.stream], entry_bytes(entry), tty)
            except BerthError:  # a driver that keeps nothing to replay: only the live output
                pass
        if not self.stream:
            return
        if session is None:
            session = self.waiter.wait(client.gone)
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

    def output(self, stream: int, data: bytes, tty: bool) -> None:
        """The container's output: raw from a tty, else in docker's frames."""
        self.sock.sendall(data if tty else frame(stream, data))


class WebSocketClient(Client):
    """The client of attach/ws: RFC 6455 frames both ways. Its messages' payloads are the
    container's stdin; the output goes in binary frames (text before API 1.42, as dockerd's);
    its close frame ends the attach."""

    __slots__ = ("opcode", "inbox")

    def __init__(self, sock, early: bytes, binary: bool):
        super().__init__(sock, b"")
        self.opcode = 2 if binary else 1
        self.inbox = bytearray(early)
        self.pending += self._payloads()

    def receive(self) -> bytes | None:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return None
        if not data:
            self.eof = True
            return None  # without a close frame: it is gone all the same
        self.inbox += data
        payloads = self._payloads()
        return None if self.eof else payloads

    def _payloads(self) -> bytes:
        """The payloads of the complete frames received; a close frame sets eof."""
        out = bytearray()
        while (parsed := _ws_frame(self.inbox)) is not None:
            opcode, payload = parsed
            if opcode == 8:
                self.eof = True
                self._send_frame(8, payload[:2])
                break
            if opcode == 9:
                self._send_frame(10, payload)
            elif opcode in (0, 1, 2):
                out += payload
        return bytes(out)

    def output(self, stream: int, data: bytes, tty: bool) -> None:
        self._send_frame(self.opcode, data)  # raw either way, as dockerd's

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, size))
        elif size < 1 << 16:
            head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
        self.sock.sendall(head + payload)


def _ws_frame(buffer: bytearray) -> tuple[int, bytes] | None:
    """The first complete frame of `buffer` (removed from it): (opcode, unmasked payload)."""
    if len(buffer) < 2:
        return None
    opcode, size, at = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if size == 126:
        size, at = int.from_bytes(buffer[2:4], "big"), 4
    elif size == 127:
        size, at = int.from_bytes(buffer[2:10], "big"), 10
    masked = buffer[1] & 0x80
    end = at + (4 if masked else 0) + size
    if len(buffer) < end or at > len(buffer):
        return None
    payload = bytes(buffer[end - size:end])
    if masked:
        mask = buffer[at:at + 4]
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    del buffer[:end]
    return opcode, payload


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
        if client.pending and session.type_in(bytes(client.pending), escape):
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
                if data and session.type_in(data, escape):
                    return
                if client.eof:
                    session.close_stdin()
            elif events & HUNG_UP:
                return
            session.flush()
            if ready.get(session.fd, 0) & (select.POLLIN | HUNG_UP):
                frames = session.receive()
                if frames is None:
                    return  # the container ended
                for kind, payload in frames:
                    if kind in (STDOUT, STDERR):
                        client.output(kind, payload, tty)
    except OSError:
        return  # the client went away while we wrote to it: the container goes on
    finally:
        session.close()


ROUTES = [
    ("POST", "/containers/{id}/attach", attach_stream),
    ("GET", "/containers/{id}/attach/ws", attach_websocket),
    ("GET", "/containers/{id}/logs", logs),
]
