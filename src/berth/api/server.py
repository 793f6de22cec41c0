"""The Engine API service: listens on a unix socket (or loopback TCP), and serves each connection
in a process of its own forked from this one. The engine is synchronous and forks supervisors and
containers itself; a process per connection keeps it single-threaded, lets a slow or vanished
client cost only its own process, and makes a failed request unable to take the service down.
HTTP/1.1 is h11's (a maintained sans-IO parser); this module only moves bytes and events."""

import errno
import os
import re
import selectors
import signal
import socket
import sys
import time

import h11

from berth import API_VERSION, __version__
from berth.api.http import Hijack, Request, Response, Stream, status_of
from berth.api.routes import resolve
from berth.errors import BerthError, InvalidArgument, host_failure

MIN_API_VERSION = "1.24"  # docker 25+'s minimum; docker-compose 1.29 speaks 1.30-1.38
MAX_HEADER = 64 << 10
KEEPALIVE = 300.0  # seconds a connection may wait for its next request
MAX_CONNECTIONS = 256
MAX_DRAIN = 1 << 20  # bytes of an unread request body read to keep the connection alive
VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
COMMON_HEADERS = [("Api-Version", API_VERSION), ("Docker-Experimental", "false"), ("Ostype", "linux"),
                  ("Server", f"berth/{__version__} (linux)")]


class ClientGone(Exception):
    """The client closed its connection while its request was being served."""


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def split_target(target: str) -> tuple[str, str, str]:
    """(path without the /vX.Y prefix, API version, query string)."""
    path, _, query = target.partition("?")
    from urllib.parse import unquote  # parse_qs needs urllib.parse anyway: already loaded

    m = VERSIONED.match(path)
    version = API_VERSION
    if m:
        version, path = f"{m.group(1)}.{m.group(2)}", m.group(3)
        asked = _version_tuple(version)
        if asked < _version_tuple(MIN_API_VERSION):
            raise InvalidArgument(f"client version {version} is too old. Minimum supported API version is "
                                  f"{MIN_API_VERSION}, please upgrade your client to a newer version")
        if asked > _version_tuple(API_VERSION):
            raise InvalidArgument(f"client version {version} is too new. Maximum supported API version is "
                                  f"{API_VERSION}")
    return unquote(path), version, query


