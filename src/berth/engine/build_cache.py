"""The build cache: which image a build step made, by a key of everything the step depends on
(parent image, instruction after substitution, config, content hash of copied files). One
small file per step under <root>/build-cache/steps/, written atomically; the images stay in
the image store, untagged, until `builder prune` lets them go."""

import os

from berth import fastjson
from berth.fs import make_dirs, write_bytes
from berth.image.store import sha256_hex


class BuildCache:
    def __init__(self, root: str):
        self.dir = os.path.join(root, "build-cache")
        self.steps = os.path.join(self.dir, "steps")
        self.parents = os.path.join(self.dir, "parents")  # <child ID hex>: its parent's ID

    @staticmethod
    def key(*parts) -> str:
        return sha256_hex(fastjson.dumps(_canonical(list(parts))).encode())

    def get(self, key: str) -> tuple[str, str] | None:
        """(image ID, manifest digest) the step made, if cached."""
        try:
            with open(os.path.join(self.steps, key), "rb") as f:
                image_id, _, manifest = f.read().decode().partition("\n")
        except FileNotFoundError:
            return None
        return (image_id, manifest) if image_id and manifest else None

    def put(self, key: str, image_id: str, manifest_digest: str) -> None:
        make_dirs(self.steps)
        write_bytes(os.path.join(self.steps, key), f"{image_id}\n{manifest_digest}".encode(), durable=False)

    def put_parent(self, child: str, parent: str) -> None:
        make_dirs(self.parents)
        write_bytes(os.path.join(self.parents, child.partition(":")[2]), parent.encode(), durable=False)

    def image_ids(self) -> dict[str, str]:
        """{step key: image ID} of every step cached."""
        found = {}
        try:
            names = os.listdir(self.steps)
        except FileNotFoundError:
            return found
        for name in names:
            if len(name) == 64:
                cached = self.get(name)
                if cached:
                    found[name] = cached[0]
        return found

    def forget(self, key: str) -> None:
        try:
            os.unlink(os.path.join(self.steps, key))
        except FileNotFoundError:
            pass



def _canonical(value):
    """Dicts with sorted keys, all the way down: one text for one value."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def parent_of(root: str, image_id: str) -> str | None:
    """The image a build made `image_id` from (its previous step's), if a build made it."""
    try:
        with open(os.path.join(root, "build-cache", "parents", image_id.partition(":")[2]), "rb") as f:
            return f.read().decode() or None
    except FileNotFoundError:
        return None


def intermediate_ids(root: str, existing: set[str]) -> set[str]:
    """IDs of images a build made that have a child among `existing` (docker's intermediate
    images: `images` hides them unless -a, `image prune` keeps them unless -a)."""
    parents = os.path.join(root, "build-cache", "parents")
    found = set()
    try:
        names = os.listdir(parents)
    except FileNotFoundError:
        return found
    for name in names:
        if "sha256:" + name not in existing:
            continue
        try:
            with open(os.path.join(parents, name), "rb") as f:
                found.add(f.read().decode())
        except FileNotFoundError:
            continue
    return found


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
            try:
                os.unlink(os.path.join(cache.parents, image.id.partition(":")[2]))
            except FileNotFoundError:
                pass
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
