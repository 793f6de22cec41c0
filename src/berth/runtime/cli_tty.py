"""runc's foreground terminal (`run -t`, `exec -t` without --console-socket): the container's pty
master is kept here and copied to and from our own stdio (stdin -> master, master -> stdout),
our terminal made raw meanwhile and its size given to the pty (again on SIGWINCH)."""

import os
import select
import signal

from berth.runtime.reap import wait_exit_code

CHUNK = 65536


def proxy(master: int, pid: int) -> int:
    """Copy between our stdio and `master` until `pid` (our child, or ours to reap as subreaper)
    exits and the pty is drained; its exit code."""
    import termios

    saved = None
    if os.isatty(0):
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0, termios.TCSANOW)
    _copy_size(master)
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_size(master))
    pidfd = os.pidfd_open(pid)
    try:
        _copy(master, pidfd)
    finally:
        os.close(pidfd)
        signal.signal(signal.SIGWINCH, previous)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
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


def _copy_size(master: int) -> None:
    from berth.runtime.console import get_winsize, set_winsize

    size = get_winsize(0)
    if size is not None:
        set_winsize(master, *size)
