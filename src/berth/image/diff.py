"""A container's changes, read from its overlay upper directory: `berth diff`'s list, the
layer `berth commit` makes of them (an OCI layer tar), and `berth export`'s flat tar.

In the upper dir a deletion is a whiteout (char device 0:0) and a replaced directory is
opaque (xattr trusted.overlay.opaque=y); in a layer tar they are `.wh.<name>` and
`<dir>/.wh..wh..opq` files (OCI image spec, "whiteouts").

A layer tar must cost about what `tar` of the same directory costs (DESIGN.md). How:
the entries are listed once (d_type, no stat); a small file then costs open, fstat,
flistxattr, read and close, through directory fds, and a header formatted directly; large
files go file to file (sendfile); a thread hashes the tar from the page cache as it is
written; and with many entries a forked helper writes the second half on the other core."""

import errno
import os
import stat
import zlib

from berth.errors import BerthError
from berth.fs import DIR_FLAGS, open_regular
from berth.runtime.forked import Forked

OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
CHUNK = 1 << 20  # output is written in pieces this large
SEND_MIN = 1 << 15  # file content this large goes file to file (sendfile), not through the buffer
SEND_STEP = 8 << 20  # ... in pieces this large, so hashing follows a big file as it is copied
HASH_STEP = 2 << 20  # the hasher takes the written output in windows at least this large
END_OF_ARCHIVE = bytes(1024)
HELPER_MIN = 2000  # entries worth forking a helper process for (fork and join cost ~2 ms)
HELPER_REGION = 1 << 28  # the most tar a helper passes back (shared memory, touched as used)
DIR, FILE, OTHER = 0, 1, 2  # an entry's kind as its directory listing tells it
# O_NONBLOCK: if a regular file became a fifo since the listing, the open must not hang;
# O_NOATIME: committing reads every file, and should not write back every inode
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOATIME | os.O_NOCTTY
_REPLACED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # opening a directory that is not one any more


