"""Layer tars in and out of the store: decompress, hash, and unpack into an overlay
lower directory (OCI whiteouts -> overlay whiteouts), confined to that directory."""

import os
import posixpath
import stat

from berth.errors import InvalidArgument
from berth.fs import failed, make_dirs, remove_tree

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
CHUNK = 1 << 20


def open_decompressed(stream):
    """Wrap a binary stream so reads return the uncompressed tar, whatever the compression."""
    head = stream.peek(6)[:6] if hasattr(stream, "peek") else b""
    if head.startswith(b"\x1f\x8b"):
        import gzip  # lazy: only a gzip layer

        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return _ZstdReader(stream)
    if head.startswith(b"BZh"):
        import bz2  # lazy: only a bzip2 layer

        return bz2.BZ2File(stream, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma  # lazy: only an xz layer

        return lzma.LZMAFile(stream, "rb")
    return stream


class _ZstdReader:
    """zstd frames -> bytes; unlike zstandard's stream_reader, a truncated frame is an error."""

    def __init__(self, stream):
        import zstandard  # lazy: only a zstd layer

        self._new = zstandard.ZstdDecompressor().decompressobj
        self._stream = stream
        self._frame = self._new()
        self._started = False

    def read(self, size: int) -> bytes:
        while True:
            chunk = self._stream.read(size)
            if not chunk:
                if self._started and not self._frame.eof:
                    raise EOFError("unexpected EOF in zstd stream")
                return b""
            out = b""
            while chunk:
                self._started = True
                out += self._frame.decompress(chunk)
                chunk = b""
                if self._frame.eof:  # another frame may follow in the same chunk
                    chunk = self._frame.unused_data
                    self._frame = self._new()
                    self._started = bool(chunk)
            if out:
                return out


def store_tar(stream, tmp_dir: str) -> tuple[str, str]:
    """Copy a (possibly compressed) tar stream to a temp file while hashing it.
    Returns (diff_id, temp path of the uncompressed tar)."""
    import hashlib  # lazy: OpenSSL (~3.5 ms), only storing a layer

    digest = hashlib.sha256()
    fd, path = _mkstemp(tmp_dir)
    try:
        reader = open_decompressed(stream)
        with os.fdopen(fd, "wb") as out:
            while True:
                try:
                    chunk = reader.read(CHUNK)
                except (EOFError, OSError) as err:
                    raise InvalidArgument(f"invalid tar archive: {err or 'unexpected EOF'}") from None
                except Exception as err:  # zstd, lzma errors have their own classes
                    raise InvalidArgument(f"invalid tar archive: {err}") from None
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
    except BaseException as err:
        os.unlink(path)
        if isinstance(err, OSError):  # a full disk: say what could not be written
            failed("write", path, err)
        raise
    return "sha256:" + digest.hexdigest(), path


def _mkstemp(directory: str) -> tuple[int, str]:
    make_dirs(directory)
    path = os.path.join(directory, f"blob-{os.getpid()}-{os.urandom(8).hex()}")
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), path


def unpack(tar_path: str, target: str) -> int:
    """Unpack an uncompressed layer tar into the new directory `target`; returns the byte
    size of its contents. Refuses members that would land outside `target`."""
    import tarfile  # lazy: ~8 ms, only unpacking a layer

    os.mkdir(target, 0o755)
    size = 0
    directories = []
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for member in tar:
                size += _unpack_member(tar, member, target, directories)
            _check_clean_end(tar)
    except tarfile.TarError as err:
        raise InvalidArgument(f"invalid tar archive: {err}") from None
    except EOFError:
        raise InvalidArgument("invalid tar archive: unexpected EOF") from None
    except OSError as err:  # a full disk: say where (the caller removes the partial `target`)
        failed("write", target, err)
        raise
    # Directory times last: creating entries inside would change them again.
    for path, member in reversed(directories):
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
    return size


def _check_clean_end(tar) -> None:
    """tarfile stops quietly at a truncated or corrupt header; Go's archive/tar (docker)
    reports unexpected EOF. Past the last member only zero padding may follow."""
    tar.fileobj.seek(tar.offset)
    while True:
        block = tar.fileobj.read(CHUNK)
        if not block:
            return
        if block.count(0) != len(block):
            raise InvalidArgument("invalid tar archive: unexpected EOF or corrupt header")


def _clean_name(name: str) -> str:
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if cleaned in ("", "."):
        return ""
    return cleaned


def _confined(target: str, name: str) -> str:
    """Path of `name` inside `target`; no parent component may be a symlink."""
    path = target
    parts = name.split("/")
    for part in parts[:-1]:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise InvalidArgument(f"invalid tar archive: {name!r} would be written through a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"invalid tar archive: {name!r}: parent is not a directory")
    return os.path.join(path, parts[-1])


def _unpack_member(tar, member, target: str, directories: list) -> int:
    if member.name.startswith("/") or ".." in member.name.split("/"):
        raise InvalidArgument(f"invalid tar archive: path {member.name!r} escapes the layer")
    name = _clean_name(member.name)
    if not name:
        if member.isdir():
            _apply_metadata(target, member)
        return 0
    base = posixpath.basename(name)
    if base == OPAQUE_MARKER:
        directory = _confined(target, name)[: -len(OPAQUE_MARKER) - 1]
        os.setxattr(directory, OVERLAY_OPAQUE_XATTR, b"y")
        return 0
    if base.startswith(WHITEOUT_PREFIX):
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):  # ".wh..." would remove the layer's parent
            raise InvalidArgument(f"invalid tar archive: whiteout {member.name!r} names nothing")
        path = _confined(target, posixpath.join(posixpath.dirname(name), hidden))
        _remove_existing(path)
        os.mknod(path, stat.S_IFCHR | 0, os.makedev(0, 0))
        return 0
    path = _confined(target, name)
    if member.isdir():
        if not os.path.isdir(path) or os.path.islink(path):
            _remove_existing(path)
            os.mkdir(path, 0o755)
        _apply_metadata(path, member)
        directories.append((path, member))
        return 0
    _remove_existing(path)
    if member.isreg():
        source = tar.extractfile(member)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        if member.size and out_size(path) != member.size:
            raise InvalidArgument("invalid tar archive: unexpected EOF")
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        link = _clean_name(member.linkname)
        if member.linkname.startswith("/") or ".." in member.linkname.split("/") or not link:
            raise InvalidArgument(f"invalid tar archive: hardlink {member.name!r} points outside the layer")
        os.link(_confined(target, link), path, follow_symlinks=False)
        return 0
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
    elif member.isfifo():
        os.mkfifo(path, 0o600)
    else:
        return 0
    _apply_metadata(path, member)
    return member.size if member.isreg() else 0


def out_size(path: str) -> int:
    return os.lstat(path).st_size


def _remove_existing(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(path)
    else:
        os.unlink(path)


def _apply_metadata(path: str, member) -> None:
    os.chown(path, member.uid, member.gid, follow_symlinks=False)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            try:
                os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError:
                pass  # e.g. security.* xattrs the host filesystem refuses
    if not member.isdir():
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
