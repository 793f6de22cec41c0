"""What an endpoint of the Engine API sees and returns: a Request (method, path, query, headers,
body read on demand), and one of Response (a whole body), Stream (chunks sent as produced) or
Hijack (the raw connection after docker's 101 upgrade). The server owns the wire (h11); errors map
to docker's statuses in one table here."""

import io
import json
from urllib.parse import parse_qs

from berth.errors import BerthError, InvalidArgument

# Engine error kinds -> HTTP status, as dockerd maps its errdefs
STATUS = {"invalid": 400, "usage": 400, "not_found": 404, "conflict": 409, "not_implemented": 501,
          "system": 500, "cannot_invoke": 500, "command_not_found": 500}

MAX_BODY = 16 << 20  # a JSON request body larger than this is refused (413); streamed bodies are not bounded here
TRUE = ("1", "true", "True", "TRUE", "yes")


class ApiError(BerthError):
    """An error with its own HTTP status (for statuses no engine kind has: 405, 413, ...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def status_of(err: BaseException) -> int:
    if isinstance(err, ApiError):
        return err.status
    if isinstance(err, BerthError):
        return STATUS.get(err.kind, 500)
    return 500


class Request:
    """One API request. `params` holds the route's captures ({"id": ...}); the body is read only
    when asked (body(), json(), chunks()), so an endpoint that streams a large upload never holds it."""

    __slots__ = ("method", "path", "version", "query", "headers", "params", "engine", "_reader", "sock")

    def __init__(self, method: str, path: str, version: str, query: str, headers: dict, engine, reader, sock):
        self.method = method
        self.path = path
        self.version = version  # the API version the client asked for ("1.47" without a /vX.Y prefix)
        self.query = parse_qs(query, keep_blank_values=True)
        self.headers = headers  # lower-cased names
        self.params = {}
        self.engine = engine
        self._reader = reader  # yields the body's chunks (bytes) until its end
        self.sock = sock

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def flag(self, name: str, default: bool = False) -> bool:
        """docker's boolean query parameters: 1/true/True are true, 0/false/"" false."""
        value = self.arg(name)
        return default if value is None else value in TRUE

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"invalid value for {name}: {value!r}: not an integer") from None

    def json_arg(self, name: str):
        value = self.arg(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidArgument(f"invalid JSON in query parameter {name}") from None

    def filters(self) -> dict[str, list[str]]:
        """The `filters` parameter: {"key": ["v", ...]} or the older {"key": {"v": true}}."""
        raw = self.json_arg("filters") or {}
        if not isinstance(raw, dict):
            raise InvalidArgument("invalid filter: filters must be a JSON object")
        out = {}
        for key, values in raw.items():
            if isinstance(values, dict):
                out[key] = [v for v, on in values.items() if on]
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                out[key] = list(values)
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
        return out

    def filter_args(self) -> list[str]:
        """The `filters` parameter as the engine's `key=value` strings (what --filter gives the CLI)."""
        return [f"{key}={value}" for key, values in self.filters().items() for value in values]

    def older_than(self, version: str) -> bool:
        """Did the client ask for an API version before `version` (shapes that changed with it)?"""
        return _version(self.version) < _version(version)

    def chunks(self):
        """The body as it arrives (for load, import, archive uploads)."""
        yield from self._reader

    def stream(self) -> io.BufferedReader:
        """The body as a binary stream read as it arrives (archives: load, import), never held whole."""
        return io.BufferedReader(_BodyReader(self._reader), 1 << 16)

    def body(self, limit: int = MAX_BODY) -> bytes:
        """The whole body, refused (413) past `limit`: before reading any of it when its announced
        length is over (the client is answered without sending it all), else once it grows over."""
        announced = self.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        parts, size = [], 0
        for chunk in self._reader:
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body is larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def json(self, required: bool = False):
        """The body as JSON; None when empty (unless required). Malformed JSON is docker's 400."""
        data = self.body()
        if not data.strip():
            if required:
                raise InvalidArgument("invalid JSON: request body is empty")
            return None
        try:
            return json.loads(data)
        except ValueError as err:
            raise InvalidArgument(f"invalid JSON: {err}") from None

    def json_object(self, required: bool = False) -> dict:
        value = self.json(required)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidArgument("invalid JSON: expected an object")
        return value


class _BodyReader(io.RawIOBase):
    """A raw stream over the body's chunks."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._rest = chunk
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


class Response:
    """A whole response; `body` is bytes, or any JSON value (sent as application/json)."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, body=None, status: int = 200, content_type: str | None = None, headers: dict | None = None):
        if body is not None and not isinstance(body, bytes | bytearray):
            body = json.dumps(body).encode() + b"\n"
            content_type = content_type or "application/json"
        self.status = status
        self.body = bytes(body or b"")
        self.content_type = content_type
        self.headers = headers or {}


def no_content() -> Response:
    return Response(status=204)


class Stream:
    """A response whose body is produced as it goes (chunked): `chunks` yields bytes; a JSON
    stream yields one JSON object per line (json_lines). Closing the iterator ends the work."""

    __slots__ = ("status", "chunks", "content_type", "headers")

    def __init__(self, chunks, content_type: str = "application/json", status: int = 200, headers: dict | None = None):
        self.status = status
        self.chunks = chunks
        self.content_type = content_type
        self.headers = headers or {}


def json_lines(objects):
    """Each object as one line of JSON, docker's streaming format (events, stats, pull progress)."""
    for obj in objects:
        yield json.dumps(obj).encode() + b"\n"


class Hijack:
    """Take over the connection (attach, exec start): the server answers `101 UPGRADED` when the
    client asked to upgrade (else 200 OK, as dockerd does), then calls run(sock, early) with the raw
    socket and any bytes the client already sent; the connection closes when run returns."""

    __slots__ = ("run", "content_type", "headers")

    def __init__(self, run, content_type: str = "application/vnd.docker.raw-stream", headers: dict | None = None):
        self.run = run
        self.content_type = content_type
        self.headers = headers or {}  # for the 101 (a websocket's Upgrade and Sec-WebSocket-Accept)


MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
STDIN, STDOUT, STDERR = 0, 1, 2


def frame(stream: int, data: bytes) -> bytes:
    """docker's stdcopy frame: [stream, 0, 0, 0, size (4 bytes big-endian)] then the data."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data
