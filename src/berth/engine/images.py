"""Image use cases: list, history, inspect, tag, remove, prune, import, load and save. Each is
one call that returns data (rows, docker's API shapes, generators for what docker reports as
it goes) and raises berth.errors kinds; a front door formats and prints it."""

import io
import os

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.image.reference import parse as parse_reference
from berth.image.store import chain_ids

IMAGE_CONFIG_DEFAULTS = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
    ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None),
    ("OnBuild", None), ("Labels", None),
)


def _parse(ref: str):
    try:
        return parse_reference(ref)
    except ValueError as err:
        raise InvalidArgument(str(err)) from None


def familiar(name: str) -> str:
    """A stored name (docker.io/library/busybox:latest) as docker shows it (busybox:latest)."""
    return _parse(name).familiar()


def tag_name(name: str) -> str:
    """A name to give an image (import, tag, commit): the full reference, never a digest."""
    full = str(_parse(name))
    if "@" in full:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    return full


# -- listing --------------------------------------------------------------------------------

class ImageSummary:
    """One image as `images` lists it (docker's ImageSummary): its ID, the (repository, tag)
    pairs shown for it (("<none>", "<none>") when dangling), when it was created (seconds,
    0.0 if unknown, and the config's own text), its size, the bytes of layers it shares with
    other images and of those only it has, how many containers use it (None: not counted), and
    its labels."""

    __slots__ = ("id", "repo_tags", "created", "created_text", "size", "shared_size", "unique_size", "containers",
                 "repo_digests", "labels")

    def __init__(self, image_id: str, repo_tags: list[tuple[str, str]], created: float, created_text: str,
                 size: int, shared_size: int, unique_size: int, containers: int | None = None,
                 labels: dict | None = None):
        self.id = image_id
        self.repo_tags = repo_tags
        self.created = created
        self.created_text = created_text
        self.size = size
        self.shared_size = shared_size
        self.unique_size = unique_size
        self.containers = containers
        self.repo_digests: dict[str, str] = {}  # repository (familiar) -> the digest it was pulled by
        self.labels = labels  # the image config's Labels


IMAGE_FILTERS = ("dangling", "label", "before", "since", "reference", "until")


def _image_filters(engine, values: list[str]) -> dict:
    """docker's `images --filter` values -> {key: [values]}, with before/since/until as the
    creation times they mean (validated as docker's daemon does)."""
    from berth.filters import parse_filters  # lazy: only --filter

    filters = parse_filters(values, IMAGE_FILTERS, {"dangling": lambda v: v.lower() in ("true", "false", "1", "0")})
    for key in ("before", "since"):
        if key in filters:
            filters[key] = [_created_of(_anchor(engine, ref)) for ref in filters[key]]
    if "until" in filters:
        from berth.filters import until_time  # lazy: only until=

        filters["until"] = [until_time(value) for value in filters["until"]]
    return filters


def _anchor(engine, ref: str):
    """The image a before=/since= filter names; NotFound as docker's daemon words it (with the tag)."""
    image = engine.images.lookup(ref)
    if image is None:
        try:
            ref = _parse(ref).familiar()
        except InvalidArgument:
            pass
        raise NotFound(f"No such image: {ref}")
    return image


def _created_of(image) -> float:
    from berth.units import parse_rfc3339  # lazy, as in history(): `image inspect` does not need units

    try:
        return parse_rfc3339(image.config.get("created") or "")
    except ValueError:
        return 0.0


