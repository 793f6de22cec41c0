"""Proxy our terminal to a container's pty master: raw mode, window size, byte copying."""

import os
import select
import signal
import sys


def proxy(master: int, interactive: bool, on_output=None) -> None:
    """Copy stdin -> master (with -i) and master -> stdout until the container side closes.
    Ctrl-C travels as a byte to the container's line discipline, as with docker -t."""
    from berth.runtime.console import get_winsize, set_winsize

    stdin_is_tty = os.isatty(0)
    saved = None
    if interactive and stdin_is_tty:
        import termios
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)

    def resize(_signum=None, _frame=None):
        size = get_winsize(0) if stdin_is_tty else None
        if size:
            set_winsize(master, *size)

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        _copy_loop(master, interactive, on_output)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _copy_loop(master: int, interactive: bool, on_output) -> None:
    out = sys.stdout.fileno()
    sources = [master] + ([0] if interactive else [])
    while True:
        try:
            ready, _, _ = select.select(sources, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave fd is closed, the container is gone
                return
            if not data:
                return
            _write_all(out, data)
            if on_output is not None:
                on_output(data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                sources.remove(0)  # stdin closed: send EOF (^D) like docker's attach
                _write_all(master, b"\x04")
                continue
            _write_all(master, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]
