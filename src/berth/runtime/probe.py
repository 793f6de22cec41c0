"""A probe launcher: one process per running container that has joined it once, as an exec's
process joins it (namespaces, rlimits, working directory, seccomp, user, groups, capabilities,
no_new_privs: the OCI spec of an exec), and then starts each probe with posix_spawn (vfork and
exec: no Python runs in the probe, nothing is copied). A health check every second then costs
a spawn, not two forks of an interpreter and a spec built anew.

The launcher itself is no process of the container: its pid namespace is the host's (joining
a pid namespace applies to the children only) and it stays in its creator's cgroup, except
for the instant of each spawn, when it moves itself into the container's (v1: the thread's
`tasks`, which takes no global lock), so that the probe is born there and counts there, as an
exec's process does. `top` and the container's `ps` see the probes while they run, never it.

The caller (the container's prober, engine.health) speaks to it over a socketpair: a request
is {"argv", "timeout", "limit"}; the answer {"code", "output" (its bytes as latin-1),
"truncated", "timed_out"}, or {"error", "kind"} when the command cannot start (docker's exec
errors)."""

import _signal as signal  # `signal` imports enum
import gc
import os
import select
import socket
import time

from berth import fastjson
from berth.errors import BerthError, from_kind
from berth.runtime import process
from berth.runtime import syscalls as sc
from berth.runtime.cgroups import CGROUP_ROOT
from berth.runtime.cgroups.v1 import hierarchies
from berth.runtime.container import _enter_namespaces, _load_seccomp
from berth.runtime.forked import keep_only_fds
from berth.runtime.reap import wait_exit_code

DRAIN_ROUNDS = 64  # reads per probe once it ended: what it left in the pipe, not what its children write on
SPAWN_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)


