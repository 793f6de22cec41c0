"""The Linux calls Python's os module lacks (3.11), wrapped once over libc; with os's own calls
that the runtime makes, re-exported under their names, this module is the runtime's kernel.

Every function raises OSError with the errno and a message naming the call.

The kernel seam (youki's Syscall trait): the code that decides which mounts, namespaces and
credentials a container gets, and in what order (runtime.mount, rootfs_paths, container,
process, caps), makes every kernel call through a `kernel` parameter whose default is this
module, so a test passes a recording stand-in (tests/unit/fake_kernel.py) and checks the order
without root. Passing a module costs nothing, and nothing is imported for it."""

# The C layer of ctypes only: `import ctypes` builds ~40 type classes we do not use, which
# costs ~2.5 ms on every `run` and ~0.3 MB in every supervisor process that lives as long as
# its container. Arguments are Python ints (C int), bytes (char *) and None (NULL).
import _ctypes
import os
import struct
from _signal import pthread_sigmask, signal  # noqa: F401 (the kernel interface, see above)
from os import (  # noqa: F401 (the kernel interface, see above)
    _exit,
    chdir,
    chown,
    chroot,
    close,
    dup,
    dup2,
    execve,
    fchdir,
    fork,
    fstat,
    get_inheritable,
    getpid,
    kill,
    mkdir,
    mknod,
    open,
    pipe,
    read,
    readlink,
    set_inheritable,
    setgroups,
    setresgid,
    setresuid,
    setsid,
    stat,
    statvfs,
    symlink,
    umask,
    unlink,
    waitpid,
    write,
)


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _Function(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Long(_ctypes._SimpleCData):
    _type_ = "l"


class _UShort(_ctypes._SimpleCData):
    _type_ = "H"


class _CharP(_ctypes._SimpleCData):
    _type_ = "z"


class _SockFprog(_ctypes.Structure):  # struct sock_fprog
    _fields_ = [("len", _UShort), ("filter", _CharP)]


class _Char(_ctypes._SimpleCData):
    _type_ = "c"


class _CapData(_ctypes.Array):  # two struct __user_cap_data_struct, written by capget
    _type_ = _Char
    _length_ = 24


class _KeyDescription(_ctypes.Array):  # what KEYCTL_DESCRIBE writes: "type;uid;gid;perm;name"
    _type_ = _Char
    _length_ = 512


class _LongFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Long


class _Libc:
    _handle = _ctypes.dlopen(None, 0)


def _libc(name: str, function=_Function):
    return function((name, _Libc))


_unshare = _libc("unshare")
_setns = _libc("setns")
_mount = _libc("mount")
_umount2 = _libc("umount2")
_sethostname = _libc("sethostname")
_setdomainname = _libc("setdomainname")
_prctl = _libc("prctl")
_capset = _libc("capset")
_capget = _libc("capget")
_syscall = _libc("syscall", _LongFunction)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 2

# mount_setattr(2) attributes (linux/mount.h) and the *at flags the new mount API takes
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

SECCOMP_SET_MODE_FILTER = 1

# openat2(2) resolve flags (linux/openat2.h)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS = {  # syscall numbers glibc has no wrapper for
    "x86_64": {"pivot_root": 155, "seccomp": 317, "openat2": 437, "close_range": 436, "pidfd_getfd": 438,
               "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "ioprio_set": 251,
               "sched_setattr": 314, "personality": 135, "pidfd_open": 434, "keyctl": 250},
    "aarch64": {"pivot_root": 41, "seccomp": 277, "openat2": 437, "close_range": 436, "pidfd_getfd": 438,
                "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "ioprio_set": 30,
                "sched_setattr": 274, "personality": 92, "pidfd_open": 434, "keyctl": 219},
}[os.uname().machine]


def _fail(what: str):
    err = _ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if _unshare(flags) != 0:
        _fail("unshare")


