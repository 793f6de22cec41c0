"""The attach socket: how any number of clients (`run`, `start -a`, `attach`, the API) share a
container's stdio through whoever holds it (its supervisor, or the lean monitor it execs).

`<run-root>/containers/<id>/attach`, a unix stream socket, mode 0600, made under a temporary
name and renamed into place (a client never connects to a half-made one), gone when the
container ends. Both ways run frames with docker's 8-byte stdcopy header (kind, 0, 0, 0,
big-endian uint32 length), so output frames are what the Engine API's attach stream sends:

  server -> client: STDOUT, STDERR (a tty's output is STDOUT), EXIT (the exit code in
                    decimal, once the end is recorded), then EOF
  client -> server: HELLO first (comma-separated words: stdin, stdout, stderr, block,
                    size=ROWSxCOLS), then STDIN data, CLOSE_STDIN, RESIZE "ROWS COLS",
                    SIGNAL "N"

The first client asking for stdin owns it until it leaves. A client that falls behind by
more than OUT_LIMIT bytes is disconnected: it never blocks the container or the log. Only
`block` clients (the foreground `run`/`start -a`, which are pipelines like docker's) hold
the container's output back instead, as a full pipe would.

Imported by the lean monitor: os, select, time and _socket only."""

import _socket
import os
import select
import time

