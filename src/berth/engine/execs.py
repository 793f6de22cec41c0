"""`docker exec` as engine calls: start a command in a running container (ExecRequest, in
docker's ExecConfig terms) and stream its stdio to fds the caller gives until it ends; its
exit code. Nothing here needs a terminal: a front door hands its own fds (the CLI its
terminal or pipes, the API its hijacked connection, a test pipes); raw mode and window
changes are the front door's, which tells the session its size (ExecSession.resize).

Without a tty the process gets pipes we copy, never one of the caller's fds (a process it
leaves behind could read or write the caller's terminal long after); with one, it gets its
own pty, whose master we copy."""

import os
import select

from berth.engine import events
from berth.engine.state import is_running
from berth.fs import write_all
from berth.monitor.lean import StdinFeed, copy_output
from berth.monitor.supervisor import Stdio
from berth.runtime.console import set_winsize
from berth.runtime.reap import wait_exit_code

EOT = b"\x04"  # ^D: what a tty's line discipline reads as end of input


class ExecRequest:
    """One exec: docker's ExecConfig (Cmd, User, Env, WorkingDir, Tty, Privileged,
    AttachStdin, Detach)."""

    __slots__ = ("cmd", "user", "env", "workdir", "tty", "privileged", "attach_stdin", "detach")

    def __init__(self, cmd: list[str], user: str | None = None, env=(), workdir: str | None = None,
                 tty: bool = False, privileged: bool = False, attach_stdin: bool = False, detach: bool = False):
        self.cmd = list(cmd)
        self.user = user
        self.env = list(env)
        self.workdir = workdir
        self.tty = tty and not detach  # docker: a detached exec has nobody to give a terminal to
        self.privileged = privileged
        self.attach_stdin = attach_stdin and not detach
        self.detach = detach


class ExecSession:
    """A started, attached exec: `pid` (to forward signals to), resize() with a tty, and
    stream() to copy its stdio until it ends (then its exec_die event, with `died(code)`)."""

    __slots__ = ("pid", "tty", "died", "_console", "_stdio", "_attach_stdin")

    def __init__(self, pid: int, console: int | None, stdio: Stdio | None, attach_stdin: bool, died=None):
        self.pid = pid
        self.tty = console is not None
        self.died = died
        self._console = console
        self._stdio = stdio
        self._attach_stdin = attach_stdin

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size (a no-op without a tty)."""
        if self._console is not None:
            set_winsize(self._console, rows, cols)

    def stream(self, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2) -> int:
        """Copy `stdin_fd` to the process (if its stdin is attached; -1: none) and its output
        to `stdout_fd`/`stderr_fd` (a tty has only the one stream) until it ends, then reap
        it: its exit code. Not until its pipes close: a child it left in the background may
        hold them for ever, and docker's exec returns when the process ends."""
        try:
            if self._console is not None:
                _copy_console(self._console, stdin_fd if self._attach_stdin else -1, stdout_fd)
            else:
                exited = os.pidfd_open(self.pid)
                try:
                    self._copy(_echo_to(stdout_fd, stderr_fd), stdin_fd, exited)
                finally:
                    os.close(exited)
        finally:
            self.close()
        code = wait_exit_code(self.pid)
        if self.died is not None:
            self.died(code)
        return code

    def _copy(self, echo, stdin_fd: int, exited: int) -> None:
        copy_output(dict(self._stdio.ours), None, echo, self._stdin_feed(stdin_fd), exited)

    def close(self) -> None:
        """Let go of its stdio (the process runs on)."""
        if self._console is not None:
            os.close(self._console)
            self._console = None
        if self._stdio is not None:
            self._stdio.close()
            self._stdio = None

    def _stdin_feed(self, stdin_fd: int) -> StdinFeed | None:
        writer = self._stdio.take_stdin() if self._attach_stdin else -1
        if writer < 0:
            return None
        try:
            if stdin_fd < 0:
                raise OSError
            os.fstat(stdin_fd)
        except OSError:  # no stdin at all: the process reads EOF
            os.close(writer)
            return None
        return StdinFeed(stdin_fd, writer)


def start_exec(engine, container: str, req: ExecRequest, console_size: tuple[int, int] | None = None
               ) -> ExecSession | None:
    """Start req.cmd in the running container `container` (name or ID); the session to
    stream, or None when detached (the process runs on, nobody waits for it). Errors as
    docker's: NotFound, Conflict (not running, paused), CommandNotFound, CannotInvoke.
    Events as docker's: exec_create and exec_start before it starts (also when it then
    fails to), exec_die once an attached one ended (nobody sees a detached one end)."""
    record = engine.get(container)
    exec_id = None  # docker refuses a stopped or paused container before it creates the exec
    if is_running(record) and not record["State"]["Paused"]:
        exec_id = events.exec_started(engine.paths.root, record, req.cmd)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    stdio = None
    try:
        if not req.detach and not req.tty:
            stdio = Stdio(tty=False, open_stdin=False, attach_stdin=req.attach_stdin)
        fds = stdio.container if stdio is not None else (null, null, null)  # a tty: its own pty instead
        launched = engine.exec(record, req.cmd, user=req.user, env=req.env, workdir=req.workdir, tty=req.tty,
                               privileged=req.privileged, stdio=fds, console_size=console_size,
                               wait=not req.detach)
    except BaseException:
        if stdio is not None:
            stdio.close()
        raise
    finally:
        os.close(null)
    if req.detach:
        return None
    if stdio is not None:
        stdio.started()  # the process has its ends: only ours stay open here
    died = None if exec_id is None else lambda code: events.exec_died(engine.paths.root, record, exec_id, code)
    return ExecSession(launched.pid, launched.console_fd, stdio, req.attach_stdin, died)


def run_exec(engine, container: str, req: ExecRequest, stdin_fd: int = 0, stdout_fd: int = 1, stderr_fd: int = 2,
             console_size: tuple[int, int] | None = None, on_started=None) -> int | None:
    """start_exec and stream in one call: the exit code, None when detached. `on_started(pid)`
    is called once the process runs (to forward signals to it)."""
    session = start_exec(engine, container, req, console_size)
    if session is None:
        return None
    try:
        if on_started is not None:
            on_started(session.pid)
    except BaseException:
        session.close()
        raise
    return session.stream(stdin_fd, stdout_fd, stderr_fd)


def _echo_to(stdout_fd: int, stderr_fd: int):
    fds = {1: stdout_fd, 2: stderr_fd}

    def echo(fd: int, data: bytes) -> None:
        try:
            write_all(fds[fd], data)
        except BrokenPipeError:  # the reader went away (`| head`): not an error
            pass

    return echo


def _copy_console(master: int, stdin_fd: int, stdout_fd: int) -> None:
    """A pty master: stdin -> master, master -> stdout until the process side closes. Ctrl-C
    travels as a byte to the container's line discipline, as with docker -t; our stdin's end
    goes as ^D, like docker's attach."""
    sources = [master] + ([stdin_fd] if stdin_fd >= 0 else [])
    while True:
        try:
            ready, _, _ = select.select(sources, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave fd is closed, the process is gone
                return
            if not data:
                return
            try:
                write_all(stdout_fd, data)
            except BrokenPipeError:
                pass
        if stdin_fd in ready:
            try:
                data = os.read(stdin_fd, 65536)
            except OSError:  # EIO: our terminal hung up
                data = b""
            if not data:
                sources.remove(stdin_fd)
                write_all(master, EOT)
                continue
            write_all(master, data)