def setns(fd: int, nstype: int = 0) -> None:
    if _setns(fd, nstype) != 0:
        _fail("setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        flags,
        data.encode() if data else None,
    ) != 0:
        _fail(f"mount {source or fstype} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    if _umount2(target.encode(), flags) != 0:
        _fail(f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    if _syscall(_SYS["pivot_root"], new_root.encode(), put_old.encode()) != 0:
        _fail("pivot_root")


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dir_fd` with `resolve` (RESOLVE_*) limiting how the
    kernel walks it; returns the new fd. OSError(ENOSYS) before Linux 5.6 (or under a seccomp
    filter that hides it)."""
    how = struct.pack("QQQ", flags, mode, resolve)  # struct open_how
    fd = _syscall(_SYS["openat2"], _Long(dir_fd), path.encode(), how, _Long(len(how)))
    if fd < 0:
        _fail(f"openat2 {path}")
    return fd


def mount_setattr(dir_fd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0, propagation: int = 0,
                  userns_fd: int = 0) -> None:
    """mount_setattr(2): change the attributes (MOUNT_ATTR_*) of the mount at `path` under
    `dir_fd`, and with AT_RECURSIVE of every mount below it."""
    attr = struct.pack("QQQQ", attr_set, attr_clr, propagation, userns_fd)  # struct mount_attr
    if _syscall(_SYS["mount_setattr"], _Long(dir_fd), path.encode(), _Long(flags), attr, _Long(len(attr))) != 0:
        _fail(f"mount_setattr {path}")


def open_tree(dir_fd: int, path: str, flags: int) -> int:
    """open_tree(2): an fd of the mount at `path` (with OPEN_TREE_CLONE, a detached copy of it)."""
    fd = _syscall(_SYS["open_tree"], _Long(dir_fd), path.encode(), _Long(flags))
    if fd < 0:
        _fail(f"open_tree {path}")
    return fd


def move_mount(from_fd: int, to_fd: int) -> None:
    """move_mount(2) of the detached mount `from_fd` onto what the fd `to_fd` is."""
    if _syscall(_SYS["move_mount"], _Long(from_fd), b"", _Long(to_fd), b"",
                _Long(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)) != 0:
        _fail("move_mount")


KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str) -> int:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): join the session keyring `name` (made anew if
    none by that name can be joined); its serial."""
    serial = _syscall(_SYS["keyctl"], _Long(KEYCTL_JOIN_SESSION_KEYRING), name.encode())
    if serial < 0:
        _fail("keyctl join session keyring")
    return serial


def key_permissions(serial: int) -> int:
    """The permission mask of key `serial` (KEYCTL_DESCRIBE's fourth field)."""
    buffer = _KeyDescription()
    if _syscall(_SYS["keyctl"], _Long(KEYCTL_DESCRIBE), _Long(serial), buffer, _Long(len(buffer))) < 0:
        _fail("keyctl describe")
    return int(buffer.value.split(b";")[3], 16)


def set_key_permissions(serial: int, permissions: int) -> None:
    if _syscall(_SYS["keyctl"], _Long(KEYCTL_SETPERM), _Long(serial), _Long(permissions)) != 0:
        _fail("keyctl setperm")


def personality(persona: int) -> None:
    if _syscall(_SYS["personality"], _Long(persona)) < 0:
        _fail("personality")


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    if _syscall(_SYS["ioprio_set"], _Long(which), _Long(who), _Long(ioprio)) != 0:
        _fail("ioprio_set")


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int, deadline: int,
                  period: int) -> None:
    """sched_setattr(2) of this thread: policy (SCHED_*), its flags, nice, rt priority, and the
    SCHED_DEADLINE runtime/deadline/period in ns."""
    attr = struct.pack("IIQiIQQQ", 48, policy, flags, nice, priority, runtime, deadline, period)
    if _syscall(_SYS["sched_setattr"], _Long(0), attr, _Long(0)) != 0:
        _fail("sched_setattr")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """pidfd_getfd(2): a duplicate, in this process, of fd `target_fd` of the process `pidfd`."""
    fd = _syscall(_SYS["pidfd_getfd"], _Long(pidfd), _Long(target_fd), _Long(0))
    if fd < 0:
        _fail("pidfd_getfd")
    return fd


def loopback_up() -> None:
    """Bring up lo in a fresh network namespace (one ioctl, runtime.netlink_lo)."""
    from berth.runtime.netlink_lo import loopback_up as up  # only a container with its own network pays

    up()


def sethostname(name: str) -> None:
    raw = name.encode()
    if _sethostname(raw, len(raw)) != 0:
        _fail("sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _setdomainname(raw, len(raw)) != 0:
        _fail("setdomainname")


def prctl(option: int, arg2: int | bytes = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = _prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        _fail(f"prctl({option})")
    return ret


CLOSE_RANGE_CLOEXEC = 4


def cloexec_from(first: int) -> None:
    """close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd from `first` up closes on exec,
    without listing /proc/self/fd (after pivot_root that is the rootfs's, which may lie)."""
    if _syscall(_SYS["close_range"], _Long(first), _Long(0xFFFFFFFF), _Long(CLOSE_RANGE_CLOEXEC)) == 0:
        return
    if _ctypes.get_errno() not in (1, 38):  # EPERM, ENOSYS: a seccomp profile without close_range
        _fail("close_range")
    for fd in range(first, os.sysconf("SC_OPEN_MAX")):  # fd by fd, up to RLIMIT_NOFILE (as runc)
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) capability sets as 64-bit masks, from
    the kernel itself (never from a /proc that may be the container's own, or a fake one)."""
    data = _CapData()
    if _capget(struct.pack("Ii", 0x20080522, 0), data) != 0:
        _fail("capget")
    e0, p0, i0, e1, p1, i1 = struct.unpack("6I", data.raw)
    return e0 | e1 << 32, p0 | p1 << 32, i0 | i1 << 32


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks) with _LINUX_CAPABILITY_VERSION_3."""
    header = struct.pack("Ii", 0x20080522, 0)
    data = b"".join(
        struct.pack("III", (effective >> shift) & 0xFFFFFFFF, (permitted >> shift) & 0xFFFFFFFF,
                    (inheritable >> shift) & 0xFFFFFFFF)
        for shift in (0, 32)
    )
    if _capset(header, data) != 0:
        _fail("capset")


def seccomp_set_mode_filter(flags: int, program: bytes) -> int:
    """Install a classic BPF program (struct sock_filter, 8 bytes each) as this thread's seccomp
    filter; returns the notification fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0."""
    fprog = _SockFprog(len(program) // 8, program)
    result = _syscall(_SYS["seccomp"], _Long(SECCOMP_SET_MODE_FILTER), _Long(flags), _ctypes.byref(fprog))
    if result < 0:
        _fail("seccomp")
    return result


def pidfd_open(pid: int) -> int:
    fd = _syscall(_SYS["pidfd_open"], _Long(pid), _Long(0))
    if fd < 0:
        _fail("pidfd_open")
    return fd


# asm-generic resource numbers (x86_64 and aarch64 alike)
RLIMITS = {"CPU": 0, "FSIZE": 1, "DATA": 2, "STACK": 3, "CORE": 4, "RSS": 5, "NPROC": 6, "NOFILE": 7, "MEMLOCK": 8,
           "AS": 9, "LOCKS": 10, "SIGPENDING": 11, "MSGQUEUE": 12, "NICE": 13, "RTPRIO": 14, "RTTIME": 15}


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2) with OCI's uint64 values (RLIM_INFINITY = 2**64-1); needs no module from
    disk, so it works after pivot_root (Python's `resource` module is a file to import)."""
    if _libc("setrlimit")(resource, struct.pack("QQ", soft, hard)) != 0:
        _fail(f"setrlimit({resource})")


_inotify_init1 = _libc("inotify_init1")
_inotify_add_watch = _libc("inotify_add_watch")
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000


def inotify_init1(flags: int) -> int:
    fd = _inotify_init1(flags)
    if fd < 0:
        _fail("inotify_init1")
    return fd


def inotify_add_watch(fd: int, path: str, mask: int) -> int:
    watch = _inotify_add_watch(fd, os.fsencode(path), mask)
    if watch < 0:
        _fail("inotify_add_watch")
    return watch
