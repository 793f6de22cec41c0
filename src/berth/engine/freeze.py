"""Freezing a running container for `commit`, owned so that a killed committer never leaves
it frozen: the freeze is an intent file in the container's run directory,
<run-root>/containers/<id>/frozen-by-commit, flocked by the committer for as long as the
container is frozen (the kernel drops the flock when the committer dies, SIGKILL included)
and holding its pid and start time for whoever looks. Whoever finds the file with nobody
holding its flock thaws the container (unless the user paused it since: State.Paused, a
pause of the user's own, stays) and removes the file.

A user's `pause` is recorded in the record (State.Paused); a commit's freeze never is, so
`ps` and `inspect` show a container frozen by a commit as running, which it is again as
soon as any command looks at it."""

import fcntl
import os

from berth.engine.procs import identity
from berth.fs import RECORD, make_dirs

MARKER = "frozen-by-commit"


def marker_path(engine, container_id: str) -> str:
    return os.path.join(engine.paths.container_run(container_id), MARKER)


class CommitFreeze:
    """`with CommitFreeze(engine, record):` the container frozen for the block, thawed after
    it, by us or (if we are killed) by the next command that looks at it. Called with the
    container's lock held: no pause, start or other commit runs meanwhile."""

    __slots__ = ("engine", "record", "fd", "path")

    def __init__(self, engine, record: dict):
        self.engine = engine
        self.record = record
        self.fd = -1
        self.path = marker_path(engine, record["Id"])

    def __enter__(self) -> "CommitFreeze":
        make_dirs(os.path.dirname(self.path))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, RECORD)
        try:
            # A command probing it holds the flock only for a moment, never while it waits.
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            owner = " ".join(str(part) for part in identity(os.getpid())).encode()
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, owner + b"\n", 0)  # for a person looking: the flock is the truth
            self.engine.cgroup(self.record).freeze()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._release()

    def _release(self) -> None:
        try:
            self.engine.cgroup(self.record).thaw()
        finally:
            # The file goes before its flock: a command that opened it meanwhile finds it
            # unlinked (another inode than the path's, or none) and leaves it alone.
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = -1


def thaw_if_abandoned(engine, record: dict, held: bool = False) -> dict:
    """Thaw a container that a killed commit left frozen; returns `record` (whose State never
    said paused for a commit's freeze). Costs one failed open when there is nothing to do.
    `held`: the caller holds the container's lock (pause, commit); otherwise the lock is only
    tried, and a command holding it (a live commit among them) leaves the thaw to the next."""
    state = record.get("State") or {}
    if not state.get("Running"):
        return record
    path = marker_path(engine, record["Id"])
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return record
    try:
        if not _try_flock(fd):
            return record  # its committer is alive: it thaws it itself
        if held:
            _thaw(engine, record["Id"], fd, path)
            return record
        container_lock = try_container_lock(engine, record["Id"])
        if container_lock < 0:
            return record
        try:
            _thaw(engine, record["Id"], fd, path)
        finally:
            os.close(container_lock)
    finally:
        os.close(fd)
    return record


def _thaw(engine, container_id: str, fd: int, path: str) -> None:
    """With the marker's flock and the container's lock held: thaw unless the user paused
    it since (the record says so), and drop the marker."""
    try:
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return  # its committer finished and a new commit made a new one meanwhile
    except FileNotFoundError:
        return
    try:
        record = engine.store.read(container_id)
    except FileNotFoundError:
        record = None
    if record is not None and not record["State"].get("Paused"):
        engine.cgroup(record).thaw()
    os.unlink(path)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def try_container_lock(engine, container_id: str) -> int:
    """The container's own lock (engine.lock's file) if nobody holds it, else -1."""
    try:
        fd = os.open(os.path.join(engine.paths.container(container_id), "lock"),
                     os.O_RDWR | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return -1
    if not _try_flock(fd):
        os.close(fd)
        return -1
    return fd
