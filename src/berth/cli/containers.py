"""Container listing and removal: ps, rm."""

import sys
import time

from berth.cli.contexts import FormatContext
from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.engine.container_list import list_containers
from berth.errors import BerthError, NotFound
from berth.units import go_time_string, human_duration, human_size, parse_rfc3339

RM = Command("rm", "berth rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
             [Flag("force", "f", BOOL, False, "Force the removal of a running container (uses SIGKILL)"),
              Flag("volumes", "v", BOOL, False, "Remove anonymous volumes associated with the container"),
              Flag("link", "l", BOOL, False, "Remove the specified link")], min_args=1)
PS = Command("ps", "berth ps [OPTIONS]", "List containers",
             [Flag("all", "a", BOOL, False, "Show all containers (default shows just running)"),
              Flag("quiet", "q", BOOL, False, "Only display container IDs"),
              Flag("no-trunc", None, BOOL, False, "Don't truncate output"),
              Flag("latest", "l", BOOL, False, "Show the latest created container (includes all states)"),
              Flag("last", "n", "int", -1, "Show n last created containers (includes all states)"),
              Flag("size", "s", BOOL, False, "Display total file sizes"),
              Flag("filter", "f", LIST, (), "Filter output based on conditions provided"),
              Flag("format", None, STRING, None, "Format output using a custom template")], max_args=0)

PS_HEADER = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
             "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE",
             "Labels": "LABELS", "Size": "SIZE", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
             "Networks": "NETWORKS", "Platform": "PLATFORM"}
DEFAULT_PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def cmd_rm(engine, argv) -> int:
    from berth.engine.lifecycle import remove, remove_link  # lazy: not for ps, which loads this module

    opts, args = parse(RM, argv)
    if opts.help:
        sys.stdout.write(help_text(RM))
        return 0
    failed = 0
    for ref in args:
        try:
            if opts.link:
                remove_link(engine, ref)
            else:
                remove(engine, ref, force=opts.force, volumes=opts.volumes)
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed |= not (opts.force and isinstance(err, NotFound))  # docker's CLI: -f ignores a missing one
    return int(failed)


class ContainerRow(FormatContext):
    """One `ps` line as docker's ContainerContext gives it to --format templates: each
    placeholder is a method; `{{json .}}` is every placeholder without arguments. Sizes are
    measured only when a template asks for .Size (`measure`: not for --format json without -s)."""

    FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
              "Platform", "Ports", "RunningFor", "Size", "State", "Status")
    go_type = "*formatter.ContainerContext"

    def __init__(self, summary, trunc: bool, measure: bool, now: float):
        self._c, self._trunc, self._measure, self._now = summary, trunc, measure, now

    def ID(self) -> str:  # noqa: N802 - the names are docker's placeholders, here and below
        return self._c.id[:12] if self._trunc else self._c.id

    def Image(self) -> str:  # noqa: N802
        """docker's: an image given by ID as the short ID, a name as its familiar form."""
        image = self._c.image
        if not image or not self._trunc:
            return image or "<no image>"
        if _short_id(self._c.image_id) == _short_id(image):
            return _short_id(image)
        if "/" in image or "@" in image:
            from berth.engine.images import familiar  # lazy: only names docker shortens (registry, digest)

            try:
                return familiar(image.partition("@")[0])
            except BerthError:
                return image
        return image

    def Command(self) -> str:  # noqa: N802
        from berth.strconv import quote  # lazy: not for rm, which loads this module

        return quote(_ellipsis(self._c.command, 20) if self._trunc else self._c.command)

    def CreatedAt(self) -> str:  # noqa: N802
        return go_time_string(parse_rfc3339(self._c.created))

    def RunningFor(self) -> str:  # noqa: N802
        return human_duration(self._now - parse_rfc3339(self._c.created)) + " ago"

    def Ports(self) -> str:  # noqa: N802
        return self._c.ports

    def State(self) -> str:  # noqa: N802
        return self._c.state

    def Status(self) -> str:  # noqa: N802
        return self._c.status

    def Size(self) -> str:  # noqa: N802
        own, virtual = self._c.sizes() if self._measure else (0, 0)
        return f"{human_size(own)} (virtual {human_size(virtual)})" if virtual > 0 else human_size(own)

    def Names(self) -> str:  # noqa: N802
        return self._c.name

    def Labels(self) -> str:  # noqa: N802
        return ",".join(sorted(f"{k}={v}" for k, v in self._c.labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return self._c.labels.get(name, "")

    def Mounts(self) -> str:  # noqa: N802
        return ",".join(_ellipsis(m, 15) if self._trunc else m for m in self._c.mounts)

    def LocalVolumes(self) -> str:  # noqa: N802
        return str(self._c.local_volumes)

    def Networks(self) -> str:  # noqa: N802
        return ",".join(self._c.networks)

    def Platform(self):  # noqa: N802 - nil: docker fills it only from a containerd image store
        return None


def _short_id(image: str) -> str:
    """stringid.TruncateID: without its algorithm, at most 12 characters."""
    return image.rpartition(":")[2][:12] if image.startswith("sha256:") else image[:12]


def _ellipsis(text: str, width: int) -> str:
    """docker's formatter.Ellipsis: at most `width` characters, the last one "…" when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_ps(engine, argv) -> int:
    opts, args = parse(PS, argv)
    if opts.help:
        sys.stdout.write(help_text(PS))
        return 0
    summaries = list_containers(engine, opts.all, opts.latest, opts.last, opts.filter)
    if opts.quiet:
        if opts.format:
            print("WARNING: Ignoring custom format, because both --format and --quiet are set.", file=sys.stderr)
        sys.stdout.write("".join((c.id if opts.no_trunc else c.id[:12]) + "\n" for c in summaries))
        return 0
    from berth.cli.output import render_rows  # lazy: not for rm or ps -q

    # docker measures sizes for -s or a template that reads .Size; `--format json` alone reads none
    measure = opts.size or opts.format != "json"
    now = time.time()
    rows = [ContainerRow(c, not opts.no_trunc, measure, now) for c in summaries]
    default = DEFAULT_PS_FORMAT + ("\t{{.Size}}" if opts.size else "")
    # docker's ps runs the template once on an empty row to see whether it reads .Size: a
    # template that cannot run fails so even with no container, in its words
    errors = ("failed to parse template", "failed to execute template")
    if not rows and opts.format:
        from berth.cli.output import list_format, render_table_text  # lazy: not for rm or ps -q

        render_table_text(list_format(opts.format, default), [ContainerRow(_NoContainer(), True, False, now)], {},
                          errors)
    render_rows(opts.format, default, rows, PS_HEADER, errors)
    return 0


class _NoContainer:
    """The empty container docker's ps runs a --format template on before listing."""

    id = image = image_id = command = status = state = ports = name = ""
    created = "1970-01-01T00:00:00Z"
    labels: dict = {}
    networks = mounts = ()
    local_volumes = 0
