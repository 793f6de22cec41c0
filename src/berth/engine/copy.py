"""The engine side of `docker cp`: reach a container's filesystem and copy between it and the
host with docker's path rules, never letting a symlink in the container lead to the host.

The copy runs in a forked child. For a running container the child reaches the files through
/proc/<pid>/root; for a stopped one it mounts the container's overlay inside its own private
mount namespace, which disappears with it, so the host's mount table never changes. Inside a
root every path is resolved with secure_join and then opened one component at a time with
O_NOFOLLOW, so even a symlink swapped in by a running container cannot redirect a read or a
write; a file is read only once an O_PATH fd shows it is the regular file listed (never a
device swapped in). Errors come back to the caller over a pipe, typed as docker reports them."""

import errno
import os
import posixpath
import stat
import tarfile

from berth.engine.containers import is_running
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.fs import DIR_FLAGS, open_regular
from berth.runtime import syscalls as sc
from berth.runtime.forked import run_forked
from berth.runtime.mount import secure_join
from berth.strconv import quote

_CHUNK = 1 << 20
_MAX_DEST_LINKS = 10  # docker's CopyInfoDestinationPath gives up after this many


class LocalError(BerthError):
    """A failure docker's CLI finds on its own side, printed without "Error response from daemon: "."""


def _daemon_error(message: str) -> BerthError:
    return BerthError(message)


class CopyRequest:
    """One `docker cp` between a container path and a host path; host_path "-" is a tar stream
    (read from stdin when copying into the container, written to stdout when copying out)."""

    __slots__ = ("container", "container_path", "host_path", "to_container", "follow_link", "archive")

    def __init__(self, container: str, container_path: str, host_path: str, to_container: bool,
                 follow_link: bool = False, archive: bool = False):
        self.container = container
        self.container_path = container_path
        self.host_path = host_path
        self.to_container = to_container
        self.follow_link = follow_link
        self.archive = archive


class CopyResult:
    """What docker's closing line reports: bytes of content, bytes transferred, and where to."""

    __slots__ = ("size", "transferred", "dest")

    def __init__(self, size: int, transferred: int, dest: str):
        self.size = size
        self.transferred = transferred
        self.dest = dest


def copy(engine, req: CopyRequest, stdin: int = 0, stdout: int = 1) -> CopyResult | None:
    """Do the copy `req` describes; None when the result went to stdout as a tar stream."""
    if req.to_container:
        if req.host_path == "-":
            return _extract_stream(engine, req, stdin)
        return _copy_in(engine, req)
    if req.host_path == "-":
        _archive_stream(engine, req, stdout)
        return None
    return _copy_out(engine, req)


def path_stat(engine, ref: str, path: str) -> dict:
    """docker's ContainerStatPath (the API's X-Docker-Container-Path-Stat): name, size, Go's
    FileMode bits, mtime and, for a symlink, the path it leads to inside the container."""
    abs_path = _abs_container(path)

    def work(tree: "_Tree") -> dict:
        try:
            source = _find(tree, abs_path)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        except OSError as err:
            raise _daemon_error(_os_message("lstat", abs_path, err)) from None
        try:
            st = source.st
            link = ""
            if stat.S_ISLNK(st.st_mode):
                link = "/" + tree.resolve(abs_path.rstrip("/") or "/")
            return {"name": _go_base(abs_path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
                    "mtime": _go_time(st.st_mtime_ns), "linkTarget": link}
        finally:
            source.close()

    return _in_container(engine, ref, work)


# Go's os.FileMode type bits, by the stat type they stand for
_GO_TYPES = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISBLK, 1 << 26), (stat.S_ISFIFO, 1 << 25),
             (stat.S_ISSOCK, 1 << 24), (stat.S_ISCHR, (1 << 26) | (1 << 21)))


def go_file_mode(mode: int) -> int:
    bits = mode & 0o777
    for test, flag in _GO_TYPES:
        if test(mode):
            bits |= flag
    for special, flag in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if mode & special:
            bits |= flag
    return bits


