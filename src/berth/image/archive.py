"""`berth save` and `berth load`: images to and from tar archives.

save writes what docker 25+ writes, a docker-archive and an OCI image layout in one tar
(manifest.json + repositories, oci-layout + index.json, blobs/sha256/<hex>), or a plain OCI
image layout (`oci-archive`). load reads those, docker's older `<v1 id>/layer.tar` archives
and podman's, compressed as a whole or per layer, and verifies every digest on the way.

A load stages everything under <root>/image/tmp and changes the store only once every
blob, layer and config has been verified and every new layer unpacked: a bad archive adds
nothing, and a killed load leaves nothing but its staging directory behind.

`progress`, where accepted, is called as progress(ident, action, done_bytes, total_bytes)."""

import io
import os
import posixpath
import tarfile

from berth import fastjson as json
from berth.errors import InvalidArgument, NotFound
from berth.fs import pid_alive, remove_tree
from berth.image import reference
from berth.image.store import (
    CONFIG_TYPE,
    LAYER_TYPE,
    MANIFEST_TYPE,
    NAME_ANNOTATION,
    TAG_ANNOTATION,
    ImageStore,
    chain_ids,
    sha256_hex,
)

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")


def invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message)  # the CLI exits 1 for it, as docker load does when the daemon refuses


