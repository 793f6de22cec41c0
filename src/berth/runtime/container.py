"""Start one OCI container process in-process: fork, join the cgroup, enter namespaces,
fork the container's pid 1, build its filesystem and credentials, exec.

Only sequencing lives here; each step is a call into the module that owns it. Every kernel
call goes through `kernel` (runtime.syscalls, or a test's recording stand-in), so the order of
the steps is unit-tested without root (tests/unit/test_runtime_sequence.py)."""

import os

from berth import fastjson as json
from berth.errors import BerthError, from_kind, start_exit_code
from berth.runtime import mount, process
from berth.runtime import syscalls as sc
from berth.runtime.cgroups import cgroup_path, open_cgroup
from berth.runtime.rootfs_paths import open_in_root

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
    its cgroup's host directories (what a "cgroup" mount shows, bound before pid 1 is in them)
    and its OCI hooks (runtime.hooks.Hooks, None without)."""

    __slots__ = ("spec", "rootfs", "overlay", "stdio", "exec_fifo", "seccomp", "cgroup_dirs", "hooks", "idmaps",
                 "state", "preserve_fds", "session_keyring", "no_pivot")

    def __init__(self, spec, rootfs, overlay, stdio, exec_fifo, seccomp_cache, cgroup_dirs=None,
                 seccomp_program=None, hooks=None, idmaps=None, state=None, preserve_fds=0,
                 session_keyring=None, no_pivot=False):
        self.session_keyring = session_keyring  # "_ses.<id>" to join (runc's default), None: keep the caller's
        self.no_pivot = no_pivot  # runc's --no-pivot: MS_MOVE the rootfs onto / and chroot (ramfs roots)
        self.preserve_fds = preserve_fds  # fds 3..3+n-1 go into the container (runc's --preserve-fds)
        self.spec = spec
        self.rootfs = rootfs
        self.overlay = overlay
        self.stdio = stdio
        self.exec_fifo = exec_fifo
        self.cgroup_dirs = cgroup_dirs
        self.hooks = hooks
        self.idmaps = idmaps  # mount index -> fd of its user namespace (idmapped mounts)
        self.state = state  # id, bundle, annotations: what a seccomp agent is told
        # Compiled (or fetched from the cache) before forking: pid 1 cannot see the cache
        # after pivot_root, and a bad profile then fails the start cleanly.
        section = (spec.get("linux") or {}).get("seccomp")
        self.seccomp = seccomp_program
        if section and seccomp_program is None:
            from berth.runtime import seccomp  # lazy: only a bundle with linux.seccomp

            self.seccomp = seccomp.prepare(section, seccomp_cache)


def start(spec: dict, rootfs: str, overlay: str | None = None, stdio=(0, 1, 2),
          exec_fifo: str | None = None, on_created=None, seccomp_cache: str | None = None,
          seccomp_program=None, hooks=None, state: dict | None = None, preserve_fds: int = 0,
          session_keyring: str | None = None, no_pivot: bool = False) -> Launched:
    """Create the container and, unless `exec_fifo` is given, exec its process.

    With `exec_fifo` the process stops just before exec until someone opens the fifo for
    reading (runc's create/start split); it then writes "0", or "1" and the error of a
    failed startContainer hook. `on_created(pid)` runs once pid 1 exists in its namespaces
    and cgroup and before it goes on (the engine plugs the network in there). `hooks`
    (runtime.hooks.Hooks) runs spec.hooks of the create and start phases; poststart and
    poststop are the caller's. Raises BerthError (with docker's exit code) if anything fails;
    then nothing of the container is left behind. `seccomp_cache` is the directory of
    compiled seccomp filters (none: compile every time); `seccomp_program`, a filter the
    caller already has, replaces linux.seccomp. `state` (id, bundle, annotations) is the
    container's, for a seccomp agent (linux.seccomp.listenerPath). `session_keyring` names
    the session keyring pid 1 joins (runc's "_ses.<id>"; None keeps the caller's); `no_pivot`
    moves the rootfs onto / and chroots instead of pivot_root (runc's --no-pivot)."""
    linux = spec.get("linux") or {}
    if hooks is None and spec.get("hooks"):
        from berth.runtime.hooks import Hooks  # only a bundle with hooks pays for the import

        hooks = Hooks(spec["hooks"], {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": "", "bundle": "",
                                      "annotations": spec.get("annotations") or {}})
    cgroup = open_cgroup(linux.get("cgroupsPath") or cgroup_path(os.urandom(8).hex()))
    cgroup.create()
    idmaps = {}
    try:
        cgroup.apply(_with_default_devices(linux.get("resources")))
        idmaps = _idmap_namespaces(spec.get("mounts") or ())
        plan = _Plan(spec, rootfs, overlay, stdio, exec_fifo, seccomp_cache, cgroup.host_dirs(), seccomp_program,
                     hooks, idmaps, state, preserve_fds, session_keyring, no_pivot)
        return _fork_container(plan, cgroup, on_created)
    except BaseException:
        cgroup.destroy()
        raise
    finally:
        for fd in idmaps.values():
            os.close(fd)


# runc's specconv.AllowedDevices, appended to every container's device rules (so docker's too):
# mknod of anything, and the default devices, /dev/pts/* and /dev/ptmx.
RUNC_ALLOWED_DEVICES = tuple(
    {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}
    for kind, major, minor, access in (
        ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"),
        ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
    ))


def _with_default_devices(resources: dict | None) -> dict | None:
    """linux.resources with runc's allowed devices after the spec's own rules, when it has any."""
    if not resources or not resources.get("devices"):
        return resources
    return {**resources, "devices": list(resources["devices"]) + [
        {key: value for key, value in rule.items() if value is not None} for rule in RUNC_ALLOWED_DEVICES]}


def _idmap_namespaces(mounts) -> dict:
    """For each idmapped mount (uidMappings/gidMappings), the fd of a user namespace with its
    mappings, made here, where /proc shows the pids of our children."""
    idmaps = {}
    try:
        for index, m in enumerate(mounts):
            if m.get("uidMappings") or m.get("gidMappings"):
                from berth.runtime.userns import mapping_namespace  # lazy: only idmapped mounts

                idmaps[index] = mapping_namespace(m.get("uidMappings") or [], m.get("gidMappings") or [])
    except BaseException:
        for fd in idmaps.values():
            os.close(fd)
        raise
    return idmaps


def exec_in(spec: dict, stdio=(0, 1, 2), seccomp_cache: str | None = None, seccomp_program=None,
            preserve_fds: int = 0, session_keyring: str | None = None) -> Launched:
    """Start another process in a running container: `spec` names the container's
    namespaces by path (/proc/<pid>/ns/...) and its existing cgroup, which is joined, not
    created, and must not be destroyed by the caller. `session_keyring`: the container's, to
    join (None: keep the caller's)."""
    linux = spec.get("linux") or {}
    plan = _Plan(spec, None, None, stdio, None, seccomp_cache, seccomp_program=seccomp_program,
                 preserve_fds=preserve_fds, session_keyring=session_keyring)
    return _fork_container(plan, open_cgroup(linux["cgroupsPath"]))


def _fork_container(plan: _Plan, cgroup, on_created=None, kernel=sc) -> Launched:
    spec = plan.spec
    status_r, status_w = kernel.pipe()
    # The parent moves pid 1 into its cgroup while pid 1 builds its rootfs: the first
    # cgroup.procs write on a host waits ~10-15 ms for an RCU grace period.
    joined_r, joined_w = kernel.pipe()
    terminal = bool((spec.get("process") or {}).get("terminal"))
    console_parent = console_child = None
    if terminal:
        from berth.runtime import console  # lazy: only -t needs a pty

        console_parent, console_child = console.socketpair()
    intermediate = kernel.fork()
    if intermediate == 0:
        kernel.close(status_r)
        kernel.close(joined_w)
        if console_parent is not None:
            console_parent.close()
        _intermediate(plan, status_w, joined_r, console_child, kernel)
    kernel.close(status_w)
    kernel.close(joined_r)
    if console_child is not None:
        console_child.close()
    messages = _Messages(status_r, kernel)
    pid = None
    try:
        kernel.waitpid(intermediate, 0)
        first = messages.next()
        early = []  # pid 1 may speak ("mounted") before the intermediate has told us its pid
        while first is not None and "error" not in first and "pid" not in first:
            early.append(first)
            first = messages.next()
        messages.pending = early
        if first is None or "error" in first:
            raise _error_from(first)
        pid = first["pid"]
        cgroup.add(pid)
        if on_created is not None:
            _call_on_created(on_created, pid, messages)
        if _hooks_before_pivot(plan):
            _runtime_hooks(plan, messages, pid)
        try:
            kernel.write(joined_w, b"j")
        except BrokenPipeError:  # pid 1 failed before waiting for it, and said why
            raise _error_from(messages.next()) from None
        console_fd = None
        if console_parent is not None:
            from berth.runtime import console  # lazy: only -t needs a pty

            console_fd = console.recv_fd(console_parent)
        # Without a fifo, EOF (the pipe closed by exec) means the process runs its command.
        message = messages.next()
        while message is not None and "seccompFd" in message:  # pid 1 waits for our "s"
            _hand_to_agent(plan, pid, message["seccompFd"], kernel)
            kernel.write(joined_w, b"s")
            message = messages.next()
        if (message is not None and "error" in message) or (message is None and plan.exec_fifo):
            raise _error_from(message)  # with a fifo, pid 1 says it is ready: EOF is its death
        return Launched(pid, cgroup, console_fd)
    except BaseException:
        if pid:
            _kill_and_reap(pid, kernel)
        raise
    finally:
        messages.close()
        kernel.close(joined_w)
        if console_parent is not None:
            console_parent.close()


def _call_on_created(on_created, pid: int, messages) -> None:
    """on_created(pid); when it fails because pid 1 is failing (its namespaces going with it),
    pid 1's reason is the error: it tells it on the status pipe as it exits. A healthy pid 1
    says nothing until "j", so a short wait tells the two apart."""
    try:
        on_created(pid)
    except BaseException:
        import select  # lazy: only a failed on_created; berth-runtime loads no select

        if select.select([messages.fd], [], [], 1)[0]:
            message = messages.next()
            if message is not None and "error" in message:
                raise _error_from(message) from None
        raise


_NEW_LISTENER = 8  # SECCOMP_FILTER_FLAG_NEW_LISTENER: the filter has SCMP_ACT_NOTIFY rules


def _notifies(plan: _Plan) -> bool:
    return plan.seccomp is not None and bool(plan.seccomp.flags & _NEW_LISTENER)


def _hand_to_agent(plan: _Plan, pid: int, fd_number: int, kernel=sc) -> None:
    """The seccomp notification fd of pid 1, sent with the container's state to the seccomp
    agent listening at linux.seccomp.listenerPath (runtime-spec's "container process state":
    one JSON message, the fd by SCM_RIGHTS)."""
    import _socket  # lazy: only SCMP_ACT_NOTIFY
    import struct

    section = plan.spec["linux"]["seccomp"]
    path = section["listenerPath"]
    state = {"ociVersion": plan.spec.get("ociVersion", "1.0.2"), **(plan.state or {}), "status": "creating",
             "pid": pid}
    if not state.get("annotations"):  # runc's omitempty
        state.pop("annotations", None)
    message = json.dumps({"ociVersion": plan.spec.get("ociVersion", "1.0.2"), "fds": ["seccompFd"], "pid": pid,
                          "metadata": section.get("listenerMetadata", ""), "state": state}).encode()
    pidfd = kernel.pidfd_open(pid)
    try:
        fd = kernel.pidfd_getfd(pidfd, fd_number)
    finally:
        kernel.close(pidfd)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])
    except OSError as err:
        raise BerthError(f"failed to send seccomp fd to the agent at {path}: "
                         f"{(err.strerror or str(err)).lower()}") from None
    finally:
        sock.close()
        kernel.close(fd)


