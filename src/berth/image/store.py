"""The local image store: an OCI image layout under <root>/image plus unpacked layers.

    image/oci-layout, image/index.json     tags: one manifest descriptor per name
    image/blobs/sha256/<hex>               manifests, configs, layer tars (uncompressed)
    image/layers/<chain-id hex>/           a layer's unpacked diff, shared by every image
    image/layers/<chain-id hex>.json       {"diff_id", "parent", "size"}

An image's ID is its config digest, as in docker. Untagged images stay in the index
without a name (docker's dangling `<none>:<none>`)."""

import os

from berth import fastjson as json
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.fs import Lock, make_dirs, read_json, write_bytes, write_json

NAME_ANNOTATION = "io.containerd.image.name"
TAG_ANNOTATION = "org.opencontainers.image.ref.name"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256  # the builtin: no OpenSSL load on the `run` path
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainID: chain(n) = sha256(chain(n-1) + " " + diff_id(n))."""
    chains = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else "sha256:" + sha256_hex(f"{chains[-1]} {diff_id}".encode()))
    return chains


class Image:
    """One image: config digest (ID), its manifest and config, and its names."""

    __slots__ = ("id", "manifest_digest", "config", "names", "_store")

    def __init__(self, store, image_id: str, manifest_digest: str, config: dict, names: list[str]):
        self._store = store
        self.id = image_id
        self.manifest_digest = manifest_digest
        self.config = config
        self.names = names

    @property
    def diff_ids(self) -> list[str]:
        return (self.config.get("rootfs") or {}).get("diff_ids") or []

    def layer_dirs(self) -> list[str]:
        """Unpacked layer directories, bottom layer first."""
        return [self._store.layer_dir(chain) for chain in chain_ids(self.diff_ids)]

    def size(self) -> int:
        return sum(self._store.layer_size(chain, diff_id) for chain, diff_id in zip(chain_ids(self.diff_ids),
                                                                                   self.diff_ids, strict=True))


class ImageStore:
    def __init__(self, root: str):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.layers = os.path.join(root, "layers")
        self.index_path = os.path.join(root, "index.json")
        self.on_event = None  # (action, image ID, name, labels): the engine's events journal, when set

    # -- layout ----------------------------------------------------------
    def ensure(self) -> None:
        if os.path.exists(self.index_path):
            return
        make_dirs(self.blobs)
        make_dirs(self.layers)
        make_dirs(os.path.join(self.root, "tmp"))
        with Lock(os.path.join(self.root, "index.lock")):
            if not os.path.exists(self.index_path):
                write_json(os.path.join(self.root, "oci-layout"), {"imageLayoutVersion": "1.0.0"})
                write_json(self.index_path, {"schemaVersion": 2, "manifests": []})

    def tmp_dir(self) -> str:
        return os.path.join(self.root, "tmp")

    def _index(self) -> dict:
        try:
            return read_json(self.index_path)
        except FileNotFoundError:
            return {"schemaVersion": 2, "manifests": []}

    def blob_path(self, digest: str) -> str:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64:
            raise InvalidArgument(f"invalid digest {digest!r}")
        return os.path.join(self.blobs, hexdigest)

    def read_manifest(self, digest: str) -> dict:
        return json.loads(self.read_blob(digest))

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def write_blob(self, data: bytes) -> str:
        digest = "sha256:" + sha256_hex(data)
        path = self.blob_path(digest)
        if not os.path.exists(path):
            write_bytes(path, data)
        return digest

    def layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.layers, chain_id.partition(":")[2])

    def layer_size(self, chain_id: str, diff_id: str | None = None) -> int:
        """The unpacked layer's content size; its tar's size if it is not unpacked yet."""
        try:
            return read_json(self.layer_dir(chain_id) + ".json").get("size", 0)
        except FileNotFoundError:
            try:
                return os.path.getsize(self.blob_path(diff_id)) if diff_id else 0
            except FileNotFoundError:
                return 0

    def has_layer(self, chain_id: str) -> bool:
        return os.path.exists(self.layer_dir(chain_id) + ".json")

    def register_layer(self, parent_chain: str | None, diff_id: str, tar_path: str) -> str:
        """Adopt an uncompressed layer tar (moved into blobs) and unpack it once per chain ID."""
        from berth.image.layers import unpack

        def unpack_into(staging: str) -> int:
            return unpack(tar_path, staging)

        return self.adopt_layer(parent_chain, diff_id, tar_path, unpack_into)

    def add_layer_blob(self, diff_id: str, tar_path: str) -> None:
        """Adopt an uncompressed layer tar as its blob; its directory comes later (unpacked)."""
        blob = self.blob_path(diff_id)
        if os.path.exists(blob):
            os.unlink(tar_path)
        else:
            os.rename(tar_path, blob)

    def unpacked_layer_dirs(self, image: "Image") -> list[str]:
        """The image's layer directories, bottom first, unpacking from the blobs any that are
        not there yet (committed or loaded images are unpacked on first use)."""
        from berth.image.layers import unpack

        diff_ids = image.diff_ids
        chains = chain_ids(diff_ids)
        for i, chain in enumerate(chains):
            if self.has_layer(chain):
                continue
            with Lock(self.layer_dir(chain) + ".lock"):
                if not self.has_layer(chain):
                    blob = self.blob_path(diff_ids[i])
                    self.adopt_layer(chains[i - 1] if i else None, diff_ids[i], None,
                                     lambda staging, blob=blob: unpack(blob, staging))
        return [self.layer_dir(chain) for chain in chains]

    def adopt_layer(self, parent_chain: str | None, diff_id: str, tar_path: str | None, materialize) -> str:
        """Put a layer in place: `materialize(staging_dir) -> size` writes its directory
        (skipped when that chain is already unpacked), then the tar becomes its blob.
        Returns the chain ID. A layer dir is only renamed into place once complete, and the
        tar is adopted only after that, so a failure adds nothing."""
        from berth.fs import remove_tree

        chain = diff_id if parent_chain is None else chain_ids([parent_chain, diff_id])[1]
        if not self.has_layer(chain):
            staging = os.path.join(self.tmp_dir(), f"layer-{os.getpid()}-{os.urandom(8).hex()}")
            try:
                size = materialize(staging)
                final = self.layer_dir(chain)
                remove_tree(final)  # a crash may have left an unregistered directory
                os.rename(staging, final)
            except BaseException:
                remove_tree(staging)
                raise
            write_json(final + ".json", {"diff_id": diff_id, "parent": parent_chain, "size": size})
        if tar_path is not None:
            self.add_layer_blob(diff_id, tar_path)
        return chain

    # -- lookup ----------------------------------------------------------
    def images(self) -> list[Image]:
        """Every image once, with all its names, in index order."""
        by_manifest: dict[str, list[str]] = {}
        for entry in self._index()["manifests"]:
            names = by_manifest.setdefault(entry["digest"], [])
            name = (entry.get("annotations") or {}).get(NAME_ANNOTATION)
            if name:
                names.append(name)
        return [self._load(digest, names) for digest, names in by_manifest.items()]

    def _load(self, manifest_digest: str, names: list[str]) -> Image:
        manifest = json.loads(self.read_blob(manifest_digest))
        config_digest = manifest["config"]["digest"]
        return Image(self, config_digest, manifest_digest, json.loads(self.read_blob(config_digest)), names)

    def get(self, ref: str) -> Image:
        """Resolve a name (`busybox`, `busybox:1`, `name@sha256:...`) or an image ID prefix."""
        image = self.lookup(ref)
        if image is None:
            raise NotFound(f"No such image: {ref}")
        return image

    def lookup(self, ref: str) -> Image | None:
        from berth.image import reference

        index = self._index()["manifests"]
        try:
            full = str(reference.parse(ref))
        except ValueError:
            full = None
        if full:
            for entry in index:
                if (entry.get("annotations") or {}).get(NAME_ANNOTATION) == full:
                    return self._load(entry["digest"], self._names_of(index, entry["digest"]))
            if "@" in full:
                digest = full.partition("@")[2]
                for entry in index:
                    if entry["digest"] == digest:
                        return self._load(digest, self._names_of(index, digest))
        if reference.is_id_like(ref):
            wanted = ref if ref.startswith("sha256:") else "sha256:" + ref
            matches = {}
            for entry in index:
                manifest = json.loads(self.read_blob(entry["digest"]))
                if manifest["config"]["digest"].startswith(wanted):
                    matches[entry["digest"]] = True
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
            if matches:
                digest = next(iter(matches))
                return self._load(digest, self._names_of(index, digest))
        return None

    @staticmethod
    def _names_of(index: list, manifest_digest: str) -> list[str]:
        return [
            (e.get("annotations") or {})[NAME_ANNOTATION]
            for e in index
            if e["digest"] == manifest_digest and (e.get("annotations") or {}).get(NAME_ANNOTATION)
        ]

    # -- changes ---------------------------------------------------------
    def add_image(self, config: dict, layers: list[dict], name: str | None = None) -> str:
        """Store config + manifest for already-stored layers; tag it `name` (a full reference)."""
        config_bytes = json.dumps(config).encode()
        config_digest = self.write_blob(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config_bytes)},
            "layers": layers,
        }
        manifest_bytes = json.dumps(manifest).encode()
        manifest_digest = self.write_blob(manifest_bytes)
        self.publish([(manifest_digest, len(manifest_bytes), [name] if name else [])])
        return config_digest

    def publish(self, manifests: list) -> dict:
        """Name manifests whose blobs are stored, in one index write: each item is
        (manifest digest, manifest size, names); one without names is listed dangling.
        A name moves off whatever image held it. Returns {name: config digest of the image
        it named before} for the names that moved."""
        moved = {}
        with Lock(os.path.join(self.root, "index.lock")):
            index = self._index()
            entries = index["manifests"]
            for digest, size, names in manifests:
                descriptor = {"mediaType": MANIFEST_TYPE, "digest": digest, "size": size}
                for name in names:
                    previous = next((e["digest"] for e in entries
                                     if (e.get("annotations") or {}).get(NAME_ANNOTATION) == name), None)
                    if previous and previous != digest:
                        moved[name] = self.read_manifest(previous)["config"]["digest"]
                    self._remove_name(entries, name)
                    entries.append(self._descriptor(descriptor, name))
                if not names and not any(e["digest"] == digest for e in entries):
                    entries.append(descriptor)
            self._drop_unnamed_duplicates(entries)
            write_json(self.index_path, index)
        return moved

    @staticmethod
    def _descriptor(descriptor: dict, name: str | None) -> dict:
        entry = dict(descriptor)
        if name:
            entry["annotations"] = {NAME_ANNOTATION: name, TAG_ANNOTATION: name.rpartition(":")[2]}
        return entry

    def _remove_name(self, entries: list, name: str) -> None:
        """Move `name` off whatever image holds it; that image stays, dangling if it was its last name."""
        for i, entry in enumerate(entries):
            if (entry.get("annotations") or {}).get(NAME_ANNOTATION) == name:
                others = [e for e in entries if e["digest"] == entry["digest"] and e is not entry]
                if others:
                    del entries[i]
                else:
                    entries[i] = {k: v for k, v in entry.items() if k != "annotations"}
                return

    @staticmethod
    def _drop_unnamed_duplicates(entries: list) -> None:
        named = {e["digest"] for e in entries if (e.get("annotations") or {}).get(NAME_ANNOTATION)}
        entries[:] = [e for e in entries
                      if (e.get("annotations") or {}).get(NAME_ANNOTATION) or e["digest"] not in named]

    def tag(self, image: Image, name: str) -> None:
        self.publish([(image.manifest_digest, os.path.getsize(self.blob_path(image.manifest_digest)), [name])])
        self.event("tag", image.id, name, image.config)

    def untag(self, name: str) -> bool:
        """Remove one name. Returns True if the image it named has no names left."""
        with Lock(os.path.join(self.root, "index.lock")):
            index = self._index()
            entries = index["manifests"]
            for entry in entries:
                if (entry.get("annotations") or {}).get(NAME_ANNOTATION) == name:
                    digest = entry["digest"]
                    break
            else:
                raise NotFound(f"No such image: {name}")
            self._remove_name(entries, name)
            write_json(self.index_path, index)
            self.event("untag", self.read_manifest(digest)["config"]["digest"])
            return not self._names_of(entries, digest)

    def delete(self, image: Image) -> list[str]:
        """Remove an image from the index and every blob and layer nothing else uses.
        Returns the layer diff IDs deleted (docker prints them as `Deleted: sha256:...`)."""
        with Lock(os.path.join(self.root, "index.lock")):
            index = self._index()
            entries = index["manifests"]
            if any(e["digest"] == image.manifest_digest and (e.get("annotations") or {}).get(NAME_ANNOTATION)
                   for e in entries):
                raise Conflict(f"unable to delete {image.id[7:19]} (image is still tagged)")
            index["manifests"] = [e for e in entries if e["digest"] != image.manifest_digest]
            write_json(self.index_path, index)
            self.event("delete", image.id)
            return self._collect_garbage(index["manifests"], image)

    def collect_leftovers(self) -> int:
        """Remove what a killed command left behind: staging files in tmp/ and layer
        directories no image's chain references. Returns the bytes freed."""
        from berth.fs import remove_tree

        freed = 0
        with Lock(os.path.join(self.root, "index.lock")):
            used = set()
            for entry in self._index()["manifests"]:
                manifest = json.loads(self.read_blob(entry["digest"]))
                config = json.loads(self.read_blob(manifest["config"]["digest"]))
                used.update(c.partition(":")[2] for c in chain_ids((config.get("rootfs") or {}).get("diff_ids") or []))
            for name in os.listdir(self.layers):
                if name.endswith(".lock"):
                    continue  # a lock may be held right now
                chain = name.removesuffix(".json")
                if chain not in used:
                    path = os.path.join(self.layers, name)
                    freed += self.layer_size("sha256:" + chain) if name.endswith(".json") else 0
                    remove_tree(path)
            tmp = self.tmp_dir()
            for name in os.listdir(tmp) if os.path.isdir(tmp) else ():
                if _owner_alive(name):
                    continue  # a command is working on it right now
                path = os.path.join(tmp, name)
                if os.path.isfile(path):
                    freed += os.path.getsize(path)
                remove_tree(path)
        return freed

    def _collect_garbage(self, entries: list, image: Image) -> list[str]:
        from berth.fs import remove_tree

        used_chains = set()
        used_blobs = set()
        for entry in entries:
            manifest = json.loads(self.read_blob(entry["digest"]))
            used_blobs.update([entry["digest"], manifest["config"]["digest"]])
            used_blobs.update(layer["digest"] for layer in manifest["layers"])
            config = json.loads(self.read_blob(manifest["config"]["digest"]))
            used_chains.update(chain_ids((config.get("rootfs") or {}).get("diff_ids") or []))
        manifest = json.loads(self.read_blob(image.manifest_digest))
        deleted = []
        for chain in chain_ids(image.diff_ids):
            if chain not in used_chains:
                remove_tree(self.layer_dir(chain))
                _unlink(self.layer_dir(chain) + ".json")
                deleted.append(chain)
        for digest in [image.manifest_digest, image.id] + [layer["digest"] for layer in manifest["layers"]]:
            if digest not in used_blobs:
                _unlink(self.blob_path(digest))
        return deleted

    def event(self, action: str, image_id: str, name: str = "", config: dict | None = None) -> None:
        """Report an image event (docker's: tag, untag, delete, import, load, save) to whoever
        listens; `name` defaults to the ID, as docker gives it for all but tag. Labels are read
        from the image's config unless it is given (or the image is gone)."""
        if self.on_event is None:
            return
        if config is None and action != "delete":
            try:
                config = json.loads(self.read_blob(image_id))
            except (OSError, ValueError, InvalidArgument):
                config = {}
        self.on_event(action, image_id, name or image_id, ((config or {}).get("config") or {}).get("Labels"))


def _owner_alive(tmp_name: str) -> bool:
    """Staging names are <kind>-<pid>-<random>: is that process still running?"""
    parts = tmp_name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
