"""Our terminal and stdio on a container's stdio: an attach Session streamed to our fds (raw
mode and window size for a tty, signals forwarded without one), and an exec's session with a
pty of its own (raw mode, window size). The bytes are moved by the engine's sessions; this
module only handles our terminal."""

import _signal as signal  # `signal` imports enum: ~4 ms on every run
import os

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
        from berth.engine.attach import terminal_size  # lazy: not for create or exec, which load this module

        return terminal_size(0) or terminal_size(1)

    def stream(self, session, outputs: tuple[bool, bool] = (True, True)) -> int | None:
        """The container's exit code, or None if the user detached. `outputs`: whether its
        stdout and its stderr are shown (run -a)."""
        saved = None
        if session.tty and session.stdin and os.isatty(0):
            import termios  # lazy: only -t
            import tty  # lazy: only -t

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
            return session.stream(stdin, 1 if outputs[0] else -1, 2 if outputs[1] else -1, self.detach_keys,
                                  self.wakeup_r, on_wakeup)
        finally:
            if saved is not None:
                import termios  # lazy: only -t

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


def exec_with_terminal(engine, container: str, req) -> int:
    """An exec with a pty of its own (berth.engine.execs copies its master): our terminal in
    raw mode while our stdin is attached to it, its size following ours; its exit code.
    Ctrl-C travels as a byte to the container's line discipline, as with docker -t."""
    from berth.engine.attach import terminal_size  # lazy: not for create or exec, which load this module
    from berth.engine.execs import start_exec  # lazy: only exec

    session = start_exec(engine, container, req, console_size=terminal_size(0) or terminal_size(1))
    stdin_is_tty = os.isatty(0)
    saved = None
    if req.attach_stdin and stdin_is_tty:
        import termios  # lazy: only -t
        import tty  # lazy: only -t

        saved = termios.tcgetattr(0)
        tty.setraw(0)

    def resize(_signum=None, _frame=None):
        size = terminal_size(0) if stdin_is_tty else None
        if size:
            session.resize(*size)

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        return session.stream(0, 1, 2)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        if saved is not None:
            import termios  # lazy: only -t

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