def _hooks_before_pivot(plan: _Plan) -> bool:
    return plan.hooks is not None and plan.hooks.before_pivot()


def _runtime_hooks(plan: _Plan, messages, pid: int) -> None:
    """prestart then createRuntime, in the runtime's namespaces, once pid 1 has made its mounts
    (it waits for "j" before its createContainer hooks and pivot_root)."""
    message = messages.next()
    if message is None or "error" in message:
        raise _error_from(message)
    plan.hooks.run("prestart", pid, "creating")
    plan.hooks.run("createRuntime", pid, "creating")


def _intermediate(plan: _Plan, status_w, joined_r, console_sock, kernel=sc) -> None:
    """Runs in the first child: enter namespaces, fork pid 1, report its pid."""
    try:
        # Non-dumpable until exec (inherited by the fork below): nothing in the container can
        # open /proc/<pid>/exe of our interpreter and write through it (runc CVE-2019-5736).
        kernel.prctl(sc.PR_SET_DUMPABLE, 0)
        process.set_oom_score_adj(plan.spec.get("process") or {}, kernel)
        linux = plan.spec.get("linux") or {}
        namespaces = linux.get("namespaces") or ()
        userns = None
        if _new_user_namespace(namespaces):
            from berth.runtime import userns  # lazy: only a user namespace

            userns.unshare_mapped(linux.get("uidMappings"), linux.get("gidMappings"), kernel)
        flags = _enter_namespaces(namespaces, kernel)
        if userns is not None:
            userns.become_root_group(kernel)
        child = kernel.fork()
        if child == 0:
            _init(plan, status_w, joined_r, console_sock, flags, namespaces, kernel)
        _send(status_w, {"pid": child}, kernel)
    except BaseException as err:
        _report_and_exit(status_w, err, kernel)
    kernel._exit(0)