def list_images(engine, filters: list[str] = (), count_containers: bool = False,
                all_images: bool = True) -> list[ImageSummary]:
    """The images, newest first, that pass docker's `filters` (`key=value`: dangling, label,
    before, since, until, reference; `images busybox` is reference=busybox: every tag of
    busybox, `busybox:1` only that one, dangling images then never match). Without
    `all_images`, a build's intermediate images (untagged, with a child) are left out, as
    `docker images` leaves them."""
    wanted = _image_filters(engine, filters) if filters else {}
    users = _container_counts(engine) if count_containers else {}
    images = engine.images.images()
    if not all_images:
        images = _without_intermediates(engine, images)
    shared_size, unique_size = _layer_sharing(engine.images, images)
    found = []
    for image in images:
        created = _created_of(image)
        if wanted and not _image_passes(image, created, wanted):
            continue
        repo_tags = [(_parse(name).familiar_name(), _parse(name).tag or "<none>") for name in _listed_names(image)
                     if _reference_matches(wanted.get("reference"), name)]
        if not repo_tags:
            if image.names or "reference" in wanted:
                continue
            repo_tags = [("<none>", "<none>")]
        summary = ImageSummary(image.id, repo_tags, created, image.config.get("created") or "", image.size(),
                               shared_size[image.id], unique_size[image.id],
                               users.get(image.id, 0) if count_containers else None,
                               (image.config.get("config") or {}).get("Labels"))
        summary.repo_digests = {_parse(name).familiar_name(): _parse(name).digest for name in image.names
                                if "@" in name}
        found.append(summary)
    found.sort(key=lambda summary: summary.created, reverse=True)
    return found


def _without_intermediates(engine, images: list) -> list:
    parents_dir = os.path.join(engine.paths.root, "build-cache", "parents")
    if not os.path.isdir(parents_dir):  # nothing was ever built here: one stat
        return images
    from berth.engine.build_cache import intermediate_ids  # lazy: only roots that built images

    hidden = intermediate_ids(engine.paths.root, {image.id for image in images})
    return [image for image in images if image.names or image.id not in hidden]


def _listed_names(image) -> list[str]:
    """The names `images` shows a row for: every tag, and a digest a pull named the image by
    only when its repository has no tag (docker's `repo <none>` row)."""
    tags = [name for name in image.names if "@" not in name]
    tagged = {_parse(name).name() for name in tags}
    return tags + [name for name in image.names if "@" in name and _parse(name).name() not in tagged]


def _image_passes(image, created: float, filters: dict) -> bool:
    from berth.filters import label_holds, passes  # lazy: only --filter

    return passes(filters, {
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not image.names),
        "label": lambda v: label_holds((image.config.get("config") or {}).get("Labels"), v),
        "before": lambda when: created < when,
        "since": lambda when: created > when,
        "until": lambda when: created < when,
    })


def _reference_matches(patterns: list | None, name: str) -> bool:
    """moby's reference.FamiliarMatch: the pattern (path.Match syntax) matches the familiar
    name with its tag, or without it."""
    if not patterns:
        return True
    from berth.filters import path_match  # lazy: only reference filters

    ref = _parse(name)
    return any(path_match(p, ref.familiar()) or path_match(p, ref.familiar_name()) for p in patterns)


def _layer_sharing(store, images) -> tuple[dict, dict]:
    """Per image: bytes in layers other images use too (docker's SHARED SIZE), and bytes
    only it has (UNIQUE SIZE)."""
    users: dict[str, int] = {}
    sizes: dict[str, int] = {}
    layers_of = {}
    for image in images:
        chains = chain_ids(image.diff_ids)
        layers_of[image.id] = chains
        for chain, diff_id in zip(chains, image.diff_ids, strict=True):
            users[chain] = users.get(chain, 0) + 1
            sizes[chain] = store.layer_size(chain, diff_id)
    shared = {i: sum(sizes[c] for c in chains if users[c] > 1) for i, chains in layers_of.items()}
    unique = {i: sum(sizes[c] for c in chains if users[c] == 1) for i, chains in layers_of.items()}
    return shared, unique


def _container_counts(engine) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in engine.containers():
        counts[record["Image"]] = counts.get(record["Image"], 0) + 1
    return counts


