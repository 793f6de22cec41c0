"""The local image store: an OCI image layout under <root>/image plus unpacked layers.

    image/oci-layout, image/index.json     tags: one manifest descriptor per name
    image/blobs/sha256/<hex>               manifests, configs, layer tars (uncompressed)
    image/layers/<chain-id hex>/           a layer's unpacked diff, shared by every image
    image/layers/<chain-id hex>.json       {"diff_id", "parent", "size"}

An image's ID is its config digest, as in docker. Untagged images stay in the index
without a name (docker's dangling `<none>:<none>`).

    image/store.lock                       who may add or remove content (see StoreLock)

Content is added before the index names it (a layer, then its blob, then config and manifest,
then the index entry), so a command killed midway leaves only content nothing references:
`image prune` sweeps it (collect_leftovers). What may sweep and what adds exclude each other by
store.lock: adding (commit, load, import, tag, the lazy unpack, a container being created from
an image) holds it shared from the first write or lookup until the index or the container
record names what it used; removing (rmi, prune) holds it exclusively while it decides what is
unused and deletes it."""

import fcntl
import os
from _thread import get_ident  # the builtin: `threading` costs an import on `run`

from berth import fastjson as json
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.fs import (
    Lock,
    failed,
    make_dirs,
    pid_alive,
    read_json,
    remove_tree,
    sweep_dir_temps,
    sweep_temps,
    temp_writer,
    write_bytes,
    write_json,
)

NAME_ANNOTATION = "io.containerd.image.name"
TAG_ANNOTATION = "org.opencontainers.image.ref.name"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256  # the builtin: no OpenSSL load on the `run` path
    except ImportError:
        from hashlib import sha256  # lazy: Python >= 3.12 has no _sha256
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


# store.lock held by this process: (path, thread) -> [fd, exclusive, depth]. Holds nest within
# a thread (a create that holds it shared unpacks layers, which holds it too; rmi holds it
# exclusively and deletes); two threads hold it through two open files, which flock excludes.
_HELD: dict[tuple, list] = {}


def _forget_held_locks() -> None:
    """In a forked child: the parent's holds are the parent's. The child's copies of their fds
    are closed so that a child outliving the hold (a supervisor) never keeps the lock taken."""
    for fd, _, _ in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_held_locks)


