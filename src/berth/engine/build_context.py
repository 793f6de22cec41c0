"""What a build reads from outside its images: the context directory (the Dockerfile, the
sources of COPY/ADD as docker resolves them: globs, .dockerignore, never outside the context,
a content hash of what is copied) and the RUN --mount specs."""

import os
import posixpath
import stat

from berth.errors import InvalidArgument
from berth.image.store import sha256_hex

_CHUNK = 1 << 20
_REMOTE = ("http://", "https://", "git://", "git@", "ssh://")


class Context:
    """The build context: a directory, its .dockerignore, the Dockerfile's path."""

    __slots__ = ("root", "dockerfile", "ignore")

    def __init__(self, root: str, dockerfile: str):
        from berth.image import dockerignore  # lazy: only builds

        if root.startswith(_REMOTE) or root == "-":
            raise InvalidArgument(f"unable to prepare context: berth builds from a local directory, not {root!r}")
        if not os.path.isdir(root):
            raise InvalidArgument(f'unable to prepare context: path "{root}" not found')
        self.root = os.path.realpath(root)
        self.dockerfile = dockerfile if os.path.isabs(dockerfile) else os.path.join(self.root, dockerfile)
        self.ignore = dockerignore.load(self.root, self.dockerfile)

    def read_dockerfile(self) -> str:
        try:
            with open(self.dockerfile, "rb") as f:
                return f.read().decode("utf-8", "replace").lstrip("\ufeff")
        except FileNotFoundError:
            name = os.path.relpath(self.dockerfile, self.root) if self.dockerfile.startswith(self.root) \
                else self.dockerfile
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}") from None
        except IsADirectoryError:
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {self.dockerfile} is a directory") from None

    def sources(self, patterns: list, owner: tuple[int, int], mode: int | None, add: bool, name: str) -> "Sources":
        """The files COPY/ADD `patterns` name (globs expanded, .dockerignore applied); a
        pattern may also be a (name, bytes) heredoc. ValueError in docker's words."""
        items = []
        for pattern in patterns:
            if isinstance(pattern, tuple):
                items.append(_Item("data", pattern[0], data=pattern[1]))
                continue
            if pattern.startswith(_REMOTE):
                if add:
                    raise InvalidArgument(f"ADD {pattern}: berth builds offline and does not fetch remote "
                                          "URLs; put the file in the build context and ADD it from there")
                raise ValueError(f"source can't be a URL for {name}")
            rel = posixpath.normpath(pattern.lstrip("/") or ".")
            if rel == ".." or rel.startswith("../"):
                raise ValueError(f"forbidden path outside the build context: {pattern} ()")
            matches = self._glob(rel) if _has_magic(rel) else [rel]
            if not matches and _has_magic(rel):
                continue
            for match in matches:
                items.append(self._item(match, pattern, add))
        if not items:
            raise ValueError("no source files were specified")
        return Sources(items, owner, mode, self)

    def _item(self, rel: str, pattern: str, add: bool) -> "_Item":
        path = _resolve(self.root, rel)
        if rel != "." and self.ignore.excluded(rel):
            path = None
        try:
            st = os.stat(path) if path else None
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is None:
            raise ValueError(f"file not found in build context or excluded by .dockerignore: stat {pattern}: "
                             "file does not exist")
        if stat.S_ISDIR(st.st_mode):
            return _Item("dir", posixpath.basename(rel), path=path, rel=rel)
        if add and is_archive(path):
            return _Item("archive", posixpath.basename(rel), path=path, rel=rel)
        return _Item("file", posixpath.basename(rel), path=path, rel=rel, st=st)

    def _glob(self, rel: str) -> list[str]:
        """filepath.Match per path component, over what .dockerignore leaves."""
        import fnmatch

        found = [""]
        for part in rel.split("/"):
            following = []
            for base in found:
                directory = os.path.join(self.root, base) if base else self.root
                if not _has_magic(part):
                    candidate = f"{base}/{part}" if base else part
                    if os.path.lexists(os.path.join(self.root, candidate)):
                        following.append(candidate)
                    continue
                try:
                    names = sorted(os.listdir(directory))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                for entry in names:
                    if fnmatch.fnmatchcase(entry, part):
                        candidate = f"{base}/{entry}" if base else entry
                        if not self.ignore.excluded(candidate):
                            following.append(candidate)
            found = following
        return found


