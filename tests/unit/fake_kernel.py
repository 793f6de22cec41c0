"""A recording stand-in for berth.runtime.syscalls, the runtime's kernel seam (youki's Syscall
trait, test side): the runtime's sequencing code takes `kernel=`, and this one runs nothing on
the host. Each call is logged as one strace-like line: flags by name, an fd as <the path it was
opened at>, and /proc/self/fd/N as the path of fd N, so a test reads the order of mounts and
pivots as an operator would. Queries (stat, fstat, readlink, capget, getpid, PR_CAPBSET_READ)
answer plausibly and are not logged; neither is close.

Its filesystem: every path is a directory that exists, except `files` (path -> st_mode) and
paths under `missing` (ENOENT until made). Pipes are in-memory: `pipes` names them and gives
what is already in them (a child's messages), in the order pipe() is called; a read returns
one line at most."""

import errno
import os
import posixpath
import signal
import stat

from berth.runtime import syscalls as sc
from berth.runtime.caps import CAPS
from berth.runtime.hooks import BEFORE_PIVOT


class Exited(BaseException):
    """Raised by the fake's _exit: the process is gone, nothing after it runs."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _bits(value: int, prefix: str) -> str:
    """`value` as sc's constants of `prefix` OR-ed, lowest bit first (0 when none)."""
    names = []
    for name, bit in sorted(((n, v) for n, v in vars(sc).items() if n.startswith(prefix)), key=lambda nv: nv[1]):
        if bit and value & bit == bit and bit & (bit - 1) == 0:
            names.append(name)
            value &= ~bit
    if value:
        names.append(hex(value))
    return "|".join(names) or "0"


_OPEN_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_EXCL", "O_NOFOLLOW", "O_DIRECTORY", "O_CLOEXEC", "O_PATH")
_PRCTL = {getattr(sc, name): name for name in (
    "PR_SET_PDEATHSIG", "PR_SET_DUMPABLE", "PR_SET_NAME", "PR_SET_KEEPCAPS", "PR_CAPBSET_READ", "PR_CAPBSET_DROP",
    "PR_SET_CHILD_SUBREAPER", "PR_SET_NO_NEW_PRIVS", "PR_CAP_AMBIENT")}
_RLIMITS = {number: "RLIMIT_" + name for name, number in sc.RLIMITS.items()}


def _open_flags(flags: int) -> str:
    names = [] if flags & (os.O_WRONLY | os.O_RDWR | os.O_PATH) else ["O_RDONLY"]
    names += [name for name in _OPEN_FLAGS if flags & getattr(os, name)]
    return "|".join(names)


def _caps(mask: int) -> str:
    return "|".join(name for number, name in enumerate(CAPS) if mask & (1 << number)) or "0"


def _str(value) -> str:
    return "NULL" if value is None else '"' + value + '"'