def _go_time(ns: int) -> str:
    from berth.units import format_rfc3339_nano_ns  # lazy: only a path's stat

    return format_rfc3339_nano_ns(ns)


# -- the four directions -----------------------------------------------------

def _copy_out(engine, req: CopyRequest) -> CopyResult:
    dest = _abs_host(req.host_path)
    _validate_output_path(dest)

    def work(root: "_Tree") -> list:
        source, top = _container_source(root, req, streaming=False)
        dst_path, exists, is_dir = _host_destination(dest)
        dst_dir, rename = _prepare(source.is_dir, dst_path, exists, is_dir)
        try:
            tree = _Tree(dst_dir)
        except OSError as err:
            raise LocalError(_os_message("open", dst_dir, err)) from None
        keep = _source_owner if req.archive else None  # else: owned by whoever runs the copy
        with _Extractor(tree, "", dst_dir, keep, LocalError) as extractor:
            totals = _pump(_walk(source, rename or top, one_fs=True), extractor.add, _daemon_error)
        size = totals.tar if source.is_dir else source.st.st_size
        return [size, totals.tar, dest]

    return CopyResult(*_in_container(engine, req.container, work))


def _archive_stream(engine, req: CopyRequest, out_fd: int) -> None:
    def work(root: "_Tree") -> None:
        source, top = _container_source(root, req, streaming=True)
        out = _FdWriter(out_fd)
        archive = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)

        def add(info, content):
            archive.addfile(info, _Exact(content, info.size) if info.isreg() else None)

        try:
            _pump(_walk(source, top, one_fs=True), add, _daemon_error)
            archive.close()
        except OSError as err:
            if isinstance(err, BrokenPipeError):
                raise
            raise LocalError(_os_message("write", "stdout", err)) from None

    _in_container(engine, req.container, work)


def _copy_in(engine, req: CopyRequest) -> CopyResult:
    source, top = _host_source(req)  # checked before the container, as docker's CLI does

    def work(tree: "_Tree") -> list:
        dst_path, exists, is_dir = _container_destination(tree, req)
        dst_dir, rename = _prepare(source.is_dir, dst_path, exists, is_dir)
        base = _extraction_point(tree, dst_dir, req.container)
        owner = _source_owner if req.archive else _root_owner
        with _Extractor(tree, base, "/", owner, _daemon_error, parent_owner=(0, 0)) as extractor:
            totals = _pump(_walk(source, rename or top, one_fs=False), extractor.add, LocalError)
        return [totals.content, totals.tar, f"{req.container}:{dst_path}"]

    try:
        return CopyResult(*_in_container(engine, req.container, work, writing=True))
    finally:
        source.close()


def _extract_stream(engine, req: CopyRequest, in_fd: int) -> CopyResult:
    def work(tree: "_Tree") -> list:
        dst_path, _exists, is_dir = _container_destination(tree, req)
        if not is_dir:
            raise LocalError(f'destination "{req.container}:{req.container_path}" must be a directory')
        base = _extraction_point(tree, dst_path, req.container)
        count = _unpack(tree, base, in_fd, _source_owner if req.archive else _root_owner)
        return [count, count, f"{req.container}:{dst_path}"]

    return CopyResult(*_in_container(engine, req.container, work, writing=True))


def extract_archive(engine, ref: str, path: str, in_fd: int, keep_owner: bool = False) -> None:
    """The daemon's side of a copy into the container (the API's PUT archive): the tar read
    from `in_fd` unpacked at `path`, which must be a directory there; owned by root unless
    `keep_owner` (docker's copyUIDGID)."""

    def work(tree: "_Tree") -> None:
        _unpack(tree, _extraction_point(tree, path, ref), in_fd, _source_owner if keep_owner else _root_owner)

    _in_container(engine, ref, work, writing=True)


