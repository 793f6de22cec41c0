"""`berth import`: a filesystem tarball becomes a one-layer image."""

import os
import time

from berth.image.store import LAYER_TYPE, ImageStore


def platform() -> tuple[str, str]:
    machine = os.uname().machine
    return "linux", {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def now_rfc3339() -> str:
    from berth.units import format_rfc3339_nano

    return format_rfc3339_nano(time.time())


class _Counted:
    """A read stream that reports how much was read: import's progress line."""

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
    On any failure nothing is added (the temp blob is removed; a layer dir is only
    renamed into place once complete)."""
    from berth.image.instructions import apply_changes
    from berth.image.layers import store_tar

    store.ensure()
    config = apply_changes({}, changes) if changes else {}
    if progress is not None:
        stream = _Counted(stream, lambda done: progress("Importing", done, total))
    diff_id, tar_path = store_tar(stream, store.tmp_dir())
    try:
        store.register_layer(None, diff_id, tar_path)
    finally:
        if os.path.exists(tar_path):
            os.unlink(tar_path)
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
    image_id = store.add_image(image_config, [layer], name)
    if name:  # docker tags first, then reports the import
        store.event("tag", image_id, name, image_config)
    store.event("import", image_id, config=image_config)
    return image_id
