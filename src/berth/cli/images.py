"""Image commands: import, images, tag, rmi."""

import os
import sys
import time

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, parse_or_help
from berth.errors import Conflict, InvalidArgument, NotFound

IMPORT = Command("import", "berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                 "Import the contents from a tarball to create a filesystem image",
                 [Flag("change", "c", LIST, (), "Apply Dockerfile instruction to the created image"),
                  Flag("message", "m", STRING, None, "Set commit message for imported image"),
                  Flag("platform", None, STRING, None, "Set platform if server is multi-platform capable")],
                 min_args=1, max_args=2)
IMAGES = Command("images", "berth images [OPTIONS] [REPOSITORY[:TAG]]", "List images",
                 [Flag("all", "a", BOOL, False, "Show all images (default hides intermediate images)"),
                  Flag("quiet", "q", BOOL, False, "Only show image IDs"),
                  Flag("no-trunc", None, BOOL, False, "Don't truncate output"),
                  Flag("digests", None, BOOL, False, "Show digests"),
                  Flag("filter", "f", LIST, (), "Filter output based on conditions provided"),
                  Flag("format", None, STRING, None, "Format output using a custom template")],
                 max_args=1)
TAG = Command("tag", "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
              "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", min_args=2, max_args=2)
RMI = Command("rmi", "berth rmi [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images",
              [Flag("force", "f", BOOL, False, "Force removal of the image"),
               Flag("no-prune", None, BOOL, False, "Do not delete untagged parents")], min_args=1)

IMAGE_HEADER = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST", "Containers": "CONTAINERS",
                "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
DEFAULT_IMAGES_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def tag_name(name: str) -> str:
    """A name to give an image (import, tag, commit): the full reference, never a digest."""
    from berth.image import reference

    try:
        full = str(reference.parse(name))
    except ValueError as err:
        raise InvalidArgument(str(err)) from None
    if "@" in full:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    return full


def cmd_import(engine, argv) -> int:
    from berth.image.importer import import_tarball

    opts, args = parse_or_help(IMPORT, argv)
    if opts.help:
        return 0
    source = args[0]
    name = tag_name(args[1]) if len(args) > 1 else None
    if source.startswith(("http://", "https://")):
        raise InvalidArgument("importing from a URL is not supported yet; download the file and import it")
    try:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")
    except OSError as err:
        raise InvalidArgument(f"open {source}: {err.strerror.lower()}") from None
    import io

    from berth.cli.progress import for_terminal

    bar = for_terminal(sys.stderr)
    total = os.fstat(stream.fileno()).st_size if source != "-" else 0
    progress = (lambda action, done, size: bar(os.path.basename(source), action, done, size)) if bar else None
    with stream:
        buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)
        try:
            # docker's CLI sends a local file as the request body, so its comment says "-" too
            image_id = import_tarball(engine.images, buffered, name, opts.change, opts.message, "-",
                                      progress, total)
        except ValueError as err:  # a bad --change instruction
            raise InvalidArgument(str(err)) from None
        finally:
            if bar:
                bar.close()
    print(image_id)
    return 0


def image_rows(engine, opts, repo_filter: str | None) -> list[dict]:
    from berth.image import reference
    from berth.units import human_duration, human_size, parse_rfc3339

    rows = []
    now = time.time()
    dangling_filter = None
    for item in opts.filter:
        key, _, value = item.partition("=")
        if key != "dangling":
            raise InvalidArgument(f"invalid filter '{key}'")
        dangling_filter = value.lower() in ("true", "1")
    wanted_name = wanted_tag = None
    if repo_filter:  # `images busybox` lists every tag of busybox; `images busybox:1` just that one
        wanted = reference.parse(repo_filter)
        wanted_name = wanted.name()
        wanted_tag = wanted.tag if ":" in repo_filter.rpartition("/")[2] else None
    images = engine.images.images()
    shared_size, unique_size = layer_sharing(engine.images, images)
    for image in images:
        created = image.config.get("created") or ""
        try:
            created_ts = parse_rfc3339(created)
        except ValueError:
            created_ts = 0.0
        size = image.size()
        names = image.names or [None]
        if dangling_filter is not None and dangling_filter != (not image.names):
            continue
        for name in names:
            if name is None:
                repo, tag = "<none>", "<none>"
                if repo_filter:
                    continue
            else:
                ref = reference.parse(name)
                repo, tag = ref.familiar_name(), ref.tag or "<none>"
                if wanted_name and (ref.name() != wanted_name or (wanted_tag and wanted_tag != ref.tag)):
                    continue
            short = image.id if opts.no_trunc else image.id[7:19]
            rows.append({
                "ID": short, "Repository": repo, "Tag": tag, "Digest": "<none>",
                "CreatedSince": human_duration(now - created_ts) + " ago" if created_ts else "N/A",
                "CreatedAt": _go_time(created_ts) if created_ts else "",
                "Size": human_size(size), "VirtualSize": human_size(size),
                "SharedSize": human_size(shared_size[image.id]), "UniqueSize": human_size(unique_size[image.id]),
                "Containers": "N/A", "_created": created_ts, "_created_raw": created,
            })
    rows.sort(key=lambda r: r["_created"], reverse=True)
    return rows


