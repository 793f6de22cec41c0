"""The last steps of a container process: credentials, capabilities, executable lookup, exec.

Every kernel call goes through `kernel` (runtime.syscalls, or a test's recording stand-in)."""

import _signal as signal  # `signal` imports enum: ~4 ms on every run
import errno
import os

from berth.errors import BerthError, CannotInvoke, CommandNotFound
from berth.runtime import caps
from berth.runtime import syscalls as sc


def find_executable(name: str, env: list[str], kernel=sc) -> str:
    """Go's exec.LookPath against the container's PATH, with docker's error wording."""
    if "/" in name:
        try:
            st = kernel.stat(name)
        except FileNotFoundError:
            raise CommandNotFound(f'exec: "{name}": stat {name}: no such file or directory') from None
        if (st.st_mode & 0o170000) == 0o040000 or not st.st_mode & 0o111:
            raise CannotInvoke(f'exec: "{name}": permission denied')
        return name
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    denied = False
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = kernel.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000:
            if st.st_mode & 0o111:
                return candidate
            denied = True
    if denied:
        raise CannotInvoke(f'exec: "{name}": permission denied')
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def set_oom_score_adj(process: dict, kernel=sc) -> None:
    """OCI process.oomScoreAdj, written on the host's /proc before any namespace is entered
    (runc's place): every process forked from here inherits it; lowering it needs privileges
    the container will not have."""
    value = process.get("oomScoreAdj")
    if value is None:
        return
    fd = kernel.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    try:
        kernel.write(fd, str(value).encode())
    except OSError as err:  # lowering it needs CAP_SYS_RESOURCE, which a sandbox may withhold even from root
        raise BerthError(f'failed to write "{value}" to /proc/self/oom_score_adj: '
                         f"{(err.strerror or str(err)).lower()}") from None
    finally:
        kernel.close(fd)


def join_session_keyring(name: str | None, init: bool, in_user_namespace: bool, kernel=sc) -> None:
    """runc's default: the container's processes join a session keyring of their own ("_ses.<id>",
    made by the first, joined by exec), not the caller's; the container's own init also makes it
    searchable by the owning uid (by "other" in a user namespace, whose uids are not the host's).
    None: --no-new-keyring, the caller's is kept. Kernels without keyrings (ENOSYS): skipped."""
    if name is None:
        return
    try:
        serial = kernel.join_session_keyring(name)
    except OSError as err:
        if err.errno == errno.ENOSYS:
            return
        raise BerthError(f"unable to join session keyring: {(err.strerror or str(err)).lower()}") from None
    if not init:  # an exec joins it, with the permissions the container's init gave it
        return
    search = 0x8 if in_user_namespace else 0x80000  # KEY_OTH_SEARCH, KEY_USR_SEARCH
    try:
        kernel.set_key_permissions(serial, kernel.key_permissions(serial) | search)
    except OSError as err:
        raise BerthError(f"unable to mod keyring permissions: {(err.strerror or str(err)).lower()}") from None


def set_credentials(process: dict, kernel=sc) -> None:
    """Switch to the OCI process.user, keeping capabilities across setuid, then set the
    capability sets the spec asks for (runc's finalizeNamespace order)."""
    user = process.get("user") or {}
    uid = user.get("uid") or 0
    gid = user.get("gid") or 0
    capabilities = process.get("capabilities") or {}
    available = caps.held(kernel)
    kernel.prctl(sc.PR_SET_KEEPCAPS, 1)
    caps.drop_bounding(caps.mask(capabilities.get("bounding")), kernel)
    kernel.setgroups(user.get("additionalGids") or [])
    kernel.setresgid(gid, gid, gid)
    kernel.setresuid(uid, uid, uid)
    caps.apply(capabilities, available, kernel)
    kernel.prctl(sc.PR_SET_KEEPCAPS, 0)
    if process.get("noNewPrivileges"):
        kernel.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    kernel.umask(user.get("umask", 0o022))


def set_rlimits(rlimits, kernel=sc) -> None:
    """OCI process.rlimits; called after pivot_root, so through libc, not Python's `resource`."""
    if not rlimits:
        return
    for limit in rlimits:
        number = sc.RLIMITS.get(limit["type"].removeprefix("RLIMIT_"))
        if number is None:
            raise BerthError(f"unknown rlimit type {limit['type']}")
        try:
            kernel.setrlimit(number, limit["soft"] & 0xFFFFFFFFFFFFFFFF, limit["hard"] & 0xFFFFFFFFFFFFFFFF)
        except OSError as err:
            raise BerthError(f"error setting rlimit type {number}: {os.strerror(err.errno).lower()}") from None