class ProbeLauncher:
    """The caller's handle on a launcher forked for `spec` (an exec's OCI spec: its namespaces
    by path, its cgroup) with the container's seccomp `program` (None: none)."""

    __slots__ = ("pid", "alive", "_sock")

    def __init__(self, spec: dict, program, cgroup_dirs: list[str]):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        join = _open_procs_files(cgroup_dirs)
        try:
            leave = _open_procs_files(_own_cgroup_dirs(cgroup_dirs))
        except BaseException:
            for fd in join:
                os.close(fd)
            raise
        # The collector writes a header in every object it walks: the launcher never runs it,
        # and what the caller has so far is left out of the caller's walks, so fewer of the
        # pages both share get copied.
        gc.freeze()
        try:
            self.pid = os.fork()
            if self.pid == 0:
                try:
                    gc.disable()
                    # its caller's fds (another launcher's socket among them, which would never see
                    # its EOF) reach no probe and keep nothing open
                    keep_only_fds(theirs.fileno(), *join, *leave)
                    _serve(theirs, spec, program, join, leave)
                finally:
                    os._exit(0)
        finally:
            theirs.close()
            for fd in join + leave:
                os.close(fd)
        self._sock = ours
        self.alive = True

    def run(self, argv: list[str], timeout: float, limit: int) -> tuple[int, bytes, bool, bool]:
        """Run `argv` to its end: (exit code, stdout and stderr together up to `limit` bytes,
        truncated, timed out). Raises BerthError when it cannot start."""
        try:
            self._sock.send(fastjson.dumps({"argv": argv, "timeout": timeout, "limit": limit}).encode())
            answer = self._sock.recv(2 * limit + 65536)
        except OSError:
            answer = b""
        if not answer:
            self.alive = False
            raise BerthError("the container's probe launcher ended")
        result = fastjson.loads(answer)
        if "error" in result:
            raise from_kind(result["kind"], result["error"])
        return result["code"], result["output"].encode("latin-1"), result["truncated"], \
            result["timed_out"]

    def close(self) -> None:
        """The launcher ends (it reads EOF) and is reaped."""
        self._sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _open_procs_files(directories: list[str]) -> list[int]:
    """The file that moves the writing thread into each cgroup: v1's `tasks` (a thread of its
    own: no global lock), cgroup2's `cgroup.procs` first. A cgroup.procs write may wait for an
    RCU grace period before it moves us: on a hybrid host, while we are not yet in (joining)
    or no longer in (leaving) the v1 hierarchies that list the container's processes."""
    fds = []
    try:
        for directory in sorted(directories, key=lambda d: os.path.exists(os.path.join(d, "tasks"))):
            name = "tasks" if os.path.exists(os.path.join(directory, "tasks")) else "cgroup.procs"
            fds.append(os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _own_cgroup_dirs(container_dirs: list[str]) -> list[str]:
    """Our own cgroup in each hierarchy the container's directories are in (a directory is
    <mount point>/<path>; /proc/self/cgroup gives our path per hierarchy)."""
    mounts = hierarchies(CGROUP_ROOT)
    ours = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            names = controllers.split(",") if controllers else ["unified"]
            for name in names:
                mount_point = mounts.get(name)
                if mount_point is not None:
                    ours[mount_point] = path
    found = []
    for directory in container_dirs:
        mount_point = max((m for m in ours if directory.startswith(m.rstrip("/") + "/")), key=len, default=None)
        if mount_point is None:  # cgroup2 alone: the whole hierarchy
            mount_point = CGROUP_ROOT
        found.append(mount_point.rstrip("/") + ours.get(mount_point, "/"))
    return found


def _serve(sock: socket.socket, spec: dict, program, join: list[int], leave: list[int]) -> None:
    """The launcher's life: join the container, then one probe per request until EOF."""
    proc = _join(spec, program)
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the credentials: changing them clears it
    env = proc.get("env") or []
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    while True:
        request = sock.recv(65536)
        if not request:
            return
        request = fastjson.loads(request)
        try:
            result = _probe(request, env, environ, null, join, leave)
        except BerthError as err:
            result = {"error": str(err), "kind": err.kind}
        except OSError as err:
            result = {"error": f'exec: "{request["argv"][0]}": {(err.strerror or str(err)).lower()}',
                      "kind": "cannot_invoke"}
        sock.send(fastjson.dumps(result).encode())


def _join(spec: dict, program) -> dict:
    """An exec's steps (runtime.container: _intermediate, then _init), on ourselves."""
    proc = spec.get("process") or {}
    sc.prctl(sc.PR_SET_NAME, b"berth-probe")  # what ps shows on the host (the container never sees it)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    process.set_oom_score_adj(proc)
    _enter_namespaces((spec.get("linux") or {}).get("namespaces") or ())
    process.set_rlimits(proc.get("rlimits"))
    os.chdir(proc.get("cwd") or "/")
    no_new_privileges = proc.get("noNewPrivileges")
    if program is not None and not no_new_privileges:
        _load_seccomp(program)
    process.set_credentials(proc)
    if program is not None and no_new_privileges:
        _load_seccomp(program)
    return proc


def _probe(request: dict, env: list[str], environ: dict, null: int, join: list[int], leave: list[int]) -> dict:
    _reap_left()
    argv = request["argv"]
    path = process.find_executable(argv[0], env)
    reader, writer = os.pipe()
    try:
        try:
            for fd in join:  # one may be gone (the container's cgroup being removed)...
                os.write(fd, b"0")
            pid = os.posix_spawn(path, argv, environ, setpgroup=0, setsigmask=(), setsigdef=SPAWN_RESET,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, writer, 1),
                                               (os.POSIX_SPAWN_DUP2, writer, 2)])
        finally:
            for fd in reversed(leave):  # ...then we leave those joined already: they could never be removed
                os.write(fd, b"0")
    finally:
        os.close(writer)
    try:
        output, truncated, timed_out = _collect(pid, reader, request["timeout"], request["limit"])
    finally:
        os.close(reader)
    if timed_out and not os.waitpid(pid, os.WNOHANG)[0]:  # out of our reach, running on
        return {"code": -1, "output": output.decode("latin-1"), "truncated": truncated,
                "timed_out": True}
    return {"code": wait_exit_code(pid), "output": output.decode("latin-1"),
            "truncated": truncated, "timed_out": timed_out}


def _collect(pid: int, reader: int, timeout: float, limit: int) -> tuple[bytes, bool, bool]:
    """The probe's output until it ends (not until its pipe closes: a child it left behind
    may hold it), the first `limit` bytes kept; its process group killed after `timeout`.
    (output, truncated, timed out)"""
    output = bytearray()
    exited = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(reader, select.POLLIN)
    poller.register(exited, select.POLLIN)
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and not timed_out:
                timed_out = True
                if not _kill_group(pid):
                    return bytes(output[:limit]), len(output) > limit, True
            ready = [fd for fd, _ in poller.poll(None if timed_out else max(0.0, left) * 1000)]
            if reader in ready and not _read_into(reader, output, limit):
                poller.unregister(reader)  # EOF: only its end is awaited now
            if exited in ready:
                break
        for _ in range(DRAIN_ROUNDS):
            if not select.select([reader], [], [], 0)[0] or not _read_into(reader, output, limit):
                break
    finally:
        os.close(exited)
    return bytes(output[:limit]), len(output) > limit, timed_out


def _read_into(reader: int, output: bytearray, limit: int) -> bool:
    """One read; past `limit`, one byte is kept (to tell it was cut) and the rest dropped."""
    data = os.read(reader, 65536)
    if not data:
        return False
    output.extend(data[:max(0, limit + 1 - len(output))])
    return True


def _kill_group(pid: int) -> bool:
    """The probe and what it started (its process group), as docker's timeout ends it; False
    if it is beyond our reach (it became another user: we hold only the container's
    capabilities), then it runs on, reaped whenever it ends (_reap_left)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    return True


def _reap_left() -> None:
    """Reap the probes that outlived their timeout and have ended since."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
