"""docker's `local` volume driver: volumes under <root>/volumes/<name>/ (data in _data/,
what `volume inspect` shows in volume.json), created, listed, removed and pruned the way
dockerd's volume service does it, and the copy-up of an image's content into a new volume.

There is no daemon to count references: the containers that use a volume are the records
whose Mounts name it. A volume directory is flocked while it is created, attached to a
container being created (until that record is written), copied into, or removed, so a
`volume rm` can never remove a volume a container is about to use."""

import fcntl
import os
import stat
import time

from berth import fastjson
from berth.engine import events
from berth.engine.names import valid_name as restricted
from berth.engine.store import ContainerStore
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, from_kind
from berth.fs import DIR_FLAGS, RECORD, make_dirs, pid_alive, read_json, remove_tree, write_all, write_json
from berth.runtime.forked import run_forked

DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # dockerd marks generated names with it
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
LOCAL_OPTIONS = ("type", "o", "device", "size")
REQUIRED_OPTIONS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
COPY_UP_MARKER = "copy-up.json"  # present while the image's content is being copied in
_TEMP_PREFIX = ".berth-copy-up."


def valid_name(name: str) -> bool:
    return not name.startswith("/") and restricted(name)


def check_name(name: str) -> None:
    """The local driver's rule, with dockerd's wording (`create NAME: ...`)."""
    if len(name) == 1:
        raise InvalidArgument(f"create {name}: volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not valid_name(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                              f'"{NAME_CHARS}" are allowed. If you intended to pass a host directory, use absolute '
                              "path")


def check_options(name: str, options: dict | None) -> None:
    """The local driver's options: type/device/o are mount(8)'s, applied on first use."""
    for key in options or {}:
        if key not in LOCAL_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
    if not options:
        return
    if "size" in options:
        from berth.units import ram_in_bytes  # lazy: only volume options; `volume ls` loads no units

        try:
            size = ram_in_bytes(options["size"])
        except ValueError:
            raise InvalidArgument(f"create {name}: invalid size: '{options['size']}'") from None
        if size > 0:  # dockerd needs project quotas on its root's filesystem for this
            raise InvalidArgument(f"create {name}: quota size requested but no quota support")
    for key, needed in REQUIRED_OPTIONS.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidArgument(f'create {name}: missing required option: "{other}"')


def _rfc3339_local(ts: float) -> str:
    """Go's time.RFC3339 in local time, as dockerd prints a volume's CreatedAt."""
    local = time.localtime(ts)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


class Volume:
    """One locked volume: `meta` is its volume.json; release() (or `with`) drops the lock."""

    __slots__ = ("name", "path", "meta", "created", "fd")

    def __init__(self, name: str, path: str, meta: dict, fd: int, created: bool = False):
        self.name = name
        self.path = path
        self.meta = meta
        self.fd = fd
        self.created = created

    @property
    def data(self) -> str:
        return os.path.join(self.path, "_data")

    @property
    def needs_mount(self) -> bool:
        options = self.meta.get("Options") or {}
        return bool(options.get("type") or options.get("device"))

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.meta.get("Labels") or {})

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Volume":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def volume_json(meta: dict, data: str) -> dict:
    """`docker volume inspect`'s shape (the API's Volume, keys in Go's field order)."""
    labels, options = meta.get("Labels"), meta.get("Options")
    return {"CreatedAt": meta.get("CreatedAt", ""), "Driver": meta.get("Driver", DRIVER),
            "Labels": None if labels is None else dict(sorted(labels.items())),  # Go prints maps sorted
            "Mountpoint": data, "Name": meta["Name"],
            "Options": None if options is None else dict(sorted(options.items())), "Scope": "local"}


