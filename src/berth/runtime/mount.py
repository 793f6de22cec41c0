"""Building the container's filesystem view inside its new mount namespace:
rootfs, OCI mounts, device nodes, pivot_root, masked and read-only paths, cwd.

Every path under the rootfs is resolved inside it by fd (runtime.rootfs_paths), and every
mount goes onto the /proc/self/fd/N of its resolved target, never onto a path string. Every
kernel call goes through `kernel` (runtime.syscalls, or a test's recording stand-in)."""

import errno
import os
import stat

from berth.errors import BerthError
from berth.runtime import syscalls as sc
from berth.runtime.rootfs_paths import fd_path, make_dir, make_file, open_in_root, real_path, split_parent

_FLAGS = {  # option -> (clear, flag); like runc's parseMountOptions
    "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID), "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV), "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC), "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS), "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC), "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "atime": (True, sc.MS_NOATIME), "noatime": (False, sc.MS_NOATIME),
    "diratime": (True, sc.MS_NODIRATIME), "nodiratime": (False, sc.MS_NODIRATIME),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW), "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "lazytime": (False, sc.MS_LAZYTIME), "nolazytime": (True, sc.MS_LAZYTIME),
    "silent": (False, sc.MS_SILENT), "loud": (True, sc.MS_SILENT),
    "iversion": (False, 1 << 23), "noiversion": (True, 1 << 23),
    "acl": (False, 1 << 16), "noacl": (True, 1 << 16), "defaults": (False, 0),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# Recursive mount attributes (runc's "rro", "rnosuid", ...): option -> (clear, MOUNT_ATTR_*),
# applied with mount_setattr(AT_RECURSIVE) to the mount and every mount below it.
_RECURSIVE = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY), "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID), "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV), "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC), "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
}
_RECURSIVE_ATIME = {"rrelatime": sc.MOUNT_ATTR_RELATIME, "rnoatime": sc.MOUNT_ATTR_NOATIME,
                    "rstrictatime": sc.MOUNT_ATTR_STRICTATIME}

# Per-mount flags a bind takes by remounting; runc's defaultMountFlags for what it mounts for a cgroup.
_MOUNT_ATTRS = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME
                | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)
_CGROUP_DEFAULTS = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


# Created in every container's /dev (runc's default devices): name, major, minor.
DEFAULT_DEVICES = (("null", 1, 3), ("random", 1, 8), ("full", 1, 7), ("tty", 5, 0), ("zero", 1, 5), ("urandom", 1, 9))
DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
)


class MountOptions:
    """OCI mount options, parsed: mount(2) flags, propagation flags, fs-specific data, the
    recursive attributes to set and clear, and runc's tmpcopyup."""

    __slots__ = ("flags", "propagation", "data", "attr_set", "attr_clr", "tmpcopyup")

    def __init__(self, options):
        self.flags = self.propagation = self.attr_set = self.attr_clr = 0
        self.tmpcopyup = False
        data = []
        for opt in options or ():
            if opt in _FLAGS:
                clear, flag = _FLAGS[opt]
                self.flags = self.flags & ~flag if clear else self.flags | flag
            elif opt in _PROPAGATION:
                self.propagation |= _PROPAGATION[opt]
            elif opt in _RECURSIVE:
                clear, attr = _RECURSIVE[opt]
                self._recursive(attr, clear)
            elif opt in _RECURSIVE_ATIME:
                self.attr_clr |= sc.MOUNT_ATTR__ATIME
                self.attr_set = (self.attr_set & ~sc.MOUNT_ATTR__ATIME) | _RECURSIVE_ATIME[opt]
            elif opt in ("ratime", "rnorelatime", "rnostrictatime"):
                self.attr_clr |= sc.MOUNT_ATTR__ATIME
            elif opt == "tmpcopyup":
                self.tmpcopyup = True
            else:
                data.append(opt)
        self.data = ",".join(data)

    def _recursive(self, attr: int, clear: bool) -> None:
        if clear:
            self.attr_set &= ~attr
            self.attr_clr |= attr
        else:
            self.attr_clr &= ~attr
            self.attr_set |= attr


def parse_options(options) -> tuple[int, int, str]:
    """OCI mount options -> (mount flags, propagation flags, fs-specific data)."""
    parsed = MountOptions(options)
    return parsed.flags, parsed.propagation, parsed.data


