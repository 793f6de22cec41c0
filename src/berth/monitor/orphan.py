"""A container process whose parent is no longer ours: its supervisor was killed, and the
one that adopted it (engine.adopt) is not its parent, so it cannot wait for it. It is
watched through a pidfd and known through a /proc/<pid> directory fd opened while it ran
(which names that process, never a later one with the same pid); its exit status is read
from that directory's `stat` while it is a zombie (field 52, the wait status), which works
until whoever is its parent now reaps it. Plain os calls: the lean monitor imports this."""

import os

UNKNOWN_EXIT = 255  # containerd's UnknownExitStatus, what dockerd records for a container it lost
UNKNOWN_ERROR = ("exit status unknown: the container's supervisor was killed and the container "
                 "ended where berth could not reap it")


def read_stat(proc_fd: int) -> tuple[str, int, int] | None:
    """(state letter, start time in ticks, wait status) of the process behind `proc_fd`, or
    None once it has been reaped."""
    try:
        fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    except OSError:  # ESRCH/ENOENT: reaped
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = data.rpartition(b")")[2].split()
    if len(fields) < 20:
        return None
    status = int(fields[49]) if len(fields) >= 50 else 0
    return fields[0].decode(), int(fields[19]), status


def open_proc(pid: int, start: int | None) -> int:
    """A /proc/<pid> directory fd if `pid` is still the process that started at `start`
    (alive or a zombie), else -1."""
    try:
        fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1
    stat = read_stat(fd)
    if stat is None or stat[1] != start:
        os.close(fd)
        return -1
    return fd


class Orphan:
    """The adopted container's pid 1: its end as docker would report it, when it can be known."""

    __slots__ = ("pid", "proc_fd", "code")

    def __init__(self, pid: int, proc_fd: int):
        self.pid = pid
        self.proc_fd = proc_fd
        self.code = None  # docker's exit code, once read from the zombie

    def seen_exit(self) -> None:
        """Called as soon as its pidfd says it ended: read the status before it is reaped."""
        if self.code is None:
            stat = read_stat(self.proc_fd)
            if stat is not None and stat[0] == "Z":
                code = os.waitstatus_to_exitcode(stat[2])
                self.code = code if code >= 0 else 128 - code

    def end(self) -> tuple[int, str]:
        """(exit code, State.Error): the code and no error when known, else docker's
        unknown status and a message saying so."""
        self.seen_exit()
        if self.code is None:
            return UNKNOWN_EXIT, UNKNOWN_ERROR
        return self.code, ""