def _new_user_namespace(namespaces) -> bool:
    return any(ns.get("type") == "user" and not ns.get("path") for ns in namespaces)


def _enter_namespaces(namespaces, kernel=sc) -> int:
    """setns into namespaces given by path, unshare the rest; returns the unshared flags.
    All paths are opened first: joining the mount namespace changes what paths mean. The user
    namespace is joined first (it owns the others), the mount namespace last; a new user
    namespace was made before (runtime.userns.unshare_mapped), the others are made in it."""
    flags = 0
    joins = []
    try:
        for ns in namespaces:
            if ns.get("path"):
                joins.append((kernel.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC), NAMESPACE_FLAGS[ns["type"]]))
    except OSError as err:
        for fd, _ in joins:
            kernel.close(fd)
        raise BerthError(f"failed to open namespace path {err.filename or ''}: "
                         f"{os.strerror(err.errno).lower()}") from None
    order = {sc.CLONE_NEWUSER: 0, sc.CLONE_NEWNS: 2}
    for fd, flag in sorted(joins, key=lambda j: order.get(j[1], 1)):
        try:
            kernel.setns(fd, flag)
        finally:
            kernel.close(fd)
    for ns in namespaces:
        # cgroup: unshared by pid 1 once in its cgroup; user: made already
        if not ns.get("path") and ns["type"] not in ("cgroup", "user"):
            flags |= NAMESPACE_FLAGS[ns["type"]]
    if flags:
        kernel.unshare(flags)
    return flags


