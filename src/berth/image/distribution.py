"""Pull and push images between a registry and the store (OCI distribution spec).

Pull: the manifest (Docker schema 2 or OCI; an index or manifest list picks the platform), the
config, then the layers, 3 downloading at a time, each blob's size and digest checked while it
streams into tmp/download-<digest>, resumed by Range after a reset and by the next pull after a
failure; each downloaded layer is decompressed (gzip, zstd or none), checked against its diff
ID and unpacked into a staging directory, and only when every layer is good are they moved
into the store and the image named: a refused pull leaves nothing the index names.

Push: each layer's compressed blob is skipped when the registry has it, mounted from another
repository of the same registry when berth pulled or pushed it there, else gzipped and
uploaded; then the config and a Docker schema 2 manifest.

Progress goes to `report(ident, status, current, total)`, in docker's words; the engine turns
it into docker's JSON messages."""

import fcntl
import hashlib
import os
import threading

from berth import fastjson as json
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.fs import read_json, remove_tree, write_json
from berth.image import registry
from berth.image.store import LAYER_TYPE, ImageStore, chain_ids

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_TYPES = (DOCKER_LAYER, "application/vnd.docker.image.rootfs.diff.tar", LAYER_TYPE,
               LAYER_TYPE + "+gzip", LAYER_TYPE + "+zstd")
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX))
MAX_MANIFEST = 4 << 20
MAX_CONFIG = 8 << 20
CHUNK = 1 << 20
CONCURRENT_DOWNLOADS = 3
CONCURRENT_UPLOADS = 3
ATTEMPTS = 5


class Target:
    """What to pull or push: registry domain, repository path, tag or digest, platform."""

    __slots__ = ("domain", "path", "tag", "digest", "platform", "platform_given")

    def __init__(self, domain: str, path: str, tag: str, digest: str, platform: tuple, platform_given: bool):
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
        self.platform = platform  # (os, architecture, variant or "")
        self.platform_given = platform_given


class Access:
    """How to reach registries: engine settings and credentials lookup."""

    __slots__ = ("settings", "credentials")

    def __init__(self, settings: registry.Settings, credentials):
        self.settings = settings
        self.credentials = credentials  # auth key -> (user, password) or None


def _json(data: bytes, what: str) -> dict:
    try:
        return json.loads_object(data)
    except ValueError as err:
        raise InvalidArgument(f"invalid {what}: {err}") from None


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _descriptor(value, what: str, media_types=None, limit: int | None = None) -> dict:
    """A descriptor checked before use: sha256 digest, size, media type."""
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str) \
            or not isinstance(value.get("size"), int) or value["size"] < 0:
        raise InvalidArgument(f"invalid {what} descriptor")
    algorithm, _, hexdigest = value["digest"].partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or any(c not in "0123456789abcdef" for c in hexdigest):
        raise InvalidArgument(f"unsupported {what} digest {value['digest']!r}")
    if media_types and value.get("mediaType") not in media_types:
        raise InvalidArgument(f"unsupported media type {value.get('mediaType')!r} for {what}")
    if limit is not None and value["size"] > limit:
        raise InvalidArgument(f"{what} is too large ({value['size']} bytes, limit {limit})")
    return value


# -- distribution metadata: which compressed blob a layer is in a registry ------------------

def _metadata_path(store: ImageStore, diff_id: str) -> str:
    return os.path.join(store.root, "distribution", diff_id.partition(":")[2] + ".json")


def known_blobs(store: ImageStore, diff_id: str) -> list[dict]:
    try:
        found = read_json(_metadata_path(store, diff_id))
    except (FileNotFoundError, ValueError):
        return []
    return found if isinstance(found, list) else []


