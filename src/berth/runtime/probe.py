"""A probe launcher: one process per running container with a health check, forked by its
supervisor at the first probe, that has joined the container once as an exec's process joins
it (namespaces, rlimits, working directory, seccomp, user, groups, capabilities,
no_new_privs: the OCI spec of an exec), and then starts each probe with posix_spawn (vfork
and exec: no Python runs in the probe, nothing is copied). A health check every second then
costs a spawn, not a fork of the supervisor (whose pages both would then copy) and a join.

The launcher itself is no process of the container: its pid namespace is the host's (joining
a pid namespace applies to the children only), so `top` and the container's `ps` see the
probes while they run, never it. Its probes are born in the container's cgroups and count
there, as an exec's process does. On cgroup v1 the launcher lives in the container's
hierarchies but PER_PROBE ones (its CPU counts with the container's, as docker's exec
machinery's does not, ~0.04 % of a core; it is frozen with it), and joins the pids and
memory cgroups only for the instant of each spawn (the thread's `tasks`: no global lock), so
that the container's pids.current and memory usage are its own processes', as in docker;
joining all ~10 hierarchies and leaving them again was most of a probe's cost. On cgroup2,
where one directory holds every controller, it joins and leaves that one.

It keeps the schedule itself: its caller (monitor.probing, in the supervisor's poll loop)
sends it a schedule_line once, and is woken only by answers, one per probe, never waiting
for them: a probe a second costs the supervisor one wake-up, not two. The schedule is JSON:
{"argv", "timeout", "limit", "due" (unix time of the first probe), "interval",
"start_interval" (docker's: used while "starting" and before "start_until")}; a later line
updates it ({"starting": false} once the health leaves "starting" by failures: a success
tells the launcher itself). Each answer is {"begun" (ns), "code", "output" (its bytes as
latin-1), "truncated", "timed_out"}, or {"begun", "error"} when the command cannot start
(docker's exec errors). The next probe is due an interval after an answer, as docker's next
one after a result; while the container's freezer says frozen (paused), none is started.
Imports nothing the supervisor does not need anyway beyond runtime.process and
runtime.syscalls."""

import _signal as signal  # `signal` imports enum
import gc
import os
import select
import time

from berth import fastjson
from berth.errors import BerthError
from berth.runtime import process
from berth.runtime import syscalls as sc
from berth.runtime.forked import keep_only_fds
from berth.runtime.reap import wait_exit_code

DRAIN_ROUNDS = 64  # reads per probe once it ended: what it left in the pipe, not what its children write on
SPAWN_RESET = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)


PER_PROBE = ("pids", "memory")  # the controllers a probe joins alone (see above)
NAMESPACE_FLAGS = {"ipc": sc.CLONE_NEWIPC, "uts": sc.CLONE_NEWUTS, "network": sc.CLONE_NEWNET,
                   "pid": sc.CLONE_NEWPID, "cgroup": sc.CLONE_NEWCGROUP, "mount": sc.CLONE_NEWNS}


