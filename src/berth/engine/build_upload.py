"""A build context that arrives as a tar (the Engine API's POST /build): decompressed and unpacked
into a private staging directory of the image store, confined to it as a layer is (image.layers:
no member outside it, none written through a symlink), and removed once the build is done."""

import contextlib
import os
import posixpath
from collections.abc import Iterator

from berth.errors import InvalidArgument
from berth.fs import make_dirs, remove_tree


@contextlib.contextmanager
def unpacked_context(engine, stream) -> Iterator[str]:
    """The directory holding the context tar read from `stream` (plain, gzip, bzip2, xz or zstd);
    removed when the block ends. The staging name carries our pid: a killed service's leftover is
    swept by the store (ImageStore.staging_dir)."""
    from berth.image.layers import store_tar, unpack  # lazy: only API builds

    store = engine.images
    staging = os.path.join(store.staging_dir(), f"build-{os.getpid()}-{os.urandom(8).hex()}")
    make_dirs(staging)  # 0700: the context is nobody else's to read
    try:
        _, tar_path = store_tar(stream, staging)
        _complete_unpadded_end(tar_path)
        context = os.path.join(staging, "context")
        unpack(tar_path, context)
        os.unlink(tar_path)
        os.chmod(context, 0o755)  # whatever the tar's root entry said: the build must read it
        yield context
    finally:
        remove_tree(staging)


def _complete_unpadded_end(tar_path: str) -> None:
    """docker's CLI (28) sends a context it added a -f Dockerfile to ending right after the last
    member's data: no padding to the block, no end-of-archive blocks. Go's archive/tar reads that
    as the end; Python's tarfile calls it truncated. Pad such a tar (and only one that ends exactly
    there: a member cut short stays an error)."""
    import tarfile  # lazy: as above

    size = os.path.getsize(tar_path)
    with open(tar_path, "rb+") as f:
        offset = 0
        while offset + 512 <= size:
            f.seek(offset)
            block = f.read(512)
            if block.count(0) == 512:
                return  # an end-of-archive block: a proper end
            try:
                member = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError:
                return  # unpack reports it
            data = member.size if member.type not in (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE) else 0
            offset += 512 + data + (-data % 512)
            if offset > size and offset - size == -data % 512:  # the data is whole, only its padding is missing
                f.seek(size)
                f.write(bytes(offset - size + 1024))
                return


def dockerfile_in(context: str, name: str | None) -> str:
    """The Dockerfile the request names (`dockerfile`, relative to the context as dockerd takes it),
    its symlinks resolved inside the context, never outside it."""
    from berth.runtime.mount import secure_join  # lazy: as above

    name = name or "Dockerfile"
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if not cleaned or cleaned == ".":
        raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
    return secure_join(context, cleaned)