def remember_blob(store: ImageStore, diff_id: str, descriptor: dict, repository: str) -> None:
    """diff ID -> compressed blob in `repository` (domain/path): push skips or mounts it later."""
    entries = [e for e in known_blobs(store, diff_id)
               if not (e.get("digest") == descriptor["digest"] and e.get("repository") == repository)]
    entries.append({"digest": descriptor["digest"], "size": descriptor["size"],
                    "mediaType": descriptor.get("mediaType", DOCKER_LAYER), "repository": repository})
    os.makedirs(os.path.dirname(_metadata_path(store, diff_id)), mode=0o700, exist_ok=True)
    write_json(_metadata_path(store, diff_id), entries[-16:], durable=False)


# -- pull ----------------------------------------------------------------------------------

class PullResult:
    """The manifest digest pulled, and whether the image is new here (docker's Status line)."""

    __slots__ = ("digest", "updated")

    def __init__(self, digest: str, updated: bool):
        self.digest = digest
        self.updated = updated


def pull(store: ImageStore, access: Access, target: Target, name: str, report) -> PullResult:
    """Pull `target` and name the image `name` (full reference); tries each endpoint in turn
    (Docker Hub's mirrors, then https, then http for an insecure registry)."""
    store.ensure()
    places = registry.endpoints(access.settings, target.domain)
    for mirror in (e for e in places if e.mirror):  # Docker Hub's: any failure falls back to the next
        try:
            client = registry.connect([mirror], target.path, "pull", access.credentials)
            return _Pull(store, client, target, name, report).run()
        except BerthError:
            continue
    client = registry.connect([e for e in places if not e.mirror], target.path, "pull", access.credentials)
    return _Pull(store, client, target, name, report).run()