class ProbeLauncher:
    """The caller's handle on a launcher forked for an exec's OCI `process` and `namespaces`
    ([[type, path]]), with the container's seccomp filter (flags, BPF bytes; None: none);
    `join` and `leave` are the cgroup files that move a thread into the container's PER_PROBE
    cgroups and back into ours (join_files, leave_files), `stay` those of the container's other
    cgroups, which the launcher joins for its life (v1)."""

    __slots__ = ("pid", "answers", "_requests", "_pending")

    def __init__(self, process_spec: dict, namespaces: list, seccomp, join: list[str], leave: list[str],
                 stay: list[str] = (), freeze_file: str | None = None):
        _reap_ended(0)  # those killed while frozen, since thawed
        requests, self._requests = os.pipe()
        self.answers, answering = os.pipe()
        fds = []
        freezer = -1
        try:
            fds = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in [*join, *leave, *stay]]
            if freeze_file:
                freezer = os.open(freeze_file, os.O_RDONLY | os.O_CLOEXEC)
            # The collector writes a header in every object it walks: the launcher never runs it,
            # and what the caller has so far is left out of the caller's walks, so fewer of the
            # pages both share get copied.
            gc.freeze()
            self.pid = os.fork()
            if self.pid == 0:
                try:
                    gc.disable()
                    # its caller's fds (the container's pipes, the attach socket) reach no probe
                    keep_only_fds(requests, answering, freezer, *fds)
                    for fd in fds[len(join) + len(leave):]:
                        os.write(fd, b"0")
                    _serve(requests, answering, process_spec, namespaces, seccomp, fds[:len(join)],
                           fds[len(join):len(join) + len(leave)], freezer)
                finally:
                    os._exit(0)
        except BaseException:
            for fd in (self.answers, self._requests):
                os.close(fd)
            raise
        finally:
            for fd in [requests, answering] + fds + ([freezer] if freezer >= 0 else []):
                os.close(fd)
        self._pending = b""

    def send(self, line: bytes) -> None:
        """A schedule_line, or an update of it ({"starting": false}, encoded as one line)."""
        os.write(self._requests, line)

    def answer(self) -> dict | None:
        """The answer, once whole ({"code", "output", "truncated", "timed_out"} or {"error"});
        None while it is still coming; {"error"} too if the launcher ended."""
        data = os.read(self.answers, 1 << 16)
        if not data:
            return {"error": "the container's probe launcher ended", "ended": True}
        self._pending += data
        if not self._pending.endswith(b"\n"):
            return None
        answer, self._pending = fastjson.loads(self._pending), b""
        return answer

    def close(self) -> None:
        """The launcher ends (it reads EOF) and is reaped; a probe it runs is killed with it."""
        for fd in (self._requests, self.answers):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _UNREAPED.append(self.pid)
        _reap_ended(CLOSE_WAIT)


CLOSE_WAIT = 1.0  # seconds to wait for a killed launcher: a frozen one (a paused container) dies once thawed
_UNREAPED = []  # the launchers killed and not reaped yet


def launchers_unreaped() -> list[int]:
    """The launchers killed and not reaped yet (frozen ones, say), after a last look."""
    _reap_ended(0)
    return list(_UNREAPED)


def _reap_ended(wait: float) -> None:
    """Reap the killed launchers (ours: we forked them) that have ended, waiting up to `wait`
    seconds for the last one; a frozen one stays listed, for the next call (or reap_orphans)."""
    for pid in list(_UNREAPED):
        try:
            if pid == _UNREAPED[-1] and wait:
                exited = os.pidfd_open(pid)
                try:
                    select.select([exited], [], [], wait)
                finally:
                    os.close(exited)
            done = os.waitpid(pid, os.WNOHANG)[0]
        except (ChildProcessError, ProcessLookupError):
            done = True
        if done:
            _UNREAPED.remove(pid)


def schedule_line(argv: list[str], timeout: float, limit: int, due: float, interval: float,
                  start_interval: float | None = None, start_until: float = 0.0, starting: bool = False) -> bytes:
    """The schedule that runs `argv` (at most `timeout` seconds, `limit` bytes of output kept)
    at `due`, then `interval` seconds after each answer (`start_interval` while `starting`,
    until the unix time `start_until`)."""
    return (fastjson.dumps({"argv": argv, "timeout": timeout, "limit": limit, "due": due, "interval": interval,
                            "start_interval": start_interval or interval, "start_until": start_until,
                            "starting": starting}) + "\n").encode()


def interval_after(starting: bool, start_until: float, start_interval: float, interval: float) -> float:
    """docker's getInterval: the start interval while the health is starting and the start
    period (until the unix time `start_until`) lasts, else the interval."""
    return start_interval if starting and time.time() < start_until else interval


def _delay(schedule: dict) -> float:
    return interval_after(schedule["starting"], schedule["start_until"], schedule["start_interval"],
                          schedule["interval"])


def join_files(directories: list[str]) -> list[str]:
    """The file that moves the writing thread into each cgroup: v1's `tasks` (a thread of its
    own: no global lock), cgroup2's `cgroup.procs` first. A cgroup.procs write may wait for an
    RCU grace period before it moves us: on a hybrid host, while we are not yet in (joining)
    or no longer in (leaving) the v1 hierarchies that list the container's processes."""
    found = []
    for directory in directories:
        tasks = os.path.join(directory, "tasks")
        found.append(tasks if os.path.exists(tasks) else os.path.join(directory, "cgroup.procs"))
    return sorted(found, key=lambda path: path.endswith("/tasks"))