class Connection:
    """One client connection: requests one after another (keep-alive) until either side closes."""

    def __init__(self, sock: socket.socket, engine):
        self.sock = sock
        self.engine = engine
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER)

    def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = self.sock.recv(65536)
            except (ConnectionError, TimeoutError):
                data = b""
            self.h11.receive_data(data)

    def body(self):
        if self.h11.they_are_waiting_for_100_continue:
            self.send(h11.InformationalResponse(status_code=100, headers=COMMON_HEADERS))
        while True:
            event = self.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ClientGone()

    def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.sock.sendall(data)

    def serve(self) -> None:
        self.sock.settimeout(KEEPALIVE)
        while True:
            try:
                event = self.next_event()
            except h11.RemoteProtocolError as err:
                self._refuse(err)
                return
            if not isinstance(event, h11.Request):
                return  # closed, or a timeout
            if not self._answer(event) or not self._drain():
                return
            if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
                return
            try:
                self.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    def _drain(self) -> bool:
        """Read what the handler left of the request (its end, at least: a GET's handler reads
        no body), or the connection could not serve the client's next request; False when the
        client went away meanwhile."""
        left = MAX_DRAIN  # more than that unread (a refused upload): closing is cheaper than reading on
        while self.h11.their_state is h11.SEND_BODY:
            event = self.next_event()
            if isinstance(event, h11.Data):
                left -= len(event.data)
                if left < 0:
                    return False
            elif not isinstance(event, h11.EndOfMessage):
                return False
        return True

    def _refuse(self, err: h11.RemoteProtocolError) -> None:
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._respond(Response({"message": str(err) or "bad request"}, status=err.error_status_hint or 400),
                          "GET")

    def _answer(self, request: h11.Request) -> bool:
        """Serve one request; False when the connection must end (hijacked, broken)."""
        method = request.method.decode("ascii", "replace")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        try:
            path, version, query = split_target(request.target.decode("latin-1"))
            req = Request(method, path, version, query, headers, self.engine, self.body(), self.sock)
            handler = resolve(req)
            result = handler(req)
        except ClientGone:
            return False
        except Exception as err:  # noqa: BLE001 - every failure becomes docker's JSON error
            result = error_response(err)
        try:
            if isinstance(result, Hijack):
                self._hijack(result, headers)
                return False
            if isinstance(result, Stream):
                self._stream(result, method)
            else:
                self._respond(result, method)
        except (ClientGone, BrokenPipeError, ConnectionError, TimeoutError):
            return False
        return True

    def _head(self, status: int, content_type: str | None, extra: dict, length: int | None):
        headers = list(COMMON_HEADERS)
        if content_type:
            headers.append(("Content-Type", content_type))
        if length is not None:
            headers.append(("Content-Length", str(length)))
        headers.extend(extra.items())
        return h11.Response(status_code=status, headers=headers, reason=_reason(status))

    def _respond(self, resp: Response, method: str) -> None:
        bodiless = resp.status in (204, 304)
        self.send(self._head(resp.status, None if bodiless else resp.content_type or "text/plain; charset=utf-8",
                             resp.headers, None if bodiless else len(resp.body)))
        if resp.body and method != "HEAD" and not bodiless:
            self.send(h11.Data(data=resp.body))
        self.send(h11.EndOfMessage())

    def _stream(self, stream: Stream, method: str) -> None:
        """Headers first (docker's clients wait for them before reading, e.g. wait and events), then
        each chunk as it comes; a client that hangs up ends the producer (closing its generator)."""
        self.send(self._head(stream.status, stream.content_type, stream.headers, None))
        chunks = iter(stream.chunks)
        try:
            with ClientWatch(self.sock):
                for chunk in chunks:
                    if chunk and method != "HEAD":
                        self.send(h11.Data(data=chunk))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        self.send(h11.EndOfMessage())

    def _hijack(self, hijack: Hijack, headers: dict) -> None:
        upgrade = "upgrade" in headers.get("connection", "").lower() and "upgrade" in headers
        early = b""
        if upgrade and self.h11.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            upgrade_to = {"Upgrade": "tcp", **hijack.headers}
            self.send(h11.InformationalResponse(status_code=101, reason=b"UPGRADED", headers=[
                ("Content-Type", hijack.content_type), ("Connection", "Upgrade"), *upgrade_to.items(),
                *COMMON_HEADERS]))
            early = self.h11.trailing_data[0]
        else:  # dockerd hijacks a plain request too: a 200 head, then the raw stream until close
            head = [b"HTTP/1.1 200 OK", f"Content-Type: {hijack.content_type}".encode()]
            head += [f"{k}: {v}".encode() for k, v in COMMON_HEADERS]
            self.sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        self.sock.settimeout(None)
        hijack.run(self.sock, early)


def _reason(status: int) -> bytes:
    from http import HTTPStatus  # lazy: loaded once, before the first fork (see serve)

    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def error_response(err: BaseException) -> Response:
    """docker's error body {"message": ...} with the status of the error's kind."""
    if not isinstance(err, BerthError) and os.environ.get("BERTH_DEBUG"):
        import traceback  # lazy: only BERTH_DEBUG

        traceback.print_exc()
    if isinstance(err, BerthError):
        message = str(err)
    else:
        message = host_failure(err) or f"{type(err).__name__}: {err}"
    return Response({"message": message}, status=status_of(err))


class ClientWatch:
    """While a response streams, learn at once when the client hangs up: the socket signals
    SIGIO on input, and EOF there (peeked, nothing consumed) raises ClientGone in this process,
    ending whatever the producer was blocked in (a log follow, an event wait)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def __enter__(self):
        import fcntl  # lazy: only streams

        self._old = signal.signal(signal.SIGIO, self._on_input)
        self._timeout = self.sock.gettimeout()
        self.sock.settimeout(None)  # so that MSG_DONTWAIT below answers at once instead of polling
        fd = self.sock.fileno()
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        self._on_input()  # a client gone before we watched
        return self

    def __exit__(self, *exc):
        import fcntl  # lazy: only streams

        fd = self.sock.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_ASYNC)
        signal.signal(signal.SIGIO, self._old)
        self.sock.settimeout(self._timeout)
        return False

    def _on_input(self, *_):
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            raise ClientGone()


def listen(uri: str) -> socket.socket:
    """The listening socket for unix:///path or tcp://host:port (loopback unless asked)."""
    if uri.startswith("unix://"):
        return _listen_unix(uri[len("unix://"):])
    if uri.startswith("tcp://"):
        host, _, port = uri[len("tcp://"):].rstrip("/").rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not port.isdigit():
            raise InvalidArgument(f"invalid URI {uri!r}: a tcp:// URI needs a port")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        if not _loopback(host):
            print(f"WARNING: API listening on {host}:{port} without TLS: anyone who can reach it controls "
                  "this host", file=sys.stderr)
        sock.listen(128)
        return sock
    raise InvalidArgument(f"invalid URI {uri!r}: use unix:///path or tcp://host:port")


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _listen_unix(path: str) -> socket.socket:
    from berth.fs import make_dirs  # lazy: only unix sockets

    make_dirs(os.path.dirname(path) or ".")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        raise BerthError(f"{path} is already served by another process")
    except (FileNotFoundError, ConnectionRefusedError):
        pass  # absent, or a stale socket of a service that died
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    # Bound and listening under a private name, then renamed into place: a client that sees
    # the path can connect at once (docker's CLI pings first; a refused ping loses it the
    # server's OS type, and `create --device` then fails).
    staging = f"{path}.{os.getpid()}.tmp"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(staging)
        _share_with_group(staging)
        sock.listen(128)
        os.rename(staging, path)
    except BaseException:
        sock.close()
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
        raise
    return sock