class _Pull:
    def __init__(self, store: ImageStore, client: registry.Client, target: Target, name: str, report):
        self.store = store
        self.client = client
        self.target = target
        self.name = name
        self.report = report
        self.digest = ""  # of the manifest the tag or digest named (an index's, for a multi-platform image)

    def run(self) -> PullResult:
        t = self.target
        reference = t.digest or t.tag
        manifest_bytes, media_type, digest = self.fetch_manifest(reference)
        self.digest = digest
        self.report(t.digest or t.tag, f"Pulling from {t.path}", None, None)
        if media_type in (DOCKER_LIST, OCI_INDEX):
            chosen = self.choose(_json(manifest_bytes, "index"))
            manifest_bytes, media_type, _ = self.fetch_manifest(chosen["digest"], chosen)
        manifest = self.check_manifest(manifest_bytes, media_type)
        config_bytes = self.fetch_blob_small(manifest["config"], MAX_CONFIG, "config")
        config = _json(config_bytes, "image config")
        self.check_platform(config)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(manifest["layers"]):
            raise InvalidArgument("invalid image: the config's diff IDs do not match the manifest's layers")
        existing = self.store.lookup(self.name)
        if existing is not None and existing.id == _sha256(config_bytes) \
                and all(map(self.store.has_layer, chain_ids(diff_ids))):
            for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True):
                self.remember(layer, diff_id)
            return PullResult(digest, False)
        self.fetch_layers(manifest["layers"], diff_ids, config_bytes)
        return PullResult(digest, True)

    # manifests
    def fetch_manifest(self, reference: str, descriptor: dict | None = None) -> tuple[bytes, str, str]:
        t = self.target
        response = self.client.request("GET", f"{t.path}/manifests/{reference}", {"Accept": ACCEPT}, stream=True)
        what = f"manifest for {t.domain}/{t.path}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        if response.status >= 400:
            response.read()
            if response.status == 404:
                raise NotFound(f"{what} not found: manifest unknown: manifest unknown")
            self.client.check(response, what)
        data = _read_limited(response, MAX_MANIFEST, "manifest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        body = _json(data, "manifest")
        media_type = body.get("mediaType") or media_type
        if media_type in SCHEMA1 or body.get("schemaVersion") == 1:
            raise InvalidArgument(f"{what}: Docker Image manifest version 2, schema 1 is not supported: "
                                  "the image must be pushed again with a newer client")
        if media_type not in (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX):
            if "manifests" in body:
                media_type = OCI_INDEX
            elif "layers" in body:
                media_type = OCI_MANIFEST
            else:
                raise InvalidArgument(f"{what}: unsupported manifest media type {media_type!r}")
        digest = _sha256(data)
        expected = descriptor["digest"] if descriptor else (reference if reference.startswith("sha256:") else None)
        if expected and digest != expected:
            raise InvalidArgument(f"{what}: manifest digest mismatch: got {digest}")
        return data, media_type, digest

    def choose(self, index: dict) -> dict:
        wanted_os, wanted_arch, wanted_variant = self.target.platform
        candidates = []
        for entry in index.get("manifests") or []:
            platform = entry.get("platform") if isinstance(entry, dict) else None
            if not isinstance(platform, dict):
                continue
            if platform.get("os") == wanted_os and platform.get("architecture") == wanted_arch:
                variant = platform.get("variant", "")
                if not wanted_variant or variant == wanted_variant:
                    candidates.append(entry)
        if not candidates:
            spelled = "/".join(p for p in self.target.platform if p)
            raise NotFound(f"no matching manifest for {spelled} in the manifest list entries")
        return _descriptor(candidates[0], "manifest", (DOCKER_MANIFEST, OCI_MANIFEST), MAX_MANIFEST)

    def check_manifest(self, data: bytes, media_type: str) -> dict:
        if media_type not in (DOCKER_MANIFEST, OCI_MANIFEST):
            raise InvalidArgument(f"unsupported manifest media type {media_type!r}")
        manifest = _json(data, "manifest")
        _descriptor(manifest.get("config"), "config", (DOCKER_CONFIG, OCI_CONFIG), MAX_CONFIG)
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument("invalid manifest: no layers")
        for layer in layers:
            _descriptor(layer, "layer", LAYER_TYPES)
        return manifest

    def check_platform(self, config: dict) -> None:
        wanted_os, wanted_arch, _ = self.target.platform
        got = (config.get("os", ""), config.get("architecture", ""))
        if self.target.platform_given and got != (wanted_os, wanted_arch):
            raise InvalidArgument(f"image with reference {self.target.domain}/{self.target.path} was found but "
                                  f"does not match the specified platform: wanted {wanted_os}/{wanted_arch}, "
                                  f"actual: {got[0]}/{got[1]}")

    def fetch_blob_small(self, descriptor: dict, limit: int, what: str) -> bytes:
        response = self.client.request("GET", f"{self.target.path}/blobs/{descriptor['digest']}", stream=True)
        if response.status >= 400:
            response.read()
            self.client.check(response, f"{what} {descriptor['digest']}")
        data = _read_limited(response, min(limit, descriptor["size"]), what)
        if len(data) != descriptor["size"] or _sha256(data) != descriptor["digest"]:
            raise InvalidArgument(f"{what} verification failed for digest {descriptor['digest']}")
        return data

    # layers
    def fetch_layers(self, layers: list[dict], diff_ids: list[str], config_bytes: bytes) -> None:
        chains = chain_ids(diff_ids)
        needed = []
        for i, layer in enumerate(layers):
            ident = layer["digest"][7:19]
            if self.store.has_layer(chains[i]) and os.path.exists(self.store.blob_path(diff_ids[i])):
                self.report(ident, "Already exists", None, None)
                self.remember(layer, diff_ids[i])
            else:
                self.report(ident, "Pulling fs layer", None, None)
                needed.append(i)
        for i in needed[CONCURRENT_DOWNLOADS:]:
            self.report(layers[i]["digest"][7:19], "Waiting", None, None)
        # Held shared from the first download to the index write: prune and rmi wait, so they
        # neither take a partial download (tmp/download-*) nor a layer being adopted.
        with self.store.writing():
            staging = os.path.join(self.store.staging_dir(), f"pull-{os.getpid()}-{os.urandom(6).hex()}")
            os.mkdir(staging, 0o700)
            try:
                unpacked = self.fetch_and_unpack(layers, diff_ids, needed, staging)
                self.adopt(layers, diff_ids, unpacked, config_bytes)
            finally:
                remove_tree(staging)

    def fetch_and_unpack(self, layers: list[dict], diff_ids: list[str], needed: list[int], staging: str) -> dict:
        """Download and unpack the `needed` layers, 3 at a time (each into its own staging
        directory: only their adoption must go in order)."""
        from concurrent.futures import ThreadPoolExecutor  # lazy: only a pull with layers to fetch

        cancelled = threading.Event()

        def fetch(i: int) -> tuple[str, str, int]:
            return self.unpack(layers[i], diff_ids[i], self.download(layers[i], cancelled), staging)

        with ThreadPoolExecutor(CONCURRENT_DOWNLOADS) as pool:
            futures = {i: pool.submit(fetch, i) for i in needed}
            try:
                return {i: futures[i].result() for i in needed}
            except BaseException:
                cancelled.set()
                raise

    def download(self, layer: dict, cancelled: threading.Event) -> str:
        """Fetch one blob into tmp/download-<hex> (resuming what an earlier try left), its size
        and digest checked while it streams; returns that file's path."""
        digest, size = layer["digest"], layer["size"]
        ident = digest[7:19]
        path = os.path.join(self.store.tmp_dir(), "download-" + digest[7:])
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another pull of the same blob finishes first
            hasher, offset = _hash_existing(fd, size)
            failures = 0
            while offset < size:
                if cancelled.is_set():
                    raise BerthError("pull cancelled")
                try:
                    offset, hasher = self._fetch_range(layer, fd, offset, hasher, ident, cancelled)
                    if offset < size:
                        raise _Transient(f"unexpected EOF fetching {digest}")
                except (registry.RegistryError, _Transient) as err:
                    if isinstance(err, (registry.Unauthorized, _Fatal)):
                        raise
                    failures += 1
                    if failures >= ATTEMPTS:
                        raise registry.RegistryError(f"failed to fetch layer {digest}: {err}") from None
                    registry.backoff(failures)
            self.report(ident, "Verifying Checksum", None, None)
            if "sha256:" + hasher.hexdigest() != digest:
                os.ftruncate(fd, 0)
                os.unlink(path)
                raise InvalidArgument(f"filesystem layer verification failed for digest {digest}")
            self.report(ident, "Download complete", None, None)
            return path
        finally:
            os.close(fd)

    def _fetch_range(self, layer: dict, fd: int, offset: int, hasher, ident: str, cancelled: threading.Event):
        digest, size = layer["digest"], layer["size"]
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.client.request("GET", f"{self.target.path}/blobs/{digest}", headers, stream=True)
        try:
            if response.status == 416 or (offset and response.status == 200):
                os.ftruncate(fd, 0)
                hasher, offset = hashlib.sha256(), 0
                if response.status == 416:
                    raise _Transient("range not satisfiable: starting over")
            elif response.status >= 500 or response.status == 429:
                raise _Transient(f"HTTP {response.status}")
            elif response.status >= 400:
                response.read()
                try:
                    self.client.check(response, f"blob {digest}")
                except BerthError as err:
                    raise _Fatal(str(err)) from None
            os.lseek(fd, offset, os.SEEK_SET)
            last = 0
            try:
                for chunk in response.stream(CHUNK, decode_content=False):
                    if cancelled.is_set():  # another layer failed: what we have stays for the next pull
                        raise _Fatal("pull cancelled")
                    if offset + len(chunk) > size:
                        raise _Fatal(f"filesystem layer verification failed for digest {digest}: "
                                     "the registry sent more than the layer's size")
                    os.write(fd, chunk)
                    hasher.update(chunk)
                    offset += len(chunk)
                    if offset - last >= 512 << 10 or offset == size:
                        last = offset
                        self.report(ident, "Downloading", offset, size)
            except registry.urllib3.exceptions.HTTPError as err:
                raise _Transient(str(err)) from None
        finally:
            response.release_conn()
        return offset, hasher

    def unpack(self, layer: dict, diff_id: str, path: str, staging: str) -> tuple[str, str, int]:
        """Decompress, check the diff ID, unpack into staging: (tar path, layer dir, size)."""
        from berth.image.layers import unpack  # lazy: only a pull with new layers

        ident = layer["digest"][7:19]
        self.report(ident, "Extracting", 0, layer["size"])
        got, tar_path = self.decompress(layer, path, staging)
        if got != diff_id:
            remove_tree(path)
            raise InvalidArgument(f'failed to register layer: layer {layer["digest"]}: diff ID mismatch: '
                                  f'expected "{diff_id}", got "{got}"')
        target = os.path.join(staging, "layer-" + os.urandom(8).hex())
        try:
            size = unpack(tar_path, target)
        except InvalidArgument as err:
            raise InvalidArgument(f"failed to register layer: {err}") from None
        self.report(ident, "Extracting", layer["size"], layer["size"])
        return tar_path, target, size

    def decompress(self, layer: dict, path: str, staging: str) -> tuple[str, str]:
        """(diff ID, tar path) of a downloaded layer: a plain tar is linked into staging, a
        compressed one decompressed there, with Extracting progress every megabyte."""
        from berth.image.importer import Counted  # lazy: only a pull with new layers
        from berth.image.layers import store_tar  # lazy: only a pull with new layers

        with open(path, "rb") as f:
            if _is_plain(f):
                tar_path = os.path.join(staging, f"tar-{os.urandom(8).hex()}")
                os.link(path, tar_path)
                return layer["digest"], tar_path
            shown = 0

            def extracting(done: int) -> None:
                nonlocal shown
                if done - shown >= CHUNK:
                    shown = done
                    self.report(layer["digest"][7:19], "Extracting", done, layer["size"])

            try:
                return store_tar(Counted(f, extracting), staging)
            except InvalidArgument as err:
                remove_tree(path)
                raise InvalidArgument(f"failed to register layer: {err}") from None

    def adopt(self, layers: list[dict], diff_ids: list[str], unpacked: dict, config_bytes: bytes) -> None:
        """Move the unpacked layers into the store, then config, manifest and the name."""
        from berth.image.archive import another_link, manifest_bytes  # lazy: tarfile, not for an up-to-date pull
        from berth.image.layers import unpack  # lazy: only a pull with new layers

        parent = None
        stored = []
        for i, diff_id in enumerate(diff_ids):
            ready = unpacked.get(i)
            if ready is None:
                parent = chain_ids(diff_ids[:i + 1])[-1]
            else:
                tar_path, directory, size = ready

                def materialize(target: str, directory=directory, size=size) -> int:
                    os.rename(directory, target)
                    return size

                parent = self.store.adopt_layer(parent, diff_id, another_link(tar_path), materialize)
                remove_tree(os.path.join(self.store.tmp_dir(), "download-" + layers[i]["digest"][7:]))
                self.report(layers[i]["digest"][7:19], "Pull complete", None, None)
            if not self.store.has_layer(parent):  # removed since we looked: unpack its blob again
                blob = self.store.blob_path(diff_id)
                self.store.adopt_layer(chain_ids(diff_ids[:i])[-1] if i else None, diff_id, None,
                                       lambda target, blob=blob: unpack(blob, target))
            self.remember(layers[i], diff_id)
            stored.append({"mediaType": LAYER_TYPE, "digest": diff_id,
                           "size": os.path.getsize(self.store.blob_path(diff_id))})
        config_digest = self.store.write_blob(config_bytes)
        manifest = manifest_bytes(config_digest, len(config_bytes), stored)
        manifest_digest = self.store.write_blob(manifest)
        self.store.publish([(manifest_digest, len(manifest), self.names())])

    def names(self) -> list[str]:
        """The pulled name, and the repository digest docker records with it (RepoDigests)."""
        by_digest = f"{self.target.domain}/{self.target.path}@{self.digest}"
        return [self.name] if self.name == by_digest else [self.name, by_digest]

    def remember(self, layer: dict, diff_id: str) -> None:
        remember_blob(self.store, diff_id, layer, f"{self.target.domain}/{self.target.path}")


# -- push ----------------------------------------------------------------------------------

def push(store: ImageStore, access: Access, target: Target, image, report) -> tuple[str, int]:
    """Push `image` as `target` (domain, path, tag); returns (manifest digest, manifest size)."""
    places = [e for e in registry.endpoints(access.settings, target.domain) if not e.mirror]
    client = registry.connect(places, target.path, "pull,push", access.credentials)
    return _Push(store, client, target, image, report).run()


class _Push:
    def __init__(self, store: ImageStore, client: registry.Client, target: Target, image, report):
        self.store = store
        self.client = client
        self.target = target
        self.image = image
        self.report = report
        self.repository = f"{target.domain}/{target.path}"

    def run(self) -> tuple[str, int]:
        diff_ids = self.image.diff_ids
        mountable = {e["repository"].partition("/")[2] for d in diff_ids for e in known_blobs(self.store, d)
                     if e.get("repository", "").partition("/")[0] == self.target.domain
                     and e["repository"] != self.repository}
        self.client.extra_scopes = [f"repository:{path}:pull" for path in sorted(mountable)]
        for diff_id in diff_ids:
            self.report(diff_id[7:19], "Preparing", None, None)
        for diff_id in diff_ids[CONCURRENT_UPLOADS:]:
            self.report(diff_id[7:19], "Waiting", None, None)
        from concurrent.futures import ThreadPoolExecutor  # lazy: only a push

        with ThreadPoolExecutor(CONCURRENT_UPLOADS) as pool:  # zlib compresses outside the GIL
            layers = list(pool.map(self.push_layer, diff_ids))
        config_bytes = self.store.read_blob(self.image.id)
        config = {"mediaType": DOCKER_CONFIG, "size": len(config_bytes), "digest": self.image.id}
        if not self.exists(config["digest"]):
            self.upload_bytes(config_bytes, config["digest"])
        manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config,
                               "layers": layers}, indent=3).encode()
        response = self.client.request("PUT", f"{self.target.path}/manifests/{self.target.tag}",
                                       {"Content-Type": DOCKER_MANIFEST}, body=manifest)
        self.client.check(response, f"failed to push manifest {self.repository}:{self.target.tag}")
        return _sha256(manifest), len(manifest)

    def exists(self, digest: str) -> bool:
        response = self.client.request("HEAD", f"{self.target.path}/blobs/{digest}")
        if response.status == 404:
            return False
        self.client.check(response, f"blob {digest}")
        return True

    def push_layer(self, diff_id: str) -> dict:
        ident = diff_id[7:19]
        known = [e for e in known_blobs(self.store, diff_id)
                 if e.get("repository", "").partition("/")[0] == self.target.domain]
        for entry in sorted(known, key=lambda e: e["repository"] != self.repository):
            descriptor = {"mediaType": entry["mediaType"], "size": entry["size"], "digest": entry["digest"]}
            if entry["repository"] == self.repository:
                if self.exists(entry["digest"]):
                    self.report(ident, "Layer already exists", None, None)
                    return descriptor
                continue
            source = entry["repository"].partition("/")[2]
            response = self.client.request(
                "POST", f"{self.target.path}/blobs/uploads/?mount={entry['digest']}&from={source}")
            if response.status == 201:
                self.report(ident, f"Mounted from {source}", None, None)
                remember_blob(self.store, diff_id, descriptor, self.repository)
                return descriptor
            self.client.check(response, "blob mount")
            self.cancel_upload(response)
        return self.compress_and_upload(diff_id, ident)

    def compress_and_upload(self, diff_id: str, ident: str) -> dict:
        """gzip the layer while it streams to the registry (one PATCH, chunked), hashing what
        is sent; the PUT that closes the upload names the digest."""
        import zlib  # lazy: only a push

        tar_path = self.store.blob_path(diff_id)
        total = os.path.getsize(tar_path)
        hasher = hashlib.sha256()
        sent = [0]

        def compressed():
            # gzip at level 1: on a fast link compression, not the wire, bounds a push
            compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
            done = 0
            with open(tar_path, "rb") as source:
                while chunk := source.read(CHUNK):
                    done += len(chunk)
                    data = compressor.compress(chunk)
                    if data:
                        hasher.update(data)
                        sent[0] += len(data)
                        yield data
                    self.report(ident, "Pushing", done, total)
            data = compressor.flush()
            hasher.update(data)
            sent[0] += len(data)
            yield data

        location = self.start_upload()
        response = self.client.request("PATCH", location, {"Content-Type": "application/octet-stream"},
                                       body=compressed(), absolute=True)
        self.client.check(response, f"failed to push layer {diff_id}")
        location = self.absolute(response.headers.get("Location") or location)
        descriptor = {"mediaType": DOCKER_LAYER, "size": sent[0], "digest": "sha256:" + hasher.hexdigest()}
        self.finish(location, descriptor["digest"], b"", 0)
        self.report(ident, "Pushed", None, None)
        remember_blob(self.store, diff_id, descriptor, self.repository)
        return descriptor

    def absolute(self, location: str) -> str:
        return self.client.endpoint.base + location if location.startswith("/") else location

    def start_upload(self) -> str:
        response = self.client.request("POST", f"{self.target.path}/blobs/uploads/")
        self.client.check(response, f"failed to push to {self.repository}")
        location = response.headers.get("Location")
        if not location:
            raise registry.RegistryError("the registry gave no upload location")
        return self.absolute(location)

    def cancel_upload(self, response) -> None:
        location = response.headers.get("Location")
        if location and response.status == 202:
            self.client.request("DELETE", self.absolute(location), absolute=True)

    def finish(self, location: str, digest: str, body, size: int) -> None:
        url = location + ("&" if "?" in location else "?") + "digest=" + digest
        response = self.client.request("PUT", url, {"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(size)}, body=body, absolute=True)
        self.client.check(response, f"failed to push blob {digest}")

    def upload_bytes(self, data: bytes, digest: str) -> None:
        self.finish(self.start_upload(), digest, data, len(data))


class _Transient(Exception):
    """A failure worth another try (a reset, a 5xx, a short body)."""


class _Fatal(BerthError):
    """A failure no retry mends (the registry refused, or lied about the size)."""


def _hash_existing(fd: int, size: int):
    """(hasher, offset) over what an earlier try left in the download file."""
    hasher = hashlib.sha256()
    length = os.fstat(fd).st_size
    if length > size:
        os.ftruncate(fd, 0)
        return hasher, 0
    os.lseek(fd, 0, os.SEEK_SET)
    done = 0
    while done < length:
        chunk = os.read(fd, min(CHUNK, length - done))
        if not chunk:
            break
        hasher.update(chunk)
        done += len(chunk)
    return hasher, done


def _is_plain(f) -> bool:
    head = f.peek(6)[:6]
    return not head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00"))


def _read_limited(response, limit: int, what: str) -> bytes:
    data = b""
    try:
        for chunk in response.stream(CHUNK, decode_content=False):
            data += chunk
            if len(data) > limit:
                raise InvalidArgument(f"{what} is too large (more than {limit} bytes)")
    except registry.urllib3.exceptions.HTTPError as err:
        raise registry.RegistryError(f"reading {what}: {err}") from None
    finally:
        response.release_conn()
    return data