def is_whiteout(st) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _open_dir(name: str, dir_fd: int) -> int:
    """The directory `name` of `dir_fd`, or -1 if it is no longer one (removed, or replaced by
    a symlink or a file since its parent was listed: a running container's tree)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in _REPLACED:
            return -1
        raise


def _close_all(fds) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def _opaque(dir_fd: int) -> bool:
    return _getxattr(dir_fd, OPAQUE_XATTR) == b"y"


def changes(upper: str, lowers: list[str]) -> list[tuple[str, str]]:
    """docker diff: ("A"|"C"|"D", "/path") in docker's order, a depth-first walk of the
    upper dir in directory order. Every entry there is a change; a directory there only
    because something inside it changed shows as C. Both the upper dir and the layers below
    are read through directory fds, never by path: a container may swap a directory for a
    symlink while we walk, and an image may hold absolute symlinks."""
    found = []
    top = os.open(upper, DIR_FLAGS)
    below = []
    try:
        for lower in lowers:
            fd = _open_dir(lower, None)
            below.append((fd, False) if fd >= 0 else _SKIP)
        _changes_below(top, "", below, found)
    finally:
        os.close(top)
        _close_lowers(below)
    return found


# What a lower layer holds of a directory of the upper dir: (its fd there, opaque?), or
_SKIP = -1  # nothing: look in the layers below
_HIDE = -2  # nothing, and nothing below shows either (a whiteout or an opaque directory above it)


def _changes_below(dir_fd: int, rel: str, lowers: list, found: list) -> None:
    """`lowers` is empty below a directory the image does not have: nothing in it is either."""
    with os.scandir(dir_fd) as listing:
        entries = list(listing)
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        in_lower = bool(lowers) and _in_lower(lowers, entry.name)
        if entry.is_dir(follow_symlinks=False):
            found.append(("C" if in_lower else "A", "/" + child))
            fd = _open_dir(entry.name, dir_fd)
            if fd < 0:
                continue  # replaced since the listing: nothing below it to list
            below = _lowers_of(lowers, entry.name) if in_lower else []
            try:
                _changes_below(fd, child, below, found)
            finally:
                os.close(fd)
                _close_lowers(below)
            continue
        try:
            deleted = not (entry.is_file(follow_symlinks=False) or entry.is_symlink()) and is_whiteout(
                entry.stat(follow_symlinks=False))  # only a device can be a whiteout
        except FileNotFoundError:  # removed since the listing
            continue
        if not deleted:
            found.append(("C" if in_lower else "A", "/" + child))
        elif in_lower:
            found.append(("D", "/" + child))


def _in_lower(lowers: list, name: str) -> bool:
    """Does `name` exist in the image below (in the directories `lowers`, topmost first)?"""
    for state in lowers:
        if state == _HIDE:
            return False
        if state == _SKIP:
            continue
        fd, opaque = state
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            if opaque:
                return False
            continue
        return not is_whiteout(st)
    return False


def _lowers_of(lowers: list, name: str) -> list:
    """What each lower layer holds of subdirectory `name` (see _SKIP): a symlink or file in
    a layer is never looked through, as overlayfs does not."""
    below = []
    try:
        for state in lowers:
            if state in (_SKIP, _HIDE):
                below.append(state)
                continue
            fd, opaque = state
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                below.append(_HIDE if opaque else _SKIP)
                continue
            if is_whiteout(st):
                below.append(_HIDE)
            elif stat.S_ISDIR(st.st_mode):
                child = _open_dir(name, fd)
                below.append((child, _opaque(child)) if child >= 0 else _SKIP)
            else:
                below.append(_SKIP)
    except BaseException:
        _close_lowers(below)
        raise
    if all(state in (_SKIP, _HIDE) for state in below):
        return []  # no layer has it as a directory: nothing below it is in the image
    return below


def _close_lowers(lowers: list) -> None:
    _close_all(state[0] for state in lowers if state not in (_SKIP, _HIDE))


class LayerWriter:
    """Writes the OCI layer tar of an upper dir and returns its diff ID, the tar's sha256.
    The layer's overlay directory is unpacked from that tar when an image first needs it.

    `tar_fd` is a new, empty file open for reading and writing: a second thread hashes the
    file's own bytes from the page cache while this one writes them.

    `live`: the container is running (not frozen), so its tree may change while it is read,
    by a hostile hand too. Then a file is opened only once an O_PATH fd shows it is still a
    regular file (a device swapped in is never opened), an entry replaced since the listing
    is left out, and no helper process reads names a second time."""

    def __init__(self, upper: str, tar_fd: int, live: bool = False):
        self.upper = upper
        self.fd = tar_fd
        self.live = live

    def write(self) -> str:
        """Returns the diff ID."""
        entries = layer_order(self.upper)
        helper = None if self.live else _Helper.for_entries(self.upper, entries)
        split = helper.first if helper is not None else len(entries)
        hasher = _FileHasher(self.fd)  # after the fork: the helper is better off with one thread
        try:
            out = _TarOut(self.fd, hasher.written)
            writer = _LayerEntries(self.upper, out, live=self.live)
            writer.emit(entries, 0, split)
            if helper is not None:
                stop = helper.join(writer, out, entries)
                writer.emit(entries, stop, len(entries))  # what the helper did not get to
            out.write(END_OF_ARCHIVE)
            out.flush()
        except BaseException:
            hasher.abandon()
            raise
        finally:
            if helper is not None:
                helper.close()
        return "sha256:" + hasher.finish(out.offset)


def layer_order(upper: str) -> list[tuple[int, str, str, int]]:
    """Every entry under `upper` in the order of its layer tar (parents first, names sorted),
    as (depth, parent, name, kind): the parent's relative path ("" at the top), and DIR,
    FILE or OTHER from the directory listing (d_type: no stat per entry). Directories are
    opened through their parent without following symlinks; one that is not a directory
    any more by then (a running container's) is listed with nothing below it."""
    entries = []
    stack = [(*_listing(upper), 0, "")]  # (fd, names still to visit, depth, path) of the directories being listed
    try:
        while stack:
            dir_fd, children, depth, rel = stack[-1]
            for name, kind in children:
                entries.append((depth, rel, name, kind))
                if kind == DIR:  # its entries come next
                    listing = _listing(name, dir_fd)
                    if listing is not None:
                        stack.append((*listing, depth + 1, f"{rel}/{name}" if rel else name))
                        break
            else:
                stack.pop()
                os.close(dir_fd)
    finally:
        for dir_fd, *_ in stack:
            os.close(dir_fd)
    return entries


def _listing(path: str, dir_fd: int | None = None):
    """(fd of the directory, iterator over its (name, kind) sorted by name); None if it is
    not a directory any more."""
    fd = _open_dir(path, dir_fd)
    if fd < 0:
        return None
    try:
        with os.scandir(fd) as listing:
            found = [(entry.name, DIR if entry.is_dir(follow_symlinks=False)
                      else FILE if entry.is_file(follow_symlinks=False) else OTHER) for entry in listing]
    except BaseException:
        os.close(fd)
        raise
    found.sort()
    return fd, iter(found)


class _LayerEntries:
    """The tar entries of an upper dir's files, from `layer_order`'s list. Everything is read
    through directory fds (one lookup of one name per syscall) and a file's own fd: open,
    fstat, flistxattr, read, close is all a small file costs."""

    def __init__(self, upper: str, out, leave_links: bool = False, live: bool = False):
        self.upper = upper
        self.out = out
        # (dev, ino) -> first relative path, for hard links; a helper process, which cannot
        # know what came before its part, leaves those files to the parent (_LeftOver)
        self.links = None if leave_links else {}
        self.file_flags = FILE_FLAGS
        self.live = live

    def emit(self, entries: list, start: int, stop: int) -> None:
        dirs = self.open_parents(entries[start]) if start < stop else []
        try:
            for depth, parent, name, kind in entries[start:stop]:
                self.entry(dirs, depth, parent, name, kind)
        finally:
            _close_all(dirs)

    def entry(self, dirs: list[int], depth: int, parent: str, name: str, kind: int) -> None:
        """One entry of `layer_order`; `dirs` holds the fds of the directories above it
        (from `open_parents`, then kept up to date here; -1 for one that was replaced)."""
        if len(dirs) > depth + 1:  # back up from a subdirectory
            _close_all(dirs[depth + 1:])
            del dirs[depth + 1:]
        parent_fd = dirs[depth]
        if parent_fd < 0:  # its directory was replaced since the listing: gone with it
            if kind == DIR:
                dirs.append(-1)
            return
        rel = f"{parent}/{name}" if parent else name
        if kind == FILE:
            self._file(parent_fd, name, rel)
        elif kind == DIR:
            dirs.append(self._dir(parent_fd, name, rel))
        else:
            self._other(parent_fd, name, rel)

    def open_parents(self, entry) -> list[int]:
        """fds of the upper dir and of each directory down to `entry`'s parent (-1 from one
        that is not a directory any more)."""
        dirs = [os.open(self.upper, DIR_FLAGS)]
        try:
            for name in entry[1].split("/") if entry[1] else ():
                dirs.append(_open_dir(name, dirs[-1]) if dirs[-1] >= 0 else -1)
        except BaseException:
            _close_all(dirs)
            raise
        return dirs

    def copy_content(self, entry, size: int) -> None:
        """The content of a file whose header a helper process wrote."""
        rel = f"{entry[1]}/{entry[2]}" if entry[1] else entry[2]
        dirs = self.open_parents(entry)
        try:
            fd = self._open(dirs[-1], entry[2]) if dirs[-1] >= 0 else -1
        finally:
            _close_all(dirs)
        if fd < 0:
            raise OSError(f"{rel} changed while it was read")
        try:
            self.out.copy_fd(fd, size, rel)
        finally:
            os.close(fd)

    def _open(self, dir_fd: int, name: str) -> int:
        """An fd to read the regular file `name`; -1 if it is not one (any more) in a live tree."""
        if self.live:
            return self._open_live(dir_fd, name)
        try:
            return os.open(name, self.file_flags, dir_fd=dir_fd)
        except PermissionError:  # O_NOATIME needs the owner or CAP_FOWNER
            self.file_flags &= ~os.O_NOATIME
            return os.open(name, self.file_flags, dir_fd=dir_fd)

    def _open_live(self, dir_fd: int, name: str) -> int:
        try:
            opened = open_regular(name, dir_fd, self.file_flags)
        except PermissionError:
            self.file_flags &= ~os.O_NOATIME
            opened = open_regular(name, dir_fd, self.file_flags)
        return -1 if opened is None else opened[0]

    def _file(self, dir_fd: int, name: str, rel: str) -> None:
        fd = self._open(dir_fd, name)
        if fd < 0:  # a live tree's entry that is no regular file now: what it is, if it is not one again
            return self._other(dir_fd, name, rel, again=False)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != stat.S_IFREG:  # it changed since the listing
                return self._other(dir_fd, name, rel, st)
            xattrs = os.listxattr(fd)
            size = st.st_size
            # the common case, kept short: a small file, one link, no xattrs, a plain name
            header = None if xattrs or st.st_nlink > 1 or size >= SEND_MIN else _file_header(
                rel, st.st_mode & 0o7777, st.st_uid, st.st_gid, size, int(st.st_mtime))
            if header is None:
                return self._file_in_full(fd, st, xattrs, rel)
            data = os.read(fd, size) if size else b""
            if len(data) != size:
                raise OSError(f"{rel} shrank while it was read")
            self.out.add(header, data)
        finally:
            os.close(fd)

    def _file_in_full(self, fd: int, st, xattr_names: list[str], rel: str) -> None:
        xattrs = _xattr_values(fd, xattr_names) if xattr_names else None
        size = st.st_size
        if st.st_nlink > 1:
            if self.links is None:
                raise _LeftOver
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                self._header(rel, b"1", st, linkname=first, xattrs=xattrs)
                return
            self.links[key] = rel
        self._header(rel, b"0", st, size=size, xattrs=xattrs)
        if size:
            self.out.copy_fd(fd, size, rel)

    def _dir(self, parent_fd: int, name: str, rel: str) -> int:
        """Returns the directory's fd, the parent of the entries that follow; -1 if it is not
        a directory any more (then it is written as what it is now, without its entries)."""
        fd = _open_dir(name, parent_fd)
        if fd < 0:
            self._other(parent_fd, name, rel, again=False)
            return -1
        try:
            st = os.fstat(fd)
            names = os.listxattr(fd)
            opaque = OPAQUE_XATTR in names and _getxattr(fd, OPAQUE_XATTR) == b"y"
            self._header(rel, b"5", st, xattrs=_xattr_values(fd, names))
            if opaque:
                self._header(f"{rel}/.wh..wh..opq", b"0", st, owner=False)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _other(self, dir_fd: int, name: str, rel: str, st=None, again: bool = True) -> None:
        """Anything but a directory, and a regular file the listing could not tell (`st`:
        what an open of it found instead of one). Not there any more: left out (a running
        container's tree); `again=False`: a regular file is not tried again either."""
        if st is None:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISREG(st.st_mode):
                return self._file(dir_fd, name, rel) if again else None
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # whiteout
            parent, _, base = rel.rpartition("/")
            self._header(f"{parent}/.wh.{base}" if parent else f".wh.{base}", b"0", st, owner=False)
            return
        # through the directory's fd: the path from the upper dir may lead elsewhere by now
        xattrs = {"SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape")
                  for key, value in _xattrs(f"/proc/self/fd/{dir_fd}/{name}").items()}
        if stat.S_ISDIR(mode):  # it became one since the listing: its contents are not listed
            self._header(rel, b"5", st, xattrs=xattrs)
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError as err:
                if err.errno not in (errno.ENOENT, errno.EINVAL):
                    raise
                return  # not the symlink we saw any more
            self._header(rel, b"2", st, linkname=target, xattrs=xattrs)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            self._header(rel, b"3" if stat.S_ISCHR(mode) else b"4", st, xattrs=xattrs,
                         dev=(os.major(st.st_rdev), os.minor(st.st_rdev)))
        elif stat.S_ISFIFO(mode):
            self._header(rel, b"6", st, xattrs=xattrs)
        # sockets do not go into layers

    def _header(self, name: str, kind: bytes, st, size: int = 0, linkname: str = "", xattrs=None,
                dev=(0, 0), owner: bool = True) -> None:
        """`owner=False`: a whiteout marker, 0600 root:root."""
        mode, uid, gid = (st.st_mode & 0o7777, st.st_uid, st.st_gid) if owner else (0o600, 0, 0)
        mtime = int(st.st_mtime)  # whole seconds, like docker's layer tars
        header = None if xattrs else _ustar(name, kind, mode, uid, gid, size, mtime, linkname, *dev)
        if header is None:
            header = _pax_header(_tarinfo(name, kind, mode, uid, gid, size, mtime, linkname, dev, xattrs))
        self.out.write(header)