def _enter_cgroup_namespace(namespaces, kernel=sc) -> None:
    """After joining the cgroup, so the namespace's root is the container's own cgroup."""
    if any(ns["type"] == "cgroup" and not ns.get("path") for ns in namespaces):
        try:
            kernel.unshare(sc.CLONE_NEWCGROUP)
        except OSError:
            pass  # kernels without cgroup namespaces: docker runs without one too


def _init(plan: _Plan, status_w, joined_r, console_sock, flags, namespaces, kernel=sc) -> None:
    """The container's pid 1 until exec. Never returns (but with a test's kernel, whose
    execve does)."""
    spec, exec_fifo = plan.spec, plan.exec_fifo
    try:
        proc = spec.get("process") or {}
        kernel.setsid()
        process.join_session_keyring(plan.session_keyring, plan.rootfs is not None, _listed(namespaces, "user"),
                                     kernel)
        # runc's trick: hold the fifo by an O_PATH fd, reopened through /proc after pivot_root;
        # through the host's /proc, opened now: the rootfs's own /proc may be absent or fake.
        fifo_fd = kernel.open(exec_fifo, os.O_PATH | os.O_CLOEXEC) if exec_fifo else None
        if fifo_fd is not None:
            fifo_fd = (fifo_fd, kernel.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        if flags & sc.CLONE_NEWNET:
            kernel.loopback_up()
        joined = _build_rootfs(plan, flags, status_w, joined_r, namespaces, kernel)
        # a UTS namespace joined by path is the container's too (runc sets its names as well)
        uts = flags & sc.CLONE_NEWUTS or (plan.rootfs is not None and _listed(namespaces, "uts"))
        if uts and spec.get("hostname"):
            kernel.sethostname(spec["hostname"])
        if uts and spec.get("domainname"):
            kernel.setdomainname(spec["domainname"])
        process.set_rlimits(proc.get("rlimits"), kernel)
        process.set_scheduling(proc, kernel)
        process.set_personality((spec.get("linux") or {}).get("personality"), kernel)
        if not joined:
            _await_cgroup(joined_r, namespaces, kernel, keep=_notifies(plan))
        if console_sock is not None:  # the pty is made by runtime.console, with the real kernel
            from berth.runtime import console  # lazy: only -t needs a pty

            master, slave = console.open_pty_in_container(bind_console=plan.rootfs is not None)
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
                    kernel.dup2(fd, target)
        mount.change_dir(proc.get("cwd") or "/", kernel)
        # runc's order: without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in
        # before the capabilities are dropped; with it, as late as possible.
        no_new_privileges = proc.get("noNewPrivileges")
        if plan.seccomp is not None and not no_new_privileges:
            _load_seccomp(plan.seccomp, kernel, status_w, joined_r)
        process.set_credentials(proc, kernel)
        # runc looks the command up now, as the user: a missing one fails `create`, not `start`
        executable = process.find_executable((proc.get("args") or [""])[0], proc.get("env") or [], kernel)
        process.add_home(proc, kernel)
        process.set_security_labels(proc, kernel)
        process.close_extra_fds((status_w, *range(3, 3 + plan.preserve_fds)), kernel)
        if plan.seccomp is not None and no_new_privileges:
            _load_seccomp(plan.seccomp, kernel, status_w, joined_r)
        if fifo_fd is not None:
            _wait_for_start(plan, status_w, fifo_fd, proc, kernel)
        elif plan.hooks is not None:
            plan.hooks.run("startContainer", kernel.getpid(), "created", proc.get("env") or [])
        process.exec_process(proc, kernel, executable)
    except BaseException as err:
        _report_and_exit(status_w, err, kernel)


def _build_rootfs(plan: _Plan, flags: int, status_w: int, joined_r: int, namespaces, kernel=sc) -> bool:
    """Mounts and devices, the create-time hooks, sysctls, masked and read-only paths, then
    pivot_root. Returns whether pid 1 has already waited to be in its cgroup (for the hooks)."""
    spec = plan.spec
    linux = spec.get("linux") or {}
    root = None
    # runc builds the rootfs in a mount namespace joined by path too (not so an exec: no rootfs)
    if flags & sc.CLONE_NEWNS or (plan.rootfs is not None and _listed(namespaces, "mount")):
        root = mount.prepare_rootfs(spec, plan.rootfs, plan.overlay, plan.cgroup_dirs, kernel, plan.idmaps)
    joined = _hooks_before_pivot(plan)
    if joined:
        _container_hooks(plan, status_w, joined_r, namespaces, root, kernel)
    if root is not None:
        # Resolved under the rootfs fd, before pivot_root: /proc/self/fd is still the host's.
        _write_sysctls(root, linux.get("sysctl"), kernel)
        mount.readonly_paths(root, linux.get("readonlyPaths"), kernel)  # runc's order
        mount.mask_paths(root, linux.get("maskedPaths"), kernel)
        if plan.no_pivot:
            mount.move_root(root, plan.rootfs, kernel)
        else:
            mount.pivot_root(root, kernel)
        kernel.close(root)
        if (spec.get("root") or {}).get("readonly"):
            mount.readonly_root(kernel)
    elif plan.rootfs is not None:  # no mount namespace: runc's chroot, and no mount of the spec's
        kernel.chroot(plan.rootfs)
        kernel.chdir("/")
    return joined


def _listed(namespaces, kind: str) -> bool:
    return any(ns.get("type") == kind for ns in namespaces)


def _await_cgroup(joined_r: int, namespaces, kernel=sc, keep: bool = False) -> None:
    """Wait until the parent has put us in our cgroup (and run its hooks), then unshare the
    cgroup namespace there. With `keep` the pipe stays open: the parent answers on it again once
    it has handed our seccomp listener to the agent."""
    if kernel.read(joined_r, 1) != b"j":
        raise BerthError("container was not placed in its cgroup")
    if not keep:
        kernel.close(joined_r)
    _enter_cgroup_namespace(namespaces, kernel)


def _container_hooks(plan: _Plan, status_w: int, joined_r: int, namespaces, root: int | None, kernel=sc) -> None:
    """createContainer hooks, in our namespaces before pivot_root, from the rootfs (runc's
    place), after the parent ran prestart and createRuntime against our mounts."""
    _send(status_w, {"mounted": True}, kernel)
    _await_cgroup(joined_r, namespaces, kernel, keep=_notifies(plan))
    if root is not None:
        kernel.fchdir(root)
    plan.hooks.run("createContainer", kernel.getpid(), "creating")


def _wait_for_start(plan: _Plan, status_w: int, fifo_fd: tuple[int, int], proc: dict, kernel=sc) -> None:
    """runc's create/start split: tell the parent we are ready, block until `start` opens the
    exec fifo, run the startContainer hooks and tell `start` how that went: "0", or "1" and the
    error. The hooks run as the container's process will (after credentials and seccomp,
    runc's place), with its environment unless they have their own."""
    _send(status_w, {"ready": True}, kernel)
    fifo, proc_fds = fifo_fd
    started = kernel.open(str(fifo), os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc_fds)
    kernel.close(proc_fds)
    try:
        if plan.hooks is not None:
            plan.hooks.run("startContainer", kernel.getpid(), "created", proc.get("env") or [])
    except BerthError as err:
        kernel.write(started, b"1" + str(err).encode()[:4000])
        raise
    kernel.write(started, b"0")
    kernel.close(started)


def _load_seccomp(program, kernel=sc, status_w: int | None = None, ack_r: int | None = None) -> None:
    """runtime.seccomp's Program, installed on this (single-threaded) process: from now on every
    syscall, across execve, goes through it. A filter with SCMP_ACT_NOTIFY rules gives a
    listener fd: its number goes to the parent, which takes it (pidfd_getfd) for the seccomp
    agent; we wait for its "s" before going on (and closing ours)."""
    listener = kernel.seccomp_set_mode_filter(program.flags, program.bpf)
    if program.flags & _NEW_LISTENER:
        _send(status_w, {"seccompFd": listener}, kernel)
        if kernel.read(ack_r, 1) != b"s":
            raise BerthError("the seccomp agent was not given the listener")
        kernel.close(ack_r)
        kernel.close(listener)


def _write_sysctls(root: int, sysctls: dict | None, kernel=sc) -> None:
    """OCI linux.sysctl, written in the container's own namespaces before /proc/sys turns
    read-only, through the container's /proc under the rootfs fd `root`."""
    for key, value in (sysctls or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            fd = open_in_root(root, path, os.O_WRONLY, kernel)
        except OSError as err:
            raise OSError(err.errno, os.strerror(err.errno), path) from None
        try:
            kernel.write(fd, value.encode())
        finally:
            kernel.close(fd)


def _send(fd: int, message: dict, kernel=sc) -> None:
    kernel.write(fd, json.dumps(message).encode() + b"\n")


def _report_and_exit(status_w: int, err: BaseException, kernel=sc) -> None:
    try:
        if os.environ.get("BERTH_DEBUG"):
            import traceback  # lazy: only BERTH_DEBUG

            traceback.print_exc()
        _send(status_w, {"error": _describe(err), "kind": getattr(err, "kind", "system")}, kernel)
    finally:
        kernel._exit(start_exit_code(err))


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename is None and err.args[1:]:
        return str(err.args[1])
    return str(err) or type(err).__name__


def _error_from(message: dict | None) -> BerthError:
    if message is None:
        return BerthError("container init exited without reporting")
    return from_kind(message.get("kind"), message["error"])


class _Messages:
    """Line-delimited JSON from the container's status pipe; None at EOF."""

    def __init__(self, fd: int, kernel=sc):
        self.fd = fd
        self.kernel = kernel
        self.buffer = b""
        self.pending = []  # read already, not yet taken

    def next(self) -> dict | None:
        if self.pending:
            return self.pending.pop(0)
        while b"\n" not in self.buffer:
            chunk = self.kernel.read(self.fd, 4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        self.kernel.close(self.fd)


def _kill_and_reap(pid: int, kernel=sc) -> None:
    try:
        kernel.kill(pid, 9)
        kernel.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def become_subreaper() -> None:
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
