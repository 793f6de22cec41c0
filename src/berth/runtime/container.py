"""Start one OCI container process in-process: fork, join the cgroup, enter namespaces,
fork the container's pid 1, build its filesystem and credentials, exec.

Only sequencing lives here; each step is a call into the module that owns it."""

import os

from berth import fastjson as json
from berth.errors import BerthError
from berth.runtime import mount, process
from berth.runtime import syscalls as sc
from berth.runtime.cgroups import open_cgroup

NAMESPACE_FLAGS = {
    "mount": sc.CLONE_NEWNS, "pid": sc.CLONE_NEWPID, "uts": sc.CLONE_NEWUTS,
    "ipc": sc.CLONE_NEWIPC, "network": sc.CLONE_NEWNET, "cgroup": sc.CLONE_NEWCGROUP,
    "user": sc.CLONE_NEWUSER,
}


class Launched:
    """A started container process: its host pid, its cgroup, and the pty master with -t."""

    __slots__ = ("pid", "cgroup", "console_fd")

    def __init__(self, pid: int, cgroup, console_fd: int | None):
        self.pid = pid
        self.cgroup = cgroup
        self.console_fd = console_fd


class _Plan:
    """What the forked processes need to build the container: the spec, where its rootfs
    is (and the overlay to mount there), its stdio, the exec fifo, the compiled seccomp filter,
    and its cgroup's host directories (what a "cgroup" mount shows, bound before pid 1 is in them)."""

    __slots__ = ("spec", "rootfs", "overlay", "stdio", "exec_fifo", "seccomp", "cgroup_dirs")

    def __init__(self, spec, rootfs, overlay, stdio, exec_fifo, seccomp_cache, cgroup_dirs=None,
                 seccomp_program=None):
        self.spec = spec
        self.rootfs = rootfs
        self.overlay = overlay
        self.stdio = stdio
        self.exec_fifo = exec_fifo
        self.cgroup_dirs = cgroup_dirs
        # Compiled (or fetched from the cache) before forking: pid 1 cannot see the cache
        # after pivot_root, and a bad profile then fails the start cleanly.
        section = (spec.get("linux") or {}).get("seccomp")
        self.seccomp = seccomp_program
        if section and seccomp_program is None:
            from berth.runtime import seccomp

            self.seccomp = seccomp.prepare(section, seccomp_cache)


def start(spec: dict, rootfs: str, overlay: str | None = None, stdio=(0, 1, 2),
          exec_fifo: str | None = None, on_created=None, seccomp_cache: str | None = None,
          seccomp_program=None) -> Launched:
    """Create the container and, unless `exec_fifo` is given, exec its process.

    With `exec_fifo` the process stops just before exec until someone opens the fifo for
    reading (runc's create/start split). `on_created(pid)` runs once pid 1 exists in its
    namespaces and cgroup and before it goes on (the place of OCI's createRuntime hooks:
    the engine plugs the network in there). Raises BerthError (with docker's exit code) if
    anything fails; then nothing of the container is left behind. `seccomp_cache` is the
    directory of compiled seccomp filters (none: compile every time); `seccomp_program`, a
    filter the caller already has, replaces linux.seccomp."""
    linux = spec.get("linux") or {}
    cgroup = open_cgroup(linux.get("cgroupsPath") or "/berth/" + os.urandom(8).hex())
    cgroup.create()
    try:
        cgroup.apply(linux.get("resources"))
        plan = _Plan(spec, rootfs, overlay, stdio, exec_fifo, seccomp_cache, cgroup.host_dirs(), seccomp_program)
        return _fork_container(plan, cgroup, on_created)
    except BaseException:
        cgroup.destroy()
        raise