def _xattr_values(fd: int, names: list[str]):
    """The xattrs to keep, as pax records: everything but overlay's own bookkeeping."""
    found = {}
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        value = _getxattr(fd, name)
        if value is not None:
            found["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return found


def _getxattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError:
        return None


def _tarinfo(name, kind, mode, uid, gid, size, mtime, linkname, dev, pax_headers):
    import tarfile  # lazy: ~8 ms, not for diff or commit

    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.size, info.mtime = kind, mode, uid, gid, size, mtime
    info.linkname = linkname
    info.uname = info.gname = ""
    info.devmajor, info.devminor = dev
    info.pax_headers = pax_headers or {}
    return info


def tar_info(rel: str, dir_fd: int, name: str, st, links: dict):
    """The tar entry for entry `name` of directory `dir_fd` (lstat `st`): its type from the
    stat, a hard link to the first path seen for an inode with several links (`links`
    remembers them). None for a socket, or for a symlink that is not one any more."""
    import tarfile  # lazy: ~8 ms, not for diff or commit

    info = _info(rel, tarfile.REGTYPE, st)
    key = (st.st_dev, st.st_ino)
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            info.size = st.st_size
            if st.st_nlink > 1:
                links[key] = rel
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        try:
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.EINVAL):
                raise
            return None  # replaced since the listing
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None
    return info


