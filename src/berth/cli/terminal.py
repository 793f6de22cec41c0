"""Our terminal and stdio on a container's stdio: an attach Session streamed to our fds (raw
mode and window size for a tty, signals forwarded without one), and, for exec, the proxy of
an exec's own pty master."""

import _signal as signal  # `signal` imports enum: ~4 ms on every run
import os
import select
import sys

from berth.fs import write_all

# docker's sig-proxy: what the CLI receives goes to the container's process (not with a tty)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _ignore(_signum, _frame) -> None:
    """A Python-level handler: the signal only wakes the stream up (set_wakeup_fd)."""


class Attached:
    """Our fds 0/1/2 on a container: made before the start, so a signal that arrives while
    the container starts is forwarded once it runs; stream() then copies until it ends."""

    def __init__(self, tty: bool, sig_proxy: bool = True, detach_keys: bytes = b""):
        self.has_stdin = hold_std_fds()
        self.tty = tty
        self.detach_keys = detach_keys
        self.terminal = tty and (os.isatty(0) or os.isatty(1))
        self.wanted = (signal.SIGWINCH,) if self.terminal else () if tty or not sig_proxy else FORWARDED_SIGNALS
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        self.previous = {sig: signal.signal(sig, _ignore) for sig in self.wanted}
        self.previous_wakeup = signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)

    def size(self) -> tuple[int, int] | None:
        """Our terminal's size, for the container's tty."""
        if not self.terminal:
            return None
        from berth.engine.attach import terminal_size

        return terminal_size(0) or terminal_size(1)

    def stream(self, session) -> int | None:
        """The container's exit code, or None if the user detached."""
        saved = None
        if session.tty and session.stdin and os.isatty(0):
            import termios
            import tty

            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # as docker: what was typed ahead is kept

        def on_wakeup(signum: int) -> None:
            if signum not in self.wanted:
                return  # e.g. SIGINT through Python's own handler, without --sig-proxy
            if signum == signal.SIGWINCH:
                size = self.size()
                if size:
                    session.resize(*size)
            else:
                session.signal(signum)

        stdin = 0 if session.stdin else -1
        if stdin == 0 and not self.has_stdin:  # we have no stdin at all: the container reads EOF
            session.close_stdin()
            stdin = -1
        try:
            return session.stream(stdin, 1, 2, self.detach_keys, self.wakeup_r, on_wakeup)
        finally:
            if saved is not None:
                import termios

                termios.tcsetattr(0, termios.TCSADRAIN, saved)

    def close(self) -> None:
        signal.set_wakeup_fd(self.previous_wakeup)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)


def hold_std_fds() -> bool:
    """Put /dev/null on whichever of fds 0-2 we were started without, so that no socket or
    pipe of ours takes its number (and the container's output, say, goes into it). Whether
    we have a stdin of our own."""
    has_stdin = True
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            has_stdin = has_stdin and fd != 0
            null = os.open("/dev/null", os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    return has_stdin


def proxy(master: int, interactive: bool, on_output=None) -> None:
    """An exec's pty: copy stdin -> master (with -i) and master -> stdout until the process
    side closes. Ctrl-C travels as a byte to the container's line discipline, as with docker -t."""
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
            except OSError:  # EIO: every slave fd is closed, the process is gone
                return
            if not data:
                return
            write_all(out, data)
            if on_output is not None:
                on_output(data)
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                sources.remove(0)  # stdin closed: send EOF (^D) like docker's attach
                write_all(master, b"\x04")
                continue
            write_all(master, data)

