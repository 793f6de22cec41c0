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
        context = os.path.join(staging, "context")
        unpack(tar_path, context)
        os.unlink(tar_path)
        os.chmod(context, 0o755)  # whatever the tar's root entry said: the build must read it
        yield context
    finally:
        remove_tree(staging)


def dockerfile_in(context: str, name: str | None) -> str:
    """The Dockerfile the request names (`dockerfile`, relative to the context as dockerd takes it),
    its symlinks resolved inside the context, never outside it."""
    from berth.runtime.mount import secure_join  # lazy: as above

    name = name or "Dockerfile"
    cleaned = posixpath.normpath("/" + name).lstrip("/")
    if not cleaned or cleaned == ".":
        raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
    return secure_join(context, cleaned)
