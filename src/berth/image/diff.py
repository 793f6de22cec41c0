"""A container's changes, read from its overlay upper directory: `berth diff`'s list, the
layer `berth commit` makes of them (an OCI layer tar), and `berth export`'s flat tar.

In the upper dir a deletion is a whiteout (char device 0:0) and a replaced directory is
opaque (xattr trusted.overlay.opaque=y); in a layer tar they are `.wh.<name>` and
`<dir>/.wh..wh..opq` files (OCI image spec, "whiteouts")."""

import os
import stat

OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
CHUNK = 1 << 20


def is_whiteout(st) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def walk(upper: str, rel: str = "", ordered: bool = True):
    """(relative path, lstat) of every entry under `upper`, parents first; names sorted, or
    with `ordered=False` in the directory's own order (what docker's diff walks in)."""
    directory = os.path.join(upper, rel) if rel else upper
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda e: e.name) if ordered else list(listing)
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            yield from walk(upper, child, ordered)


def _in_lower(lowers: list[str], rel: str) -> bool:
    """Does `rel` exist in the image below (the lower dirs, topmost first)?"""
    for lower in lowers:
        try:
            st = os.lstat(os.path.join(lower, rel))
        except (FileNotFoundError, NotADirectoryError):
            if _hidden(lower, rel):
                return False
            continue
        return not is_whiteout(st)
    return False


def _hidden(lower: str, rel: str) -> bool:
    """A parent of `rel` is deleted or opaque in this lower layer: nothing below shows."""
    parts = rel.split("/")[:-1]
    for i in range(len(parts), 0, -1):
        parent = os.path.join(lower, *parts[:i])
        try:
            st = os.lstat(parent)
        except (FileNotFoundError, NotADirectoryError):
            continue
        return is_whiteout(st) or is_opaque(parent)
    return False


def changes(upper: str, lowers: list[str]) -> list[tuple[str, str]]:
    """docker diff: ("A"|"C"|"D", "/path") in docker's order, a depth-first walk of the
    upper dir in directory order. Every entry there is a change; a directory there only
    because something inside it changed shows as C."""
    found = []
    for rel, st in walk(upper, ordered=False):
        if is_whiteout(st):
            if _in_lower(lowers, rel):
                found.append(("D", "/" + rel))
            continue
        found.append(("C" if _in_lower(lowers, rel) else "A", "/" + rel))
    return found


class LayerWriter:
    """Writes the OCI layer tar of an upper dir, hashing it as it goes (the diff ID). The
    layer's overlay directory is unpacked from that tar when an image first needs it."""

    def __init__(self, upper: str, tar_fd: int):
        import hashlib

        self.upper = upper
        self.digest = hashlib.sha256()
        self.out = _TarOut(tar_fd, self.digest)
        self.links = {}  # (dev, ino) -> first relative path, for hard links

    def write(self) -> str:
        """Returns the diff ID."""
        for rel, st in walk(self.upper):
            self._entry(rel, st)
        self._emit(b"\0" * 1024)  # end of archive
        self.out.flush()
        return "sha256:" + self.digest.hexdigest()

    def _emit(self, data: bytes) -> None:
        self.out.write(data)

    def _header(self, info) -> None:
        self._emit(ustar_header(info) or _pax_header(info))

    def _entry(self, rel: str, st) -> None:
        import tarfile

        source = os.path.join(self.upper, rel)
        parent, name = os.path.split(rel)
        if is_whiteout(st):
            self._header(_info(os.path.join(parent, ".wh." + name), tarfile.REGTYPE, st, mode=0o600))
            return
        info = tar_info(rel, source, st, self.links)
        if info is None:
            return  # sockets do not go into layers
        info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                            for k, v in _xattrs(source).items()}
        self._header(info)
        if info.type == tarfile.REGTYPE and info.size:
            self.out.copy_from(source, info.size)
        if info.type == tarfile.DIRTYPE and is_opaque(source):
            self._header(_info(os.path.join(rel, ".wh..wh..opq"), tarfile.REGTYPE, st, mode=0o600))


def tar_info(rel: str, source: str, st, links: dict):
    """The tar entry for a file: its type from the stat, a hard link to the first path
    seen for an inode with several links (`links` remembers them). None for a socket."""
    import tarfile

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
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(source)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        return None
    return info


