"""Container listing and removal: ps, rm."""

import sys
import time

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.errors import BerthError, InvalidArgument

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
            engine.remove(engine.get(ref), force=opts.force)
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def status_text(state: dict, now: float) -> str:
    from berth.units import human_duration, parse_rfc3339

    if state["Running"]:
        return "Up " + human_duration(now - parse_rfc3339(state["StartedAt"]))
    if state["Status"] == "created":
        return "Created"
    finished = parse_rfc3339(state["FinishedAt"])
    return f"Exited ({state['ExitCode']}) {human_duration(now - finished)} ago"


def ps_rows(engine, opts) -> list[dict]:
    from berth.units import human_duration, parse_rfc3339

    if opts.filter:
        raise InvalidArgument("ps --filter is not supported yet")
    now = time.time()
    records = sorted(engine.containers(), key=lambda r: r["Created"], reverse=True)
    if opts.latest:
        records = records[:1]
    elif opts.last >= 0:
        records = records[:opts.last]
    elif not opts.all:
        records = [r for r in records if r["State"]["Running"]]
    rows = []
    for r in records:
        command = " ".join([r["Path"]] + r["Args"])
        if not opts.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append({
            "ID": r["Id"] if opts.no_trunc else r["Id"][:12],
            "Image": r["Config"]["Image"],
            "Command": f'"{command}"',
            "CreatedAt": r["Created"],
            "RunningFor": human_duration(now - parse_rfc3339(r["Created"])) + " ago",
            "Status": status_text(r["State"], now),
            "State": r["State"]["Status"],
            "Ports": "",
            "Names": r["Name"].lstrip("/"),
            "Labels": ",".join(f"{k}={v}" for k, v in (r["Config"].get("Labels") or {}).items()),
            "Size": "",
            "Mounts": "",
            "Networks": r["HostConfig"]["NetworkMode"],
        })
    return rows


def cmd_ps(engine, argv) -> int:
    opts, args = parse(PS, argv)
    if opts.help:
        sys.stdout.write(help_text(PS))
        return 0
    rows = ps_rows(engine, opts)
    if opts.quiet:
        sys.stdout.write("".join(row["ID"] + "\n" for row in rows))
        return 0
    from berth.cli.output import render_rows

    render_rows(opts.format, DEFAULT_PS_FORMAT, rows, PS_HEADER)
    return 0
