"""runc's foreground terminal (`run -t`, `exec -t` without --console-socket): the container's pty
master is kept here and copied to and from our own stdio (stdin -> master, master -> stdout),
our terminal made raw meanwhile and its size given to the pty (again on SIGWINCH)."""

import os
import select
import signal

from berth.errors import BerthError
from berth.runtime.reap import wait_exit_code

CHUNK = 65536


def host_console() -> int:
    """runc's initHostConsole, before anything is made: the first of our stderr, stdout, stdin
    that is a terminal, else our controlling terminal (/dev/tty); none is runc's error."""
    for fd in (2, 1, 0):
        if os.isatty(fd):
            return fd
    try:
        return os.open("/dev/tty", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as err:
        raise BerthError(f"open /dev/tty: {os.strerror(err.errno).lower()}") from None


def proxy(master: int, pid: int, console: int) -> int:
    """Copy between our stdio and `master` until `pid` (our child, or ours to reap as subreaper)
    exits and the pty is drained; its exit code. `console` (host_console()) is made raw
    meanwhile and gives the pty its size."""
    import termios
    import tty

    saved = termios.tcgetattr(console)
    tty.setraw(console, termios.TCSANOW)
    _copy_size(console, master)
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_size(console, master))
    pidfd = os.pidfd_open(pid)
    try:
        _copy(master, pidfd)
    finally:
        os.close(pidfd)
        signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(console, termios.TCSADRAIN, saved)
        if console > 2:
            os.close(console)
    code = wait_exit_code(pid)
    os.close(master)
    return code


def _copy(master: int, pidfd: int) -> None:
    poller = select.poll()
    poller.register(master, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    stdin_open = True
    try:
        poller.register(0, select.POLLIN)
    except (OSError, ValueError):
        stdin_open = False
    while True:
        try:
            events = poller.poll()
        except InterruptedError:
            continue
        for fd, event in events:
            if fd == master:
                if not _pump(master, 1):
                    return  # every slave closed: nothing more can come
            elif fd == pidfd:
                _drain(master)
                return
            elif stdin_open:
                data = os.read(0, CHUNK) if event & (select.POLLIN | select.POLLHUP) else b""
                if data:
                    _write_all(master, data)
                else:  # EOF on our stdin: the pty gets no more input (runc's io.Copy ends the same)
                    poller.unregister(0)
                    stdin_open = False


def _pump(source: int, target: int) -> bool:
    try:
        data = os.read(source, CHUNK)
    except OSError:  # EIO: the slave side is closed
        return False
    if not data:
        return False
    _write_all(target, data)
    return True


def _drain(master: int) -> None:
    """The process has exited: what it wrote is still in the pty."""
    os.set_blocking(master, False)
    try:
        while _pump(master, 1):
            pass
    except BlockingIOError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        data = data[written:]


def _copy_size(console: int, master: int) -> None:
    from berth.runtime.console import get_winsize, set_winsize

    size = get_winsize(console)
    if size is not None:
        set_winsize(master, *size)