def _pax_header(info) -> bytes:
    import tarfile  # lazy: ~8 ms, not for diff or commit

    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def ustar_header(info) -> bytes | None:
    """The plain ustar header of a tarfile.TarInfo, byte for byte what tarfile writes; None
    when the entry needs more (long or non-ASCII names, xattrs, large numbers)."""
    if info.pax_headers:
        return None
    return _ustar(info.name, info.type, info.mode, info.uid, info.gid, info.size, int(info.mtime), info.linkname,
                  info.devmajor, info.devminor)


_USTAR_MAGIC = b"ustar\x0000" + bytes(64)  # magic, version, empty uname and gname
_NO_DEVICE = bytes(16)
_PREFIX_AND_PAD = bytes(167)


def _ustar(name: str, kind: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, linkname: str = "",
           devmajor: int = 0, devminor: int = 0) -> bytes | None:
    """A ustar header as tarfile writes it (its general code costs ~35 us an entry, the bulk
    of committing many small files), or None when the entry needs a pax header."""
    if kind == b"5" and not name.endswith("/"):
        name += "/"  # tarfile (and Go) name directories with a trailing slash
    if (len(name) > 100 or len(linkname) > 100 or not name.isascii() or not linkname.isascii()
            or size >= 0o77777777777 or uid > 0o7777777 or gid > 0o7777777 or not 0 <= mtime < 0o77777777777
            or devmajor > 0o7777777 or devminor > 0o7777777):
        return None
    head = b"%s%07o\0%07o\0%07o\0%011o\0%011o\0" % (name.encode().ljust(100, b"\0"), mode, uid, gid, size, mtime)
    device = b"%07o\0%07o\0" % (devmajor, devminor) if kind in (b"3", b"4") else _NO_DEVICE
    tail = b"%s%s%s%s%s" % (kind, linkname.encode().ljust(100, b"\0"), _USTAR_MAGIC, device, _PREFIX_AND_PAD)
    # the checksum counts its own field as spaces; every byte here is ASCII, so the sum
    # stays below adler32's modulus and adler32's low half is that sum plus one
    checksum = (zlib.adler32(tail, zlib.adler32(head)) & 0xFFFF) - 1 + 8 * 32
    return b"%s%06o\0 %s" % (head, checksum, tail)


