"""Image commands: import, images, tag, rmi."""

import os
import sys
import time

from berth.cli.contexts import FormatContext
from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, parse_or_help
from berth.engine import images
from berth.errors import Conflict, InvalidArgument, NotFound, NotImplementedYet
from berth.units import go_time_string, human_duration, human_size

IMPORT = Command("import", "berth import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                 "Import the contents from a tarball to create a filesystem image",
                 [Flag("change", "c", LIST, (), "Apply Dockerfile instruction to the created image"),
                  Flag("message", "m", STRING, None, "Set commit message for imported image"),
                  Flag("platform", None, STRING, None, "Set platform if server is multi-platform capable")],
                 min_args=1, max_args=2)
# --platform of the image commands: berth's store holds the host's platform only (check_platform)
PLATFORM = Flag("platform", None, STRING, None, "Only this platform's variant of the image (the host's)")
IMAGES = Command("images", "berth images [OPTIONS] [REPOSITORY[:TAG]]", "List images",
                 [Flag("all", "a", BOOL, False, "Show all images (default hides intermediate images)"),
                  Flag("quiet", "q", BOOL, False, "Only show image IDs"),
                  Flag("no-trunc", None, BOOL, False, "Don't truncate output"),
                  Flag("digests", None, BOOL, False, "Show digests"),
                  Flag("filter", "f", LIST, (), "Filter output based on conditions provided"),
                  Flag("format", None, STRING, None, "Format output using a custom template"),
                  Flag("tree", None, BOOL, False, "List multi-platform images as a tree (EXPERIMENTAL)")],
                 max_args=1)
TAG = Command("tag", "berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
              "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", min_args=2, max_args=2)
RMI = Command("rmi", "berth rmi [OPTIONS] IMAGE [IMAGE...]", "Remove one or more images",
              [Flag("force", "f", BOOL, False, "Force removal of the image"),
               Flag("no-prune", None, BOOL, False, "Do not delete untagged parents"),
               Flag("platform", None, LIST, (), "Remove only the given platform variant (the host's)")], min_args=1)

IMAGE_HEADER = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
                "CreatedAt": "CREATED AT", "Size": "SIZE", "Digest": "DIGEST", "Containers": "CONTAINERS",
                "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
DEFAULT_IMAGES_FORMAT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def cmd_import(engine, argv) -> int:
    opts, args = parse_or_help(IMPORT, argv)
    if opts.help:
        return 0
    check_platform(opts.platform)
    source = args[0]
    name = images.tag_name(args[1]) if len(args) > 1 else None
    if source.startswith(("http://", "https://")):
        raise InvalidArgument("importing from a URL is not supported yet; download the file and import it")
    try:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")
    except OSError as err:
        raise InvalidArgument(f"open {source}: {err.strerror.lower()}") from None
    from berth.cli.progress import for_terminal  # lazy: only import

    bar = for_terminal(sys.stderr)
    total = os.fstat(stream.fileno()).st_size if source != "-" else 0
    progress = (lambda action, done, size: bar(os.path.basename(source), action, done, size)) if bar else None
    with stream:
        try:
            image_id = images.import_image(engine, stream, name, opts.change, opts.message, progress, total)
        finally:
            if bar:
                bar.close()
    print(image_id)
    return 0


class ImageRow(FormatContext):
    """One `images` line (a repository and tag of an image) as docker's imageContext gives it
    to --format templates: each placeholder is a method; `{{json .}}` is all of them.
    `shared`: SharedSize/UniqueSize were measured (system df -v), else "N/A" as in docker."""

    FIELDS = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size",
              "Tag", "UniqueSize", "VirtualSize")
    go_type = "*formatter.imageContext"

    def __init__(self, image, repo: str, tag: str, trunc: bool, shared: bool, now: float):
        self._i, self._repo, self._tag, self._trunc, self._shared, self._now = image, repo, tag, trunc, shared, now

    def ID(self) -> str:  # noqa: N802 - the names are docker's placeholders, here and below
        return self._i.id[7:19] if self._trunc else self._i.id

    def Repository(self) -> str:  # noqa: N802
        return self._repo

    def Tag(self) -> str:  # noqa: N802
        return self._tag

    def Digest(self) -> str:  # noqa: N802
        return self._i.repo_digests.get(self._repo, "<none>")

    def CreatedSince(self) -> str:  # noqa: N802
        return human_duration(self._now - self._i.created) + " ago" if self._i.created else "N/A"

    def CreatedAt(self) -> str:  # noqa: N802
        return go_time_string(self._i.created) if self._i.created else ""

    def Size(self) -> str:  # noqa: N802
        return human_size(self._i.size)

    def VirtualSize(self) -> str:  # noqa: N802 - go-units HumanSize: 4 digits where Size has 3
        return human_size(self._i.size, 4)

    def SharedSize(self) -> str:  # noqa: N802
        return human_size(self._i.shared_size, 4) if self._shared else "N/A"

    def UniqueSize(self) -> str:  # noqa: N802
        return human_size(self._i.unique_size, 4) if self._shared else "N/A"

    def Containers(self) -> str:  # noqa: N802
        return "N/A" if self._i.containers is None else str(self._i.containers)


def image_rows(summaries: list, no_trunc: bool = False, shared: bool = False) -> list[ImageRow]:
    """One row per (repository, tag) of each image, as docker's CLI lays them out."""
    now = time.time()
    return [ImageRow(image, repo, tag, not no_trunc, shared, now) for image in summaries
            for repo, tag in image.repo_tags]


def cmd_images(engine, argv) -> int:
    opts, args = parse_or_help(IMAGES, argv)
    if opts.help:
        return 0
    if opts.tree:
        raise NotImplementedYet("--tree: the multi-platform tree view is not supported (berth stores one platform "
                                "per image)")
    filters = opts.filter + [f"reference={args[0]}"] if args else opts.filter  # docker's CLI does the same
    rows = image_rows(images.list_images(engine, filters, all_images=opts.all), opts.no_trunc)
    if opts.quiet:
        seen = []
        for row in rows:
            if row.ID() not in seen:
                seen.append(row.ID())
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    from berth.cli.output import render_rows  # lazy: not for rmi, tag or images -q

    default = DEFAULT_IMAGES_FORMAT
    if opts.digests:
        default = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    render_rows(opts.format, default, rows, IMAGE_HEADER)
    return 0


def cmd_tag(engine, argv) -> int:
    opts, args = parse_or_help(TAG, argv)
    if opts.help:
        return 0
    images.tag(engine, args[0], args[1])
    return 0


def cmd_rmi(engine, argv) -> int:
    opts, args = parse_or_help(RMI, argv)
    if opts.help:
        return 0
    check_platform(*opts.platform)
    failed = 0
    for ref in args:
        try:
            # {"Untagged": name} or {"Deleted": id}
            for item in images.remove(engine, ref, opts.force, prune_parents=not opts.no_prune):
                for action, what in item.items():
                    print(f"{action}: {what}")
        except (NotFound, Conflict, InvalidArgument) as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def check_platform(*values: str | None) -> None:
    """--platform of an image command: berth's images are the host's platform; another is refused."""
    if any(values):
        from berth.engine.run_options import check_image_platform  # lazy: only --platform

        for value in values:
            if value:
                check_image_platform(value)