class VolumeStore:
    def __init__(self, paths):
        self.paths = paths
        self.containers = ContainerStore(paths)  # who uses a volume: their records, read through the store
        self.dir = os.path.join(paths.root, "volumes")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.dir) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    # -- lookup and locking ----------------------------------------------
    def open(self, name: str) -> Volume | None:
        """The volume locked, or None if there is no such volume."""
        if not valid_name(name):  # never a path: "../containers" names no volume
            return None
        path = self.path(name)
        while True:
            try:
                fd = os.open(path, DIR_FLAGS)
            except (FileNotFoundError, NotADirectoryError):
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed (or removed and made again) while we waited
                os.close(fd)
                continue
            try:
                meta = read_json(os.path.join(path, "volume.json"))
            except FileNotFoundError:
                meta = {"Name": name, "Driver": DRIVER}  # made by hand or by an older berth: still a volume
            return Volume(name, path, meta, fd)

    def get(self, name: str) -> dict:
        """`volume inspect`'s JSON; NotFound with dockerd's wording."""
        if not valid_name(name):
            raise NotFound(f"get {name}: no such volume")
        try:
            meta = read_json(os.path.join(self.path(name), "volume.json"))
        except (FileNotFoundError, NotADirectoryError):
            if not os.path.isdir(os.path.join(self.path(name), "_data")):
                raise NotFound(f"get {name}: no such volume") from None
            meta = {"Name": name, "Driver": DRIVER}
        return volume_json(meta, os.path.join(self.path(name), "_data"))

    def volumes(self) -> list[dict]:
        found = []
        for name in self.names():
            try:
                found.append(self.get(name))
            except NotFound:
                continue
        return found

    # -- create ----------------------------------------------------------
    def create(self, name: str | None = None, labels: dict | None = None, options: dict | None = None,
               driver: str = DRIVER) -> Volume:
        """The volume `name` locked, created first if missing (a generated 64-hex name and
        the anonymous label when `name` is None). An existing volume is returned as it is,
        like dockerd does."""
        if not name:
            name = os.urandom(32).hex()
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        if driver != DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        check_name(name)
        check_options(name, options)
        while True:
            volume = self.open(name)
            if volume is not None:
                return volume
            volume = self._make(name, labels, options)
            if volume is not None:
                return volume

    def _make(self, name: str, labels, options) -> Volume | None:
        """Build the volume aside and rename it into place; None if another command made it first."""
        make_dirs(self.dir)
        self.reap_leftovers(age=1.0)  # what a create or remove killed midway left
        staging = os.path.join(self.dir, f".creating-{name}-{os.getpid()}-{os.urandom(4).hex()}")
        os.mkdir(staging, 0o700)
        fd = -1
        try:
            fd = os.open(staging, DIR_FLAGS)
            fcntl.flock(fd, fcntl.LOCK_EX)  # held from the start: a sweeper never takes it for a leftover
            os.mkdir(os.path.join(staging, "_data"), 0o755)
            meta = {"Name": name, "Driver": DRIVER, "CreatedAt": _rfc3339_local(time.time()),
                    "Labels": labels, "Options": options}
            write_json(os.path.join(staging, "volume.json"), meta)
            os.rename(staging, self.path(name))
        except OSError as err:
            if fd >= 0:
                os.close(fd)
            remove_tree(staging)
            if err.errno in (17, 39):  # EEXIST, ENOTEMPTY: it exists now
                return None
            raise
        except BaseException:
            if fd >= 0:
                os.close(fd)
            remove_tree(staging)
            raise
        events.volume(self.paths.root, "create", name)
        return Volume(name, self.path(name), meta, fd, created=True)

    # -- references ------------------------------------------------------
    def references(self) -> dict[str, list[str]]:
        """volume name -> IDs of the containers whose Mounts use it."""
        refs: dict[str, list[str]] = {}
        try:
            ids = [n for n in os.listdir(self.paths.containers) if len(n) == 64]
        except FileNotFoundError:
            return refs
        for container_id in ids:
            try:
                record = self.containers.read(container_id)
            except (FileNotFoundError, NotADirectoryError, ValueError):
                continue
            for mount in record.get("Mounts") or ():
                if mount.get("Type") == "volume" and mount.get("Name"):
                    users = refs.setdefault(mount["Name"], [])
                    if container_id not in users:
                        users.append(container_id)
        return refs

    # -- remove ----------------------------------------------------------
    def remove(self, name: str, force: bool = False, refs: dict | None = None) -> bool:
        """Remove the volume and its data; Conflict with dockerd's message if a container
        uses it. With `force`, a missing volume is not an error. True if removed."""
        volume = self.open(name)
        if volume is None:
            if force:
                return False
            raise NotFound(f"get {name}: no such volume")
        with volume:
            users = (self.references() if refs is None else refs).get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._destroy(volume)
        return True

    def remove_unused(self, volume: Volume) -> bool:
        """For `rm -v`: remove a locked volume unless another container uses it (not an error)."""
        if self.references().get(volume.name):
            return False
        self._destroy(volume)
        return True

    def _destroy(self, volume: Volume) -> None:
        """Called with the volume locked: unmount it if the driver mounted it, rename it away
        (from now on nobody finds it), then delete the data."""
        self.unmount(volume)
        trash = os.path.join(self.dir, f".removing-{volume.name}-{os.urandom(4).hex()}")
        os.rename(volume.path, trash)
        events.volume(self.paths.root, "destroy", volume.name, volume.meta.get("Driver") or DRIVER)
        remove_tree(trash)

    def reap_leftovers(self, age: float = 60.0) -> None:
        """Staging and trash directories of a create or remove that was killed: nobody holds
        their lock and they are older than `age` seconds."""
        try:
            entries = [n for n in os.listdir(self.dir) if n.startswith((".creating-", ".removing-"))]
        except FileNotFoundError:
            return
        for name in entries:
            path = os.path.join(self.dir, name)
            creator = name.rsplit("-", 2)[-2] if name.startswith(".creating-") else ""
            if creator.isdigit() and pid_alive(int(creator)):
                continue  # being created (its creator may not hold the lock yet)
            try:
                fd = os.open(path, DIR_FLAGS)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if creator.isdigit() or time.time() - os.fstat(fd).st_mtime > age:
                    remove_tree(path)
            except OSError:
                pass  # in use: a command is working on it
            finally:
                os.close(fd)

    # -- mount options (type/device/o) -------------------------------------
    def mount(self, volume: Volume) -> None:
        """Mount a volume made with -o type=...,device=... on its _data, once: it stays
        mounted (under --root) until the volume is removed, shared by every container."""
        if not volume.needs_mount or os.path.ismount(volume.data):
            return
        from berth.runtime import mount as kernel  # lazy: only -o device volumes mount
        from berth.runtime import syscalls as sc  # lazy: only -o device volumes mount

        options = volume.meta.get("Options") or {}
        if not options.get("device"):
            raise BerthError(f"error while mounting volume '{volume.data}': missing device in volume options")
        flags, _propagation, data = kernel.parse_options((options.get("o") or "").split(","))
        try:
            sc.mount(options["device"], volume.data, options.get("type") or None, flags, data or None)
        except OSError as err:
            raise BerthError(f"error while mounting volume '{volume.data}': failed to mount local volume: mount "
                             f"{options['device']}:{volume.data}, data: {data}: {err.strerror.lower()}") from None

    def unmount(self, volume: Volume) -> None:
        if volume.needs_mount and os.path.ismount(volume.data):
            from berth.runtime import syscalls as sc  # lazy: only -o device volumes mount

            sc.umount2(volume.data, sc.MNT_DETACH)

    # -- copy-up -----------------------------------------------------------
    def copy_up(self, jobs: list, lower_dirs: str, run_root: str) -> None:
        """Copy the image's content at each job's path into its volume, if the volume is
        empty (dockerd's populateVolume). `jobs` are (Volume, container path, strict):
        strict (an image VOLUME) refuses a path that is a file in the image. Each volume
        gets a marker first, removed once its copy is whole, so a copy cut short by a crash
        is finished by the next mount (complete_copy_up)."""
        work = []
        for volume, path, strict in jobs:
            self.complete_copy_up(volume, run_root)  # an earlier one, cut short: its volume is not empty
            self.mount(volume)
            if not os.listdir(volume.data):
                _write_marker(os.path.join(volume.path, COPY_UP_MARKER), {"LowerDir": lower_dirs, "Path": path})
                work.append((volume, path, strict))
        if not work:
            return
        _copy_in_child(lower_dirs, [(v.data, path, strict, False) for v, path, strict in work], run_root)
        for volume, *_ in work:
            os.unlink(os.path.join(volume.path, COPY_UP_MARKER))

    def complete_copy_up(self, volume: Volume, run_root: str) -> None:
        """A copy-up that a crash interrupted: finish it from the layers it was copying, or
        say clearly that it cannot be finished."""
        marker = os.path.join(volume.path, COPY_UP_MARKER)
        try:
            pending = read_json(marker)
        except FileNotFoundError:
            return
        except ValueError:  # its writer was cut short writing it, so before copying anything
            os.unlink(marker)
            return
        lower, path = pending.get("LowerDir"), pending.get("Path")
        missing = [d for d in (lower or "").split(":") if not os.path.isdir(d)]
        if not lower or not path or missing:
            raise BerthError(f"volume {volume.name}: copying the image's content into it was interrupted and cannot "
                             "be completed (its image layers are gone); remove the volume to start again")
        self.mount(volume)
        _copy_in_child(lower, [(volume.data, path, False, True)], run_root)
        os.unlink(marker)

    def size(self, name: str) -> int:
        """Bytes in the volume's data, each hard-linked file counted once (docker's directory.Size)."""
        return tree_size(os.path.join(self.path(name), "_data"), count_links_once=True)