class HistoryEntry:
    """One step of an image's history (docker's HistoryResponseItem): the image ID on the top
    step, "<missing>" below; when (seconds, 0.0 if unknown, and the config's text); the
    instruction; the size of its layer (0 for an empty one); its comment; the image's tags on
    the top step (docker's Tags), none below."""

    __slots__ = ("id", "created", "created_text", "created_by", "size", "comment", "tags")

    def __init__(self, image_id: str, created: float, created_text: str, created_by: str, size: int, comment: str,
                 tags: list[str] | None = None):
        self.id = image_id
        self.created = created
        self.created_text = created_text
        self.created_by = created_by
        self.size = size
        self.comment = comment
        self.tags = tags


def history(engine, ref: str) -> list[HistoryEntry]:
    """The image's history, newest step first."""
    from berth.units import parse_rfc3339  # lazy: only history; `image inspect` loads no units

    store = engine.images
    image = store.get(ref)
    steps = list(image.config.get("history") or [])
    sizes = [store.layer_size(chain, diff_id)  # a layer not unpacked yet (a build's last): its tar's size
             for chain, diff_id in zip(chain_ids(image.diff_ids), image.diff_ids, strict=True)]
    entries = []
    layer_index = 0
    for i, step in enumerate(steps):
        empty = step.get("empty_layer", False)
        size = 0 if empty or layer_index >= len(sizes) else sizes[layer_index]
        if not empty:
            layer_index += 1
        created_text = step.get("created", "")
        try:
            created = parse_rfc3339(created_text)
        except ValueError:
            created = 0.0
        top = i == len(steps) - 1
        entries.append(HistoryEntry(image.id if top else "<missing>", created, created_text,
                                    step.get("created_by", ""), size, step.get("comment", ""),
                                    [familiar(n) for n in image.names if "@" not in n] if top else None))
    entries.reverse()
    return entries