def manifest_bytes(config_digest: str, config_size: int, layers: list[dict]) -> bytes:
    """The manifest the store writes for an image (ImageStore.add_image), byte for byte."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    return json.dumps(manifest).encode()


def _is_digest(value) -> bool:
    return (isinstance(value, str) and value.startswith("sha256:") and len(value) == 71
            and all(c in _HEX for c in value[7:]))


# -- save ------------------------------------------------------------------------

class SaveEntry:
    """One image to save and the names (full references, tagged) it is saved under."""

    __slots__ = ("image", "names")

    def __init__(self, image):
        self.image = image
        self.names: list[str] = []


def resolve(store: ImageStore, refs: list[str]) -> list[SaveEntry]:
    """docker's parseNames: `repo` alone means every tag of repo, `repo:tag` that tag, and
    an ID or a digest reference the image without a name. Raises NotFound before anything
    is written."""
    entries: dict[str, SaveEntry] = {}
    for ref in refs:
        for image, name in _matches(store, ref):
            entry = entries.setdefault(image.id, SaveEntry(image))
            if name and "@" not in name and name not in entry.names:  # a digest is no tag to save
                entry.names.append(name)
    return list(entries.values())


def _matches(store: ImageStore, ref: str) -> list:
    try:
        parsed = reference.parse(ref)
    except ValueError:
        parsed = None
    if parsed and not parsed.digest and ":" not in ref.rpartition("/")[2]:
        repo = parsed.name()
        tagged = [(image, name) for image in store.images() for name in image.names
                  if "@" not in name and reference.parse(name).name() == repo]
        if tagged:
            return tagged
    image = store.get(ref)
    full = str(parsed) if parsed else None
    return [(image, full if full in image.names else None)]


class _Blob:
    __slots__ = ("data", "path", "size", "ident")

    def __init__(self, data: bytes | None = None, path: str | None = None, size: int = 0, ident: str = ""):
        self.data = data
        self.path = path
        self.size = len(data) if data is not None else size
        self.ident = ident  # set for layers: the progress line's name


class _SavePlan:
    """Everything an archive holds, gathered (and checked) before a byte is written."""

    def __init__(self, store: ImageStore, entries: list[SaveEntry], fmt: str):
        self.fmt = fmt
        self.blobs: dict[str, _Blob] = {}
        self.index: list[dict] = []
        self.manifest: list[dict] = []
        self.repositories: dict[str, dict] = {}
        for entry in entries:
            image = entry.image
            if not image.diff_ids:
                raise InvalidArgument("empty export - not implemented")
            config = store.read_blob(image.id)
            self.blobs[image.id[7:]] = _Blob(config)
            layers = []
            for diff_id in image.diff_ids:
                path = store.blob_path(diff_id)
                try:
                    size = os.path.getsize(path)
                except FileNotFoundError:
                    raise NotFound(f"layer {diff_id} of image {image.id} is missing from the store") from None
                self.blobs[diff_id[7:]] = _Blob(path=path, size=size, ident=diff_id[7:19])
                layers.append({"mediaType": LAYER_TYPE, "digest": diff_id, "size": size})
            manifest = manifest_bytes(image.id, len(config), layers)
            manifest_digest = "sha256:" + sha256_hex(manifest)
            self.blobs[manifest_digest[7:]] = _Blob(manifest)
            descriptor = {"mediaType": MANIFEST_TYPE, "digest": manifest_digest, "size": len(manifest)}
            if _platform_of(image.config):
                descriptor["platform"] = _platform_of(image.config)
            # ref.name holds the full name (as podman writes it), not docker's bare tag:
            # podman reads a single-image archive through index.json and names the image from it.
            for name in entry.names:
                self.index.append(dict(descriptor, annotations={NAME_ANNOTATION: name, TAG_ANNOTATION: name}))
            if not entry.names:
                self.index.append(descriptor)
            repo_tags = [reference.parse(name).familiar() for name in entry.names]
            for name in entry.names:
                ref = reference.parse(name)
                self.repositories.setdefault(ref.familiar_name(), {})[ref.tag] = image.diff_ids[-1][7:]
            self.manifest.append({"Config": "blobs/sha256/" + image.id[7:], "RepoTags": repo_tags or None,
                                  "Layers": ["blobs/sha256/" + d[7:] for d in image.diff_ids]})

    def files(self) -> list[tuple[str, bytes]]:
        index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": self.index}
        files = [("index.json", json.dumps(index).encode())]
        if self.fmt == DOCKER_ARCHIVE:
            files.append(("manifest.json", json.dumps(self.manifest).encode() + b"\n"))
        files.append(("oci-layout", OCI_LAYOUT))
        if self.fmt == DOCKER_ARCHIVE and self.repositories:
            files.append(("repositories", json.dumps(self.repositories).encode() + b"\n"))
        return files

    def write(self, out, progress=None) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for directory in ("blobs", "blobs/sha256"):
                tar.addfile(_member(directory + "/", 0, tarfile.DIRTYPE))
            for hexdigest in sorted(self.blobs):
                blob = self.blobs[hexdigest]
                info = _member("blobs/sha256/" + hexdigest, blob.size)
                if blob.data is not None:
                    tar.addfile(info, io.BytesIO(blob.data))
                    continue
                with open(blob.path, "rb") as source:
                    reader = _Counting(source, blob, progress) if progress else source
                    tar.addfile(info, reader)
            for name, data in self.files():
                tar.addfile(_member(name, len(data)), io.BytesIO(data))


def _member(name: str, size: int, kind: bytes | None = None):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0  # the same image always makes the same archive
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if kind is not None:
        info.type = kind
    return info


class _Counting:
    """A file reader reporting bytes read to `progress` (save's per-layer lines)."""

    def __init__(self, source, blob: _Blob, progress):
        self.source = source
        self.blob = blob
        self.progress = progress
        self.done = 0
        progress(blob.ident, "Saving layer", 0, blob.size)

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.done += len(data)
        self.progress(self.blob.ident, "Saving layer", self.done, self.blob.size)
        return data


def _platform_of(config: dict) -> dict | None:
    if not config.get("architecture") or not config.get("os"):
        return None
    platform = {"architecture": config["architecture"], "os": config["os"]}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    return platform


def write_archive(store: ImageStore, entries: list[SaveEntry], out, fmt: str = DOCKER_ARCHIVE,
                  progress=None) -> None:
    """Write resolved images to the binary stream `out` as one tar archive."""
    if fmt not in FORMATS:
        raise InvalidArgument(f'unsupported format "{fmt}": use {FORMATS[0]} or {FORMATS[1]}')
    _SavePlan(store, entries, fmt).write(out, progress)
    for entry in entries:
        store.event("save", entry.image.id, config=entry.image.config)


def save(store: ImageStore, refs: list[str], out, fmt: str = DOCKER_ARCHIVE, progress=None) -> None:
    """Write the images `refs` name to the binary stream `out` as one tar archive."""
    write_archive(store, resolve(store, refs), out, fmt, progress)


# -- load: reading the archive -----------------------------------------------------

class _Staged:
    """A regular file of the archive, copied to the staging directory and hashed."""

    __slots__ = ("path", "digest", "size")

    def __init__(self, path: str, digest: str, size: int):
        self.path = path
        self.digest = digest
        self.size = size


class _Archive:
    """The archive's files by name, staged on disk; symlinks and hard links resolved inside it."""

    def __init__(self, staging: str):
        self.staging = staging
        self.files: dict[str, _Staged] = {}
        self.symlinks: dict[str, str] = {}
        self.count = 0

    def add(self, tar, member) -> None:
        name = _clean(member.name)
        if not name or member.isdir():
            return
        self.files.pop(name, None)
        self.symlinks.pop(name, None)
        if member.issym():
            if member.linkname.startswith("/"):
                raise invalid(f"invalid archive: symlink {member.name!r} points outside the archive")
            self.symlinks[name] = member.linkname
        elif member.islnk():
            target = self.files.get(self.resolve(member.linkname))
            if target is None:
                raise invalid(f"invalid archive: hard link {member.name!r} to a missing file")
            self.files[name] = target
        elif member.isreg():
            self.files[name] = self._stage(tar.extractfile(member), member.size)

    def _stage(self, source, expected: int) -> _Staged:
        import hashlib  # lazy: OpenSSL (~3.5 ms), only load

        self.count += 1
        path = os.path.join(self.staging, f"file-{self.count}")
        digest = hashlib.sha256()
        size = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if size != expected:
            raise invalid("invalid archive: unexpected EOF")
        return _Staged(path, "sha256:" + digest.hexdigest(), size)

    def check_named_blobs(self) -> None:
        """A file named by its digest (blobs/sha256/<hex>, docker's <image id>.json) must have it."""
        for name, staged in self.files.items():
            directory, _, base = name.rpartition("/")
            if directory == "blobs/sha256":
                expected = "sha256:" + base
            elif not directory and base.endswith(".json") and _is_digest("sha256:" + base[:-5]):
                expected = "sha256:" + base[:-5]
            else:
                continue
            if staged.digest != expected:
                raise invalid(f"invalid archive: {name}: digest mismatch: expected {expected}, got {staged.digest}")

    def resolve(self, name: str) -> str:
        """`name` with every symlink along it followed, confined to the archive."""
        if name.startswith("/"):
            raise invalid(f"invalid archive: path {name!r} escapes the archive")
        pending = name.split("/")
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise invalid(f"invalid archive: path {name!r} escapes the archive")
                resolved.pop()
                continue
            candidate = "/".join(resolved + [part])
            target = self.symlinks.get(candidate)
            if target is None:
                resolved.append(part)
                continue
            hops += 1
            if hops > 40:
                raise invalid(f"invalid archive: too many levels of symbolic links in {name!r}")
            pending = target.split("/") + pending
        return "/".join(resolved)

    def entry(self, name) -> _Staged:
        if not isinstance(name, str) or not name:
            raise invalid(f"invalid archive: bad path {name!r}")
        staged = self.files.get(self.resolve(name))
        if staged is None:
            raise invalid(f"invalid archive: open {name}: no such file or directory")
        return staged

    def has(self, name: str) -> bool:
        return self.resolve(name) in self.files

    def read(self, name: str) -> bytes:
        with open(self.entry(name).path, "rb") as f:
            return f.read()

    def json(self, name: str):
        try:
            return json.loads(self.read(name))
        except ValueError as err:
            raise invalid(f"invalid archive: {name}: {err}") from None

    def blob(self, descriptor) -> _Staged:
        """The blob an OCI descriptor points to, checked against its digest and size."""
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not _is_digest(digest):
            raise invalid(f"invalid archive: unsupported or malformed digest {digest!r}")
        staged = self.entry("blobs/sha256/" + digest[7:])
        if staged.digest != digest:
            raise invalid(f"invalid archive: digest mismatch: expected {digest}, got {staged.digest}")
        if descriptor.get("size") is not None and descriptor["size"] != staged.size:
            raise invalid(f"invalid archive: blob {digest}: size {staged.size}, expected {descriptor['size']}")
        return staged

    def blob_json(self, descriptor) -> tuple[bytes, object]:
        with open(self.blob(descriptor).path, "rb") as f:
            data = f.read()
        try:
            return data, json.loads(data)
        except ValueError as err:
            raise invalid(f"invalid archive: blob {descriptor['digest']}: {err}") from None


def _clean(name: str) -> str:
    if name.startswith("/") or ".." in name.split("/"):
        raise invalid(f"invalid archive: path {name!r} escapes the archive")
    cleaned = posixpath.normpath(name)
    return "" if cleaned == "." else cleaned


class _Checked:
    """Reads the (decompressed) archive stream, counting; a read that fails is a bad archive."""

    def __init__(self, raw):
        self.raw = raw
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.raw.read(size)
        except InvalidArgument:
            raise
        except Exception as err:  # gzip, zlib, zstd, lzma each raise their own error classes
            raise invalid(f"invalid archive: {err or 'unexpected EOF'}") from None
        self.total += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _extract(stream, staging: str) -> _Archive:
    from berth.image.layers import open_decompressed  # lazy: only load

    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    archive = _Archive(staging)
    reader = _Checked(open_decompressed(buffered))
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                archive.add(tar, member)
            end = tar.offset
        # tarfile ends quietly where the data ends; an archive cut at a member boundary (or
        # a compressed one cut before its trailer) shows only here: no end-of-archive block.
        reader.drain()
        if reader.total < end + tarfile.BLOCKSIZE:
            raise invalid("invalid archive: unexpected EOF")
    except tarfile.TarError as err:
        message = str(err)
        if message == "empty file":
            raise invalid("invalid archive: empty file") from None
        if "end of data" in message or "truncated" in message:
            raise invalid("invalid archive: unexpected EOF") from None
        raise invalid(f"invalid archive: {message}") from None
    archive.check_named_blobs()
    return archive


# -- load: what the archive holds ---------------------------------------------------

class _Pending:
    """An image read from the archive, verified as far as the archive goes."""

    __slots__ = ("id", "config_bytes", "diff_ids", "layers", "names")

    def __init__(self, config_bytes: bytes, layers: list[_Staged], names: list[str]):
        try:
            config = json.loads(config_bytes)
        except ValueError as err:
            raise invalid(f"invalid image config: {err}") from None
        if not isinstance(config, dict):
            raise invalid("invalid image config: not a JSON object")
        os_name = config.get("os") or "linux"
        if os_name != "linux":
            raise invalid(f"cannot load {os_name} image on linux")
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if not isinstance(diff_ids, list) or not all(_is_digest(d) for d in diff_ids):
            raise invalid("invalid image config: rootfs.diff_ids must be sha256 digests")
        if len(layers) != len(diff_ids):
            raise invalid(f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(diff_ids)}")
        self.id = "sha256:" + sha256_hex(config_bytes)
        self.config_bytes = config_bytes
        self.diff_ids = diff_ids
        self.layers = layers
        self.names = names


def _repo_tag(value) -> str:
    """A docker-archive RepoTags entry, which must name a tag (docker: NamedTagged)."""
    if not isinstance(value, str):
        raise invalid(f"invalid tag {value!r}")
    try:
        ref = reference.parse(value)
    except ValueError as err:
        raise invalid(f"invalid tag {value!r}: {err}") from None
    if ref.digest or ":" not in value.rpartition("/")[2]:
        raise invalid(f'invalid tag "{value}"')
    return str(ref)


def _docker_images(archive: _Archive) -> list[_Pending]:
    manifest = archive.json("manifest.json")
    if not isinstance(manifest, list):
        raise invalid("invalid manifest, manifest cannot be null (but can be [])")
    pending = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Layers") or [], list):
            raise invalid("invalid archive: manifest.json: malformed entry")
        config = archive.read(item.get("Config"))
        layers = [archive.entry(path) for path in item.get("Layers") or []]
        names = list(dict.fromkeys(_repo_tag(tag) for tag in item.get("RepoTags") or []))
        pending.append(_Pending(config, layers, names))
    return pending


def _oci_images(archive: _Archive) -> list[_Pending]:
    index = archive.json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
        raise invalid("invalid archive: index.json: not an image index")
    by_manifest: dict[str, _Pending] = {}
    for descriptor in index.get("manifests") or []:
        if not isinstance(descriptor, dict):
            raise invalid("invalid archive: index.json: malformed descriptor")
        name = _annotated_name(descriptor.get("annotations") or {})
        manifest_descriptor, (_, manifest) = _image_manifest(archive, descriptor)
        digest = manifest_descriptor["digest"]
        if digest not in by_manifest:
            if not isinstance(manifest.get("layers") or [], list) or not isinstance(manifest.get("config"), dict):
                raise invalid(f"invalid archive: manifest {digest}: not an image manifest")
            with open(archive.blob(manifest["config"]).path, "rb") as f:
                config = f.read()
            layers = [archive.blob(layer) for layer in manifest.get("layers") or []]
            by_manifest[digest] = _Pending(config, layers, [])
        if name and name not in by_manifest[digest].names:
            by_manifest[digest].names.append(name)
    return list(by_manifest.values())


def _image_manifest(archive: _Archive, descriptor: dict) -> tuple[dict, tuple[bytes, dict]]:
    """Follow an index entry to an image manifest, picking this platform from a nested index."""
    from berth.image.importer import platform  # lazy: only a multi-platform index

    for _ in range(8):
        data, document = archive.blob_json(descriptor)
        if not isinstance(document, dict):
            raise invalid(f"invalid archive: blob {descriptor['digest']}: not a JSON object")
        media = document.get("mediaType") or descriptor.get("mediaType")
        if document.get("schemaVersion") == 1:
            raise invalid("invalid archive: schema 1 manifests are not supported")
        if media not in (INDEX_TYPE, DOCKER_LIST_TYPE) and "manifests" not in document:
            return descriptor, (data, document)
        os_name, arch = platform()
        candidates = [m for m in document.get("manifests") or [] if isinstance(m, dict)]
        matching = [m for m in candidates if (m.get("platform") or {}).get("os", os_name) == os_name
                    and (m.get("platform") or {}).get("architecture", arch) == arch]
        if not matching:
            raise invalid(f"no matching manifest for {os_name}/{arch} in the manifest list entries")
        descriptor = matching[0]
    raise invalid("invalid archive: image indexes nested too deeply")


def _annotated_name(annotations: dict) -> str | None:
    """The image's name from containerd's annotation, or from ref.name when that is more than
    a bare tag (podman and berth write a full name there; docker 25+ just the tag)."""
    for key in (NAME_ANNOTATION, TAG_ANNOTATION):
        value = annotations.get(key)
        if not isinstance(value, str) or ("/" not in value and ":" not in value):
            continue
        try:
            ref = reference.parse(value)
        except ValueError:
            continue
        if not ref.digest:
            return str(ref)
    return None


def _images(archive: _Archive) -> list[_Pending]:
    if archive.has("manifest.json"):
        found = _docker_images(archive)
    elif archive.has("index.json"):
        found = _oci_images(archive)
    else:
        raise invalid("invalid archive: no manifest.json (docker-archive) or index.json (OCI layout) in it")
    merged: dict[str, _Pending] = {}
    for image in found:
        if image.id in merged:
            merged[image.id].names += [n for n in image.names if n not in merged[image.id].names]
        else:
            merged[image.id] = image
    return list(merged.values())


# -- load: into the store ------------------------------------------------------------

class LoadedImage:
    """An image a load added: its ID, its names, and (name, previous image ID) for every
    name it took from another image."""

    __slots__ = ("id", "names", "replaced")

    def __init__(self, image_id: str, names: list[str]):
        self.id = image_id
        self.names = names
        self.replaced: list[tuple[str, str]] = []


def load(store: ImageStore, stream, progress=None) -> list[LoadedImage]:
    """Load every image of the archive read from `stream` (a binary stream)."""
    store.ensure()
    _remove_abandoned_staging(store)
    staging = os.path.join(store.staging_dir(), f"load-{os.getpid()}-{os.urandom(6).hex()}")
    os.mkdir(staging, 0o700)
    try:
        archive = _extract(stream, staging)
        images = _images(archive)
        layer_tars = _verify_layers(images, staging)
        unpacked = _unpack_new_layers(store, images, layer_tars, staging, progress)
        with store.writing():  # prune collects nothing from the first layer moved in to the index write
            loaded = _add_to_store(store, images, layer_tars, unpacked)
        for image in loaded:
            store.event("load", image.id)
        return loaded
    finally:
        remove_tree(staging)


def _verify_layers(images: list[_Pending], staging: str) -> dict[str, str]:
    """diff_id -> path of the uncompressed layer tar, each checked against the config."""
    from berth.image.layers import open_decompressed, store_tar  # lazy: only load

    by_file: dict[str, tuple[str, str]] = {}
    tars: dict[str, str] = {}
    for image in images:
        for i, (staged, diff_id) in enumerate(zip(image.layers, image.diff_ids, strict=True)):
            if staged.path not in by_file:
                with open(staged.path, "rb") as f:
                    if open_decompressed(f) is f:
                        by_file[staged.path] = (staged.digest, staged.path)
                    else:
                        try:
                            by_file[staged.path] = store_tar(f, staging)
                        except InvalidArgument as err:
                            raise invalid(str(err)) from None
            digest, path = by_file[staged.path]
            if digest != diff_id:
                raise invalid(f'invalid diffID for layer {i}: expected "{diff_id}", got "{digest}"')
            tars[diff_id] = path
    return tars


def _unpack_new_layers(store: ImageStore, images: list[_Pending], layer_tars: dict, staging: str,
                       progress) -> dict[str, tuple[str, int]]:
    """Unpack, inside the staging dir, every layer the store lacks: chain ID -> (dir, size).
    Whatever a layer tar holds that the unpacker refuses is refused here, before any change."""
    from berth.image.layers import unpack  # lazy: only load

    unpacked: dict[str, tuple[str, int]] = {}
    for image in images:
        for diff_id, chain in zip(image.diff_ids, chain_ids(image.diff_ids), strict=True):
            if chain in unpacked or store.has_layer(chain):
                continue
            ident, total = diff_id[7:19], os.path.getsize(layer_tars[diff_id])
            if progress:
                progress(ident, "Loading layer", 0, total)
            target = os.path.join(staging, "layer-" + chain[7:])
            try:
                unpacked[chain] = (target, unpack(layer_tars[diff_id], target))
            except InvalidArgument as err:
                raise invalid(str(err)) from None
            if progress:
                progress(ident, "Loading layer", total, total)
    return unpacked


def _add_to_store(store: ImageStore, images: list[_Pending], layer_tars: dict,
                  unpacked: dict) -> list[LoadedImage]:
    """Only renames and small writes from here on; the index changes once, at the end."""
    from berth.image.layers import unpack  # lazy: only load

    added = []
    for image in images:
        parent = None
        layers = []
        for diff_id, chain in zip(image.diff_ids, chain_ids(image.diff_ids), strict=True):
            def materialize(target: str, chain=chain, diff_id=diff_id) -> int:
                ready = unpacked.pop(chain, None)
                if ready is None:  # the store had it when we looked; it has been removed since
                    return unpack(layer_tars[diff_id], target)
                os.rename(ready[0], target)
                return ready[1]

            parent = store.adopt_layer(parent, diff_id, another_link(layer_tars[diff_id]), materialize)
            size = os.path.getsize(store.blob_path(diff_id))
            layers.append({"mediaType": LAYER_TYPE, "digest": diff_id, "size": size})
        store.write_blob(image.config_bytes)
        manifest = manifest_bytes(image.id, len(image.config_bytes), layers)
        added.append((image, store.write_blob(manifest), len(manifest)))
    return _publish(store, added)


def another_link(path: str) -> str:
    """adopt_layer consumes the tar it is given; a layer used twice gets a hard link each time."""
    link = f"{path}.{os.urandom(4).hex()}"
    os.link(path, link)
    return link


def _publish(store: ImageStore, added: list) -> list[LoadedImage]:
    """Name every loaded image in one index write (untagged ones stay dangling); the config
    blob keeps the archive's bytes, so the image ID stays the config digest docker computed."""
    moved = store.publish([(digest, size, list(image.names)) for image, digest, size in added])
    loaded = []
    for image, _, _ in added:
        result = LoadedImage(image.id, list(image.names))
        result.replaced = [(name, moved[name]) for name in image.names if name in moved]
        loaded.append(result)
    return loaded


def _remove_abandoned_staging(store: ImageStore) -> None:
    """A load killed mid-way leaves load-<pid>-*; remove those whose process is gone."""
    try:
        names = os.listdir(store.tmp_dir())
    except FileNotFoundError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "load" and parts[1].isdigit() and not pid_alive(int(parts[1])):
            remove_tree(os.path.join(store.tmp_dir(), name))