def exec_in(spec: dict, stdio=(0, 1, 2), seccomp_cache: str | None = None, seccomp_program=None) -> Launched:
    """Start another process in a running container: `spec` names the container's
    namespaces by path (/proc/<pid>/ns/...) and its existing cgroup, which is joined, not
    created, and must not be destroyed by the caller."""
    linux = spec.get("linux") or {}
    plan = _Plan(spec, None, None, stdio, None, seccomp_cache, seccomp_program=seccomp_program)
    return _fork_container(plan, open_cgroup(linux["cgroupsPath"]))


def _fork_container(plan: _Plan, cgroup, on_created=None) -> Launched:
    spec = plan.spec
    status_r, status_w = os.pipe()
    # The parent moves pid 1 into its cgroup while pid 1 builds its rootfs: the first
    # cgroup.procs write on a host waits ~10-15 ms for an RCU grace period.
    joined_r, joined_w = os.pipe()
    terminal = bool((spec.get("process") or {}).get("terminal"))
    console_parent = console_child = None
    if terminal:
        from berth.runtime import console

        console_parent, console_child = console.socketpair()
    intermediate = os.fork()
    if intermediate == 0:
        os.close(status_r)
        os.close(joined_w)
        if console_parent is not None:
            console_parent.close()
        _intermediate(plan, status_w, joined_r, console_child)
    os.close(status_w)
    os.close(joined_r)
    if console_child is not None:
        console_child.close()
    messages = _Messages(status_r)
    pid = None
    try:
        os.waitpid(intermediate, 0)
        first = messages.next()
        if first is None or "error" in first:
            raise _error_from(first)
        pid = first["pid"]
        cgroup.add(pid)
        if on_created is not None:
            on_created(pid)
        os.write(joined_w, b"j")
        console_fd = None
        if console_parent is not None:
            from berth.runtime import console

            console_fd = console.recv_fd(console_parent)
        # Without a fifo, EOF (the pipe closed by exec) means the process runs its command.
        message = messages.next()
        if message is not None and "error" in message:
            raise _error_from(message)
        return Launched(pid, cgroup, console_fd)
    except BaseException:
        if pid:
            _kill_and_reap(pid)
        raise
    finally:
        messages.close()
        os.close(joined_w)
        if console_parent is not None:
            console_parent.close()


def _intermediate(plan: _Plan, status_w, joined_r, console_sock) -> None:
    """Runs in the first child: enter namespaces, fork pid 1, report its pid."""
    try:
        # Non-dumpable until exec (inherited by the fork below): nothing in the container can
        # open /proc/<pid>/exe of our interpreter and write through it (runc CVE-2019-5736).
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        namespaces = (plan.spec.get("linux") or {}).get("namespaces") or ()
        flags = _enter_namespaces(namespaces)
        child = os.fork()
        if child == 0:
            _init(plan, status_w, joined_r, console_sock, flags, namespaces)
        _send(status_w, {"pid": child})
        os._exit(0)
    except BaseException as err:
        _report_and_exit(status_w, err)


def _enter_namespaces(namespaces) -> int:
    """setns into namespaces given by path, unshare the rest; returns the unshared flags.
    All paths are opened first: joining the mount namespace changes what paths mean."""
    flags = 0
    joins = [(os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC), NAMESPACE_FLAGS[ns["type"]])
             for ns in namespaces if ns.get("path")]
    for fd, flag in sorted(joins, key=lambda j: j[1] == sc.CLONE_NEWNS):  # mount namespace last
        try:
            sc.setns(fd, flag)
        finally:
            os.close(fd)
    for ns in namespaces:
        if not ns.get("path") and ns["type"] != "cgroup":  # cgroup: unshared by pid 1 once in its cgroup
            flags |= NAMESPACE_FLAGS[ns["type"]]
    if flags:
        sc.unshare(flags)
    return flags


def _enter_cgroup_namespace(namespaces) -> None:
    """After joining the cgroup, so the namespace's root is the container's own cgroup."""
    if any(ns["type"] == "cgroup" and not ns.get("path") for ns in namespaces):
        try:
            sc.unshare(sc.CLONE_NEWCGROUP)
        except OSError:
            pass  # kernels without cgroup namespaces: docker runs without one too