def secure_join(root: str, unsafe: str) -> str:
    """Join `unsafe` under `root`, resolving symlinks as if `root` were `/`. A string, resolved
    again by whoever uses it: only for trees nobody changes meanwhile (the runtime itself
    resolves by fd, with runtime.rootfs_paths)."""
    parts = [p for p in unsafe.split("/") if p]
    resolved = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join(resolved + [part])
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            resolved.extend(p for p in parts if p not in (".", ".."))
            break
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(40, f"too many levels of symbolic links: {unsafe}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return root.rstrip("/") + "/" + "/".join(resolved)


def prepare_rootfs(spec: dict, rootfs: str, overlay: str | None, cgroup_dirs: dict | None = None,
                   kernel=sc, idmaps: dict | None = None) -> int:
    """The mounts and device nodes, before pivot_root. `overlay` is the overlayfs option string
    to mount at `rootfs`, or None when `rootfs` is a ready directory (plain OCI bundle).
    `cgroup_dirs` is the container's cgroup's host_dirs(), what a mount of type "cgroup" shows.
    `idmaps` maps the index of an idmapped mount to the fd of its user namespace (made by the
    runtime before forking: runtime.userns.mapping_namespace).
    Returns an O_PATH fd of the mounted rootfs: every later step resolves its paths from it."""
    linux = spec.get("linux") or {}
    propagation = _PROPAGATION.get(linux.get("rootfsPropagation") or "rslave")
    kernel.mount(None, "/", None, propagation)
    if propagation & sc.MS_SHARED:
        # runc's rootfsParentMountPrivate: pivot_root refuses a shared parent; only the
        # mounts that asked for it stay shared with the host.
        kernel.mount(None, mount_point_of(os.path.dirname(rootfs.rstrip("/"))), None, sc.MS_PRIVATE)
    if overlay:
        kernel.mount("overlay", rootfs, "overlay", 0, overlay)
    else:
        kernel.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    root = kernel.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, m in enumerate(spec.get("mounts") or ()):
            mount_one(root, m, cgroup_dirs, kernel, (idmaps or {}).get(index))
        in_userns = any(ns.get("type") == "user" for ns in linux.get("namespaces") or ())
        create_devices(root, linux.get("devices") or (), kernel, bind=in_userns)
    except BaseException:
        kernel.close(root)
        raise
    return root


def mount_one(root: int, m: dict, cgroup_dirs: dict | None = None, kernel=sc, userns_fd: int | None = None) -> None:
    """One OCI mount, onto its destination resolved under the rootfs fd `root`; `userns_fd`, the
    user namespace of an idmapped one."""
    options = MountOptions(m.get("options"))
    flags, propagation = options.flags, options.propagation
    kind = m.get("type") or ("bind" if flags & sc.MS_BIND else "")
    source = m.get("source") or kind
    destination = m["destination"]
    bind = kind == "bind" or bool(flags & sc.MS_BIND)
    try:
        is_dir = not bind or _is_dir(source, kernel)
        target = _Target(root, destination, _mountpoint(root, destination, kind, bind, is_dir, kernel), kernel)
        try:
            if kind == "cgroup":
                _mount_cgroup_on(target, flags, cgroup_dirs)
            elif userns_fd is not None:
                _idmapped_bind(target, m, source, flags, userns_fd, kernel)
            elif bind:
                _bind(target, source, flags)
            elif kind == "tmpfs":
                _tmpfs(target, source, options, kernel)
            else:
                kernel.mount(source, target.path, kind, flags, options.data)
                target.reopen()
            if options.attr_set or options.attr_clr:
                kernel.mount_setattr(target.fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, options.attr_set,
                                     options.attr_clr)
            if propagation:
                kernel.mount(None, target.path, None, propagation)
        finally:
            target.close()
    except OSError as err:
        raise BerthError(f'error mounting "{source}" to rootfs at "{destination}": {_reason(err)}') from None


def _tmpfs(target: "_Target", source: str, options: MountOptions, kernel) -> None:
    """runc's tmpfs: mounted writable (so tmpcopyup can fill it), made read-only after by a
    bind remount: "ro" is the mount's, the tmpfs itself stays rw."""
    under = None
    if options.tmpcopyup:  # the directory's content before the tmpfs hides it
        under = kernel.open(target.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        kernel.mount(source, target.path, "tmpfs", options.flags & ~sc.MS_RDONLY, options.data)
        target.reopen()
        if under is not None:
            _copy_tree(under, target.fd, kernel)
    finally:
        if under is not None:
            kernel.close(under)
    if options.flags & sc.MS_RDONLY:
        kernel.mount(None, target.path, None, sc.MS_BIND | sc.MS_REMOUNT | (options.flags & _MOUNT_ATTRS))


def _copy_tree(source: int, target: int, kernel) -> None:
    """tmpcopyup: copy the directory `source` (an fd, of the rootfs, hidden by the new tmpfs)
    into the directory `target`, fd-relative, never following a symlink."""
    import shutil  # lazy: only a tmpcopyup mount

    for entry in os.scandir(fd_path(source)):
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            kernel.symlink(os.readlink(entry.name, dir_fd=source), entry.name, dir_fd=target)
        elif stat.S_ISDIR(st.st_mode):
            kernel.mkdir(entry.name, stat.S_IMODE(st.st_mode), dir_fd=target)
            inner_src = kernel.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                    dir_fd=source)
            inner_dst = kernel.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                    dir_fd=target)
            try:
                _copy_tree(inner_src, inner_dst, kernel)
            finally:
                kernel.close(inner_src)
                kernel.close(inner_dst)
        elif stat.S_ISREG(st.st_mode):
            src = kernel.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=source)
            dst = kernel.open(entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                              stat.S_IMODE(st.st_mode), dir_fd=target)
            try:
                with open(src, "rb", closefd=False) as fin, open(dst, "wb", closefd=False) as fout:
                    shutil.copyfileobj(fin, fout)
            finally:
                kernel.close(src)
                kernel.close(dst)
        else:
            continue
        kernel.chown(entry.name, st.st_uid, st.st_gid, dir_fd=target, follow_symlinks=False)