def _share_with_group(path: str) -> None:
    """0660 root:berth where a `berth` group exists (docker's docker group), else 0600."""
    import grp  # lazy: only unix sockets

    try:
        gid = grp.getgrnam("berth").gr_gid
    except KeyError:
        os.chmod(path, 0o600)
        return
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)


def activated_socket() -> socket.socket | None:
    """The socket systemd passed (berth.socket), per sd_listen_fds(3): fd 3 when LISTEN_PID is us."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS", "0") == "0":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=3)


class Service:
    """Accepts connections and forks a server for each; ends after `idle` seconds with no
    connection open (0: never) or on SIGTERM/SIGINT. Containers are never stopped by it: each
    has its own supervisor."""

    def __init__(self, engine, listener: socket.socket, idle: float):
        self.engine = engine
        self.listener = listener
        self.idle = idle
        self.children: set[int] = set()
        self.stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # Each signal writes a byte to this pipe, which wakes select() (after a handler Python
        # resumes an interrupted select, PEP 475): an ended server is reaped, SIGTERM obeyed, at once.
        self.wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wakeup[1], warn_on_full_buffer=False)
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self.wakeup[0], selectors.EVENT_READ)
        last_busy = time.monotonic()
        try:
            while not self.stopping:
                self._reap()
                if self.children:
                    last_busy = time.monotonic()
                elif self.idle and time.monotonic() - last_busy >= self.idle:
                    break
                if len(self.children) >= MAX_CONNECTIONS:
                    time.sleep(0.05)  # a bounded number of servers; the backlog waits
                    continue
                for key, _ in selector.select(timeout=1.0):
                    if key.fileobj is self.listener:
                        self._accept()
                        last_busy = time.monotonic()
                    else:
                        self._drain_wakeup()
        finally:
            selector.close()
            self._close_wakeup()

    def _drain_wakeup(self) -> None:
        try:
            os.read(self.wakeup[0], 4096)
        except BlockingIOError:
            pass

    def _close_wakeup(self) -> None:
        signal.set_wakeup_fd(-1)
        for fd in self.wakeup:
            os.close(fd)

    def _stop(self, *_):
        self.stopping = True

    def _reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as err:
            if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)
                return
            raise
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                self.listener.close()
                self._close_wakeup()
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                Connection(conn, self.engine).serve()
            except BaseException:  # noqa: BLE001 - a connection's failure ends only its process
                code = 1
                if os.environ.get("BERTH_DEBUG"):
                    import traceback  # lazy: only BERTH_DEBUG

                    traceback.print_exc()
            finally:
                try:
                    conn.close()
                finally:
                    os._exit(code)
        conn.close()
        self.children.add(pid)


def serve(engine, uri: str | None, idle: float) -> None:
    """`berth system service`: serve the Engine API until idle for `idle` seconds (0: forever)."""
    from berth.api import routes  # preload every endpoint: each connection's fork then imports nothing

    routes.preload()
    _reason(200)
    listener = activated_socket()
    ours = listener is None  # systemd's socket outlives us; our own is removed when we end
    uri = uri or f"unix://{default_socket(engine)}"
    listener = listener or listen(uri)
    path = uri[len("unix://"):] if uri.startswith("unix://") else None  # bound under another name: see listen
    try:
        Service(engine, listener, idle).run()
    finally:
        listener.close()
        if ours and path:
            try:
                os.unlink(path)
            except OSError:
                pass


def default_socket(engine) -> str:
    return os.path.join(engine.paths.run_root, "berth.sock")