class FakeKernel:
    """See the module's docstring. `log` holds the lines; `calls(*names)` picks some."""

    def __init__(self, files: dict | None = None, missing=(), pipes=(), forks=(), pid: int = 1,
                 last_cap: int = len(CAPS) - 1, failures: dict | None = None):
        self.log: list[str] = []
        self.files = dict(files or {})
        self.missing = set(missing)
        self.made: set[str] = set()
        self.fds: dict[int, str] = {}
        self.pipes = list(pipes)
        self.buffers: dict[str, bytearray] = {}
        self.forks = list(forks)
        self.pid = pid
        self.last_cap = last_cap
        self.failures = dict(failures or {})  # a logged line's start -> the errno that call fails with
        self.mask = 0o022
        self._next_fd = 10

    # -- the log ------------------------------------------------------------------------
    def record(self, line: str) -> None:
        """Log a line; fail the call if a failure was asked for it."""
        self.log.append(line)
        for start, err in self.failures.items():
            if line.startswith(start):
                raise self.failed(OSError(err, os.strerror(err)))

    def failed(self, err: OSError) -> OSError:
        """Mark the last line as strace does a failed call (`= -1 ENOENT`); returns `err`."""
        self.log[-1] += f" = -1 {errno.errorcode[err.errno]}"
        return err

    def calls(self, *names: str) -> list[str]:
        """The logged lines of the calls named (all without names)."""
        return [line for line in self.log if not names or line.partition("(")[0] in names]

    # -- paths and fds ------------------------------------------------------------------
    def path(self, path: str) -> str:
        """What a path names: /proc/self/fd/N[/rest] is fd N's path[/rest]."""
        if path.startswith("/proc/self/fd/"):
            number, _, rest = path[len("/proc/self/fd/"):].partition("/")
            if number.isdigit():
                return self.fds[int(number)] + ("/" + rest if rest else "")
        return path

    def _at(self, name: str, dir_fd: int | None) -> str:
        if dir_fd is None:
            return self.path(name)
        return self.path(posixpath.join(self._fd(dir_fd), name) if name else self._fd(dir_fd))

    def _fd(self, fd: int) -> str:
        if fd not in self.fds:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return self.fds[fd]

    def fd(self, fd: int) -> str:
        """How a log line shows an fd."""
        return f"<{self.fds[fd]}>" if fd in self.fds else str(fd)

    def _new_fd(self, path: str) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self.fds[fd] = path
        return fd

    def _mode(self, path: str) -> int | None:
        """st_mode of `path`, None if it does not exist."""
        if path in self.files:
            return self.files[path]
        if path not in self.made and any(path == m or path.startswith(m.rstrip("/") + "/") for m in self.missing):
            return None
        return stat.S_IFDIR | 0o755

    def _lookup(self, path: str, directory: bool = False) -> int:
        mode = self._mode(path)
        if mode is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if directory and not stat.S_ISDIR(mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return mode

    def _logged_lookup(self, path: str, directory: bool = False) -> int:
        """_lookup for a call just logged: a failure marks its line."""
        try:
            return self._lookup(path, directory)
        except OSError as err:
            raise self.failed(err) from None

    # -- files ----------------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        full = self._at(path, dir_fd)
        self.record(f"open({_str(full)}, {_open_flags(flags)}" + (f", {mode:04o})" if flags & os.O_CREAT else ")"))
        if flags & os.O_CREAT:
            if flags & os.O_EXCL and self._mode(full) is not None:
                raise self.failed(FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), full))
            self.files.setdefault(full, stat.S_IFREG | (mode & ~self.mask & 0o7777))
        else:
            self._logged_lookup(full, bool(flags & os.O_DIRECTORY))
        return self._new_fd(full)

    def openat2(self, dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        """RESOLVE_IN_ROOT as the fake sees it: `..` stops at dir_fd (there are no symlinks)."""
        inside = "/" + posixpath.normpath("/" + path).lstrip("/")  # normpath keeps a leading "//"
        base = self._fd(dir_fd)
        full = base if inside == "/" else base.rstrip("/") + inside
        self.record(f"openat2({self.fd(dir_fd)}, {_str(path)}, {_open_flags(flags)}, {_bits(resolve, 'RESOLVE_')})")
        self._logged_lookup(full, bool(flags & os.O_DIRECTORY))
        return self._new_fd(full)

    def close(self, fd: int) -> None:
        self._fd(fd)
        del self.fds[fd]

    def dup(self, fd: int) -> int:
        return self._new_fd(self._fd(fd))

    def dup2(self, fd: int, fd2: int) -> int:
        self.record(f"dup2({self.fd(fd)}, {fd2})")
        return fd2

    def stat(self, path: str, *, dir_fd: int | None = None, follow_symlinks: bool = True):
        return os.stat_result((self._lookup(self._at(path, dir_fd)), 0, 0, 1, 0, 0, 0, 0, 0, 0))

    def fstat(self, fd: int):
        return os.stat_result((self._lookup(self._fd(fd)), 0, 0, 1, 0, 0, 0, 0, 0, 0))

    def statvfs(self, path: str):
        return os.statvfs_result((4096,) * 8 + (0, 255))

    def readlink(self, path: str, *, dir_fd: int | None = None) -> str:
        return self._at(path, dir_fd)

    def mkdir(self, path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        full = self._at(path, dir_fd)
        self.record(f"mkdir({_str(full)}, {mode:04o})")
        if self._mode(full) is not None and not stat.S_ISDIR(self._mode(full)):
            raise self.failed(FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), full))
        self.made.add(full)

    def mknod(self, path: str, mode: int, device: int = 0, *, dir_fd: int | None = None) -> None:
        full = self._at(path, dir_fd)
        kind = "S_IFBLK" if stat.S_ISBLK(mode) else "S_IFCHR"
        self.record(f"mknod({_str(full)}, {kind}|{mode & 0o7777:04o}, makedev({os.major(device)}, {os.minor(device)}))")
        self.files[full] = mode

    def chown(self, path: str, uid: int, gid: int, *, dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
        self.record(f"chown({_str(self._at(path, dir_fd))}, {uid}, {gid})")

    def unlink(self, path: str, *, dir_fd: int | None = None) -> None:
        full = self._at(path, dir_fd)
        self.record(f"unlink({_str(full)})")
        self._logged_lookup(full)
        self.files.pop(full, None)
        self.made.discard(full)
        self.missing.add(full)

    def symlink(self, target: str, path: str, *, dir_fd: int | None = None) -> None:
        full = self._at(path, dir_fd)
        self.record(f"symlink({_str(target)}, {_str(full)})")
        self.files[full] = stat.S_IFLNK | 0o777

    def umask(self, mask: int) -> int:
        self.record(f"umask({mask:04o})")
        old, self.mask = self.mask, mask
        return old

    def fchdir(self, fd: int) -> None:
        self.record(f"fchdir({self.fd(fd)})")

    def chroot(self, path: str) -> None:
        self.record(f"chroot({_str(path)})")

    def chdir(self, path: str) -> None:
        self.record(f"chdir({_str(path)})")

    # -- mounts and namespaces ------------------------------------------------------------
    def mount(self, source, target: str, fstype, flags: int = 0, data=None) -> None:
        source = self.path(source) if source else source
        self.record(f"mount({_str(source)}, {_str(self.path(target))}, {_str(fstype)}, {_bits(flags, 'MS_')}, "
                    f"{_str(data or None)})")

    def umount2(self, target: str, flags: int = 0) -> None:
        self.record(f"umount2({_str(self.path(target))}, {'MNT_DETACH' if flags == sc.MNT_DETACH else flags})")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self.record(f"pivot_root({_str(new_root)}, {_str(put_old)})")

    def setns(self, fd: int, nstype: int = 0) -> None:
        self.record(f"setns({self.fd(fd)}, {_bits(nstype, 'CLONE_')})")

    def unshare(self, flags: int) -> None:
        self.record(f"unshare({_bits(flags, 'CLONE_')})")

    # -- keyrings -------------------------------------------------------------------------
    def join_session_keyring(self, name: str) -> int:
        self.record(f"keyctl(KEYCTL_JOIN_SESSION_KEYRING, {_str(name)}) = 1234")
        return 1234

    def key_permissions(self, serial: int) -> int:
        return 0x3F130000  # a new keyring's: possessor all, user view|read|link

    def set_key_permissions(self, serial: int, permissions: int) -> None:
        self.record(f"keyctl(KEYCTL_SETPERM, {serial}, {permissions:#010x})")

    def sethostname(self, name: str) -> None:
        self.record(f"sethostname({_str(name)})")

    def setdomainname(self, name: str) -> None:
        self.record(f"setdomainname({_str(name)})")

    def loopback_up(self) -> None:
        self.record("loopback_up()")

    # -- processes, credentials -----------------------------------------------------------
    def prctl(self, option: int, arg2=0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        if option == sc.PR_CAPBSET_READ:
            if arg2 > self.last_cap:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            return 1
        args = [_PRCTL.get(option, str(option))]
        if option == sc.PR_CAPBSET_DROP:
            args.append(CAPS[arg2])
        elif option == sc.PR_CAP_AMBIENT:
            args += ["PR_CAP_AMBIENT_RAISE" if arg2 == sc.PR_CAP_AMBIENT_RAISE else str(arg2), CAPS[arg3]]
        else:
            args += [str(a) for a in (arg2, arg3, arg4, arg5)]
            while len(args) > 2 and args[-1] == "0":
                args.pop()
        self.record(f"prctl({', '.join(args)})")
        return 0

    def capget(self) -> tuple[int, int, int]:
        everything = (1 << (self.last_cap + 1)) - 1
        return everything, everything, 0

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self.record(f"capset({_caps(effective)}, {_caps(permitted)}, {_caps(inheritable)})")

    def setgroups(self, groups) -> None:
        self.record(f"setgroups({list(groups)})")

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        self.record(f"setresgid({rgid}, {egid}, {sgid})")

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        self.record(f"setresuid({ruid}, {euid}, {suid})")

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        self.record(f"setrlimit({_RLIMITS.get(resource, resource)}, {soft}, {hard})")

    def setsid(self) -> int:
        self.record("setsid()")
        return self.pid

    def getpid(self) -> int:
        return self.pid

    def seccomp_set_mode_filter(self, flags: int, program: bytes) -> None:
        self.record(f"seccomp(SECCOMP_SET_MODE_FILTER, {flags}, <{len(program) // 8} instructions>)")

    def cloexec_from(self, first: int) -> None:
        self.record(f"close_range({first}, ~0U, CLOSE_RANGE_CLOEXEC)")

    def get_inheritable(self, fd: int) -> bool:
        return False

    def set_inheritable(self, fd: int, inheritable: bool) -> None:
        self.record(f"set_inheritable({self.fd(fd)}, {inheritable})")

    def signal(self, signalnum: int, handler) -> None:
        name = "SIG_DFL" if handler == signal.SIG_DFL else repr(handler)
        self.record(f"signal({signal.Signals(signalnum).name}, {name})")

    def pthread_sigmask(self, how: int, mask) -> set:
        self.record(f"sigprocmask({'SIG_SETMASK' if how == signal.SIG_SETMASK else how}, {sorted(mask)})")
        return set()

    def execve(self, path: str, args, env) -> None:
        """Logged, and returns: the test's process goes on where a real one would be replaced."""
        self.record(f"execve({_str(path)}, {list(args)})")

    def fork(self) -> int:
        child = self.forks.pop(0) if self.forks else 4242
        self.record(f"fork() = {child}")
        return child

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        self.record(f"waitpid({pid})")
        return pid, 0

    def kill(self, pid: int, sig: int) -> None:
        self.record(f"kill({pid}, {signal.Signals(sig).name})")

    def _exit(self, code: int) -> None:
        self.record(f"exit({code})")
        raise Exited(code)

    # -- pipes ----------------------------------------------------------------------------
    def pipe(self) -> tuple[int, int]:
        name, data = self.pipes.pop(0) if self.pipes else (f"pipe{len(self.buffers)}", b"")
        self.buffers[name] = bytearray(data)
        label = "pipe:" + name
        return self._new_fd(label), self._new_fd(label)

    def read(self, fd: int, size: int) -> bytes:
        """Up to one line: what one write of the other side put in (a pipe may return less
        than is there), so the log shows each message read where it is read."""
        label = self._fd(fd)
        buffer = self.buffers.get(label.removeprefix("pipe:"), bytearray())
        size = min(size, buffer.find(b"\n") + 1 or size)
        data = bytes(buffer[:size])
        del buffer[:size]
        self.record(f"read({self.fd(fd)}) = {data.decode()!r}")
        return data

    def write(self, fd: int, data: bytes) -> int:
        label = self._fd(fd)
        self.record(f"write({self.fd(fd)}, {data.decode().rstrip(chr(10))!r})")
        if label.startswith("pipe:"):
            self.buffers[label[5:]] += data
        return len(data)


class RecordingHooks:
    """Stands for runtime.hooks.Hooks: each run of a kind logs `hook <kind>(pid, status)` in
    the kernel's log, so hooks show among the calls around them."""

    def __init__(self, kernel: FakeKernel, *kinds: str, failing: str | None = None):
        self.kernel = kernel
        self.kinds = kinds
        self.failing = failing

    def before_pivot(self) -> bool:
        return bool(set(self.kinds) & set(BEFORE_PIVOT))

    def run(self, kind: str, pid: int, status: str, default_env=None) -> None:
        if kind in self.kinds:
            self.kernel.log.append(f"hook {kind}({pid}, {status})")
            if kind == self.failing:
                from berth.errors import BerthError

                raise BerthError(f"error running {kind} hook #0: exit status 1")


class RecordingCgroup:
    """Stands for the container's cgroup on the parent's side: add(pid) logs."""

    def __init__(self, kernel: FakeKernel):
        self.kernel = kernel

    def add(self, pid: int) -> None:
        self.kernel.log.append(f"cgroup.add({pid})")
