"""`berth import`: a filesystem tarball becomes a one-layer image."""

import os
import time

from berth.fs import remove_tree
from berth.image.store import LAYER_TYPE, ImageStore


def platform() -> tuple[str, str]:
    machine = os.uname().machine
    return "linux", {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def now_rfc3339() -> str:
    from berth.units import format_rfc3339_nano  # lazy: not for version, which loads this module

    return format_rfc3339_nano(time.time())


class Counted:
    """A read stream that reports how much was read: import's progress line, pull's Extracting."""

    def __init__(self, stream, report):
        self._stream = stream
        self._report = report
        self.done = 0

    def peek(self, size: int = 0) -> bytes:
        return self._stream.peek(size)

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.done += len(data)
        self._report(self.done)
        return data


def import_tarball(store: ImageStore, stream, name: str | None, changes: list[str], message: str | None,
                   source: str = "-", progress=None, total: int = 0) -> str:
    """Store the tar from `stream` as a layer and create an image from it. Returns the image ID.
    On any failure nothing is added (the temp blob and staging dir are removed); killed, it
    leaves only what `image prune` collects: the layer is unpacked in tmp/ first, and only
    moved into the store under store.lock, with the index entry that names it."""
    from berth.image.instructions import apply_changes  # lazy: only import; `version` loads this module
    from berth.image.layers import store_tar, unpack  # lazy: only import; `version` loads this module

    store.ensure()
    config = apply_changes({}, changes) if changes else {}
    if progress is not None:
        stream = Counted(stream, lambda done: progress("Importing", done, total))
    diff_id, tar_path = store_tar(stream, store.staging_dir())
    staging = os.path.join(store.tmp_dir(), f"layer-{os.getpid()}-{os.urandom(8).hex()}")
    try:
        # the long part, outside store.lock (a layer the store has already is not unpacked again)
        size = None if store.has_layer(diff_id) else unpack(tar_path, staging)
        with store.writing():
            image_id, image_config = _add(store, diff_id, tar_path, staging, size, config, message, source, name)
    finally:
        remove_tree(staging)
        if os.path.exists(tar_path):
            os.unlink(tar_path)
    if name:  # docker tags first, then reports the import
        store.event("tag", image_id, name, image_config)
    store.event("import", image_id, config=image_config)
    return image_id


def _add(store: ImageStore, diff_id: str, tar_path: str, staging: str, size: int | None, config: dict,
         message: str | None, source: str, name: str | None) -> tuple[str, dict]:
    """The unpacked layer, its blob, config and manifest, then the index entry naming them."""
    from berth.image.layers import unpack  # lazy: only import; `version` loads this module

    def materialize(target: str) -> int:
        if size is None:  # the store had the layer when we looked; it has been removed since
            return unpack(tar_path, target)
        os.rename(staging, target)
        return size

    store.adopt_layer(None, diff_id, tar_path, materialize)
    created = now_rfc3339()
    os_name, arch = platform()
    image_config = {
        "architecture": arch,
        "os": os_name,
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "comment": message or f"Imported from {source}"}],
    }
    layer = {"mediaType": LAYER_TYPE, "digest": diff_id, "size": os.path.getsize(store.blob_path(diff_id))}
    return store.add_image(image_config, [layer], name), image_config
