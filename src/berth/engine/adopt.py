"""Adopting a container whose supervisor was killed (issue 13): the next command that
looks at it (ps, inspect, stop, start, logs: whatever loads its record) forks a new
supervisor for it, as `run -d` forks one, instead of showing it exited with a made-up code.

The new supervisor records itself as the container's monitor in the run directory's
state.json, watches the container's pid 1 through a pidfd (it is not its parent), reads its
output again where that can be recovered (a pipe's new read end, opened through
/proc/<pid>/fd/1 and 2; a terminal's master died with the old supervisor) after a line in
the log that says from when output may be lost, serves the attach socket, and at the end
records it and applies the restart policy as the original would have. The exit status is
read from the zombie while it lasts (monitor.orphan); when its new parent reaped it first,
the end is recorded with containerd's unknown status 255, which dockerd records for a
container it lost, and a State.Error saying so.

A container that already ended unseen is adopted too: its end is recorded the same way,
and a restart policy that applies starts it again."""

import os
import select
import stat as st
import time

from berth.engine.procs import identity, same_process

NOTIFY_TIMEOUT = 10.0  # for the new supervisor to record the end of one that ended unseen


def adopt_if_orphaned(engine, record: dict, processes: dict | None = None) -> dict | None:
    """The container's record once a new supervisor has taken it over, or None when there is
    nothing to adopt (a live supervisor, nothing running, no process identity recorded) or
    another command holds the container's lock now (the next command will try again).
    `processes`: its state.json, when the caller has read it. Raises FileNotFoundError when
    the recorded end removed it (--rm)."""
    state = record["State"]
    if not state.get("Running") or state.get("Restarting"):
        return None
    container_id = record["Id"]
    if processes is None:
        processes = engine.store.processes(container_id)
    if same_process(processes.get("monitor")) or not processes.get("pid"):
        return None
    lock = engine.store.try_lock(container_id)
    if lock is None:
        return None
    try:
        try:
            record = engine.store.read(container_id)
        except FileNotFoundError:
            return None
        state = record["State"]
        processes = engine.store.processes(container_id)
        if not state.get("Running") or state.get("Restarting") or same_process(processes.get("monitor")):
            return None
        ident = processes.get("pid")
        if not ident:
            return None
        from berth.monitor.orphan import open_proc, read_stat  # lazy: only a container whose supervisor died

        proc_fd = open_proc(ident[0], ident[1])
        stat = read_stat(proc_fd) if proc_fd >= 0 else None
        alive = stat is not None and stat[0] not in ("Z", "X")
        sources = _recover_output(proc_fd, record) if alive else []
        notify, child = _fork_supervisor(engine, record, ident[0], proc_fd, sources, alive)
        engine.store.record_processes(container_id, identity(child), ident)
    finally:
        os.close(lock)
    if alive:
        os.close(notify)
        return record
    _wait_notified(notify)  # it records the end under the lock we just released
    return engine.store.read(container_id)


def _recover_output(proc_fd: int, record: dict) -> list[tuple[int, str]]:
    """New read ends of the pipes that are the container's stdout and stderr: [(fd, stream)].
    Through an O_PATH fd first: what is opened for reading is the very pipe looked at, never
    something the container swapped in meanwhile (a device it could make us open)."""
    if record["Config"].get("Tty"):
        return []  # the pty's master side died with the old supervisor
    sources = []
    seen = set()
    for number, stream in ((1, "stdout"), (2, "stderr")):
        try:
            path_fd = os.open(f"fd/{number}", os.O_PATH | os.O_CLOEXEC, dir_fd=proc_fd)
        except OSError:
            continue
        try:
            info = os.fstat(path_fd)
            if not st.S_ISFIFO(info.st_mode) or (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            sources.append((os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), stream))
        except OSError:
            continue
        finally:
            os.close(path_fd)
    return sources


def _fork_supervisor(engine, record: dict, pid: int, proc_fd: int, sources: list, alive: bool) -> tuple[int, int]:
    """(our end of its notify pipe, its pid). The child closes every fd but its own (the
    container's lock among them) before anything else."""
    from berth.monitor.supervisor import adopt  # lazy: only an orphan is adopted

    notify_r, notify_w = os.pipe()
    lost_since = _last_output(record)
    child = os.fork()
    if child == 0:
        adopt(engine, record, pid, proc_fd, sources, notify_w, lost_since, alive)  # never returns
    os.close(notify_w)
    for fd, _ in sources:
        os.close(fd)
    if proc_fd >= 0:
        os.close(proc_fd)
    return notify_r, child


def _last_output(record: dict) -> float:
    """When the old supervisor last wrote the log (or the container started): what the
    container wrote after that may be lost."""
    try:
        return os.stat(record.get("LogPath") or "").st_mtime
    except OSError:
        from berth.units import parse_rfc3339_ns  # lazy: not for inspect

        try:
            return parse_rfc3339_ns(record["State"]["StartedAt"]) / 1e9
        except (ValueError, KeyError, TypeError):
            return time.time()


def _wait_notified(fd: int) -> None:
    try:
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return
            if not os.read(fd, 4096):
                return
    finally:
        os.close(fd)