def build_copy(engine, ref: str, dest: str, source, owner: tuple[int, int], single_file: bool = False):
    """A build's COPY/ADD into the stopped container `ref` (berth.engine.build), in the child
    that mounts its overlay: `source.entries()` yields (tarfile.TarInfo, readable file or None)
    named relative to `dest`, which is made (new directories owned by `owner`) when missing.
    With `single_file`, `dest` names the one file yielded unless it is a directory there.
    Returns `source.summary()` (marshal-able), asked once every entry is written."""

    def work(tree: "_Tree"):
        base_path, rename = dest, None
        if single_file:
            try:
                is_dir = stat.S_ISDIR(os.stat(tree.resolve(dest) or ".", dir_fd=tree.fd,
                                              follow_symlinks=False).st_mode)
            except FileNotFoundError:
                is_dir = False
            if not is_dir:
                base_path, rename = posixpath.split(dest)
        os.close(tree.open_dir(tree.resolve(base_path), create=True, owner=owner))
        with _Extractor(tree, tree.resolve(base_path), base_path, _source_owner, _daemon_error,
                        parent_owner=owner) as extractor:
            for info, content in source.entries():
                if rename is not None:
                    info.name = rename
                extractor.add(info, content)
        return source.summary()

    return _in_container(engine, ref, work, writing=True)


def _unpack(tree: "_Tree", base: str, in_fd: int, owner) -> int:
    """Unpack the tar stream on `in_fd` at `base` (resolved, in `tree`); the bytes read."""
    stream = _CountingReader(open(in_fd, "rb", closefd=False))
    with _Extractor(tree, base, "/", owner, _daemon_error, parent_owner=(0, 0)) as extractor:
        try:
            archive = tarfile.open(fileobj=stream, mode="r|*")
            for member in archive:
                extractor.add(member, archive.extractfile(member) if member.isreg() else None)
        except (tarfile.TarError, EOFError) as err:
            if stream.count:  # an empty stream is an empty archive, as Go's tar reader sees it
                raise InvalidArgument(f"Error processing tar file: {err}") from None
    return stream.count


# -- reaching the container's filesystem ----------------------------------------

def _in_container(engine, ref: str, work, writing: bool = False):
    """Run work(root) in a child, `root` being the container's filesystem as a _Tree; return
    what it returns. The container's lock is held throughout, so it cannot start, stop being
    recorded, or be removed under the copy (docker holds its container lock the same way)."""
    record = engine.get(ref)
    container_id = record["Id"]
    try:
        with engine.lock(container_id):
            record = engine.load(container_id)
            if writing and record["HostConfig"].get("ReadonlyRootfs"):
                raise _daemon_error("container rootfs is marked read-only")
            pid = _running_pid(record)
            if pid:
                return _run_child(lambda: _running_root(pid, ref), work)
            return _run_child(lambda: _Tree(_mount_rootfs(record)), work, private_mounts=True)
    except FileNotFoundError:  # removed after we looked it up
        raise NotFound(f"No such container: {ref}") from None


def _running_pid(record: dict) -> int | None:
    """The container's init pid if it is really running. The cgroup check guards against the
    recorded pid having exited and been reused before the exit was written down."""
    if not is_running(record):
        return None
    pid = record["State"]["Pid"]
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            ours = f"/{record['Id']}" in f.read()
    except OSError:
        return None
    return pid if ours else None


def _running_root(pid: int, ref: str) -> "_Tree":
    try:
        return _Tree(f"/proc/{pid}/root")
    except (FileNotFoundError, ProcessLookupError):
        raise _daemon_error(f"container {ref} stopped before the copy could start") from None


def _mount_rootfs(record: dict) -> str:
    """Mount a stopped container's overlay in this (child) process's own mount namespace."""
    data = record["GraphDriver"]["Data"]
    options = f"lowerdir={data['LowerDir']},upperdir={data['UpperDir']},workdir={data['WorkDir']}"
    sc.mount("overlay", data["MergedDir"], "overlay", 0, options)
    return data["MergedDir"]


def _run_child(enter, work, private_mounts: bool = False):
    """work(enter()) in a forked child (berth.runtime.forked): its own mount namespace when
    it mounts the rootfs, modes exactly as the source's (umask 0), dead with us."""

    def child():
        try:
            return work(enter())
        except BrokenPipeError:  # the reader of our tar stream went away: not an error
            return None

    return run_forked(child, private_mounts=private_mounts, umask=0, errors=(LocalError,), name="copy")