def _idmapped_bind(target: "_Target", m: dict, source: str, flags: int, userns: int, kernel) -> None:
    """An idmapped bind (OCI mount uidMappings/gidMappings): a detached copy of `source`
    (open_tree), given a user namespace with those mappings (mount_setattr MOUNT_ATTR_IDMAP),
    moved onto the target. Kernels without idmapped mounts (< 5.12, or a filesystem without
    them) refuse with their errno."""
    if not (flags & sc.MS_BIND or m.get("type") == "bind"):
        raise OSError(22, "idmapped mounts are only supported for bind mounts")
    tree = kernel.open_tree(-100, source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC
                            | (sc.AT_RECURSIVE if flags & sc.MS_REC else 0))
    try:
        kernel.mount_setattr(tree, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if flags & sc.MS_REC else 0),
                             sc.MOUNT_ATTR_IDMAP, 0, 0, userns)
        kernel.move_mount(tree, target.fd)
    finally:
        kernel.close(tree)
    target.reopen()
    extra = flags & _MOUNT_ATTRS
    if extra:
        kernel.mount(None, target.path, None, sc.MS_BIND | sc.MS_REMOUNT | extra)


def _is_dir(path: str, kernel) -> bool:
    """os.path.isdir, asked of `kernel`."""
    try:
        return stat.S_ISDIR(kernel.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class _Target:
    """Where a mount goes: the fd of `destination` resolved under `root`. A mount onto it does
    not change what the fd shows (what is under the mount), so `reopen` resolves it again to act
    on the new mount, refusing if the path no longer leads to the same place (runc's
    reopenAfterMount). `kernel` is the one the mounts onto it are made with."""

    __slots__ = ("root", "destination", "fd", "kernel")

    def __init__(self, root: int, destination: str, fd: int, kernel=sc):
        self.root = root
        self.destination = destination
        self.fd = fd
        self.kernel = kernel

    @property
    def path(self) -> str:
        return fd_path(self.fd)

    def reopen(self) -> None:
        where = real_path(self.fd, self.kernel)
        fresh = open_in_root(self.root, self.destination, kernel=self.kernel)
        if real_path(fresh, self.kernel) != where:
            self.kernel.close(fresh)
            raise OSError(16, f"mountpoint {where} was moved while mounting")
        self.kernel.close(self.fd)
        self.fd = fresh

    def close(self) -> None:
        self.kernel.close(self.fd)


def _mountpoint(root: int, destination: str, kind: str, bind: bool, is_dir: bool, kernel=sc) -> int:
    """The fd of a mount's destination inside the rootfs, made if missing (a directory, or an
    empty file for a bind of a file). Refused: the rootfs itself, anything inside /proc but
    lxcfs's files (runc's checkProcMount), and proc or sysfs on a symlink."""
    if kind in ("proc", "sysfs"):
        try:  # O_NOFOLLOW|O_DIRECTORY: a symlink in the last place fails with ENOTDIR
            target = open_in_root(root, destination, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, kernel)
        except NotADirectoryError:
            raise OSError(20, f"filesystem {kind!r} must be mounted on ordinary directory") from None
        except FileNotFoundError:
            target = make_dir(root, destination, kernel=kernel)
    else:
        target = make_dir(root, destination, kernel=kernel) if is_dir else make_file(root, destination, kernel=kernel)
    try:
        top = real_path(root, kernel).rstrip("/")
        where = real_path(target, kernel)
        if where == top:
            raise OSError(22, f"mountpoint {destination} is on the top of the rootfs")
        if not where.startswith(top + "/"):
            raise OSError(22, f"mountpoint {where} is outside of the rootfs {top}")
        inside = where[len(top):]
        if inside == "/proc" and kind != "proc" and not bind:
            raise OSError(22, f"{destination} cannot be mounted because it is not of type proc")
        if inside.startswith("/proc/") and inside not in LXCFS_PROC_FILES:
            raise OSError(22, f"{destination} cannot be mounted because it is inside /proc")
    except BaseException:
        kernel.close(target)
        raise
    return target


# What lxcfs binds over /proc files; no other mount may land inside /proc (runc's list).
LXCFS_PROC_FILES = frozenset((
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo", "/proc/sys/kernel/ns_last_pid", "/proc/sys/crypto/fips_enabled",
))


def _bind(target: _Target, source: str, flags: int) -> None:
    """A bind; its other flags need a remount of the new mount."""
    kernel = target.kernel
    kernel.mount(source, target.path, None, sc.MS_BIND | (flags & sc.MS_REC))
    target.reopen()
    extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        kernel.mount(None, target.path, None, sc.MS_BIND | sc.MS_REMOUNT | extra)


def _reason(err: OSError) -> str:
    return err.strerror or str(err)


def mount_cgroup(target: str, flags: int, host_dirs: dict | None, kernel=sc) -> None:
    """A cgroup mount (below) on the directory `target`, a path the caller trusts."""
    parent = kernel.open(os.path.dirname(target.rstrip("/")) or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        name = os.path.basename(target.rstrip("/"))
        point = _Target(parent, name, open_in_root(parent, name, os.O_PATH | os.O_DIRECTORY, kernel), kernel)
        try:
            _mount_cgroup_on(point, flags, host_dirs)
        finally:
            point.close()
    finally:
        kernel.close(parent)


def _mount_cgroup_on(target: _Target, flags: int, host_dirs: dict | None) -> None:
    """OCI type "cgroup" (runc's mountCgroupV1/V2), made of binds of the container's own
    cgroup directories, so it can be done before the container is in them and shows no other
    cgroup. v2 (host_dirs {"": dir}): that directory. v1: a tmpfs holding one directory per
    hierarchy, and a symlink per controller of a co-mounted one (cpu -> cpu,cpuacct)."""
    if host_dirs is None:
        raise BerthError("a cgroup mount needs the container's cgroup")
    kernel = target.kernel
    attrs = (flags & _MOUNT_ATTRS) | _CGROUP_DEFAULTS
    if "" in host_dirs:
        kernel.mount(host_dirs[""], target.path, None, sc.MS_BIND)
        target.reopen()
        kernel.mount(None, target.path, None, sc.MS_BIND | sc.MS_REMOUNT | attrs)
        return
    kernel.mount("tmpfs", target.path, "tmpfs", _CGROUP_DEFAULTS, "mode=755")
    target.reopen()  # the fresh tmpfs: only we write in it
    for name in host_dirs:
        kernel.mkdir(name, 0o755, dir_fd=target.fd)
        if "," in name:
            for controller in name.split(","):
                _symlink(name, controller, target.fd, kernel)
    for name, directory in host_dirs.items():
        _mount_at(target.fd, name, directory, sc.MS_BIND, kernel)
        _mount_at(target.fd, name, None, sc.MS_BIND | sc.MS_REMOUNT | attrs, kernel)  # looked up again: onto the bind


def _mount_at(dir_fd: int, name: str, source: str | None, flags: int, kernel) -> None:
    """mount(2) onto the directory `name` of `dir_fd`, through its fd."""
    fd = kernel.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        kernel.mount(source, fd_path(fd), None, flags)
    finally:
        kernel.close(fd)


def create_devices(root: int, devices, kernel=sc, bind: bool = False) -> None:
    """runc's default devices and linux.devices, made with mknodat in their directory's fd (an
    existing entry is replaced, never followed), then /dev's symlinks. With `bind` (a user
    namespace, where mknod is refused) each is the host's node of that path bound onto an empty
    file, as runc's bindMountDeviceNode."""
    own = {d.get("path") for d in devices}  # a spec device replaces the default of its path (runc's dedup)
    wanted = [{"path": "/dev/" + name, "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
              for name, major, minor in DEFAULT_DEVICES if "/dev/" + name not in own]
    wanted.extend(devices)
    try:
        _make_devices(root, wanted, kernel, bind)
    except OSError as err:
        raise BerthError(f"error creating device nodes: {_reason(err)}") from None


def _make_devices(root: int, wanted: list[dict], kernel, bind: bool = False) -> None:
    directories = {}  # "/dev" -> its fd, resolved once
    old_umask = kernel.umask(0)
    try:
        for d in wanted:
            head, name = split_parent(d["path"])
            if head not in directories:
                directories[head] = make_dir(root, head, kernel=kernel)
            parent = directories[head]
            try:
                kernel.unlink(name, dir_fd=parent)
            except FileNotFoundError:
                pass
            if bind:
                _bind_device(parent, name, d["path"], kernel)
                continue
            kind = _DEVICE_TYPES.get(d.get("type"), stat.S_IFCHR)
            mode = d.get("fileMode") or 0o666
            kernel.mknod(name, kind | (mode & 0o7777), os.makedev(d.get("major") or 0, d.get("minor") or 0),
                         dir_fd=parent)
            kernel.chown(name, d.get("uid") or 0, d.get("gid") or 0, dir_fd=parent, follow_symlinks=False)
        _dev_symlinks(directories["/dev"], kernel)
    finally:
        kernel.umask(old_umask)
        for fd in directories.values():
            kernel.close(fd)


_DEVICE_TYPES = {"b": stat.S_IFBLK, "c": stat.S_IFCHR, "u": stat.S_IFCHR, "p": stat.S_IFIFO}


def _bind_device(parent: int, name: str, host_path: str, kernel) -> None:
    kernel.close(kernel.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=parent))
    fd = kernel.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        kernel.mount(host_path, fd_path(fd), None, sc.MS_BIND)
    finally:
        kernel.close(fd)


def _dev_symlinks(dev: int, kernel) -> None:
    for target, name in DEV_SYMLINKS:
        _symlink(target, name, dev, kernel)
    if _exists("/proc/kcore", kernel):
        _symlink("/proc/kcore", "core", dev, kernel)
    try:
        pts = kernel.stat("pts", dir_fd=dev, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(pts.st_mode):
        _symlink("pts/ptmx", "ptmx", dev, kernel)


def _exists(path: str, kernel) -> bool:
    """os.path.exists, asked of `kernel`."""
    try:
        kernel.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _symlink(target: str, name: str, dir_fd: int, kernel) -> None:
    try:
        kernel.symlink(target, name, dir_fd=dir_fd)
    except FileExistsError:
        pass


def pivot_root(root: int, kernel=sc) -> None:
    """runc's pivotRoot: pivot_root(".", ".") from the rootfs fd `root`, then from the old root
    (by an fd opened before: "." itself may still be the new root) make it rslave, so
    unmounting it does not propagate to the host, and detach it. The new root's own mounts keep
    their propagation (a shared bind stays shared with the host)."""
    old_root = kernel.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        kernel.fchdir(root)
        kernel.pivot_root(".", ".")
        kernel.fchdir(old_root)
        kernel.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        kernel.umount2(".", sc.MNT_DETACH)
    finally:
        kernel.close(old_root)
    kernel.chdir("/")


def move_root(root: int, rootfs: str, kernel=sc) -> None:
    """runc's msMoveRoot (--no-pivot, for roots pivot_root refuses, such as ramfs): every full
    proc and sysfs mount of the host outside the rootfs made a slave and detached (the kernel
    would otherwise let the container mount a new proc because the host's is still reachable in
    this mount namespace), then the rootfs mount moved onto / and chrooted into."""
    prefix = rootfs.rstrip("/")
    for line in _mountinfo():
        fields = line.split()
        dash = fields.index("-")
        point = _unescape(fields[4])
        if fields[3] != "/" or fields[dash + 1] not in ("proc", "sysfs") or point.startswith(prefix):
            continue
        try:
            kernel.mount(None, point, None, sc.MS_SLAVE | sc.MS_REC)
        except FileNotFoundError:
            continue  # under a mount detached already
        try:
            kernel.umount2(point, sc.MNT_DETACH)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EPERM):
                raise
            kernel.mount("tmpfs", point, "tmpfs", 0)  # cannot unmount (rootless): covered instead
    kernel.fchdir(root)
    kernel.mount(".", "/", None, sc.MS_MOVE)
    kernel.chroot(".")
    kernel.chdir("/")


def _mountinfo() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (\\040 for a space, \\011, \\012, \\134)."""
    if "\\" not in field:
        return field
    import re  # lazy: only a mount point with an escape

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mask_paths(root: int, paths, kernel=sc) -> None:
    """linux.maskedPaths, resolved under the rootfs fd (a missing one is skipped). Files get the
    container's own /dev/null (runc masks after pivot_root, with the /dev it made)."""
    if not paths:
        return
    null = _container_null(root, kernel)
    try:
        for path in paths:
            try:
                _mask(root, path, null, kernel)
            except OSError as err:
                raise BerthError(f"can't mask path {path!r}: {_reason(err)}") from None
    finally:
        if null != "/dev/null":
            kernel.close(int(null.rpartition("/")[2]))


def _container_null(root: int, kernel) -> str:
    """The rootfs's /dev/null as a /proc/self/fd path, if it is the null device (it is ours, made
    by create_devices or bound from the host); else the host's."""
    try:
        fd = open_in_root(root, "/dev/null", kernel=kernel)
    except OSError:
        return "/dev/null"
    st = kernel.fstat(fd)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3):
        return fd_path(fd)
    kernel.close(fd)
    return "/dev/null"


def _mask(root: int, path: str, null: str, kernel) -> None:
    """A directory gets an empty read-only tmpfs, anything else /dev/null."""
    try:
        target = open_in_root(root, path, kernel=kernel)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(kernel.fstat(target).st_mode):
            kernel.mount("tmpfs", fd_path(target), "tmpfs", sc.MS_RDONLY, None)
        else:
            kernel.mount(null, fd_path(target), None, sc.MS_BIND, None)
    finally:
        kernel.close(target)


def readonly_paths(root: int, paths, kernel=sc) -> None:
    """linux.readonlyPaths, resolved under the rootfs fd (a missing one is skipped)."""
    for path in paths or ():
        try:
            _make_readonly(root, path, kernel)
        except OSError as err:
            raise BerthError(f"can't make {path!r} read-only: {_reason(err)}") from None


def _make_readonly(root: int, path: str, kernel) -> None:
    """Bound onto itself, then the new mount made read-only keeping its nosuid, nodev and noexec
    (runc's readonlyPath)."""
    try:
        target = _Target(root, path, open_in_root(root, path, kernel=kernel), kernel)
    except FileNotFoundError:
        return
    try:
        kernel.mount(target.path, target.path, None, sc.MS_BIND | sc.MS_REC, None)
        target.reopen()
        kept = kernel.statvfs(target.path).f_flag & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        kernel.mount(None, target.path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | kept, None)
    finally:
        target.close()


def change_dir(cwd: str, kernel=sc) -> None:
    """process.cwd, made if missing, resolved under this process's root (the container's, after
    pivot_root or setns): no symlink leads out, and no /proc/self/fd/N magic link to a host
    directory the process inherited (runc's CVE-2024-21626)."""
    root = kernel.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        target = make_dir(root, cwd, kernel=kernel)
    except OSError as err:
        raise BerthError(f"chdir to cwd ({cwd!r}) set in config.json failed: {_reason(err)}") from None
    finally:
        kernel.close(root)
    try:
        kernel.fchdir(target)
    finally:
        kernel.close(target)


def readonly_root(kernel=sc) -> None:
    kernel.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _mount_points() -> list[str]:
    """Every mount point of this mount namespace, from mountinfo."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def mount_point_of(path: str) -> str:
    """The mount point under which `path` lies (the longest one of this mount namespace)."""
    path = os.path.realpath(path)
    best = "/"
    for point in _mount_points():
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best


def mounts_under(path: str) -> list[str]:
    """The mount points strictly below `path` in this mount namespace."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    return [point for point in _mount_points() if point.startswith(prefix)]


def propagation_of(path: str) -> set:
    """The propagation tags ("shared", "master") of the mount `path` lies on, from mountinfo."""
    point = mount_point_of(path)
    tags = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].replace("\\040", " ") == point:
                optional = fields[6:fields.index("-")]
                tags = {tag.partition(":")[0] for tag in optional}
    return tags