_REGULAR_TAIL = b"0" + bytes(100) + _USTAR_MAGIC + _NO_DEVICE + _PREFIX_AND_PAD
_NAME_PADS = tuple(bytes(100 - n) for n in range(101))
_file_fields = {}  # (mode, uid, gid, mtime) -> those fields, mtime's, and their part of the checksum


def _file_header(name: str, mode: int, uid: int, gid: int, size: int, mtime: int) -> bytes | None:
    """_ustar() of a regular file, faster: files of one layer mostly share mode, owner and
    mtime, so only the name and the size are new to format and add to the checksum."""
    if len(name) > 100 or not name.isascii() or size >= 0o77777777777:
        return None
    key = (mode, uid, gid, mtime)
    fields = _file_fields.get(key)
    if fields is None:
        if uid > 0o7777777 or gid > 0o7777777 or not 0 <= mtime < 0o77777777777:
            return None
        if len(_file_fields) > 4096:
            _file_fields.clear()
        ids, times = b"%07o\0%07o\0%07o\0" % (mode, uid, gid), b"%011o\0" % mtime
        fields = _file_fields[key] = (ids, times, sum(ids) + sum(times) + sum(_REGULAR_TAIL) + 8 * 32 - 1)
    ids, times, checksum = fields
    encoded = name.encode()
    size_field = b"%011o\0" % size
    checksum += zlib.adler32(size_field, zlib.adler32(encoded)) & 0xFFFF  # 1 + their sum (see _ustar)
    return b"%s%s%s%s%s%06o\0 %s" % (encoded, _NAME_PADS[len(encoded)], ids, size_field, times, checksum,
                                      _REGULAR_TAIL)


def _info(name: str, kind, st, mode: int | None = None):
    import tarfile  # lazy: ~8 ms, not for diff or commit

    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)  # whole seconds, like docker's layer tars
    info.uname = info.gname = ""
    if mode is not None:
        info.uid = info.gid = 0
    return info


def _xattrs(path: str) -> dict:
    """The entry's xattrs to keep: everything but overlay's own bookkeeping."""
    found = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return found
    for name in names:
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            pass
    return found


