"""Container listing and removal: ps, rm."""

import sys
import time

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.engine.container_list import list_containers
from berth.engine.lifecycle import remove
from berth.errors import BerthError, NotFound
from berth.units import human_duration, human_size, parse_rfc3339

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
             "Labels": "LABELS", "Size": "SIZE", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
DEFAULT_PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def cmd_rm(engine, argv) -> int:
    opts, args = parse(RM, argv)
    if opts.help:
        sys.stdout.write(help_text(RM))
        return 0
    failed = 0
    for ref in args:
        try:
            remove(engine, ref, force=opts.force, volumes=opts.volumes)
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed |= not (opts.force and isinstance(err, NotFound))  # docker's CLI: -f ignores a missing one
    return int(failed)


def ps_rows(summaries: list, no_trunc: bool = False) -> list[dict]:
    from berth.strconv import quote  # lazy: not for rm, which loads this module

    now = time.time()
    rows = []
    for c in summaries:
        command = c.command
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append({
            "ID": c.id if no_trunc else c.id[:12],
            "Image": c.image,
            "Command": quote(command),
            "CreatedAt": c.created,
            "RunningFor": human_duration(now - parse_rfc3339(c.created)) + " ago",
            "Status": c.status,
            "State": c.state,
            "Ports": c.ports,
            "Names": c.name,
            "Labels": ",".join(f"{k}={v}" for k, v in c.labels.items()),
            # docker's SIZE column: the writable layer (virtual: plus the image)
            "Size": "" if c.size_rw is None else f"{human_size(c.size_rw)} (virtual {human_size(c.size_root_fs)})",
            "Mounts": "",
            "Networks": c.network_mode,
        })
    return rows


def cmd_ps(engine, argv) -> int:
    opts, args = parse(PS, argv)
    if opts.help:
        sys.stdout.write(help_text(PS))
        return 0
    rows = ps_rows(list_containers(engine, opts.all, opts.latest, opts.last, opts.filter, opts.size), opts.no_trunc)
    if opts.quiet:
        sys.stdout.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    from berth.cli.output import render_rows  # lazy: not for rm or ps -q

    default = DEFAULT_PS_FORMAT + ("\t{{.Size}}" if opts.size else "")
    render_rows(opts.format, default, rows, PS_HEADER)
    return 0