class _Tree:
    """A directory tree we reach only through file descriptors: a path is resolved with
    secure_join as if the tree were `/`, then opened a component at a time with O_NOFOLLOW."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.path = f"/proc/self/fd/{self.fd}"  # the tree itself, even if `path` stops naming it

    def close(self) -> None:
        os.close(self.fd)

    def resolve(self, path: str) -> str:
        """`path` with every symlink resolved inside the tree, relative to it ("" is the top)."""
        return secure_join(self.path, path)[len(self.path) + 1:]

    def open_dir(self, rel: str, create: bool = False, owner: tuple | None = None) -> int:
        """Open the directory at resolved path `rel`, never following a symlink; with `create`,
        make missing directories (mode 0755, chowned to `owner` if given) on the way."""
        fd = os.open(".", DIR_FLAGS, dir_fd=self.fd)
        try:
            for part in rel.split("/") if rel else ():
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                    if owner is not None:
                        os.fchown(child, *owner)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd


class _Source:
    """What a copy reads: entry `name` of the open directory `parent_fd`, already lstat'ed."""

    __slots__ = ("parent_fd", "name", "st")

    def __init__(self, parent_fd: int, name: str, st: os.stat_result):
        self.parent_fd = parent_fd
        self.name = name
        self.st = st

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def close(self) -> None:
        if self.parent_fd >= 0:
            os.close(self.parent_fd)
            self.parent_fd = -1


def _find(tree: _Tree, abs_path: str, follow: bool = False) -> _Source:
    """docker's ResolvePath + Lstat: symlinks before the last component are followed (inside
    the tree), the last one only with `follow`, or when the path ends in "/" or "/."."""
    dir_part, base = _split(abs_path)
    if base in ("", "."):
        parent_rel, name = _split_rel(tree.resolve(dir_part))
    elif follow:
        parent_rel, name = _split_rel(tree.resolve(abs_path))
    else:
        parent_rel, name = tree.resolve(dir_part), base
    parent_fd = tree.open_dir(parent_rel)
    try:
        st = os.lstat(name, dir_fd=parent_fd)
        if base in ("", ".") and not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(20, "Not a directory")
    except BaseException:
        os.close(parent_fd)
        raise
    return _Source(parent_fd, name, st)


def _top_name(abs_path: str) -> str:
    """The name the copied resource has in the stream: its basename, or "." for the contents
    of a directory ("dir/." or "/")."""
    base = _go_base(abs_path)
    return "." if base in (".", "/") else base


def _container_source(tree: _Tree, req: CopyRequest, streaming: bool) -> tuple[_Source, str]:
    path = req.container_path
    abs_path = _abs_container(path)
    top = _top_name(abs_path)
    if req.follow_link:
        # docker's CLI stats the path and, for a symlink, asks for its target instead; the
        # stream then carries the target's name, a host copy the link's.
        link_target = _read_link(tree, abs_path)
        if link_target is not None:
            if not link_target.startswith("/"):
                link_target = _go_join(_split_dir_entry(path)[0], link_target)
            path = link_target
            abs_path = _abs_container(path)
            if streaming:
                top = _top_name(abs_path)
    try:
        return _find(tree, abs_path), top
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {req.container}") from None
    except OSError as err:
        raise _daemon_error(_os_message("lstat", abs_path, err)) from None


def _read_link(tree: _Tree, abs_path: str) -> str | None:
    try:
        source = _find(tree, abs_path)
    except OSError:
        return None
    try:
        if stat.S_ISLNK(source.st.st_mode):
            return os.readlink(source.name, dir_fd=source.parent_fd)
        return None
    finally:
        source.close()


def _host_source(req: CopyRequest) -> tuple[_Source, str]:
    abs_path = _abs_host(req.host_path)
    tree = _Tree("/")
    try:
        return _find(tree, abs_path, follow=req.follow_link), _top_name(abs_path)
    except OSError as err:
        raise LocalError(_os_message("lstat", abs_path, err)) from None
    finally:
        tree.close()