def _resolve(root: str, rel: str) -> str:
    """`rel` in the context, a symlink on the way resolved inside it (docker's scoped path)."""
    plain = os.path.join(root, rel) if rel != "." else root
    if os.path.realpath(plain) == plain:  # no symlink on the way: the common case, no import
        return plain
    from berth.runtime.mount import secure_join  # lazy: ctypes and more

    return secure_join(root, rel)


def _has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def is_archive(path: str) -> bool:
    """ADD extracts a local tar (plain, gzip, bzip2 or xz), as docker's archive.DetectCompression."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"(\xb5/\xfd")):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


class _Item:
    """One source: a context file or directory, an archive to extract, or heredoc data."""

    __slots__ = ("kind", "name", "path", "rel", "data", "st")

    def __init__(self, kind: str, name: str, path: str | None = None, rel: str = "", data: bytes = b"", st=None):
        self.kind = kind
        self.name = name
        self.path = path
        self.rel = rel
        self.data = data
        self.st = st


class Sources:
    """What one COPY/ADD copies: its items, the owner and mode it gives them. `entries()`
    yields (TarInfo, file) named relative to the destination (berth.engine.copy.build_copy)."""

    __slots__ = ("items", "owner", "mode", "context", "_listing", "image_layers", "patterns", "image_id",
                 "scratch_dirs")

    def __init__(self, items: list, owner=(0, 0), mode: int | None = None, context: Context | None = None):
        self.items = items
        self.owner = owner
        self.mode = mode
        self.context = context
        self._listing = None
        self.image_layers = None
        self.patterns = ()
        self.image_id = ""
        self.scratch_dirs: list[str] = []  # --from: where the copy's child mounts the image

    @classmethod
    def from_image(cls, store, image, patterns: list, owner, mode) -> "Sources":
        """COPY --from: files of `image` (a stage's or another image), read in the copy's child
        through a read-only overlay of its layers."""
        for pattern in patterns:
            if isinstance(pattern, tuple):
                raise ValueError("a heredoc cannot be copied --from another stage")
        layers = store.unpacked_layer_dirs(image)
        items = []
        for pattern in patterns:
            rel = posixpath.normpath(pattern.lstrip("/") or ".")
            kind = _layered_kind(list(reversed(layers)), rel)
            if kind is None:
                raise ValueError(f"file not found in build context or excluded by .dockerignore: stat {pattern}: "
                                 "file does not exist")
            items.append(_Item(kind, posixpath.basename(rel), rel=rel))
        sources = cls(items, owner, mode)
        sources.image_layers = layers
        sources.patterns = list(patterns)
        sources.image_id = image.id
        return sources

    def prepare(self, store) -> None:
        """Before the copy: --from's mount points, in the store's tmp/ under our pid (what a
        build killed meanwhile leaves there is swept)."""
        if self.image_layers is None:
            return
        staging = store.staging_dir()
        for kind in ("buildfrom", "buildempty"):
            path = os.path.join(staging, f"{kind}-{os.getpid()}-{os.urandom(8).hex()}")
            os.mkdir(path, 0o700)
            self.scratch_dirs.append(path)

    def close(self) -> None:
        for path in self.scratch_dirs:
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.scratch_dirs = []

    @property
    def has_dir_source(self) -> bool:
        return any(item.kind in ("dir", "archive", "image-dir") for item in self.items)

    def summary(self):
        return None

    # -- what is copied -------------------------------------------------------------------
    def listing(self) -> list:
        """[(name under the destination, host path or None, lstat or None, item)]: the files
        of context items, in a fixed order (the content hash depends on it)."""
        if self._listing is None:
            listing = []
            for item in self.items:
                if item.kind == "dir":
                    self._walk(item.path, item.rel, "", listing, item)
                elif item.kind in ("file", "archive"):
                    listing.append((item.name, item.path, os.stat(item.path), item))
                elif item.kind == "data":
                    listing.append((item.name, None, None, item))
            self._listing = listing
        return self._listing

    def _walk(self, path: str, rel: str, under: str, listing: list, item) -> bool:
        """Add what is below directory `path` (context-relative `rel`); whether anything was."""
        added = False
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            entry_rel = f"{rel}/{entry.name}" if rel and rel != "." else entry.name
            name = f"{under}/{entry.name}" if under else entry.name
            excluded = self.context is not None and self.context.ignore.excluded(entry_rel)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                mark = len(listing)
                listing.append((name, entry.path, st, item))
                below = self._walk(entry.path, entry_rel, name, listing, item)
                if excluded and not below:
                    del listing[mark]
                    continue
                added = True
            elif not excluded and (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                listing.append((name, entry.path, st, item))
                added = True
        return added

    def digest(self) -> str:
        """docker's source hash form (file:, dir:, multi:) over names, modes, owners and
        content: a changed file changes it, so the step and every later one miss the cache."""
        try:
            from _sha256 import sha256  # the builtin: hashlib loads OpenSSL
        except ImportError:
            from hashlib import sha256  # Python >= 3.12 has no _sha256

        total = sha256()
        per_item: dict[int, object] = {}
        for name, path, st, item in self.listing():
            h = per_item.setdefault(id(item), sha256())
            for target in (h, total):
                target.update(self._describe(name, path, st, item).encode() + b"\0")
            if item.kind == "data":
                h.update(item.data)
                total.update(item.data)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        total.update(chunk)
        if len(self.items) == 1:
            kind = "dir" if self.items[0].kind == "dir" else "file"
            digest = per_item[id(self.items[0])].hexdigest() if per_item else sha256().hexdigest()
            return f"{kind}:{digest}"
        return "multi:" + total.hexdigest()

    def image_digest(self) -> str:
        """For --from: the source image is immutable, so its ID and the paths stand for the content."""
        text = "\0".join([self.image_id, repr(self.owner), repr(self.mode)] + list(self.patterns))
        if len(self.items) > 1:
            return "multi:" + sha256_hex(text.encode())
        return ("dir:" if self.items[0].kind == "image-dir" else "file:") + sha256_hex(text.encode())

    def _describe(self, name: str, path, st, item) -> str:
        if item.kind == "data":
            return f"{name} 0644 {self.owner} {len(item.data)}"
        mode = self.mode if self.mode is not None else st.st_mode & 0o7777
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        return f"{name} {stat.S_IFMT(st.st_mode)} {mode:o} {self.owner} {st.st_size} {link}"

    def entries(self):
        """(TarInfo, readable or None) for each thing to write, in the copy's child."""
        import io
        import tarfile  # lazy: only the copy's child

        if self.image_layers is not None:
            yield from self._image_entries(tarfile)
            return
        for name, path, st, item in self.listing():
            if item.kind == "archive":
                with tarfile.open(path, "r:*") as archive:
                    for member in archive:
                        yield member, archive.extractfile(member) if member.isreg() else None
                continue
            info = tarfile.TarInfo(name)
            info.uid, info.gid = self.owner
            if item.kind == "data":
                info.size = len(item.data)
                info.mode = self.mode if self.mode is not None else 0o644
                info.mtime = 0
                yield info, io.BytesIO(item.data)
                continue
            yield from self._host_entry(tarfile, info, path, st)

    def _host_entry(self, tarfile, info, path: str, st):
        info.mode = self.mode if self.mode is not None else st.st_mode & 0o7777
        info.mtime = int(st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            yield info, None
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
            yield info, None
        else:
            with open(path, "rb") as f:
                info.size = os.fstat(f.fileno()).st_size
                yield info, f

    def _image_entries(self, tarfile):
        """--from: mount the image read-only here (the child's own mount namespace) and walk
        the sources in it, every path resolved inside it."""
        from berth.runtime import syscalls as sc
        from berth.runtime.mount import secure_join

        root, empty = self.scratch_dirs
        layers = list(reversed(self.image_layers))
        if layers:
            if len(layers) == 1:
                layers.append(empty)  # overlay wants two lower dirs when it has no upper one
            sc.mount("overlay", root, "overlay", 1, "lowerdir=" + ":".join(layers))  # MS_RDONLY
        for pattern in self.patterns:
            rel = posixpath.normpath(pattern.lstrip("/") or ".")
            path = secure_join(root, rel)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                from berth.errors import BerthError

                raise BerthError(f"COPY failed: stat {pattern}: file does not exist") from None
            if stat.S_ISDIR(st.st_mode):
                listing: list = []
                self._walk(path, "", "", listing, None)
                for name, entry_path, entry_st, _item in listing:
                    info = tarfile.TarInfo(name)
                    info.uid, info.gid = self.owner
                    yield from self._host_entry(tarfile, info, entry_path, entry_st)
            else:
                info = tarfile.TarInfo(posixpath.basename(rel))
                info.uid, info.gid = self.owner
                yield from self._host_entry(tarfile, info, path, st)


CACHE_VOLUME_PREFIX = "berth-build-cache-"


def cache_volume(mount_id: str) -> str:
    """The volume that keeps RUN --mount=type=cache,id=`mount_id` across builds."""
    return CACHE_VOLUME_PREFIX + sha256_hex(mount_id.encode())[:24]


def opaque(directory: str) -> bool:
    """An unpacked layer's directory that hides the lower layers' (overlay's opaque xattr)."""
    from berth.image.layers import OVERLAY_OPAQUE_XATTR

    try:
        return os.getxattr(directory, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _layered_kind(layers_top_first: list[str], rel: str) -> str | None:
    """"image-dir" or "image-file" for what `rel` is in an image's unpacked layers (the topmost
    layer holding it wins; a 0/0 whiteout or an opaque parent hides the lower ones), None when
    absent. Symlinks are resolved later, inside the mounted image; here one counts as a file."""
    if rel == ".":
        return "image-dir"
    parent = posixpath.dirname(rel)
    for layer in layers_top_first:
        try:
            st = os.lstat(os.path.join(layer, rel))
        except (FileNotFoundError, NotADirectoryError):
            if parent and opaque(os.path.join(layer, parent)):
                return None
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None
        return "image-dir" if stat.S_ISDIR(st.st_mode) else "image-file"
    return None


class RunMount:
    """One RUN --mount: type=cache (a directory kept across builds), bind (a read-only view of
    the context) or tmpfs."""

    __slots__ = ("kind", "target", "source", "options", "mount_id", "host", "spec", "context")

    @classmethod
    def parse(cls, spec: str, builder) -> "RunMount":
        mount = cls()
        mount.spec = spec
        fields = {}
        for part in spec.split(","):
            key, has_value, value = part.partition("=")
            key = key.strip().lower()
            fields[key] = value if has_value else "true"
        mount.kind = fields.pop("type", "bind")
        if mount.kind not in ("cache", "bind", "tmpfs"):
            raise ValueError(f"unsupported mount type {mount.kind!r}: berth builds support cache, bind and tmpfs")
        target = fields.get("target") or fields.get("dst") or fields.get("destination")
        if not target:
            raise ValueError("mount destination (target) is required")
        mount.target = posixpath.normpath(posixpath.join("/", target))
        mount.source = fields.get("source") or fields.get("src") or ""
        mount.options = ""
        mount.host = ""
        mount.context = builder.context
        if fields.get("from"):
            raise ValueError("RUN --mount with from= is not supported by berth yet: COPY --from the stage instead")
        if mount.kind == "tmpfs":
            if fields.get("size"):
                mount.options = f"size={fields['size']}"
        elif mount.kind == "cache":
            # A named volume: a bind of a directory under the root would need rslave propagation
            # there (dockerd's rule for binds of its own root), which a private / cannot give.
            mount.mount_id = fields.get("id") or mount.target
            mount.host = cache_volume(mount.mount_id)
        else:
            if fields.get("rw", fields.get("readwrite", "false")).lower() in ("true", "1"):
                raise ValueError("RUN --mount=type=bind,rw is not supported by berth: its writes would reach "
                                 "the build context")
            from berth.runtime.mount import secure_join

            rel = posixpath.normpath(mount.source.lstrip("/") or ".")
            if rel == ".." or rel.startswith("../"):
                raise ValueError(f"forbidden path outside the build context: {mount.source}")
            mount.host = secure_join(builder.context.root, rel)
            if not os.path.exists(mount.host):
                raise ValueError(f"failed to compute cache key: {mount.source!r} not found")
        return mount

    def key(self) -> str:
        return self.spec

    def bind(self) -> str:
        return f"{self.host}:{self.target}:{'rw' if self.kind == 'cache' else 'ro'}"