def _pax_header(info) -> bytes:
    import tarfile

    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def ustar_header(info) -> bytes | None:
    """The plain ustar header most entries need, byte for byte what tarfile writes: its
    general header code costs ~35 us an entry, the bulk of committing many small files.
    None when the entry needs more (long or non-ASCII names, xattrs, large numbers)."""
    name, linkname = info.name, info.linkname
    if (info.pax_headers or len(name) > 100 or len(linkname) > 100 or not name.isascii()
            or not linkname.isascii() or info.size >= 0o77777777777 or info.uid > 0o7777777
            or info.gid > 0o7777777 or not 0 <= info.mtime < 0o77777777777):
        return None
    if info.type == b"5" and not name.endswith("/"):
        name += "/"  # tarfile (and Go) name directories with a trailing slash
        if len(name) > 100:
            return None
    header = bytearray(512)
    header[0:len(name)] = name.encode()
    header[100:108] = b"%07o\0" % info.mode
    header[108:116] = b"%07o\0" % info.uid
    header[116:124] = b"%07o\0" % info.gid
    header[124:136] = b"%011o\0" % info.size
    header[136:148] = b"%011o\0" % int(info.mtime)
    header[148:156] = b"        "
    header[156:157] = info.type
    header[157:157 + len(linkname)] = linkname.encode()
    header[257:265] = b"ustar\x0000"
    if info.type in (b"3", b"4"):  # device numbers only for devices, as tarfile writes them
        header[329:337] = b"%07o\0" % info.devmajor
        header[337:345] = b"%07o\0" % info.devminor
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _info(name: str, kind, st, mode: int | None = None):
    import tarfile

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


def merged_entries(layers_top_first: list[str]) -> list[tuple[str, str, os.stat_result]]:
    """The union view of overlay layers without mounting them: (relative path, layer dir it
    comes from, lstat), sorted so parents come first. Whiteouts and opaque dirs hide what
    is below them, as overlayfs does."""
    chosen: dict[str, tuple[str, os.stat_result]] = {}
    hidden: set[str] = set()  # deleted paths
    sealed: set[str] = set()  # opaque directories: nothing from lower layers inside

    def covered(rel: str) -> bool:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in hidden:
                return True
        return any("/".join(parts[:i]) in sealed for i in range(1, len(parts)))

    for layer in layers_top_first:
        if not os.path.isdir(layer):
            continue
        layer_sealed = set()
        for rel, st in walk(layer):
            if rel in chosen or rel in hidden or covered(rel):
                continue
            if is_whiteout(st):
                hidden.add(rel)
                continue
            chosen[rel] = (layer, st)
            if stat.S_ISDIR(st.st_mode) and is_opaque(os.path.join(layer, rel)):
                layer_sealed.add(rel)
        sealed |= layer_sealed
    return [(rel, chosen[rel][0], chosen[rel][1]) for rel in sorted(chosen, key=lambda r: r.split("/"))]


def export_tar(layers_top_first: list[str], out_fd: int, progress=None) -> None:
    """A flat tar of the union of `layers_top_first` (docker export); `progress(done,
    total)` hears of the bytes of file content written."""
    import tarfile

    writer = _TarOut(out_fd)
    links = {}
    entries = merged_entries(layers_top_first)
    total = sum(st.st_size for _, _, st in entries if stat.S_ISREG(st.st_mode))
    done = 0
    for rel, layer, st in entries:
        source = os.path.join(layer, rel)
        info = tar_info(rel, source, st, links)
        if info is None:
            continue
        writer.write(ustar_header(info) or _pax_header(info))
        if info.type == tarfile.REGTYPE and info.size:
            writer.copy_from(source, info.size)
            done += info.size
            if progress is not None:
                progress(done, total)
    writer.write(b"\0" * 1024)
    writer.flush()


class _TarOut:
    """Buffered tar output (one write and one hash update per MiB, not per entry)."""

    def __init__(self, fd: int, digest=None):
        self.fd = fd
        self.digest = digest
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.digest is not None:
            self.digest.update(self.buffer)
        view = memoryview(self.buffer)
        while view:
            view = view[os.write(self.fd, view):]
        view.release()
        self.buffer.clear()

    def copy_from(self, path: str, size: int) -> None:
        """The file's `size` bytes and the tar padding after them. Large files go straight
        from one reused buffer to the hash and the output, with no copy in between."""
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if size < CHUNK:
                data = os.read(src, size)
                if len(data) != size:
                    raise OSError(f"{path} shrank while it was read")
                self.write(data)
            else:
                self.flush()
                self._stream_large(src, path, size)
        finally:
            os.close(src)
        if size % 512:
            self.write(b"\0" * (512 - size % 512))

    def _stream_large(self, src: int, path: str, size: int) -> None:
        if not hasattr(self, "_chunk"):
            self._chunk = memoryview(bytearray(CHUNK))
        reader = open(src, "rb", buffering=0, closefd=False)
        left = size
        while left:
            n = reader.readinto(self._chunk[:min(CHUNK, left)])
            if not n:
                raise OSError(f"{path} shrank while it was read")
            piece = self._chunk[:n]
            if self.digest is not None:
                self.digest.update(piece)
            while piece:
                piece = piece[os.write(self.fd, piece):]
            left -= n