def merged(layers_top_first: list[str]):
    """The union view of overlay layers without mounting them: (relative path, fd of the
    directory it is in, its name there, lstat) of each entry, parents first and names
    sorted. Whiteouts, opaque directories and non-directories hide what is below them, as
    overlayfs does. Yielded while that directory fd is open: use it before the next one.

    The top layer may be a running container's upper dir: every directory is opened through
    its parent's fd without following symlinks, so a directory swapped for a symlink since it
    was listed is left out, never followed; nothing is looked up by path."""
    tops = []
    stack = [("", tops, iter(()))]  # (relative path, fds of its layers topmost first, entries to visit)
    try:
        for layer in layers_top_first:
            fd = _open_dir(layer, None)
            if fd >= 0:
                tops.append(fd)
        stack[0] = ("", tops, iter(_union(tops)))
        while stack:
            rel, fds, entries = stack[-1]
            for name, (index, st) in entries:
                path = f"{rel}/{name}" if rel else name
                yield path, fds[index], name, st
                if stat.S_ISDIR(st.st_mode):
                    below = _merged_below(fds, index, name)
                    if below:  # its entries come next
                        stack.append((path, below, iter(_union(below))))
                        break
            else:
                stack.pop()
                _close_all(fds)
    finally:
        for _rel, fds, _entries in stack:
            _close_all(fds)


def _union(fds: list[int]) -> list:
    """(name, (index in `fds` of the layer it comes from, lstat)) of the entries of the
    directories `fds` (topmost first) that overlay shows, sorted by name."""
    found = {}
    for index, fd in enumerate(fds):
        with os.scandir(fd) as listing:
            for entry in listing:
                if entry.name not in found:
                    try:
                        found[entry.name] = (index, entry.stat(follow_symlinks=False))
                    except FileNotFoundError:  # removed since the listing
                        continue
    return sorted((name, chosen) for name, chosen in found.items() if not is_whiteout(chosen[1]))


def _merged_below(fds: list[int], index: int, name: str) -> list[int]:
    """fds of directory `name` in the layers overlay merges for it: the one it comes from
    (fds[index]) and those below, down to one that hides the rest (an opaque directory, a
    whiteout, a non-directory). Empty if it is not a directory in its own layer any more."""
    below = []
    try:
        for position, fd in enumerate(fds[index:]):
            if position:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    break
            child = _open_dir(name, fd)
            if child < 0:
                if position:
                    break
                return below
            below.append(child)
            if _opaque(child):
                break
    except BaseException:
        _close_all(below)
        raise
    return below


def export_tar(layers_top_first: list[str], out_fd: int, progress=None) -> None:
    """A flat tar of the union of `layers_top_first` (docker export); `progress(done,
    total)` hears of the bytes of file content written. A running container's files are read
    as `merged` walks them, each opened only once it shows to be the regular file listed."""
    import tarfile  # lazy: ~8 ms, not for diff or commit

    writer = _TarOut(out_fd)
    links = {}
    total = sum(e[3].st_size for e in merged(layers_top_first) if stat.S_ISREG(e[3].st_mode)) if progress else 0
    done = 0
    for rel, dir_fd, name, st in merged(layers_top_first):
        fd = -1
        if stat.S_ISREG(st.st_mode) and st.st_size and not (st.st_nlink > 1 and (st.st_dev, st.st_ino) in links):
            opened = open_regular(name, dir_fd)
            if opened is None:
                continue  # not a regular file any more
            fd, now = opened
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)
                continue  # another file under its name since the listing
        try:
            info = tar_info(rel, dir_fd, name, st, links)
            if info is None:
                continue
            writer.write(ustar_header(info) or _pax_header(info))
            if info.type == tarfile.REGTYPE and info.size:
                writer.copy_fd(fd, info.size, rel)
                done += info.size
                if progress is not None:
                    progress(done, total)
        finally:
            if fd >= 0:
                os.close(fd)
    writer.write(b"\0" * 1024)
    writer.flush()


class _LeftOver(Exception):
    """An entry a helper process leaves to the parent (a hard link may point before its part)."""