STDIN, STDOUT, STDERR, SYSTEM = 0, 1, 2, 3  # docker's stdcopy streams
EXIT = 16
HELLO, CLOSE_STDIN, RESIZE, SIGNAL = 32, 33, 34, 35
HEADER = 8
MAX_FRAME = 1 << 20  # what a client may send in one frame
OUT_LIMIT = 1 << 20  # output queued for a client before it is dropped (or, `block`, waited for)
PAUSE_AT = 256 << 10  # a `block` client this far behind stops the copying of the output
IN_LIMIT = 256 << 10  # stdin taken from its owner before the container has read it
STALL = 10.0  # seconds a `block` client may take nothing at the container's end before it is dropped
SOCKET = "attach"
EOT = b"\x04"  # ^D: a terminal's end of input


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes((kind, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def split_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """The complete frames at the start of `buffer`, removed from it."""
    frames = []
    while len(buffer) >= HEADER:
        end = HEADER + int.from_bytes(buffer[4:8], "big")
        if len(buffer) < end:
            break
        frames.append((buffer[0], bytes(buffer[HEADER:end])))
        del buffer[:end]
    return frames


def hello(stdin: bool, block: bool = False, size: tuple[int, int] | None = None,
          streams: tuple[str, ...] = ("stdout", "stderr")) -> bytes:
    words = list(streams) + (["stdin"] if stdin else []) + (["block"] if block else [])
    if size:
        words.append(f"size={size[0]}x{size[1]}")
    return frame(HELLO, ",".join(words).encode())


def _socket_path(directory_fd: int, name: str) -> str:
    # Through the directory's fd: a run root's real path may be longer than sun_path allows.
    return f"/proc/self/fd/{directory_fd}/{name}"


def listen(directory: str) -> _socket.socket:
    """A new listening attach socket in the container's run directory, replacing any old one."""
    directory_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        temp = f".{SOCKET}-{os.getpid()}"
        try:
            os.unlink(temp, dir_fd=directory_fd)
        except FileNotFoundError:
            pass
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.bind(_socket_path(directory_fd, temp))
            os.chmod(_socket_path(directory_fd, temp), 0o600)
            sock.listen(64)
            os.rename(temp, SOCKET, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
        except BaseException:
            sock.close()
            try:
                os.unlink(temp, dir_fd=directory_fd)
            except OSError:
                pass
            raise
        sock.setblocking(False)
        return sock
    finally:
        os.close(directory_fd)


def connect(directory: str) -> _socket.socket:
    """A connection to the container's attach socket; OSError if nobody serves it."""
    directory_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(_socket_path(directory_fd, SOCKET))
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(directory_fd)


class Attacher:
    """One client: what it sent and we have not parsed, what we owe it, what it asked for."""

    __slots__ = ("fd", "inbox", "outbox", "streams", "block", "greeted")

    def __init__(self, fd: int):
        self.fd = fd
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.streams = ()  # of STDOUT, STDERR: set by its HELLO
        self.block = False
        self.greeted = False


class AttachServer:
    """The server end, driven by the holder's copy loop (lean.copy_output): `readers()` and
    `writers()` go into its select, `handle()` gets what is ready, `broadcast()` each chunk
    of output. The container's stdin (`target`: our end of its pipe, or its pty master)
    is fed from the owner's STDIN frames without ever blocking the loop."""

    __slots__ = ("listener", "directory", "attachers", "owner", "target", "own_target", "console", "stdin_open",
                 "pending", "close_after_pending", "tty", "stdin_once", "pid", "exited", "exit_seen", "size",
                 "signals", "idle_return", "on_exit")

    def __init__(self, directory: str, tty: bool, open_stdin: bool, stdin_once: bool, listener=None):
        self.listener = listener
        self.directory = directory
        self.attachers = {}  # fd -> Attacher
        self.owner = None  # the Attacher whose STDIN goes to the container
        self.target = -1  # where STDIN goes: our end of the container's stdin pipe, or its pty master
        self.own_target = False  # a pipe end we close (a pty master belongs to the output side)
        self.console = -1  # its pty master: resized
        self.stdin_open = open_stdin  # docker's OpenStdin: else nobody's input reaches it
        self.pending = bytearray()  # stdin not yet taken by the container
        self.close_after_pending = False
        self.tty = tty
        self.stdin_once = stdin_once
        self.pid = 0
        self.exited = -1  # a pidfd of the container's process
        self.exit_seen = True  # ... has ended (or is not watched): till started()
        self.size = None  # a terminal size asked for before the container ran
        self.signals = []  # signals asked for before the container ran
        self.idle_return = False  # copy_output returns once nobody is attached
        self.on_exit = None  # called once the container's process has ended (an adopted one's status)

    # -- the life of the container -------------------------------------------------
    def add(self, fd: int) -> Attacher:
        os.set_blocking(fd, False)
        attacher = self.attachers[fd] = Attacher(fd)
        return attacher

    def greet_first(self, fd: int, timeout: float = 2.0) -> None:
        """A client connected before the container starts (run, start -a): take its HELLO
        (and a terminal size) now, so it sees the output from the first byte."""
        attacher = self.add(fd)
        if select.select([fd], [], [], timeout)[0]:
            self._receive(attacher)

    def started(self, pid: int, stdin_pipe: int = -1, console: int = -1) -> None:
        """The container runs: `stdin_pipe` (ours to close) or its pty master take STDIN."""
        self.pid = pid
        self.console = console
        self.own_target = stdin_pipe >= 0 and self.stdin_open
        self.target = stdin_pipe if self.own_target else console if self.stdin_open else -1
        if self.target >= 0:
            os.set_blocking(self.target, False)  # a container that does not read never stops us
        try:
            self.exited = os.pidfd_open(pid)
            self.exit_seen = False
        except ProcessLookupError:  # an adopted container that ended (and was reaped) meanwhile
            self.exit_seen = True
        for signum in self.signals:
            self._kill(signum)
        self.signals = []

    def stop_listening(self) -> None:
        """At the container's end: no new client; the socket's name goes first, so a new
        start's socket is never the one removed."""
        if self.listener is None:
            return
        try:
            directory_fd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            directory_fd = -1
        if directory_fd >= 0:
            try:
                os.unlink(SOCKET, dir_fd=directory_fd)
            except OSError:
                pass
            os.close(directory_fd)
        self.listener.close()
        self.listener = None

    def drain(self, timeout: float = 2.0) -> None:
        """Deliver what the clients are owed. A client that is not done within `timeout` is
        dropped, a `block` one (a pipeline) only once it has taken nothing for STALL seconds:
        the end of the container is recorded after this."""
        now = time.monotonic()
        deadline = now + timeout
        moved = {fd: now for fd in self.attachers}  # when each last took something
        while True:
            now = time.monotonic()
            limits = {}
            for attacher in list(self.attachers.values()):
                if not attacher.outbox:
                    continue
                limit = moved[attacher.fd] + STALL if attacher.block else deadline
                if now >= limit:
                    self._drop(attacher)
                else:
                    limits[attacher.fd] = limit
            if not limits:
                return
            try:
                _, writable, _ = select.select([], list(limits), [], min(limits.values()) - now)
            except InterruptedError:
                continue
            for fd in writable:
                attacher = self.attachers.get(fd)
                if attacher is not None:
                    owed = len(attacher.outbox)
                    self._send(attacher)
                    if len(attacher.outbox) < owed:
                        moved[fd] = time.monotonic()

    def finish(self, exit_code: int | None) -> None:
        """The end is recorded: tell every client its exit code, then hang up."""
        self.stop_listening()
        if exit_code is not None:
            message = frame(EXIT, str(exit_code).encode())
            for attacher in self.attachers.values():
                attacher.outbox += message
        self.drain()
        self.close()

    def close(self) -> None:
        self.stop_listening()
        for attacher in list(self.attachers.values()):
            self._drop(attacher, hung_up=False)
        if self.own_target:
            _close(self.target)
        self.target = -1
        if self.exited >= 0:
            _close(self.exited)
            self.exited = -1

    # -- the copy loop's side ------------------------------------------------------
    def readers(self) -> list[int]:
        fds = [] if self.listener is None else [self.listener.fileno()]
        for fd, attacher in self.attachers.items():
            if attacher is not self.owner or len(self.pending) < IN_LIMIT:
                fds.append(fd)
        if self.exited >= 0 and not self.exit_seen:
            fds.append(self.exited)
        return fds

    def writers(self) -> list[int]:
        fds = [fd for fd, attacher in self.attachers.items() if attacher.outbox]
        if self.pending and self.target >= 0:
            fds.append(self.target)
        return fds

    def paused(self) -> bool:
        """A `block` client is far behind: leave the output in its pipes for now."""
        return any(a.block and len(a.outbox) >= PAUSE_AT for a in self.attachers.values())

    def idle(self) -> bool:
        return self.idle_return and not self.attachers and not self.pending

    def handle(self, ready, writable) -> None:
        for fd in ready:
            if self.listener is not None and fd == self.listener.fileno():
                self._accept()
            elif fd == self.exited:
                self.exit_seen = True
                if self.on_exit is not None:
                    self.on_exit()
            elif fd in self.attachers:
                self._receive(self.attachers[fd])
        for fd in writable:
            if fd == self.target:
                self._feed()
            elif fd in self.attachers:
                self._send(self.attachers[fd])

    def broadcast(self, kind: int, data: bytes) -> None:
        if not self.attachers:
            return
        message = frame(STDOUT if self.tty else kind, data)
        for attacher in list(self.attachers.values()):
            if kind not in attacher.streams:
                continue
            if not attacher.block and len(attacher.outbox) + len(message) > OUT_LIMIT:
                self._drop(attacher)  # too slow: it must not hold the container or the log back
                continue
            idle = not attacher.outbox
            attacher.outbox += message
            if idle:
                self._send(attacher)

    # -- clients ---------------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                fd, _ = self.listener._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of fds, or the client already left: try again later
                return
            self.add(fd)

    def _receive(self, attacher: Attacher) -> None:
        try:
            data = os.read(attacher.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(attacher)
            return
        attacher.inbox += data
        for kind, payload in split_frames(attacher.inbox):
            if attacher.fd not in self.attachers:
                return
            self._apply(attacher, kind, payload)
        if len(attacher.inbox) > HEADER + MAX_FRAME:
            self._drop(attacher)

    def _apply(self, attacher: Attacher, kind: int, payload: bytes) -> None:
        if not attacher.greeted:
            if kind != HELLO:
                self._drop(attacher)
                return
            self._greet(attacher, payload.decode("ascii", "replace").split(","))
        elif kind == STDIN:
            if attacher is self.owner:
                self.pending += payload
                self._feed()
        elif kind == CLOSE_STDIN:
            if attacher is self.owner:
                self._end_stdin()
        elif kind == RESIZE:
            rows, _, cols = payload.partition(b" ")
            if rows.isdigit() and cols.isdigit():
                self._resize(int(rows), int(cols))
        elif kind == SIGNAL:
            if payload.isdigit() and 0 < int(payload) < 65:
                self._kill(int(payload))

    def _greet(self, attacher: Attacher, words: list[str]) -> None:
        attacher.greeted = True
        attacher.streams = tuple(kind for word, kind in (("stdout", STDOUT), ("stderr", STDERR)) if word in words)
        attacher.block = "block" in words
        if "stdin" in words and self.owner is None and self.stdin_open:
            self.owner = attacher
        for word in words:
            if word.startswith("size="):
                rows, _, cols = word[5:].partition("x")
                if rows.isdigit() and cols.isdigit():
                    self._resize(int(rows), int(cols))

    def _send(self, attacher: Attacher) -> None:
        try:
            written = os.write(attacher.fd, attacher.outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # it went away
            self._drop(attacher)
            return
        del attacher.outbox[:written]

    def _drop(self, attacher: Attacher, hung_up: bool = True) -> None:
        """Forget a client. Its leaving is its stdin's end (docker's StdinOnce rule), except
        on a terminal, which stays open for the next one (a detach)."""
        self.attachers.pop(attacher.fd, None)
        _close(attacher.fd)
        if attacher is self.owner:
            self.owner = None
            if hung_up and not self.tty:
                self._end_stdin(owner_left=True)

    # -- the container's stdin -----------------------------------------------------------
    def _end_stdin(self, owner_left: bool = False) -> None:
        self.owner = None
        if not self.stdin_once:
            return
        if self.tty:  # a terminal's end of input; it stays open for the next client
            if not owner_left:
                self.pending += EOT
                self._feed()
            return
        self.stdin_open = False
        self.close_after_pending = True
        self._feed()

    def _feed(self) -> None:
        while self.pending and self.target >= 0:
            try:
                written = os.write(self.target, self.pending)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EPIPE: the container closed its stdin
                self.pending.clear()
                self.stdin_open = False
                self.close_after_pending = not self.tty
                break
            del self.pending[:written]
        if self.close_after_pending and not self.pending and self.target >= 0:
            if self.own_target:
                _close(self.target)
            self.target = -1
            self.own_target = False
            self.close_after_pending = False
            self.owner = None

    def _resize(self, rows: int, cols: int) -> None:
        if not self.tty:
            return
        if self.console < 0:
            self.size = (rows, cols)
            return
        import fcntl  # lazy: only a terminal resized; the lean monitor loads no fcntl
        import termios  # lazy: likewise

        try:
            fcntl.ioctl(self.console, termios.TIOCSWINSZ,
                        rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + bytes(4))
        except (OSError, OverflowError):
            pass

    def _kill(self, signum: int) -> None:
        if not self.pid:
            self.signals.append(signum)
            return
        try:  # still our unreaped child: the pid cannot name another process
            os.kill(self.pid, signum)
        except OSError:
            pass

    # -- across an exec (supervisor <-> lean monitor) -------------------------------------
    def handoff(self) -> dict:
        """What the next program of this process needs to go on serving; its fds inheritable."""
        fds = list(self.attachers)
        if self.listener is not None:
            fds.append(self.listener.fileno())
        if self.own_target:
            fds.append(self.target)
        for fd in fds:
            os.set_inheritable(fd, True)
        return {"directory": self.directory, "tty": self.tty, "stdin_once": self.stdin_once,
                "stdin_open": self.stdin_open, "listener": self.listener.fileno() if self.listener else -1,
                "attachers": [[a.fd, a is self.owner, a.block, list(a.streams)] for a in self.attachers.values()],
                "target": self.target if self.own_target else -1}

    @classmethod
    def resumed(cls, state: dict, pid: int, console: int = -1) -> "AttachServer":
        """The server again after an exec, from handoff()'s state (`console`: the pty
        master, which the output side holds); `pid` 0 once the container is reaped."""
        listener = None
        if state["listener"] >= 0:
            listener = _socket.socket(fileno=state["listener"])
            listener.setblocking(False)
        server = cls(state["directory"], state["tty"], state["stdin_open"], state["stdin_once"], listener)
        for fd, owner, block, streams in state["attachers"]:
            attacher = server.add(fd)
            attacher.greeted, attacher.block, attacher.streams = True, block, tuple(streams)
            if owner:
                server.owner = attacher
        own = state["target"]
        if pid:
            server.started(pid, own, console)
        elif own >= 0:
            server.target, server.own_target = own, True
        for fd in [fd for fd, *_ in state["attachers"]] + [own] + [state["listener"]]:
            if fd >= 0:
                os.set_inheritable(fd, False)
        return server


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