class StoreLock:
    """store.lock, shared (adding content or using an image) or exclusive (removing content),
    for a `with` block or until release(). Re-entrant within a thread: an exclusive hold covers
    any nested one; a shared hold cannot become exclusive (that would deadlock two upgraders).
    A store whose directory does not exist yet has nothing to protect: no lock is taken."""

    __slots__ = ("path", "exclusive", "_held")

    def __init__(self, path: str, exclusive: bool):
        self.path = path
        self.exclusive = exclusive
        self._held = False

    def acquire(self) -> None:
        key = (self.path, get_ident())
        held = _HELD.get(key)
        if held is not None:
            if self.exclusive and not held[1]:
                raise RuntimeError("image store lock held shared cannot be taken exclusively")
            held[2] += 1
            self._held = True
            return
        try:
            fd = self._open()
        except FileNotFoundError:  # no image/ yet
            if not self.exclusive:
                return  # no content to protect: a lookup finds nothing, writers ensure() first
            make_dirs(os.path.dirname(self.path))  # a sweeper must exclude the first writer too
            fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        _HELD[key] = [fd, self.exclusive, 1]
        self._held = True

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:  # a read-only disk
            failed("open", self.path, err)
            raise

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        key = (self.path, get_ident())
        held = _HELD.get(key)
        if held is None:  # forgotten in a forked child
            return
        held[2] -= 1
        if held[2] == 0:
            del _HELD[key]
            os.close(held[0])

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ImageHold:
    """An image resolved under store.lock held shared: no rmi or prune can delete it (or its
    layers) until release(). `with store.holding(ref) as image:` or hold = store.holding(ref);
    image = hold.acquire(); ... hold.release()."""

    __slots__ = ("_store", "_ref", "_lock", "image")

    def __init__(self, store: "ImageStore", ref: str):
        self._store = store
        self._ref = ref
        self._lock = StoreLock(store.lock_path, exclusive=False)
        self.image = None

    def acquire(self) -> "Image":
        self._lock.acquire()
        try:
            self.image = self._store.get(self._ref)
        except BaseException:
            self._lock.release()
            raise
        return self.image

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> "Image":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class ImageStore:
    def __init__(self, root: str):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.layers = os.path.join(root, "layers")
        self.index_path = os.path.join(root, "index.json")
        self.lock_path = os.path.join(root, "store.lock")
        self.on_event = None  # (action, image ID, name, labels): the engine's events journal, when set
        self._swept = set()  # directories this process swept of dead writers' temp files

    def _sweep_temps_in(self, directory: str) -> None:
        """Before this process first writes into `directory` (blobs/, layers/): the temp
        files writers killed before their rename left there go (one listing)."""
        if directory not in self._swept:
            self._swept.add(directory)
            sweep_dir_temps(directory)

    # -- who may add and who may remove ------------------------------------
    def holding(self, ref: str) -> ImageHold:
        """The image `ref` names, kept from rmi and prune until released: Engine.create holds it
        from resolving the image until the container's record exists."""
        return ImageHold(self, ref)

    def writing(self) -> StoreLock:
        """Held (shared) by a command adding content, from its first write into blobs/ or layers/
        until the index names it: prune cannot take that content for a leftover meanwhile."""
        return StoreLock(self.lock_path, exclusive=False)

    def collecting(self) -> StoreLock:
        """Held (exclusively) by rmi and prune while they decide what is unused and delete it."""
        return StoreLock(self.lock_path, exclusive=True)

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

    def _write_index(self, index: dict) -> None:
        """Called under index.lock: what a writer killed before its rename left goes first."""
        sweep_temps(self.index_path)
        write_json(self.index_path, index)

    def tmp_dir(self) -> str:
        return os.path.join(self.root, "tmp")

    def staging_dir(self) -> str:
        """tmp/, for a writer about to stage something there (<kind>-<pid>-<random>): what
        writers killed before they finished left there goes first (one listing)."""
        directory = self.tmp_dir()
        for name in _listdir(directory):
            owner = _staging_owner(name)
            if owner is not None and owner != os.getpid() and not pid_alive(owner):
                remove_tree(os.path.join(directory, name))
        return directory

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
        with self.writing():  # an existing blob stays until the caller's index entry names it
            if not os.path.exists(path):
                self._sweep_temps_in(self.blobs)
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

    def add_layer_blob(self, diff_id: str, tar_path: str) -> None:
        """Adopt an uncompressed layer tar as its blob; its directory comes later (unpacked)."""
        blob = self.blob_path(diff_id)
        with self.writing():
            if os.path.exists(blob):
                os.unlink(tar_path)
            else:
                self._sweep_temps_in(self.blobs)
                os.rename(tar_path, blob)

    def unpacked_layer_dirs(self, image: "Image") -> list[str]:
        """The image's layer directories, bottom first, unpacking from the blobs any that are
        not there yet (committed or loaded images are unpacked on first use)."""
        from berth.image.layers import unpack  # lazy: tarfile, only when a layer is first used

        diff_ids = image.diff_ids
        chains = chain_ids(diff_ids)
        with self.writing():  # rmi cannot take the blobs away while they are unpacked
            for i, chain in enumerate(chains):
                if self.has_layer(chain):
                    continue
                with Lock(self.layer_dir(chain) + ".lock"):
                    if not self.has_layer(chain):
                        blob = self.blob_path(diff_ids[i])
                        if not os.path.exists(blob):  # removed since `image` was resolved
                            raise NotFound(f"No such image: {image.id}")
                        self.adopt_layer(chains[i - 1] if i else None, diff_ids[i], None,
                                         lambda staging, blob=blob: unpack(blob, staging))
        return [self.layer_dir(chain) for chain in chains]

    def adopt_layer(self, parent_chain: str | None, diff_id: str, tar_path: str | None, materialize) -> str:
        """Put a layer in place: `materialize(staging_dir) -> size` writes its directory
        (skipped when that chain is already unpacked), then the tar becomes its blob.
        Returns the chain ID. A layer dir is only renamed into place once complete, and the
        tar is adopted only after that, so a failure adds nothing."""
        chain = diff_id if parent_chain is None else chain_ids([parent_chain, diff_id])[1]
        with self.writing():
            if not self.has_layer(chain):
                staging = os.path.join(self.staging_dir(), f"layer-{os.getpid()}-{os.urandom(8).hex()}")
                try:
                    size = materialize(staging)
                    final = self.layer_dir(chain)
                    remove_tree(final)  # a crash may have left an unregistered directory
                    os.rename(staging, final)
                except BaseException:
                    remove_tree(staging)
                    raise
                self._sweep_temps_in(self.layers)
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
        images = []
        for digest, names in by_manifest.items():
            try:
                images.append(self._load(digest, names))
            except FileNotFoundError:
                continue  # deleted while we listed (rmi removes the entry, then the blobs)
        return images

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
        try:
            return self._lookup(ref)
        except FileNotFoundError:  # deleted while we looked (the entry goes first, then its blobs)
            return None

    def _lookup(self, ref: str) -> Image | None:
        from berth.image import reference  # lazy: not for info, df or version

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
                try:
                    manifest = json.loads(self.read_blob(entry["digest"]))
                except FileNotFoundError:
                    continue  # being deleted
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
            self._write_index(index)
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
            self._write_index(index)
            self.event("untag", self.read_manifest(digest)["config"]["digest"])
            return not self._names_of(entries, digest)

    def delete(self, image: Image) -> list[str]:
        """Remove an image from the index and every blob and layer nothing else uses.
        Returns the layer diff IDs deleted (docker prints them as `Deleted: sha256:...`)."""
        with self.collecting(), Lock(os.path.join(self.root, "index.lock")):
            index = self._index()
            entries = index["manifests"]
            if any(e["digest"] == image.manifest_digest and (e.get("annotations") or {}).get(NAME_ANNOTATION)
                   for e in entries):
                raise Conflict(f"unable to delete {image.id[7:19]} (image is still tagged)")
            index["manifests"] = [e for e in entries if e["digest"] != image.manifest_digest]
            self._write_index(index)
            self.event("delete", image.id)
            return self._collect_garbage(index["manifests"], image)

    def _references(self, entries: list) -> tuple[set, set]:
        """(blob digests, chain IDs) that the index `entries` reference: each entry's manifest,
        its config and its layers, and the chain of its layers. An entry whose manifest or
        config is gone (a store damaged by hand) references what can still be read of it."""
        blobs, chains = set(), set()
        for entry in entries:
            blobs.add(entry["digest"])
            try:
                manifest = json.loads(self.read_blob(entry["digest"]))
                blobs.add(manifest["config"]["digest"])
                blobs.update(layer["digest"] for layer in manifest["layers"])
                config = json.loads(self.read_blob(manifest["config"]["digest"]))
            except (FileNotFoundError, InvalidArgument):
                continue
            chains.update(chain_ids((config.get("rootfs") or {}).get("diff_ids") or []))
        return blobs, chains

    def collect_leftovers(self, dry_run: bool = False) -> int:
        """Remove what killed commands left behind: blobs and layer directories no image
        references, lock files of such layers, and temp files and staging entries (in tmp/, and
        write_bytes' <file>.tmp<pid>-* anywhere in the store) whose writer is dead. Returns the
        bytes freed; `dry_run` only counts them (`system df`: what prune would give back)."""
        if dry_run:
            return self._sweep(True)
        with self.collecting(), Lock(os.path.join(self.root, "index.lock")):
            return self._sweep(False)

    def _sweep(self, dry_run: bool) -> int:
        remove = (lambda path: None) if dry_run else remove_tree
        used_blobs, used_chains = self._references(self._index()["manifests"])
        used_blobs = {digest.partition(":")[2] for digest in used_blobs}
        used_chains = {chain.partition(":")[2] for chain in used_chains}
        freed = 0
        for directory, kind in ((self.root, None), (self.blobs, "blob"), (self.layers, "layer"),
                                (self.tmp_dir(), "tmp")):
            for name in _listdir(directory):
                path = os.path.join(directory, name)
                writer = temp_writer(name) if kind != "tmp" else _staging_owner(name)
                if writer is not None or kind == "tmp":
                    if writer is not None and pid_alive(writer):
                        continue  # a command is writing it right now
                elif kind == "blob":
                    if name in used_blobs:
                        continue
                elif kind == "layer":
                    chain = name.removesuffix(".json").removesuffix(".lock")
                    if chain in used_chains:
                        continue
                    if name.endswith(".lock"):  # nobody waits on it: unpackers hold store.lock
                        remove(path)
                        continue
                    if name.endswith(".json"):
                        freed += self.layer_size("sha256:" + chain)
                        remove(path)
                        continue
                    if os.path.exists(path + ".json"):
                        remove(path)  # counted by its .json
                        continue
                else:
                    continue  # index.json, oci-layout, the locks, blobs/, layers/, tmp/
                freed += _bytes_under(path)
                remove(path)
        return freed

    def _collect_garbage(self, entries: list, image: Image) -> list[str]:
        used_blobs, used_chains = self._references(entries)
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


def _staging_owner(name: str) -> int | None:
    """The pid in a tmp/ staging name, <kind>-<pid>-<random> (commit-, blob-, layer-, load-);
    None for any other name (nobody's: swept)."""
    parts = name.split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _bytes_under(path: str) -> int:
    """Bytes of the regular files at or under `path` (berth's own staging and layer content)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if (st.st_mode & 0o170000) != 0o040000:
        return st.st_size
    total = 0
    for _root, _dirs, files, rootfd in os.fwalk(path):
        for name in files:
            try:
                st = os.lstat(name, dir_fd=rootfd)
            except FileNotFoundError:
                continue
            if (st.st_mode & 0o170000) == 0o100000:
                total += st.st_size
    return total


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