class _Helper:
    """A forked process that writes the tar entries from `first` on while the parent writes
    those before: a layer of many small files costs a few syscalls per file, and this way
    two cores make them. It passes back its part of the tar in shared memory, with holes:
    the content of large files (the parent copies it file to file) and the entries it
    leaves to the parent. Should it fail at an entry, the parent goes on from there (and
    reports the error, if it is one)."""

    @classmethod
    def for_entries(cls, upper: str, entries: list) -> "_Helper | None":
        """A helper for the second half of `entries`, if there are enough of them to be
        worth it and one can be had."""
        if len(entries) < HELPER_MIN:
            return None
        try:
            return cls(upper, entries, len(entries) // 2)
        except OSError:  # no memory or no process for it: the parent does it all
            return None

    def __init__(self, upper: str, entries: list, first: int):
        import mmap  # lazy: only commit maps files to hash them

        self.first = first  # the index of the first entry it writes
        self.region = mmap.mmap(-1, HELPER_REGION, mmap.MAP_SHARED | getattr(mmap, "MAP_NORESERVE", 0))
        parent = os.getpid()
        try:  # locks and files stay with the parent alone (close_fds); _help watches the parent
            self.process = Forked(lambda: _help(upper, entries, first, self.region, parent), close_fds=True,
                                  die_with_caller=False, name="commit helper")
        except BaseException:
            self.region.close()
            raise

    def join(self, writer: "_LayerEntries", out: "_TarOut", entries: list) -> int:
        """Waits for the helper and writes its part; returns the index it stopped at."""
        try:
            stop, used, holes = self.process.join()
        except BerthError:  # it died: do it all here
            return self.first
        done = 0
        with memoryview(self.region) as part:
            for at, index, size in holes:
                out.write_through(part[done:at])
                done = at
                if size < 0:  # an entry left to us
                    writer.emit(entries, index, index + 1)
                else:  # the content of a large file
                    writer.copy_content(entries[index], size)
            out.write_through(part[done:used])
        return stop

    def close(self) -> None:
        self.process.kill()  # if the parent failed first
        try:
            self.region.close()
        except BufferError:  # a failed write still holds a view of it: unmapped when collected
            pass


def _help(upper: str, entries: list, start: int, region, parent: int) -> tuple:
    """The helper process's work: (index it stopped at, bytes used, holes); see _RegionOut."""
    sink = _RegionOut(region)
    writer = _LayerEntries(upper, sink, leave_links=True)
    try:
        dirs = writer.open_parents(entries[start])
    except BaseException:
        return start, 0, []
    for index in range(start, len(entries)):
        if not index & 255 and os.getppid() != parent:
            os._exit(1)  # the parent is gone (cheaper than PR_SET_PDEATHSIG's ctypes, see _Helper)
        used, holes = sink.used, len(sink.holes)
        sink.index = index
        try:
            writer.entry(dirs, *entries[index])
        except _LeftOver:
            sink.holes.append((sink.used, index, -1))
        except BaseException:  # the parent does it again, and reports an error if there is one
            sink.used = used
            del sink.holes[holes:]
            return index, used, sink.holes
    return len(entries), sink.used, sink.holes


class _RegionOut:
    """A helper's output: bytes in shared memory (fresh, so already zero where tar pads),
    and holes where the content of large files goes. When the region is full, BufferError:
    the parent takes over from that entry."""

    def __init__(self, region):
        self.region = memoryview(region)
        self.used = 0
        self.index = 0  # of the entry being written
        # (offset, entry index, size): the content of a large file, or with size -1 an
        # entry left to the parent
        self.holes = []

    def _reserve(self, size: int) -> int:
        start = self.used
        if start + size > len(self.region):
            raise BufferError("the helper's region is full")
        self.used = start + size
        return start

    def write(self, data: bytes) -> None:
        start = self._reserve(len(data))
        self.region[start:start + len(data)] = data

    def add(self, header: bytes, data: bytes) -> None:
        start = self._reserve(512 + len(data) + -len(data) % 512)
        self.region[start:start + 512] = header
        self.region[start + 512:start + 512 + len(data)] = data

    def copy_fd(self, src: int, size: int, path: str) -> None:
        if size >= SEND_MIN:
            self.holes.append((self.used, self.index, size))
            return
        start = self._reserve(size + -size % 512)
        if os.readv(src, [self.region[start:start + size]]) != size:
            raise OSError(f"{path} shrank while it was read")


class _TarOut:
    """Buffered tar output: headers and small files go out one MiB at a time, large files
    straight from their fd (sendfile, one copy in the kernel). `written(offset)` hears how
    much of the output is complete after each write."""

    def __init__(self, fd: int, written=None):
        self.fd = fd
        self.written = written
        self.pieces = []  # joined once a MiB: a growing bytearray would be copied as it grows
        self.pending = 0  # their size
        self.offset = 0  # bytes handed to the fd so far

    def write(self, data: bytes) -> None:
        self.pieces.append(data)
        self.pending += len(data)
        if self.pending >= CHUNK:
            self.flush()

    def add(self, header: bytes, data: bytes) -> None:
        """A small file's entry: its header, content and padding."""
        padding = _PADDING[-len(data) % 512]
        self.pieces += (header, data, padding)
        self.pending += 512 + len(data) + len(padding)
        if self.pending >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pieces:
            return
        data = b"".join(self.pieces)
        self.pieces.clear()
        self.pending = 0
        with memoryview(data) as view:
            done = 0
            while done < len(view):
                done += os.write(self.fd, view[done:])
        self._advance(len(data))

    def write_through(self, data) -> None:
        """Bytes already in memory, written from where they are (after what is buffered)."""
        self.flush()
        done = 0
        while done < len(data):
            n = os.write(self.fd, data[done:done + CHUNK])
            done += n
            self._advance(n)

    def _advance(self, n: int) -> None:
        self.offset += n
        if self.written is not None:
            self.written(self.offset)

    def copy_fd(self, src: int, size: int, path: str) -> None:
        """`size` bytes from `src` (at its offset 0) and the tar padding after them; a file
        that has shrunk meanwhile is an error, one that grew is cut at `size`."""
        if size < SEND_MIN:
            data = os.read(src, size)
            if len(data) != size:
                raise OSError(f"{path} shrank while it was read")
            self.write(data)
        else:
            self.flush()
            try:
                self._send(src, size, path)
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or os.lseek(src, 0, os.SEEK_CUR):
                    raise
                self._stream(src, size, path)  # no sendfile between these two files
        if size % 512:
            self.write(_PADDING[-size % 512])

    def _send(self, src: int, size: int, path: str) -> None:
        left = size
        while left:
            n = os.sendfile(self.fd, src, None, min(left, SEND_STEP))
            if not n:
                raise OSError(f"{path} shrank while it was read")
            left -= n
            self._advance(n)

    def _stream(self, src: int, size: int, path: str) -> None:
        if not hasattr(self, "_chunk"):
            self._chunk = memoryview(bytearray(CHUNK))
        left = size
        while left:
            n = os.readv(src, [self._chunk[:min(CHUNK, left)]])
            if not n:
                raise OSError(f"{path} shrank while it was read")
            piece = self._chunk[:n]
            while piece:
                piece = piece[os.write(self.fd, piece):]
            left -= n
            self._advance(n)


_PADDING = tuple(bytes(n) for n in range(512))  # after content, up to the next 512-byte block


class _FileHasher:
    """The sha256 of a file that another thread is appending to. It hashes what is already
    written, a window at a time, straight from the page cache (mmap), so the digest is of
    the file's own bytes and costs the writer nothing but a note of its progress. hashlib
    lets go of the GIL while it hashes, so the two run on two cores."""

    FINAL = 1 << 63

    def __init__(self, fd: int):
        import _thread  # lazy: only commit hashes in a thread

        self.fd = fd
        self.noted = 0  # the writer's last progress note
        self.error = None
        self.hexdigest = None
        self._notes, self._note_writer = os.pipe2(os.O_CLOEXEC)
        self._done = _thread.allocate_lock()
        self._done.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except BaseException:
            self._close()
            raise

    def written(self, offset: int) -> None:
        """The writer's progress: the first `offset` bytes of the file are final."""
        if offset - self.noted >= HASH_STEP:
            self._note(offset)

    def finish(self, size: int) -> str:
        """The hex digest of the whole file, `size` bytes, once the writer is done."""
        self._note(size | self.FINAL)
        self._done.acquire()
        self._close()
        if self.error is not None:
            raise self.error
        return self.hexdigest

    def abandon(self) -> None:
        os.close(self._note_writer)  # the hasher reads end of file and stops
        self._note_writer = -1
        self._done.acquire()
        self._close()

    def _note(self, offset: int) -> None:
        self.noted = offset
        os.write(self._note_writer, offset.to_bytes(8, "little"))  # atomic: less than PIPE_BUF

    def _close(self) -> None:
        for fd in (self._notes, self._note_writer):
            if fd >= 0:
                os.close(fd)
        self._notes = self._note_writer = -1

    def _run(self) -> None:
        try:
            try:
                from _hashlib import openssl_sha256 as sha256  # SHA-NI: ~6x the builtin's speed
            except ImportError:
                from hashlib import sha256  # lazy: the fallback without _hashlib
            digest = sha256()
            hashed = 0
            while True:
                note = os.read(self._notes, 8)
                if not note:
                    return  # abandoned
                target = int.from_bytes(note, "little")
                final = target & self.FINAL
                target &= ~self.FINAL
                while hashed < target:
                    end = min(target, hashed + 16 * HASH_STEP)
                    self._hash(digest, hashed, end)
                    hashed = end
                if final:
                    self.hexdigest = digest.hexdigest()
                    return
        except BaseException as err:
            self.error = err
        finally:
            self._done.release()

    def _hash(self, digest, start: int, end: int) -> None:
        import mmap  # lazy: only commit maps files to hash them

        base = start - start % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(self.fd, end - base, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), mmap.PROT_READ,
                       offset=base) as window, memoryview(window) as view, view[start - base:] as piece:
            digest.update(piece)