def layer_sharing(store, images) -> tuple[dict, dict]:
    """Per image: bytes in layers other images use too (docker's SHARED SIZE), and bytes
    only it has (UNIQUE SIZE)."""
    from berth.image.store import chain_ids

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


def _go_time(ts: float) -> str:
    """Go's time.Time String() in UTC, as docker prints CreatedAt: 2026-11-27 23:25:02 +0000 UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ts))


def cmd_images(engine, argv) -> int:
    opts, args = parse_or_help(IMAGES, argv)
    if opts.help:
        return 0
    rows = image_rows(engine, opts, args[0] if args else None)
    if opts.quiet:
        seen = []
        for row in rows:
            if row["ID"] not in seen:
                seen.append(row["ID"])
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    from berth.cli.output import render_rows

    default = DEFAULT_IMAGES_FORMAT
    if opts.digests:
        default = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    render_rows(opts.format, default, rows, IMAGE_HEADER)
    return 0


def cmd_tag(engine, argv) -> int:
    opts, args = parse_or_help(TAG, argv)
    if opts.help:
        return 0
    image = engine.images.get(args[0])
    engine.images.tag(image, tag_name(args[1]))
    return 0


def cmd_rmi(engine, argv) -> int:
    from berth.image import reference

    opts, args = parse_or_help(RMI, argv)
    if opts.help:
        return 0
    failed = 0
    users = _image_users(engine)
    for ref in args:
        try:
            image = engine.images.get(ref)
            by_name = _names_matching(image, ref)
            containers = users.get(image.id, [])
            if by_name and (len(image.names) > 1 or opts.force or not containers):
                engine.images.untag(by_name)
                print(f"Untagged: {reference.parse(by_name).familiar()}")
                if len(image.names) > 1:
                    continue
            elif by_name is None and len(image.names) > 1 and not opts.force:
                raise Conflict(f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                               "image is referenced in multiple repositories")
            if containers:
                if opts.force:
                    continue  # docker untags but keeps an image a container still uses
                state = "running" if containers[0][1] else "stopped"
                what = (f'unable to remove repository reference "{ref}" (must force)' if by_name
                        else f"unable to delete {image.id[7:19]} (must be forced)")
                kind = "container" if by_name else f"image is being used by {state} container"
                raise Conflict(f"conflict: {what} - {kind} {containers[0][0][:12]}"
                               + (f" is using its referenced image {image.id[7:19]}" if by_name else ""))
            for name in list(image.names):
                if name != by_name:
                    engine.images.untag(name)
                    print(f"Untagged: {reference.parse(name).familiar()}")
            deleted = engine.images.delete(engine.images.get(image.id))
            print(f"Deleted: {image.id}")
            for chain in deleted:
                print(f"Deleted: {chain}")
        except (NotFound, Conflict, InvalidArgument) as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def _names_matching(image, ref: str) -> str | None:
    from berth.image import reference

    try:
        full = str(reference.parse(ref))
    except ValueError:
        return None
    return full if full in image.names else None


def _image_users(engine) -> dict:
    """image id -> [(container id, running)]"""
    users = {}
    for record in engine.containers():
        users.setdefault(record["Image"], []).append((record["Id"], record["State"]["Running"]))
    return users

