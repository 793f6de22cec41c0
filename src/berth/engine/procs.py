"""Knowing whether a process we recorded is still the same process: pid plus its start
time from /proc, so a pid reused after a reboot or a wrap-around is not mistaken for it."""

import os
import time


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def identity(pid: int) -> list:
    return [pid, start_time(pid)]


def same_process(ident) -> bool:
    if not ident or not ident[0]:
        return False
    return start_time(ident[0]) == ident[1]


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (it need not be our child). True if it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # kernels without pidfd: poll
        deadline = time.monotonic() + timeout
        while start_time(pid) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
    try:
        return _exited(fd, timeout) or start_time(pid) is None  # a zombie nobody reaps yet counts as gone
    finally:
        os.close(fd)


def _exited(pidfd: int, timeout: float) -> bool:
    """Wait up to `timeout` for the process of `pidfd` to exit (its pidfd turns readable)."""
    import select  # lazy: only waits, and `images` and `logs` load this module

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def kill_and_wait(ident, timeout: float = 5.0) -> bool:
    """SIGKILL the process `ident` names if it is still that one, and wait until it is gone.
    True if it was killed. Through a pidfd: a pid reused meanwhile is never signalled."""
    import _signal  # lazy: only processes berth ends this way

    try:
        fd = os.pidfd_open(ident[0])
    except ProcessLookupError:
        return False
    try:
        if not same_process(ident):  # checked after the open: the pidfd is the process checked
            return False
        _signal.pidfd_send_signal(fd, _signal.SIGKILL)
        _exited(fd, timeout)
    finally:
        os.close(fd)
    return True