def _write_marker(path: str, data: dict) -> None:
    """The copy-up marker, written in place (no temp file for a kill to leave behind) and
    made durable before any copying: a torn one means nothing was copied yet."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, RECORD)
    try:
        write_all(fd, fastjson.dumps(data).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def tree_size(path: str, count_links_once: bool = False) -> int:
    """Bytes of everything but directories under `path` (their lstat sizes): a volume's data,
    a container's upper dir. Containers change such trees as we walk them, so each directory
    is opened through its parent's fd without following symlinks and listed through that fd:
    one swapped for a symlink to a host directory is skipped, never walked into."""
    total = 0
    seen = set()
    try:
        top = os.open(path, DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    stack = [(top, None)]  # (directory fd, names of its subdirectories still to visit; None: not listed yet)
    try:
        while stack:
            fd, subdirs = stack[-1]
            if subdirs is None:
                subdirs = []
                with os.scandir(fd) as listing:
                    for entry in listing:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        if stat.S_ISDIR(st.st_mode):
                            subdirs.append(entry.name)
                            continue
                        if count_links_once and st.st_nlink > 1:
                            if (st.st_dev, st.st_ino) in seen:
                                continue
                            seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
                stack[-1] = (fd, subdirs)
            if not subdirs:
                stack.pop()
                os.close(fd)
                continue
            try:
                stack.append((os.open(subdirs.pop(), DIR_FLAGS, dir_fd=fd), None))
            except OSError as err:
                if err.errno not in (2, 20, 40):  # ENOENT, ENOTDIR, ELOOP: not a directory any more
                    raise
    finally:
        for fd, _subdirs in stack:
            os.close(fd)
    return total


# -- filters (docker volume ls / prune) ------------------------------------
LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")


def parse_filters(values: list[str], accepted: tuple) -> dict:
    from berth.filters import parse_filters as parse  # lazy: only --filter

    flag = "--filter" if accepted is PRUNE_FILTERS else "-f, --filter"  # volume prune: -f is --force
    return parse(values, accepted, {"dangling": lambda v: v.lower() in ("true", "false", "1", "0")}, flag)


def matches(volume: dict, filters: dict, used: bool) -> bool:
    from berth.filters import labels_pass, passes, regexp_holds  # lazy: only --filter

    name = volume["Name"]
    return labels_pass(filters, volume.get("Labels")) and passes(filters, {
        "dangling": lambda v: (v.lower() in ("true", "1")) != used,
        "name": lambda v: regexp_holds(v, name),
        "driver": lambda v: volume["Driver"] == v,
    })


def prune(store: VolumeStore, all_volumes: bool, filters: dict) -> tuple[list[str], int]:
    """dockerd's Prune: unused local volumes without mount options, only anonymous ones
    unless `all_volumes`. Returns (names removed, bytes reclaimed)."""
    flags = filters.pop("all", [])
    if len(flags) > 1:
        raise InvalidArgument(f"invalid filter 'all={flags}': only one value is expected")
    if flags:
        from berth.strconv import parse_bool  # lazy: only prune needs it, and `run -v` imports this module

        try:
            all_volumes = parse_bool(flags[0]) or all_volumes
        except ValueError as err:
            raise InvalidArgument(f"invalid filter 'all': {err}") from None
    if not all_volumes:
        filters = {**filters, "label": filters.get("label", []) + [ANONYMOUS_LABEL]}
    store.reap_leftovers()
    deleted, reclaimed = [], 0
    for info in sorted(store.volumes(), key=lambda v: v["Name"]):
        if info["Driver"] != DRIVER or info.get("Options") or not matches(info, filters, False):
            continue
        volume = store.open(info["Name"])
        if volume is None:
            continue
        with volume:
            if store.references().get(volume.name):
                continue
            size = store.size(volume.name)
            store._destroy(volume)
        deleted.append(info["Name"])
        reclaimed += size
    return deleted, reclaimed


# -- the copy itself, in a child with its own mount namespace ---------------
def _copy_in_child(lower_dirs: str, jobs: list, run_root: str) -> None:
    """Mount the image's layers read-only in a forked child's private mount namespace (the
    host's mount table never changes, and a killed child leaves no mount behind) and copy
    each (volume data dir, container path, strict, resume) job."""
    os.makedirs(run_root, exist_ok=True)
    target = os.path.join(run_root, f"copy-up-{os.getpid()}-{os.urandom(4).hex()}")
    os.mkdir(target, 0o700)
    try:
        run_forked(lambda: _child_copy(lower_dirs, jobs, target), private_mounts=True, umask=0, name="copy")
    except BerthError as err:
        raise from_kind(err.kind, f"failed to populate volume: {err}") from None
    finally:
        try:
            os.rmdir(target)
        except OSError:
            pass


def _child_copy(lower_dirs: str, jobs: list, target: str) -> None:
    from berth.runtime import syscalls as sc  # lazy: only copy-up, in its forked child
    from berth.runtime.mount import secure_join  # lazy: only copy-up, in its forked child

    sc.mount("overlay", target, "overlay", sc.MS_RDONLY, f"lowerdir={lower_dirs}")
    for data, path, strict, resume in jobs:
        source = secure_join(target, path)
        try:
            st = os.lstat(source)
        except (FileNotFoundError, NotADirectoryError):
            continue  # nothing in the image there: an empty volume
        if not _is_dir(st.st_mode):
            if strict:
                raise BerthError(f"cannot mount volume over existing file, file exists {source[len(target):]}")
            continue
        src_fd = os.open(source, DIR_FLAGS)  # the image's layers, mounted read-only: they cannot change
        root_fd = -1
        links: dict = {}
        try:
            root_fd = os.open(data, DIR_FLAGS)
            _copy_dir(src_fd, root_fd, links, resume)
            _set_metadata(root_fd, st, _xattrs(src_fd))
        finally:
            os.close(src_fd)
            if root_fd >= 0:
                os.close(root_fd)
            for fd in {fd for fd, _name in links.values()}:
                os.close(fd)


def _is_dir(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def _copy_dir(src_fd: int, dst_fd: int, links: dict, resume: bool) -> None:
    """Copy the entries of the directory open at `src_fd` into the one open at `dst_fd`.
    Every entry appears under its final name only once whole (through a temporary name, then
    rename), so after a crash an existing name is complete and `resume` skips it.

    The destination is a volume other containers may be writing to as we go, hostile ones
    too: only fd-relative calls touch it, none follows a symlink, and metadata is set through
    an fd of the very object created (the name may hold something else a moment later)."""
    with os.scandir(src_fd) as listing:
        entries = [(entry.name, entry.stat(follow_symlinks=False)) for entry in listing
                   if not entry.name.startswith(_TEMP_PREFIX)]
    kept = None
    for name, st in entries:
        if _is_dir(st.st_mode):
            try:
                os.mkdir(name, 0o700, dir_fd=dst_fd)
            except FileExistsError:
                if not resume:
                    raise
            child = os.open(name, DIR_FLAGS, dir_fd=dst_fd)
            try:
                src_child = os.open(name, DIR_FLAGS, dir_fd=src_fd)
                try:
                    _copy_dir(src_child, child, links, resume)
                    _set_metadata(child, st, _xattrs(src_child))
                finally:
                    os.close(src_child)
            finally:
                os.close(child)
            continue
        if resume and _exists(name, dst_fd):
            continue
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            first_fd, first_name = links[key]
            os.link(first_name, name, src_dir_fd=first_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
            continue
        temp = _TEMP_PREFIX + name
        _unlink_quietly(temp, dst_fd)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), temp, dir_fd=dst_fd)
            # no fd to a symlink to set owner and times through: by name, never following one
            os.chown(temp, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
            os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src_fd, name, st, dst_fd, temp)
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            _make_node(src_fd, name, st, dst_fd, temp)
        else:
            continue  # sockets are not copied
        os.rename(temp, name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
        if st.st_nlink > 1:  # later links to it are made from this copy, through a directory fd kept open
            if kept is None:
                kept = os.dup(dst_fd)
            links[key] = (kept, name)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _copy_file(src_fd: int, name: str, st, dst_fd: int, temp: str) -> None:
    fd_in = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    try:
        fd_out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dst_fd)
        try:
            while True:  # copy_file_range would fail across filesystems (EXDEV): sendfile does not
                if os.sendfile(fd_out, fd_in, None, 1 << 30) == 0:
                    break
            _set_metadata(fd_out, st, _xattrs(fd_in))
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _make_node(src_fd: int, name: str, st, dst_fd: int, temp: str) -> None:
    """A FIFO or device node like entry `name` of `src_fd`, made as `temp` in `dst_fd`. A node
    cannot be opened without acting as one, so it is pinned with an O_PATH fd, checked to be
    the node just made (the name may already hold another container's symlink to a host
    file), and its metadata set through that fd (/proc/self/fd/N reaches that inode, nothing
    else), never through the name."""
    kind = stat.S_IFMT(st.st_mode)
    os.mknod(temp, kind | 0o600, st.st_rdev, dir_fd=dst_fd)
    pinned = os.open(temp, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_fd)
    try:
        made = os.fstat(pinned)
        if (stat.S_IFMT(made.st_mode), made.st_rdev, made.st_dev) != (kind, st.st_rdev, os.fstat(dst_fd).st_dev):
            raise BerthError(f"{temp[len(_TEMP_PREFIX):]} was replaced while it was copied into the volume")
        _set_metadata(f"/proc/self/fd/{pinned}", st, _xattrs(f"/proc/self/fd/{src_fd}/{name}"))
    finally:
        os.close(pinned)


def _xattrs(source) -> list[tuple[str, bytes]]:
    """The xattrs to copy from `source`, an open fd or a path whose last component is not
    followed: all but overlayfs's own."""
    nofollow = {} if isinstance(source, int) else {"follow_symlinks": False}
    try:
        return [(key, os.getxattr(source, key, **nofollow)) for key in os.listxattr(source, **nofollow)
                if not key.startswith("trusted.overlay.")]
    except OSError as err:
        if err.errno not in (95, 1, 61):  # ENOTSUP, EPERM, ENODATA: the filesystem has none to give
            raise
        return []


def _set_metadata(target, st, xattrs: list) -> None:
    """Owner, mode, xattrs and times of `st` onto `target`: an fd of what we created, or
    /proc/self/fd/N of an O_PATH fd of it (both reach that object alone; a name would not)."""
    os.chown(target, st.st_uid, st.st_gid)  # before chmod: chown clears set-id bits
    os.chmod(target, stat.S_IMODE(st.st_mode))
    try:
        for key, value in xattrs:
            os.setxattr(target, key, value)
    except OSError as err:
        if err.errno not in (95, 1, 61):  # ENOTSUP, EPERM, ENODATA: the volume's filesystem refuses
            raise
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- use cases -------------------------------------------------------------------------------

def create_volume(engine, name: str | None = None, labels: dict | None = None, options: dict | None = None,
                  driver: str = DRIVER) -> str:
    """`volume create`: the volume `name` (a new anonymous one when None), made if missing;
    its name."""
    with VolumeStore(engine.paths).create(name, labels=labels, options=options, driver=driver) as volume:
        return volume.name


def list_volumes(engine, filters: dict) -> list[dict]:
    """`volume ls`: the volumes (inspect's shape) that pass `filters` (parse_filters with
    LIST_FILTERS); dangling means no container's Mounts name it."""
    store = VolumeStore(engine.paths)
    refs = store.references() if "dangling" in filters else {}
    return [info for info in store.volumes() if matches(info, filters, bool(refs.get(info["Name"])))]
