"""The build cache: which image a build step made, by a key of everything the step depends on
(parent image, instruction after substitution, config, content hash of copied files). One
small file per step under <root>/build-cache/steps/, written atomically; the images stay in
the image store, untagged, until `builder prune` lets them go."""

import json
import os

from berth.fs import make_dirs, write_bytes
from berth.image.store import sha256_hex


class BuildCache:
    def __init__(self, root: str):
        self.dir = os.path.join(root, "build-cache")
        self.steps = os.path.join(self.dir, "steps")

    @staticmethod
    def key(*parts) -> str:
        return sha256_hex(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode())

    def get(self, key: str) -> str | None:
        try:
            with open(os.path.join(self.steps, key), "rb") as f:
                return f.read().decode()
        except FileNotFoundError:
            return None

    def put(self, key: str, image_id: str) -> None:
        make_dirs(self.steps)
        write_bytes(os.path.join(self.steps, key), image_id.encode(), durable=False)

    def image_ids(self) -> dict[str, str]:
        """{step key: image ID} of every step cached."""
        found = {}
        try:
            names = os.listdir(self.steps)
        except FileNotFoundError:
            return found
        for name in names:
            if len(name) == 64:
                image_id = self.get(name)
                if image_id:
                    found[name] = image_id
        return found

    def forget(self, key: str) -> None:
        try:
            os.unlink(os.path.join(self.steps, key))
        except FileNotFoundError:
            pass



def prune(engine, all_cache: bool = False) -> int:
    """`builder prune`: every cached step goes, and each untagged image only the cache kept
    (no container uses it); with `all_cache`, the RUN --mount=type=cache directories too.
    The bytes reclaimed."""
    cache = BuildCache(engine.paths.root)
    store = engine.images
    reclaimed = 0
    cached = cache.image_ids()
    wanted = set(cached.values())
    with store.collecting():
        used = {record["Image"] for record in engine.containers()}
        for key in cached:
            cache.forget(key)
        for image in store.images():
            if image.id not in wanted or image.names or image.id in used:
                continue
            size = image.size()
            layers = store.delete(image)
            reclaimed += size if layers else 0
    if all_cache:
        from berth.engine.build_context import CACHE_VOLUME_PREFIX
        from berth.engine.volumes import VolumeStore

        volumes = VolumeStore(engine.paths)
        for name in volumes.names():
            if name.startswith(CACHE_VOLUME_PREFIX):
                size = volumes.size(name)
                if volumes.remove(name):
                    reclaimed += size
    return reclaimed
