"""Reaching the embedded DNS resolver of a berth root (network.resolver): its files under
<run-root>/dns, starting its process, and one request with its reply over its control socket.
Loaded by the engine only for containers on user networks; nothing the resolver itself needs
(no DNS library)."""

import _socket
import errno
import os
import sys

from berth.fastjson import dumps, loads

COMM = "berth-dns"  # the resolver's name in ps -o comm, top, /proc/<pid>/comm
REPLY_TIMEOUT = 10.0  # seconds a request waits for its answer (a start imports the DNS library)
MAX_MESSAGE = 65536
_FD_SIZE = 4  # a C int in SCM_RIGHTS


class ResolverError(Exception):
    """The resolver could not be reached or refused a request (its reason as the message)."""


class Files:
    """Where a root's resolver keeps its pid, lock and control socket (<run-root>/dns)."""

    __slots__ = ("directory",)

    def __init__(self, run_root: str):
        self.directory = os.path.join(run_root, "dns")

    @property
    def lock(self) -> str:
        return os.path.join(self.directory, "lock")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.directory, "resolver.json")

    @property
    def socket(self) -> str:
        return os.path.join(self.directory, "control.sock")


def exchange(path: str, message: dict, fds: tuple = ()) -> dict:
    """Send `message` (and `fds`, by SCM_RIGHTS) to the resolver listening at `path`; its reply.
    OSError (FileNotFoundError, ConnectionRefusedError...) when none listens there."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(REPLY_TIMEOUT)
        sock.connect(path)
        ancillary = []
        if fds:
            data = b"".join(fd.to_bytes(_FD_SIZE, sys.byteorder) for fd in fds)
            ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, data)]
        sock.sendmsg([dumps(message).encode()], ancillary)
        try:
            reply = sock.recv(MAX_MESSAGE)
        except TimeoutError:
            raise ResolverError("the embedded DNS resolver did not answer") from None
    finally:
        sock.close()
    if not reply:
        raise ConnectionResetError(errno.ECONNRESET, "the resolver closed the connection")
    answer = loads(reply)
    if answer.get("Error"):
        raise ResolverError(answer["Error"])
    return answer


def spawn(files: Files, names: list) -> int:
    """Start the root's resolver: its control socket is bound and listening here first (so a
    request can be sent at once), then handed to a new interpreter, in its own session, that
    outlives us (double fork: nobody has to reap it). Its identity goes to resolver.json."""
    try:
        os.unlink(files.socket)
    except FileNotFoundError:
        pass
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        old = os.umask(0o077)  # the socket file is root's alone
        try:
            listener.bind(files.socket)
        finally:
            os.umask(old)
        listener.listen(64)
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        # A supervisor (a start's on_created calls us) is a subreaper: the resolver would be its
        # child, a zombie of it once ended. It is init's: the caller is no subreaper meanwhile.
        subreaper = _set_subreaper(False)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns
                _become_resolver(listener.fileno(), write_end, names, files)
            os.close(write_end)
            os.waitpid(pid, 0)  # the middle process: it exits as soon as the resolver is forked
        finally:
            if subreaper:
                _set_subreaper(True)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read()
    finally:
        listener.close()
    text = report.decode(errors="replace")
    pid_text, _, failure = text.partition("\n")
    if failure or not pid_text.isdigit():
        raise ResolverError(f"cannot start the embedded DNS resolver: {failure or 'it did not start'}")
    return int(pid_text)


def _set_subreaper(on: bool) -> bool:
    """Set this process's PR_SET_CHILD_SUBREAPER; whether it was set before."""
    import ctypes  # lazy: only when a resolver is started (once per root, not per run)

    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    libc.prctl(37, ctypes.byref(was), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    if bool(was.value) != on:
        libc.prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    return bool(was.value)


def _become_resolver(listener: int, report: int, names: list, files: Files) -> None:
    """In the forked child: a new session, a second fork, and in the grandchild an exec of
    the resolver with only its control socket (fd 3) and no stdio of ours (its stderr goes to
    <run-root>/dns/resolver.log with BERTH_DEBUG=1)."""
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        os.write(report, f"{os.getpid()}\n".encode())
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if os.environ.get("BERTH_DEBUG"):
            log = os.open(os.path.join(files.directory, "resolver.log"),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            os.dup2(log, 2)
        if listener == 3:
            os.set_inheritable(3, True)
        else:
            os.dup2(listener, 3)  # dup2 clears close-on-exec: the one fd the resolver inherits
        from berth.runtime.forked import keep_only_fds  # noqa: PLC0415 - only the resolver's start

        keep_only_fds(3, report)  # the caller's locks and pipes stay the caller's
        os.umask(0o077)
        os.chdir("/")
        import berth  # noqa: PLC0415 - where this berth's package is: the resolver runs the same code

        source = os.path.dirname(os.path.dirname(os.path.abspath(berth.__file__)))
        code = (f"import sys; sys.path.insert(0, {source!r}); "
                "from berth.network.resolver import main; main()")
        os.execv(sys.executable, [sys.executable, "-I", "-c", code, COMM, *names])
    except BaseException as err:  # noqa: BLE001 - told to the starter, who raises it
        try:
            os.write(report, f"\n{err}".encode())
        finally:
            os._exit(127)


def comm(pid: int) -> str:
    """The kernel's name of process `pid` ("" if it is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""
