"""Attaching to a container, as docker's attach: a Session on the attach socket its supervisor
serves (berth.monitor.attach has the protocol), the starts that are attached from their
first byte (`run`, `start -a`: conmon's model, the container outlives the command; or, when
nothing needs that, the fast path: the command's own process supervises, run_here), and
docker's detach keys. A front door only moves bytes between its user and a Session: the
CLI its terminal, the API its hijacked connection (output frames are docker's already)."""

import os
import select
from _socket import SHUT_WR

from berth.engine.containers import is_running
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.monitor import attach as wire

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
# moby/term's names of the control characters: "ctrl-@" is 0 ... "ctrl-_" is 31
CONTROL_KEYS = ["ctrl-@"] + [f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)] + \
    ["ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def parse_detach_keys(keys: str) -> bytes:
    """docker's --detach-keys (moby/term ToBytes): comma-separated keys, each one character,
    a control key ctrl-@ ... ctrl-_ (ctrl-a is 1), or DEL."""
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            codes += key.encode("latin-1", "replace")[:1]
        elif key in CONTROL_KEYS:
            codes.append(CONTROL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
    return bytes(codes)


class EscapeDetector:
    """The detach keys in what a user types; bytes of a partial match are held back until
    the next byte shows whether the sequence goes on."""

    __slots__ = ("keys", "matched")

    def __init__(self, keys: bytes):
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to pass on, whether the whole sequence has been typed)."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += self.keys[:self.matched]  # not the sequence after all
            self.matched = 0
            if byte == self.keys[0]:
                self.matched = 1
            else:
                out.append(byte)
        return bytes(out), False


class Session:
    """One client of a container's attach socket: its output in, stdin and control out.
    stream() is the whole exchange for a front door with plain fds (the CLI); others drive
    send/receive themselves."""

    __slots__ = ("engine", "sock", "fd", "container_id", "tty", "stdin", "inbox", "outbox", "exit_code",
                 "detached", "_dead")

    def __init__(self, engine, sock, record: dict, stdin: bool):
        self.engine = engine
        self.sock = sock
        self.fd = sock.fileno()
        self.container_id = record["Id"]
        self.tty = bool(record["Config"]["Tty"])
        self.stdin = stdin
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.exit_code = None  # from the supervisor's EXIT frame
        self.detached = False
        self._dead = set()  # output fds whose reader went away

    # -- to the container ------------------------------------------------------------
    def send(self, kind: int, payload: bytes = b"") -> None:
        """Queue a frame; flush() or stream() sends it."""
        self.outbox += wire.frame(kind, payload)

    def write_stdin(self, data: bytes) -> None:
        if self.stdin:
            self.send(wire.STDIN, data)

    def type_in(self, data: bytes, escape: "EscapeDetector | None") -> bool:
        """What a user typed, to its stdin, watched for the detach keys: True when they were
        typed (what came before them is sent; the caller ends the attach)."""
        detach = False
        if escape is not None:
            data, detach = escape.feed(data)
        self.write_stdin(data)
        if detach:
            self.flush(block=True)
            self.detached = True
        return detach

    def close_stdin(self) -> None:
        if self.stdin:
            self.send(wire.CLOSE_STDIN)
            self.stdin = False

    def resize(self, rows: int, cols: int) -> None:
        self.send(wire.RESIZE, f"{rows} {cols}".encode())

    def signal(self, signum: int) -> None:
        self.send(wire.SIGNAL, str(signum).encode())

    def flush(self, block: bool = False) -> None:
        while self.outbox:
            try:
                written = os.write(self.fd, self.outbox)
            except (BlockingIOError, InterruptedError):
                if not block:
                    return
                select.select([], [self.fd], [], 1.0)
                continue
            except OSError:  # the supervisor went away: what it would have taken is moot
                self.outbox.clear()
                return
            del self.outbox[:written]

    # -- from the container ----------------------------------------------------------
    def receive(self) -> list[tuple[int, bytes]] | None:
        """The frames that have arrived (EXIT sets exit_code); None once the supervisor hung up."""
        try:
            data = os.read(self.fd, 1 << 17)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            return None
        self.inbox += data
        frames = wire.split_frames(self.inbox)
        for kind, payload in frames:
            if kind == wire.EXIT and payload.isdigit():
                self.exit_code = int(payload)
        return frames

    def wait(self) -> int:
        """The container's exit code: its supervisor's word, else (it went away without
        one) the record's, once the end is recorded."""
        if self.exit_code is not None:
            return self.exit_code
        record = self.engine.wait_recorded(self.container_id)
        if not record:
            raise BerthError(f"container {self.container_id[:12]} ended without its supervisor telling how")
        return record["State"]["ExitCode"]

    def stream(self, stdin_fd: int = -1, stdout_fd: int = 1, stderr_fd: int = 2, detach_keys: bytes = b"",
               wakeup_fd: int = -1, on_wakeup=None) -> int | None:
        """Copy `stdin_fd` to the container (when attached to its stdin) and its output to
        `stdout_fd`/`stderr_fd` until it ends: its exit code. None when the user typed the
        detach keys (a tty's only): the container goes on. Each byte read from `wakeup_fd`
        (a signal's number: signal.set_wakeup_fd) is handed to on_wakeup meanwhile."""
        escape = EscapeDetector(detach_keys) if detach_keys and self.tty and self.stdin else None
        reading = stdin_fd >= 0 and self.stdin
        outputs = {wire.STDOUT: stdout_fd, wire.STDERR: stderr_fd, wire.SYSTEM: stderr_fd}
        self.sock.setblocking(False)
        try:
            while True:
                readers = [self.fd]
                if reading and len(self.outbox) < wire.IN_LIMIT:
                    readers.append(stdin_fd)
                if wakeup_fd >= 0:
                    readers.append(wakeup_fd)
                try:
                    ready, writable, _ = select.select(readers, [self.fd] if self.outbox else [], [])
                except InterruptedError:
                    continue
                if wakeup_fd in ready:
                    for signum in _read_some(wakeup_fd):
                        on_wakeup(signum)
                if stdin_fd in ready and reading:
                    data = _read_some(stdin_fd)
                    if data is None:
                        pass
                    elif not data:  # our EOF is the container's (docker's StdinOnce)
                        self.close_stdin()
                        reading = False
                    elif self.type_in(data, escape):
                        return None
                if self.outbox:
                    self.flush()
                if self.fd in ready:
                    frames = self.receive()
                    if frames is None:
                        return self.wait()
                    for kind, payload in frames:
                        fd = outputs.get(kind, -1)
                        if fd >= 0 and fd not in self._dead:
                            self._write(fd, payload)
        finally:
            self.close()

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:  # our output is non-blocking: wait, as a pipe would make us
                select.select([], [fd], [])
            except OSError:  # EPIPE: nobody reads it any more; the container goes on
                self._dead.add(fd)
                return

    def close(self) -> None:
        self.sock.close()


def _read_some(fd: int) -> bytes | None:
    """What is there to read (b"" at EOF; None if nothing after all)."""
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:  # EIO: our terminal hung up
        return b""


# -- use cases ---------------------------------------------------------------------

def check_attachable(record: dict) -> None:
    """docker's refusals, in its order."""
    state = record["State"]
    if state["Restarting"]:
        raise Conflict("You cannot attach to a restarting container, wait until it is running")
    if state["Paused"]:
        raise Conflict("You cannot attach to a paused container, unpause it first")
    if not is_running(record):
        raise Conflict("You cannot attach to a stopped container, start it first")


def attach(engine, ref: str, stdin: bool = True, size: tuple[int, int] | None = None, block: bool = False,
           streams: tuple[str, ...] = ("stdout", "stderr")) -> Session:
    """Attach to a running container: its output from now on, and its stdin if it was
    created with one (-i) and `stdin` is asked for (the first client asking gets it).
    `size`: a tty's new size. `block`: hold its output back rather than lose any (a
    foreground command is a pipeline); else a client that falls behind is dropped."""
    record = engine.get(ref)
    check_attachable(record)
    stdin = stdin and bool(record["Config"]["OpenStdin"])
    try:
        sock = wire.connect(engine.paths.container_run(record["Id"]))
    except OSError:
        try:
            record = engine.load(record["Id"])
        except FileNotFoundError:
            raise NotFound(f"No such container: {ref}") from None
        check_attachable(record)  # it ended meanwhile
        raise BerthError(f"container {record['Id'][:12]} cannot be attached to: its supervisor serves no "
                         "attach socket") from None
    sock.sendall(wire.hello(stdin, block, size, streams))
    return Session(engine, sock, record, stdin)


class PendingStart:
    """A supervisor forked now, that starts a container once told which
    (monitor.supervisor.DetachedStart); with `attach`, start() returns a Session connected
    to it from before the container runs (it sees every byte), else the container's pid.
    `warmed`: the caller ran engine.warm_up() itself (the supervisor inherits it).
    `record`: the container exists already: the supervisor starts it at once."""

    def __init__(self, engine, attach: bool = False, stdin: bool = False, size: tuple[int, int] | None = None,
                 warmed: bool = False, record: dict | None = None, streams: tuple[str, ...] = ("stdout", "stderr")):
        from berth.monitor.supervisor import DetachedStart  # lazy: not for `attach`

        self.engine = engine
        self.stdin = stdin
        if not warmed:
            engine.preload()  # the supervisor inherits what creating needs too, instead of importing it again
        self._forked = DetachedStart(engine, attach=attach, warm=not warmed, record=record)
        if attach:
            self._forked.attacher.sendall(wire.hello(stdin, True, size, streams))

    def start(self, record: dict):
        attacher = self._forked.attacher
        if attacher is None:
            pid = _start_through_waiter(self.engine, record["Id"])
            if pid is not None:  # a client attached before the start holds a supervisor for it
                self._forked.cancel()
                return pid
        try:
            pid = self._forked.start(record["Id"])
        except BaseException:
            if attacher is not None:
                attacher.close()
            raise
        if attacher is None:
            return pid
        return Session(self.engine, attacher, record, self.stdin and bool(record["Config"]["OpenStdin"]))

    def cancel(self) -> None:
        self._forked.cancel()


# -- attaching before the start (the Engine API's attach, then start, as docker's `run`) -------
# The client attached first waits, in its own process, with a supervisor forked and already
# connected to (a PendingStart with attach): it listens on START_WAITER in the container's run
# directory, and whoever starts the container (PendingStart.start) asks it to, so the client
# sees the output from the first byte, as `run` and `start -a` do.

START_WAITER = "start-waiter"


def _start_through_waiter(engine, container_id: str) -> int | None:
    """Have the client waiting to attach start the container: its pid; None without one."""
    try:
        sock = waiter_socket(engine.paths.container_run(container_id), "connect")
    except OSError:  # nobody waits (ENOENT), or the waiter left (ECONNREFUSED)
        return None
    reply = bytearray()
    try:
        sock.sendall(b"start")
        sock.shutdown(SHUT_WR)
        while chunk := sock.recv(4096):
            reply += chunk
    except OSError:  # it went away meanwhile
        reply.clear()
    finally:
        sock.close()
    if not reply:
        return None  # it left before starting anything: we start it ourselves
    from berth import fastjson  # lazy: only a start through a waiter

    message = fastjson.loads(bytes(reply))
    if "error" in message:
        raise from_reply(message)
    return message["pid"]


def waiter_socket(directory: str, how: str):
    """A unix socket bound ("bind") or connected ("connect") to directory/START_WAITER,
    named through the directory's fd: a run root's path may be longer than sun_path allows."""
    import _socket

    directory_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        getattr(sock, how)(f"/proc/self/fd/{directory_fd}/{START_WAITER}")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(directory_fd)
    return sock


def from_reply(reply: dict) -> BerthError:
    from berth.errors import from_kind  # lazy: only a start through a waiter

    return from_kind(reply.get("kind"), reply["error"])


def start_attached(engine, record: dict, stdin: bool = False, size: tuple[int, int] | None = None,
                   warmed: bool = False) -> Session:
    """Start the container attached from its first byte (`run`, `start -a`)."""
    return PendingStart(engine, attach=True, stdin=stdin, size=size, warmed=warmed, record=record).start(record)


def runs_here(record: dict, stdin: bool, sig_proxy: bool = True) -> bool:
    """Whether a foreground start may take the fast path (Supervisor.run_here): the caller's
    process supervises, as nothing needs the container to outlive it: no tty to detach
    from, no restart policy, and our signals go to the container (sig-proxy)."""
    policy = (record["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
    return not record["Config"]["Tty"] and policy == "no" and sig_proxy


def run_here(engine, record: dict, stdin: bool = False, on_started=None) -> int:
    """Start the container supervised by this process, our fds 0/1/2 attached to it, its
    attach socket served for other clients meanwhile (see runs_here); its exit code."""
    from berth.monitor.supervisor import Supervisor  # lazy: not for `attach`

    stdin = stdin and bool(record["Config"]["OpenStdin"])
    return Supervisor(engine, record["Id"]).run_here(record, stdin, on_started)


def start_detached(engine, container_id: str) -> int:
    """Start the container under a supervisor of its own; its pid."""
    return PendingStart(engine).start({"Id": container_id})


def terminal_size(fd: int) -> tuple[int, int] | None:
    from berth.runtime.console import get_winsize  # lazy: only terminals

    return get_winsize(fd)
