"""runc's `start` (open the exec fifo of a created container: its init then execs the process),
and the few reads of a container's record it needs, kept free of `os` and berth.fs: `start` is
on every container's path and `import os` alone costs ~1.5 ms of its ~15 (posix is built in)."""

import posix
import sys

from berth import fastjson as json
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"


def join(directory: str, name: str) -> str:
    """os.path.join of a directory and one plain name."""
    return directory + name if not directory or directory.endswith("/") else directory + "/" + name


def load_state(root: str, container_id: str) -> dict:
    try:
        with open(join(join(root, container_id), STATE_FILE), "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"container does not exist: {container_id}") from None
    except ValueError:
        raise BerthError(f"container {container_id}: state.json is corrupt") from None


def proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields from the state on (state is [0], starttime [19])."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def init_alive(state: dict) -> bool:
    """The init process exists, is not a zombie and is the one we started (same start time: a
    reused pid is not ours)."""
    stat = proc_stat(state.get("pid") or 0)
    return stat is not None and stat[0] not in ("Z", "X") and stat[19] == state.get("start_time", stat[19])


def _exists(path: str) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


def status_of(directory: str, state: dict) -> str:
    """created -> running -> paused -> stopped, read from the kernel as runc's libcontainer does."""
    if not init_alive(state):
        return "stopped"
    if _exists(join(directory, EXEC_FIFO)):
        return "created"
    from berth.runtime.cgroups import open_cgroup

    if open_cgroup(state["cgroupsPath"]).frozen():
        return "paused"
    return "running"


def hooks_of(entries: dict | None, spec: dict, container_id: str, bundle: str):
    """runtime.hooks.Hooks for config.json's (or state.json's) hooks, None without any."""
    if entries is None:
        return None
    from berth.runtime.hooks import Hooks  # only bundles with hooks import it

    return Hooks(entries, {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": container_id, "bundle": bundle,
                           "annotations": spec.get("annotations") or {}})


def warn_on_failure(hooks, kind: str, pid: int, status: str) -> None:
    """poststart and poststop: a failure is a warning, the operation goes on (runtime-spec 1.0)."""
    try:
        hooks.run(kind, pid, status)
    except BerthError as err:
        sys.stderr.write(f"berth-runtime: warning: {err}\n")


def start(root: str, container_id: str) -> None:
    state = load_state(root, container_id)
    directory = join(root, container_id)
    fifo = join(directory, EXEC_FIFO)
    status = status_of(directory, state)
    if status != "created":
        raise Conflict("cannot start a container that has stopped" if status == "stopped"
                       else f"cannot start an already {status} container")
    fd = posix.open(fifo, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        started = posix.read(fd, 4096)  # "0", or "1" and why a startContainer hook failed
    finally:
        posix.close(fd)
        posix.unlink(fifo)
    if started[:1] == b"1":
        raise BerthError(started[1:].decode(errors="replace"))
    if not started:
        raise BerthError("container init exited before it could start its process")
    hooks = hooks_of(state.get("hooks"), state, container_id, state["bundle"])
    if hooks is not None:
        warn_on_failure(hooks, "poststart", state.get("pid") or 0, "running")


def cmd_start(options, flags: dict, container_id: str, rest: list[str]) -> int:
    if rest:
        raise InvalidArgument(f"unexpected arguments: {' '.join(rest)}")
    start(options.root, container_id)
    return 0