def leave_files(container_dirs: list[str]) -> list[str]:
    """join_files of our own cgroup in each hierarchy the container's directories are in (a
    directory is <mount point>/<path>; /proc/self/cgroup gives our path per hierarchy), in
    the order to leave them (the reverse of joining)."""
    from berth.runtime.cgroups import CGROUP_ROOT  # lazy: only the engine plans a probing
    from berth.runtime.cgroups.v1 import hierarchies

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
    return list(reversed(join_files(found)))


def _serve(requests: int, answering: int, process_spec: dict, namespaces: list, seccomp, join: list[int],
           leave: list[int], freezer: int) -> None:
    """The launcher's life: join the container, then probe on schedule until EOF."""
    _join(process_spec, namespaces, seccomp)
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the credentials: changing them clears it
    env = process_spec.get("env") or []
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pending = b""
    left = [False]  # a probe outlived its timeout: reap it once it ends
    schedule = None
    due = ended = 0.0
    while True:
        wait = None if schedule is None else max(0.0, due - time.time())
        if select.select([requests], [], [], wait)[0]:
            data = os.read(requests, 1 << 16)
            if not data:
                return
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if schedule is None:
                    schedule = fastjson.loads(line)
                    due = schedule["due"]
                else:  # an update: the next probe is due as it says, after the last
                    schedule.update(fastjson.loads(line))
                    due = (ended or time.time()) + _delay(schedule)
            continue
        if time.time() < due:
            continue
        if frozen(freezer):  # docker does not probe a paused container
            due = time.time() + schedule["interval"]
            continue
        begun = time.time_ns()
        try:
            result = _probe(schedule, env, environ, null, join, leave, left)
        except BerthError as err:
            result = {"error": str(err)}
        except OSError as err:
            result = {"error": f'exec: "{schedule["argv"][0]}": {(err.strerror or str(err)).lower()}'}
        result["begun"] = begun
        if result.get("code") == 0 and not result["timed_out"]:
            schedule["starting"] = False  # a success makes the container healthy
        os.write(answering, (fastjson.dumps(result) + "\n").encode())
        ended = time.time()
        due = ended + _delay(schedule)


def frozen(freezer: int) -> bool:
    """The container's freezer state file (an fd kept open: v1 freezer.state, v2
    cgroup.freeze) says frozen. (A launcher in a v1 freezer is frozen itself then; on cgroup2
    it is not in the container's cgroup between probes.)"""
    if freezer < 0:
        return False
    try:
        return os.pread(freezer, 64, 0).strip() not in (b"THAWED", b"0")
    except OSError:
        return False


def _join(process_spec: dict, namespaces: list, seccomp) -> None:
    """An exec's steps (runtime.container: _intermediate, then _init), on ourselves; the mount
    namespace last (all paths are opened first: joining it changes what paths mean)."""
    sc.prctl(sc.PR_SET_NAME, b"berth-probe")  # what ps shows on the host (the container never sees it)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    process.set_oom_score_adj(process_spec)
    joins = [(os.open(path, os.O_RDONLY | os.O_CLOEXEC), NAMESPACE_FLAGS[kind]) for kind, path in namespaces]
    for fd, flag in sorted(joins, key=lambda join: join[1] == sc.CLONE_NEWNS):
        sc.setns(fd, flag)
        os.close(fd)
    process.set_rlimits(process_spec.get("rlimits"))
    os.chdir(process_spec.get("cwd") or "/")
    no_new_privileges = process_spec.get("noNewPrivileges")
    if seccomp is not None and not no_new_privileges:
        sc.seccomp_set_mode_filter(*seccomp)
    process.set_credentials(process_spec)
    if seccomp is not None and no_new_privileges:
        sc.seccomp_set_mode_filter(*seccomp)


def _probe(request: dict, env: list[str], environ: dict, null: int, join: list[int], leave: list[int],
           left: list[bool]) -> dict:
    if left[0]:
        left[0] = _reap_left()
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
            for fd in leave:  # ...then we leave those joined already: they could never be removed
                os.write(fd, b"0")
    finally:
        os.close(writer)
    try:
        output, truncated, timed_out = _collect(pid, reader, request["timeout"], request["limit"])
    finally:
        os.close(reader)
    if timed_out and not os.waitpid(pid, os.WNOHANG)[0]:  # out of our reach, running on
        left[0] = True
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


def _reap_left() -> bool:
    """Reap the probes that outlived their timeout and have ended since; True while one runs."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return False
    return True
