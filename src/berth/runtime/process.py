"""The last steps of a container process: credentials, capabilities, executable lookup, exec.

Every kernel call goes through `kernel` (runtime.syscalls, or a test's recording stand-in)."""

import _signal as signal  # `signal` imports enum: ~4 ms on every run
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


def exec_process(process: dict, kernel=sc) -> None:
    args = process.get("args") or []
    if not args:
        raise BerthError("no command specified")
    env = process.get("env") or []
    path = find_executable(args[0], env, kernel)
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