def _container_destination(tree: _Tree, req: CopyRequest) -> tuple[str, bool, bool]:
    """docker's CLI stat of the destination: (path, exists, is_dir). A symlink is followed one
    level; any failure just means "does not exist" (the extraction then decides)."""
    path = req.container_path
    try:
        found = _find(tree, _abs_container(path))
    except OSError:
        return path, False, False
    try:
        st = found.st
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(found.name, dir_fd=found.parent_fd)
            if not target.startswith("/"):
                target = _go_join(_split_dir_entry(path)[0], target)
            path = target
            try:
                followed = _find(tree, _abs_container(target))
            except OSError:
                return path, False, False
            st = followed.st
            followed.close()
    finally:
        found.close()
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise LocalError(f'destination "{req.container}:{req.container_path}" must be a directory or a '
                         "regular file: got a device")
    return path, True, stat.S_ISDIR(st.st_mode)


def _extraction_point(tree: _Tree, path: str, ref: str) -> str:
    """The daemon's check of where a stream is unpacked: it must exist and be a directory
    (symlinks followed inside the container). Returns it resolved, relative to the root."""
    abs_path = _abs_container(path)
    rel = tree.resolve(abs_path)
    parent_rel, name = _split_rel(rel)
    try:
        parent_fd = tree.open_dir(parent_rel)
        try:
            st = os.lstat(name, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {ref}") from None
    except OSError as err:
        raise _daemon_error(_os_message("lstat", abs_path, err)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument("extraction point is not a directory")
    return rel


# -- the host side: docker's client-side path rules ----------------------------------

def _validate_output_path(path: str) -> None:
    """docker's ValidateOutputPath, checked before the container is even looked at."""
    directory = _go_dir(_clean(path))
    if directory not in ("", ".") and not os.path.exists(directory):
        raise LocalError(f"invalid output path: directory {quote(directory)} does not exist")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise LocalError(_os_message("stat", path, err)) from None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise LocalError(f"invalid output path: {quote(path)} must be a directory or a regular file: got a device")


def _host_destination(path: str) -> tuple[str, bool, bool]:
    """docker's CopyInfoDestinationPath: (path, exists, is_dir), following symlinks to what
    they name; a missing destination needs an existing parent directory."""
    original = path
    try:
        st = os.lstat(path)
        hops = 0
        while stat.S_ISLNK(st.st_mode):
            if hops > _MAX_DEST_LINKS:
                raise LocalError(f"too many symlinks in {original}")
            target = os.readlink(path)
            path = target if target.startswith("/") else _go_join(_split_dir_entry(path)[0], target)
            hops += 1
            st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise LocalError(_os_message("lstat", path, err)) from None
    if st is not None:
        return path, True, stat.S_ISDIR(st.st_mode)
    parent = _split_dir_entry(path)[0]
    try:
        parent_st = os.stat(parent)
    except OSError as err:
        raise LocalError(_os_message("stat", parent, err)) from None
    if not stat.S_ISDIR(parent_st.st_mode):
        raise LocalError("not a directory")
    return path, False, False


def _prepare(src_is_dir: bool, dst_path: str, exists: bool, is_dir: bool) -> tuple[str, str | None]:
    """docker's PrepareArchiveCopy: the directory to unpack into, and the name the copied
    resource takes there (None: keep its own)."""
    dst_dir, dst_base = _split_dir_entry(dst_path)
    if exists and is_dir:
        return dst_path, None
    if exists and src_is_dir:
        raise LocalError("cannot copy directory")
    if not exists and not src_is_dir and _asserts_dir(dst_path):
        raise LocalError("no such directory")
    return dst_dir, dst_base


# -- reading a tree as a stream of tar entries ----------------------------------

def _walk(source: _Source, top: str, one_fs: bool):
    """(TarInfo, open file or None) for `source` and everything under it, depth first in name
    order, as docker's tar writer produces them. Symlinks are entries, never followed; a file
    seen again through another hard link becomes a link entry. With `one_fs`, directories
    that are mount points of other filesystems (a running container's /proc, /sys, /dev)
    appear empty, as docker, which reads the rootfs, shows them."""
    device = source.st.st_dev if one_fs else None
    yield from _walk_entry(tarfile, source.parent_fd, source.name, top, source.st, device, {})


def _walk_entry(tarfile, dir_fd: int, name: str, arcname: str, st: os.stat_result, device, seen: dict):
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.mtime = int(st.st_mtime)  # docker's tar keeps whole seconds
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
        yield info, None
        if device is not None and st.st_dev != device:
            return
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return  # replaced (by a symlink, say) since it was listed: nothing below it is read
            raise
        try:
            for child in sorted(os.listdir(fd)):
                try:
                    child_st = os.lstat(child, dir_fd=fd)
                except FileNotFoundError:  # removed while we walked a running container
                    continue
                yield from _walk_entry(tarfile, fd, child, f"{arcname}/{child}", child_st, device, seen)
        finally:
            os.close(fd)
    elif kind == stat.S_IFREG:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen:
            info.type = tarfile.LNKTYPE
            info.linkname = seen[key]
            yield info, None
            return
        # A running container may have swapped a device node in (a host disk: its open
        # already acts, its read leaks): only the very file we listed is opened.
        opened = open_regular(name, dir_fd)
        if opened is None:
            return
        fd, now = opened
        if (now.st_dev, now.st_ino) != key:
            os.close(fd)
            return  # another file under its name since the listing
        if st.st_nlink > 1:
            seen[key] = arcname
        with open(fd, "rb") as f:
            info.size = st.st_size
            yield info, f
    elif kind == stat.S_IFLNK:
        info.type = tarfile.SYMTYPE
        try:
            info.linkname = os.readlink(name, dir_fd=dir_fd)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.EINVAL):
                return  # not the symlink we listed any more
            raise
        yield info, None
    elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
        info.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}.get(kind, tarfile.FIFOTYPE)
        if kind != stat.S_IFIFO:
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        yield info, None
    # sockets are left out, as tar leaves them out


