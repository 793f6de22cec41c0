"""Building the container's filesystem view inside its new mount namespace:
rootfs, OCI mounts, device nodes, pivot_root, masked and read-only paths."""

import os
import stat

from berth.runtime import syscalls as sc

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
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# Per-mount flags a bind takes by remounting; runc's defaultMountFlags for what it mounts for a cgroup.
_MOUNT_ATTRS = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME
                | sc.MS_RELATIME | sc.MS_STRICTATIME)
_CGROUP_DEFAULTS = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


# Created in every container's /dev (runc's default devices): name, major, minor.
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"),
)


def parse_options(options) -> tuple[int, int, str]:
    """OCI mount options -> (mount flags, propagation flags, fs-specific data)."""
    flags = propagation = 0
    data = []
    for opt in options or ():
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """Join `unsafe` under `root`, resolving symlinks as if `root` were `/` (never escapes)."""
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


def prepare_rootfs(spec: dict, rootfs: str, overlay: str | None, cgroup_dirs: dict | None = None) -> None:
    """Everything before pivot_root. `overlay` is the overlayfs option string to mount at
    `rootfs`, or None when `rootfs` is a ready directory (plain OCI bundle). `cgroup_dirs` is
    the container's cgroup's host_dirs(), what a mount of type "cgroup" shows."""
    linux = spec.get("linux") or {}
    propagation = _PROPAGATION.get(linux.get("rootfsPropagation") or "rslave")
    sc.mount(None, "/", None, propagation)
    if propagation & sc.MS_SHARED:
        # runc's rootfsParentMountPrivate: pivot_root refuses a shared parent; only the
        # mounts that asked for it stay shared with the host.
        sc.mount(None, mount_point_of(os.path.dirname(rootfs.rstrip("/"))), None, sc.MS_PRIVATE)
    if overlay:
        sc.mount("overlay", rootfs, "overlay", 0, overlay)
    else:
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    for m in spec.get("mounts") or ():
        mount_one(rootfs, m, cgroup_dirs)
    create_devices(rootfs, linux.get("devices") or ())


def mount_one(rootfs: str, m: dict, cgroup_dirs: dict | None = None) -> None:
    flags, propagation, data = parse_options(m.get("options"))
    kind = m.get("type") or ("bind" if flags & sc.MS_BIND else "")
    target = secure_join(rootfs, m["destination"])
    source = m.get("source") or kind
    if kind == "cgroup":
        mount_cgroup(target, flags, cgroup_dirs)
    elif kind == "bind" or flags & sc.MS_BIND:
        _make_target(target, is_dir=os.path.isdir(source))
        sc.mount(source, target, None, sc.MS_BIND | (flags & sc.MS_REC), None)
        extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:
            sc.mount(source, target, None, sc.MS_BIND | sc.MS_REMOUNT | extra, None)
    else:
        _make_target(target, is_dir=True)
        sc.mount(source, target, kind, flags, data)
    if propagation:
        sc.mount(None, target, None, propagation)


def mount_cgroup(target: str, flags: int, host_dirs: dict | None) -> None:
    """OCI type "cgroup" (runc's mountCgroupV1/V2), made of binds of the container's own
    cgroup directories, so it can be done before the container is in them and shows no other
    cgroup. v2 (host_dirs {"": dir}): that directory. v1: a tmpfs holding one directory per
    hierarchy, and a symlink per controller of a co-mounted one (cpu -> cpu,cpuacct)."""
    if host_dirs is None:
        from berth.errors import BerthError

        raise BerthError("a cgroup mount needs the container's cgroup")
    _make_target(target, is_dir=True)
    attrs = (flags & _MOUNT_ATTRS) | _CGROUP_DEFAULTS
    if "" in host_dirs:
        _bind_with(host_dirs[""], target, attrs)
        return
    sc.mount("tmpfs", target, "tmpfs", _CGROUP_DEFAULTS, "mode=755")
    for name in host_dirs:
        os.mkdir(target + "/" + name, 0o755)
        if "," in name:
            for controller in name.split(","):
                _symlink(name, target + "/" + controller)
    if attrs & sc.MS_RDONLY:
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | _CGROUP_DEFAULTS | sc.MS_RDONLY)
    for name, directory in host_dirs.items():
        _bind_with(directory, target + "/" + name, attrs)


def _bind_with(source: str, target: str, attrs: int) -> None:
    sc.mount(source, target, None, sc.MS_BIND)
    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | attrs)


def _make_target(path: str, is_dir: bool) -> None:
    if os.path.lexists(path):
        return
    if is_dir:
        os.makedirs(path, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def create_devices(rootfs: str, devices) -> None:
    dev = rootfs + "/dev"
    wanted = [{"path": "/dev/" + name, "type": "c", "major": major, "minor": minor, "fileMode": 0o666}
              for name, major, minor in DEFAULT_DEVICES]
    wanted.extend(devices)
    old_umask = os.umask(0)
    try:
        for d in wanted:
            path = secure_join(rootfs, d["path"])
            if os.path.lexists(path):
                os.unlink(path)
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            kind = stat.S_IFBLK if d.get("type") == "b" else stat.S_IFCHR
            mode = d.get("fileMode") or 0o666
            os.mknod(path, kind | (mode & 0o7777), os.makedev(d["major"], d["minor"]))
            os.chown(path, d.get("uid") or 0, d.get("gid") or 0)
    finally:
        os.umask(old_umask)
    for target, name in DEV_SYMLINKS:
        _symlink(target, dev + "/" + name)
    if os.path.exists("/proc/kcore"):
        _symlink("/proc/kcore", dev + "/core")
    if os.path.isdir(dev + "/pts"):
        _symlink("pts/ptmx", dev + "/ptmx")


def _symlink(target: str, path: str) -> None:
    try:
        os.symlink(target, path)
    except FileExistsError:
        pass


def pivot_root(rootfs: str) -> None:
    """runc's pivotRoot: pivot_root(".", "."), then from the old root (by an fd opened
    before: "." itself may still be the new root) make it rslave, so unmounting it does not
    propagate to the host, and detach it. The new root's own mounts keep their propagation
    (a shared bind stays shared with the host)."""
    old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def mask_paths(paths) -> None:
    for path in paths or ():
        try:
            if os.path.isdir(path):
                sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
            else:
                sc.mount("/dev/null", path, None, sc.MS_BIND, None)
        except FileNotFoundError:
            pass


def readonly_paths(paths) -> None:
    for path in paths or ():
        try:
            sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC, None)
        except FileNotFoundError:
            continue
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | sc.MS_NOSUID
                 | sc.MS_NODEV | sc.MS_NOEXEC, None)


def readonly_root() -> None:
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def mount_point_of(path: str) -> str:
    """The mount point under which `path` lies (the longest one of this mount namespace)."""
    path = os.path.realpath(path)
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best = point
    return best


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