def add_home(process: dict, kernel=sc) -> None:
    """HOME from the user's /etc/passwd entry when process.env has none (runc's setupUser)."""
    env = process.get("env") or []
    if not any(item.startswith("HOME=") for item in env):
        process["env"] = [*env, "HOME=" + home_of((process.get("user") or {}).get("uid") or 0, kernel)]


def home_of(uid: int, kernel=sc) -> str:
    """The home directory of `uid` in this root's /etc/passwd, "/" without one. The file is the
    container's: opened non-blocking and read only if it is a regular file, 1 MiB at most."""
    try:
        fd = kernel.open("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "/"
    try:
        if (kernel.fstat(fd).st_mode & 0o170000) != 0o100000:
            return "/"
        text = kernel.read(fd, 1 << 20).decode(errors="replace")
    except OSError:
        return "/"
    finally:
        kernel.close(fd)
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and fields[2] == str(uid):
            return fields[5] or "/"
    return "/"


_IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                   "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
_SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x1, "SCHED_FLAG_RECLAIM": 0x2, "SCHED_FLAG_DL_OVERRUN": 0x4,
                "SCHED_FLAG_KEEP_POLICY": 0x8, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
                "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
_PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}


def set_scheduling(process: dict, kernel=sc) -> None:
    """OCI process.scheduler (sched_setattr) and process.ioPriority (ioprio_set), for this
    process and so everything it forks (runc's setupScheduler and setIOPriority)."""
    scheduler = process.get("scheduler")
    if scheduler:
        flags = 0
        for name in scheduler.get("flags") or ():
            flags |= _SCHED_FLAGS[name]
        try:
            kernel.sched_setattr(_SCHED_POLICIES[scheduler["policy"]], flags, scheduler.get("nice", 0),
                                 scheduler.get("priority", 0), scheduler.get("runtime", 0),
                                 scheduler.get("deadline", 0), scheduler.get("period", 0))
        except OSError as err:
            raise BerthError(f"error setting scheduler: {os.strerror(err.errno).lower()}") from None
    priority = process.get("ioPriority")
    if priority:
        value = _IOPRIO_CLASSES[priority["class"]] << 13 | priority.get("priority", 0)
        try:
            kernel.ioprio_set(1, 0, value)  # IOPRIO_WHO_PROCESS, this one
        except OSError as err:
            raise BerthError(f"failed to set io priority: {os.strerror(err.errno).lower()}") from None


def set_personality(personality: dict | None, kernel=sc) -> None:
    """OCI linux.personality: its execution domain (LINUX or LINUX32, as runc)."""
    if personality:
        kernel.personality(_PERSONALITIES[personality["domain"]])


def set_security_labels(process: dict, kernel=sc) -> None:
    """process.apparmorProfile and selinuxLabel, for the coming execve. runtime.validate has
    refused them already on a host without AppArmor or SELinux."""
    profile = process.get("apparmorProfile")
    if profile:
        _write_attr(("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"), f"exec {profile}",
                    "apparmor failed to apply profile", kernel)
    label = process.get("selinuxLabel")
    if label:
        _write_attr(("/proc/self/attr/exec",), label, "failed to set selinux label", kernel)


def _write_attr(paths, value: str, what: str, kernel) -> None:
    for path in paths:
        try:
            fd = kernel.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            kernel.write(fd, value.encode())
            return
        except OSError as err:
            raise BerthError(f"{what}: write {path}: {os.strerror(err.errno).lower()}") from None
        finally:
            kernel.close(fd)
    raise BerthError(f"{what}: no {paths[-1]}")


def reset_signals(kernel=sc) -> None:
    """Python ignores SIGPIPE and SIGXFSZ and handles SIGINT; a container must start clean."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        kernel.signal(sig, signal.SIG_DFL)
    kernel.pthread_sigmask(signal.SIG_SETMASK, [])


def close_extra_fds(keep=(), kernel=sc) -> None:
    """Mark every fd above stderr close-on-exec so nothing of ours leaks into the container
    (`keep` keeps its inheritable flag)."""
    inheritable = [fd for fd in keep if kernel.get_inheritable(fd)]
    kernel.cloexec_from(3)
    for fd in inheritable:
        kernel.set_inheritable(fd, True)


def exec_process(process: dict, kernel=sc, path: str | None = None) -> None:
    """execve the process's args (`path`: its executable, looked up already) with its env."""
    args = process.get("args") or []
    if not args:
        raise BerthError("no command specified")
    env = process.get("env") or []
    path = path or find_executable(args[0], env, kernel)
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    reset_signals(kernel)
    try:
        kernel.execve(path, args, environ)
    except PermissionError:
        raise CannotInvoke(f'exec: "{args[0]}": permission denied') from None
    except FileNotFoundError:
        raise CommandNotFound(f'exec: "{args[0]}": no such file or directory') from None
    except OSError as err:
        raise CannotInvoke(f'exec: "{args[0]}": {err.strerror.lower()}') from None