class _Totals:
    __slots__ = ("content", "tar")

    def __init__(self):
        self.content = 0  # bytes of regular files
        self.tar = 1024  # what the same copy weighs as an uncompressed tar stream (end blocks)


def _pump(entries, sink, source_error) -> _Totals:
    """Feed every entry to sink(info, content); a failure reading the source is reported as
    `source_error` (the sink raises its own typed errors)."""
    totals = _Totals()
    iterator = iter(entries)
    while True:
        try:
            info, content = next(iterator)
        except StopIteration:
            return totals
        except OSError as err:
            raise source_error(_os_message("read", err.filename or "", err)) from None
        size = info.size if info.isreg() else 0
        totals.content += size
        totals.tar += 512 + (size + 511) // 512 * 512
        if len(info.name) > 100 or len(info.linkname) > 100:
            totals.tar += 1024  # a pax header
        sink(info, content)


class _Exact:
    """Exactly `size` bytes of `f`: a file that shrank while we read it is padded with zeros
    and one that grew is cut, so an entry never disagrees with its header."""

    __slots__ = ("f", "left")

    def __init__(self, f, size: int):
        self.f = f
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self.left:
            n = self.left
        parts = []
        want = n
        while want > 0 and self.f is not None:
            chunk = self.f.read(min(want, _CHUNK))
            if not chunk:
                self.f = None
                break
            parts.append(chunk)
            want -= len(chunk)
        if want > 0:
            parts.append(bytes(want))
        self.left -= n
        return b"".join(parts)