def image_json(image) -> dict:
    """The image as `docker image inspect` prints it."""
    config = image.config
    image_config = config.get("config") or {}
    shaped = {key: image_config.get(key, default) for key, default in IMAGE_CONFIG_DEFAULTS}
    for key, value in image_config.items():
        shaped.setdefault(key, value)
    if shaped["ExposedPorts"] is None:
        del shaped["ExposedPorts"]
    steps = config.get("history") or []
    return {
        "Id": image.id,
        "RepoTags": [familiar(n) for n in image.names if "@" not in n],
        "RepoDigests": [familiar(n) for n in image.names if "@" in n],
        "Parent": "",
        "Comment": (steps[-1].get("comment", "") if steps else ""),
        "Created": config.get("created", ""),
        "DockerVersion": "",
        "Author": config.get("author", ""),
        "Config": shaped,
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": image.size(),
        "GraphDriver": {"Data": {"LowerDir": ":".join(reversed(image.layer_dirs()))}, "Name": "overlay"},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def inspect_image(engine, ref: str) -> dict:
    image = engine.images.lookup(ref)
    if image is None:
        raise NotFound(f"No such image: {ref}")
    return image_json(image)


# -- names and removal ------------------------------------------------------------------------

def tag(engine, source: str, target: str) -> None:
    name = tag_name(target)
    with engine.images.holding(source) as image:  # an rmi meanwhile would leave the tag naming nothing
        engine.images.tag(image, name)


def remove(engine, ref: str, force: bool = False, prune_parents: bool = True):
    """`rmi REF`, as docker's daemon does it: yields {"Untagged": name} and {"Deleted": id}
    as each happens (docker's ImageDeleteResponseItem); Conflict when a name or a container
    still needs the image (unless `force`, which untags but keeps an image in use). With
    `prune_parents` (no --no-prune), a built image's untagged parents nothing else uses go too."""
    # Exclusively: no container can be created from the image (nor its layers unpacked, nor
    # content added) between the check that nothing uses it and its removal.
    with engine.images.collecting():
        deleted = []
        for item in _remove(engine, ref, force):
            deleted += [item["Deleted"]] if "Deleted" in item and item["Deleted"].startswith("sha256:") else []
            yield item
        if prune_parents and deleted and os.path.isdir(os.path.join(engine.paths.root, "build-cache", "parents")):
            yield from _remove_parents(engine, deleted[0])


def _remove_parents(engine, image_id: str):
    """docker's rmi of a built image: each untagged parent no container uses and no other
    image has for parent goes, up the chain."""
    from berth.engine.build_cache import intermediate_ids, parent_of  # lazy: only roots that built images

    store = engine.images
    used = {record["Image"] for record in engine.containers()}
    parent = parent_of(engine.paths.root, image_id)
    while parent:
        image = store.lookup(parent)
        if image is None or image.id != parent or image.names or parent in used:
            return
        if parent in intermediate_ids(engine.paths.root, {i.id for i in store.images()}):
            return  # another child still builds on it
        layers = store.delete(image)
        yield {"Deleted": parent}
        for chain in layers:
            yield {"Deleted": chain}
        parent = parent_of(engine.paths.root, parent)


def _remove(engine, ref: str, force: bool):
    store = engine.images
    image = store.get(ref)
    by_name = _name_matching(image, ref)
    containers = [(r["Id"], r["State"]["Running"]) for r in engine.containers() if r["Image"] == image.id]
    untagged = [by_name] + _digests_going_with(image, by_name) if by_name else []
    if by_name and (len(image.names) > len(untagged) or force or not containers):
        for name in untagged:
            store.untag(name)
            yield {"Untagged": familiar(name)}
        if len(image.names) > len(untagged):
            return
    elif by_name is None and len({_parse(name).name() for name in image.names}) > 1 and not force:
        raise Conflict(f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                       "image is referenced in multiple repositories")
    if containers:
        if force:
            return  # docker untags but keeps an image a container still uses
        state = "running" if containers[0][1] else "stopped"
        what = (f'unable to remove repository reference "{ref}" (must force)' if by_name
                else f"unable to delete {image.id[7:19]} (must be forced)")
        kind = "container" if by_name else f"image is being used by {state} container"
        raise Conflict(f"conflict: {what} - {kind} {containers[0][0][:12]}"
                       + (f" is using its referenced image {image.id[7:19]}" if by_name else ""))
    for name in list(image.names):
        if name not in untagged:
            store.untag(name)
            yield {"Untagged": familiar(name)}
    deleted = store.delete(store.get(image.id))
    yield {"Deleted": image.id}
    for chain in deleted:
        yield {"Deleted": chain}


def _digests_going_with(image, tag: str) -> list[str]:
    """docker: the last tag of a repository goes with the repository's digests."""
    if "@" in tag:
        return []
    repo = _parse(tag).name()
    names = [name for name in image.names if name != tag and _parse(name).name() == repo]
    return [] if any("@" not in name for name in names) else names


def _name_matching(image, ref: str) -> str | None:
    try:
        full = str(_parse(ref))
    except InvalidArgument:
        return None
    return full if full in image.names else None


def prune(engine, all_images: bool = False, filters: dict | None = None) -> dict:
    """`image prune`: dangling images (every unused one with `all_images` or a dangling=false
    filter) that pass `filters` (berth.filters.prune_filters), and what killed commands left
    in the store. docker's ImagesPruneResponse: {"ImagesDeleted": [{"Untagged": name} |
    {"Deleted": id}...], "SpaceReclaimed": bytes}."""
    from berth.filters import spared_by  # lazy: only prune

    filters = dict(filters or {})
    for value in filters.pop("dangling", ()):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'")
        all_images = all_images or value.lower() in ("false", "0")
    store = engine.images
    deleted, reclaimed = [], 0
    with store.collecting():  # as rmi: nothing starts using an image between the check and the removal
        used = {record["Image"] for record in engine.containers()}
        candidates = store.images()
        if not all_images:  # a build's intermediate images have children: not dangling, as docker's
            used |= {image.id for image in candidates} - {image.id for image in
                                                        _without_intermediates(engine, candidates)}
        for image in candidates:
            if image.id in used or (image.names and not all_images):
                continue
            if spared_by(filters, _created_of(image), (image.config.get("config") or {}).get("Labels")):
                continue
            size = image.size()
            for name in list(image.names):
                store.untag(name)
                deleted.append({"Untagged": familiar(name)})
            layers = store.delete(store.get(image.id))
            deleted.append({"Deleted": image.id})
            deleted.extend({"Deleted": chain} for chain in layers)
            reclaimed += size if layers else 0
        reclaimed += store.collect_leftovers()  # blobs, layers and temp files nothing references
    return {"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}


# -- archives ---------------------------------------------------------------------------------

def import_image(engine, stream, name: str | None = None, changes: list[str] = (), message: str | None = None,
                 progress=None, total: int = 0) -> str:
    """`import`: the filesystem tar read from `stream` becomes a one-layer image tagged `name`
    (a full reference, see tag_name). `progress(action, done, total)`. Returns its ID."""
    from berth.image.importer import import_tarball  # lazy: only import

    buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
    try:
        # docker's CLI sends a local file as the request body, so its comment says "-" too
        return import_tarball(engine.images, buffered, name, list(changes), message, "-", progress, total)
    except ValueError as err:  # a bad --change instruction
        raise InvalidArgument(str(err)) from None


def check_save_format(fmt: str) -> None:
    from berth.image.archive import FORMATS  # lazy, as every archive import here: only save and load

    if fmt not in FORMATS:
        raise InvalidArgument(f'unsupported format "{fmt}": use docker-archive or oci-archive')


class ImageArchive:
    """The images `save` writes, resolved (a missing one has failed already, before any output
    exists); write() streams the archive."""

    __slots__ = ("store", "entries", "fmt")

    def __init__(self, store, entries: list, fmt: str):
        self.store = store
        self.entries = entries
        self.fmt = fmt

    def write(self, out, progress=None) -> None:
        """To a binary stream; `progress(ident, action, done, total)`."""
        from berth.image.archive import write_archive  # lazy: only save and load, as FORMATS

        write_archive(self.store, self.entries, out, self.fmt, progress)

    def chunks(self, size: int = 1 << 16):
        """The archive as it is written, for a front door that streams it (the API's GET
        /images/get): a forked child writes it into a pipe, so nothing is held whole and a
        reader that stops (closes this generator) stops the writer. A failure in the writer
        is raised after the bytes before it."""
        from berth.runtime.forked import Forked  # lazy: only the API streams archives

        reader, writer = os.pipe2(os.O_CLOEXEC)
        try:
            writer_process = Forked(lambda: self._write_to(writer), name="save")
        finally:
            os.close(writer)
        try:
            while chunk := os.read(reader, size):
                yield chunk
            writer_process.join()
        finally:
            os.close(reader)
            writer_process.kill()

    def _write_to(self, fd: int) -> None:
        with open(fd, "wb", closefd=False) as out:
            self.write(out)


def save(engine, refs: list[str], fmt: str = "docker-archive") -> ImageArchive:
    """`save`: `repo` alone means every tag of repo, `repo:tag` that tag, an ID or a digest
    the image without a name."""
    from berth.image.archive import resolve  # lazy: only save and load, as FORMATS

    check_save_format(fmt)
    return ImageArchive(engine.images, resolve(engine.images, refs), fmt)


class LoadedImage:
    """One image `load` added: its ID, its names as docker shows them, and the names it took
    from another image [(name, that image's ID)]."""

    __slots__ = ("id", "names", "replaced")

    def __init__(self, image_id: str, names: list[str], replaced: list[tuple[str, str]]):
        self.id = image_id
        self.names = names
        self.replaced = replaced


def load(engine, stream, progress=None) -> list[LoadedImage]:
    """`load`: every image of the archive read from `stream`; `progress(ident, action, done,
    total)`. Nothing is added unless the whole archive is good."""
    from berth.image.archive import load as load_archive  # lazy: only save and load, as FORMATS

    return [LoadedImage(image.id, [familiar(n) for n in image.names],
                        [(familiar(name), previous) for name, previous in image.replaced])
            for image in load_archive(engine.images, stream, progress)]