def _init(plan: _Plan, status_w, joined_r, console_sock, flags, namespaces) -> None:
    """The container's pid 1 until exec. Never returns."""
    spec, rootfs, exec_fifo = plan.spec, plan.rootfs, plan.exec_fifo
    try:
        proc = spec.get("process") or {}
        linux = spec.get("linux") or {}
        os.setsid()
        # runc's trick: hold the fifo by an O_PATH fd, reopened through /proc after pivot_root.
        fifo_fd = os.open(exec_fifo, os.O_PATH | os.O_CLOEXEC) if exec_fifo else None
        if flags & sc.CLONE_NEWNET:
            from berth.runtime.netlink_lo import loopback_up

            loopback_up()
        if flags & sc.CLONE_NEWNS:
            mount.prepare_rootfs(spec, rootfs, plan.overlay, plan.cgroup_dirs)
            mount.pivot_root(rootfs)
            _write_sysctls(linux.get("sysctl"))
            mount.mask_paths(linux.get("maskedPaths"))
            mount.readonly_paths(linux.get("readonlyPaths"))
            if (spec.get("root") or {}).get("readonly"):
                mount.readonly_root()
        if flags & sc.CLONE_NEWUTS and spec.get("hostname"):
            sc.sethostname(spec["hostname"])
        process.set_rlimits(proc.get("rlimits"))
        if os.read(joined_r, 1) != b"j":
            raise BerthError("container was not placed in its cgroup")
        os.close(joined_r)
        _enter_cgroup_namespace(namespaces)
        if console_sock is not None:
            from berth.runtime import console

            master, slave = console.open_pty_in_container()
            size = proc.get("consoleSize")
            if size:
                console.set_winsize(master, size.get("height", 24), size.get("width", 80))
            console.send_fd(console_sock, master)
            os.close(master)
            console_sock.close()
            console.make_controlling(slave)
        else:
            for target, fd in enumerate(plan.stdio):
                if fd != target:
                    os.dup2(fd, target)
        cwd = proc.get("cwd") or "/"
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
        # runc's order: without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in
        # before the capabilities are dropped; with it, as late as possible.
        no_new_privileges = proc.get("noNewPrivileges")
        if plan.seccomp is not None and not no_new_privileges:
            _load_seccomp(plan.seccomp)
        process.set_credentials(proc)
        process.close_extra_fds(keep=(status_w,))
        if plan.seccomp is not None and no_new_privileges:
            _load_seccomp(plan.seccomp)
        if fifo_fd is not None:
            _send(status_w, {"ready": True})
            fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, b"0")
            os.close(fd)
        process.exec_process(proc)
    except BaseException as err:
        _report_and_exit(status_w, err)


def _load_seccomp(program) -> None:
    from berth.runtime import seccomp

    seccomp.load(program)


def _write_sysctls(sysctls: dict | None) -> None:
    """OCI linux.sysctl, written in the container's own namespaces before /proc/sys turns read-only."""
    for key, value in (sysctls or {}).items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


def _send(fd: int, message: dict) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")


def _report_and_exit(status_w: int, err: BaseException) -> None:
    try:
        code = err.exit_code if isinstance(err, BerthError) else 125
        if os.environ.get("BERTH_DEBUG"):
            import traceback

            traceback.print_exc()
        _send(status_w, {"error": _describe(err), "code": code})
    finally:
        os._exit(code if isinstance(err, BerthError) else 125)


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename is None and err.args[1:]:
        return str(err.args[1])
    return str(err) or type(err).__name__


def _error_from(message: dict | None) -> BerthError:
    if message is None:
        return BerthError("container init exited without reporting")
    return BerthError(message["error"], message.get("code", 125))


class _Messages:
    """Line-delimited JSON from the container's status pipe; None at EOF."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""

    def next(self) -> dict | None:
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        os.close(self.fd)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def become_subreaper() -> None:
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