class _FdWriter:
    """Unbuffered writes to a file descriptor; after the reader has gone (EPIPE), later
    writes, such as tarfile's own clean-up, are dropped instead of raising again."""

    __slots__ = ("fd", "broken")

    def __init__(self, fd: int):
        self.fd = fd
        self.broken = False

    def write(self, data) -> int:
        if self.broken:
            return len(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except BrokenPipeError:
            self.broken = True
            raise
        return len(data)


class _CountingReader:
    __slots__ = ("f", "count")

    def __init__(self, f):
        self.f = f
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        return data


# -- writing a stream of entries into a tree ------------------------------------

def _root_owner(_info) -> tuple[int, int]:
    return 0, 0


def _source_owner(info) -> tuple[int, int]:
    return info.uid, info.gid


class _Extractor:
    """Writes entries under `base` (resolved, relative to `tree`) as docker's untar with
    NoOverwriteDirNonDir does: a directory merges into an existing one, anything else
    replaces what was there, a directory and a non-directory never replace each other.
    Member names may not climb out of `base`; symlinks met on the way are resolved inside
    `tree`, and nothing is ever opened through one."""

    def __init__(self, tree: _Tree, base: str, shown_root: str, owner, error, parent_owner: tuple | None = None):
        self.tree = tree
        self.base = base
        self.shown_root = shown_root.rstrip("/")
        self.owner = owner  # info -> (uid, gid), or None to leave files to their creator
        self.error = error
        self.parent_owner = parent_owner
        self._parent_rel = None
        self._parent_fd = -1
        self._dirs = []

    def __enter__(self):
        return self

    def __exit__(self, kind, _value, _tb):
        try:
            if kind is None:
                self._set_dir_times()
        finally:
            if self._parent_fd >= 0:
                os.close(self._parent_fd)
                self._parent_fd = -1

    def _shown(self, rel: str) -> str:
        return f"{self.shown_root}/{rel}" if rel else (self.shown_root or "/")

    def _member(self, name: str) -> str:
        cleaned = posixpath.normpath(name) if name else "."
        if cleaned.startswith("/"):  # docker joins an absolute name under the destination
            cleaned = posixpath.normpath(cleaned.lstrip("/") or ".")
        if cleaned == ".." or cleaned.startswith("../"):
            raise self.error(f"{quote(name)} is outside of {quote(self._shown(self.base))}")
        return cleaned

    def add(self, info, content) -> None:
        name = self._member(info.name)
        if name == ".":
            if info.isdir():
                return  # the destination itself: docker leaves it as it is
            raise self.error(f"cannot overwrite directory {quote(self._shown(self.base))} with non-directory "
                             f"{quote(self._shown(self.base))}")
        rel = f"{self.base}/{name}" if self.base else name
        try:
            self._create(info, content, rel)
        except OSError as err:
            raise self.error(_os_message("", self._shown(rel), err)) from None

    def _create(self, info, content, rel: str) -> None:
        parent_rel, _, leaf = rel.rpartition("/")
        parent_fd = self._parent(parent_rel)
        try:
            old = os.lstat(leaf, dir_fd=parent_fd)
        except FileNotFoundError:
            old = None
        if old is not None:
            if stat.S_ISDIR(old.st_mode):
                if not info.isdir():
                    raise self.error(f"cannot overwrite directory {quote(self._shown(rel))} with non-directory "
                                     f"{quote(self._shown(self.base))}")
            elif info.isdir():
                raise self.error(f"cannot overwrite non-directory {quote(self._shown(rel))} with directory "
                                 f"{quote(self._shown(self.base))}")
            else:
                os.unlink(leaf, dir_fd=parent_fd)
        if info.isdir():
            if old is None:
                os.mkdir(leaf, 0o700, dir_fd=parent_fd)
            fd = os.open(leaf, DIR_FLAGS, dir_fd=parent_fd)
            try:
                self._own_and_chmod(fd, info)
            finally:
                os.close(fd)
            self._dirs.append((rel, info.mtime))
        elif info.isreg():
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent_fd)
            try:
                _write_all(_Exact(content, info.size), fd)
                self._own_and_chmod(fd, info)
                os.utime(fd, (info.mtime, info.mtime))
            finally:
                os.close(fd)
        elif info.issym():
            os.symlink(info.linkname, leaf, dir_fd=parent_fd)
            self._parent_rel = None  # a cached parent may have been reached through what this replaced
            self._finish_nofollow(parent_fd, leaf, info)
        elif info.islnk():
            self._hard_link(parent_fd, leaf, info)
        elif info.ischr() or info.isblk() or info.isfifo():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK if info.isblk() else stat.S_IFIFO
            os.mknod(leaf, kind | (info.mode & 0o7777), os.makedev(info.devmajor, info.devminor), dir_fd=parent_fd)
            self._finish_nofollow(parent_fd, leaf, info)
        else:
            raise self.error(f"unhandled tar header type {info.type.decode(errors='replace')!r}")

    def _parent(self, parent_rel: str) -> int:
        if parent_rel == self._parent_rel:
            return self._parent_fd
        fd = self.tree.open_dir(self.tree.resolve(parent_rel), create=True, owner=self.parent_owner)
        if self._parent_fd >= 0:
            os.close(self._parent_fd)
        self._parent_rel, self._parent_fd = parent_rel, fd
        return fd

    def _own_and_chmod(self, fd: int, info) -> None:
        if self.owner is not None:
            os.fchown(fd, *self.owner(info))  # before chmod: chown clears set-id bits
        os.fchmod(fd, info.mode & 0o7777)

    def _finish_nofollow(self, parent_fd: int, leaf: str, info) -> None:
        if self.owner is not None:
            uid, gid = self.owner(info)
            os.chown(leaf, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
        os.utime(leaf, (info.mtime, info.mtime), dir_fd=parent_fd, follow_symlinks=False)

    def _hard_link(self, parent_fd: int, leaf: str, info) -> None:
        try:
            target = self._member(info.linkname)
        except BerthError:
            raise self.error(f"invalid hardlink {quote(info.name)} -> {quote(info.linkname)}") from None
        target_rel = f"{self.base}/{target}" if self.base else target
        target_parent, _, target_leaf = target_rel.rpartition("/")
        target_fd = self.tree.open_dir(self.tree.resolve(target_parent))
        try:
            os.link(target_leaf, leaf, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(target_fd)

    def _set_dir_times(self) -> None:
        """Last, as docker does: writing into a directory changes its mtime."""
        for rel, mtime in self._dirs:
            try:
                fd = self.tree.open_dir(self.tree.resolve(rel))
            except OSError:
                continue
            try:
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def _write_all(source, fd: int) -> None:
    while chunk := source.read(_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


# -- paths the way Go's filepath and docker's archive package treat them -----------------

def _clean(path: str) -> str:
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _go_base(path: str) -> str:
    if not path:
        return "."
    stripped = path.rstrip("/")
    return stripped.rpartition("/")[2] if stripped else "/"


def _go_dir(path: str) -> str:
    return _clean(path[:path.rfind("/") + 1])


def _go_join(directory: str, name: str) -> str:
    return _clean(f"{directory}/{name}")


def _split(path: str) -> tuple[str, str]:
    """filepath.Split: everything up to and including the last "/", and the rest."""
    i = path.rfind("/")
    return path[:i + 1], path[i + 1:]


def _split_rel(rel: str) -> tuple[str, str]:
    """A resolved relative path as (parent, name); the top of the tree is ("", ".")."""
    if not rel:
        return "", "."
    parent, _, name = rel.rpartition("/")
    return parent, name


def _split_dir_entry(path: str) -> tuple[str, str]:
    """docker's SplitPathDirEntry: clean, but keep a trailing "/." as the entry."""
    cleaned = _clean(path)
    if _go_base(path) == ".":
        cleaned += "/."
    return _go_dir(cleaned), _go_base(cleaned)


def _preserve_trailing(cleaned: str, original: str) -> str:
    """docker's PreserveTrailingDotOrSeparator."""
    if _go_base(cleaned) != "." and _go_base(original) == ".":
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def _asserts_dir(path: str) -> bool:
    return path.endswith("/") or _go_base(path) == "."


def _abs_container(path: str) -> str:
    return _preserve_trailing(_clean("/" + path), path)


def _abs_host(path: str) -> str:
    joined = path if path.startswith("/") else os.path.join(os.getcwd(), path)
    return _preserve_trailing(_clean(joined), path)


def _os_message(op: str, path: str, err: OSError) -> str:
    """An OSError as Go prints one: "lstat /x: no such file or directory"."""
    reason = err.strerror or str(err)
    reason = reason[:1].lower() + reason[1:]
    where = f"{op} {path}".strip()
    return f"{where}: {reason}" if where else reason
