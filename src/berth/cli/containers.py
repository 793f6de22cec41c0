"""Container listing and removal: ps, rm."""

import sys
import time

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.errors import BerthError

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
            engine.remove(engine.get(ref), force=opts.force, volumes=opts.volumes)
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def status_text(state: dict, now: float) -> str:
    from berth.units import human_duration, parse_rfc3339

    if state["Restarting"]:
        return f"Restarting ({state['ExitCode']}) {human_duration(now - parse_rfc3339(state['FinishedAt']))} ago"
    if state["Running"]:
        up = "Up " + human_duration(now - parse_rfc3339(state["StartedAt"]))
        return up + " (Paused)" if state["Paused"] else up
    if state["Status"] == "created":
        return "Created"
    finished = parse_rfc3339(state["FinishedAt"])
    return f"Exited ({state['ExitCode']}) {human_duration(now - finished)} ago"


PS_FILTERS = ("id", "name", "label", "exited", "status", "ancestor", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def parse_filters(values: list[str]) -> dict:
    from berth.filters import parse_filters as parse

    return parse(values, PS_FILTERS, {"status": lambda v: v in STATUSES, "exited": lambda v: v.lstrip("-").isdigit()})


def _matches(engine, record: dict, filters: dict, anchors: dict) -> bool:
    import re

    state = record["State"]
    checks = {
        "id": lambda v: record["Id"].startswith(v),
        "name": lambda v: re.search(v, record["Name"].lstrip("/")) is not None,
        "label": lambda v: _label_matches(record["Config"].get("Labels") or {}, v),
        "exited": lambda v: state["Status"] == "exited" and state["ExitCode"] == int(v),
        "status": lambda v: state["Status"] == v,
        "ancestor": lambda v: _ancestor_matches(engine, record, v),
        "before": lambda v: record["Created"] < anchors[("before", v)],
        "since": lambda v: record["Created"] > anchors[("since", v)],
    }
    return all(any(checks[key](value) for value in values) for key, values in filters.items())


def _label_matches(labels: dict, wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _ancestor_matches(engine, record: dict, wanted: str) -> bool:
    image = engine.images.lookup(wanted)
    return image is not None and record["Image"] == image.id


def ps_rows(engine, opts) -> list[dict]:
    from berth.strconv import quote
    from berth.units import human_duration, parse_rfc3339

    filters = parse_filters(opts.filter)
    now = time.time()
    records = sorted(engine.containers(), key=lambda r: r["Created"], reverse=True)
    if filters:
        anchors = {}
        for key in ("before", "since"):
            for value in filters.get(key, ()):
                anchors[(key, value)] = engine.get(value)["Created"]
        records = [r for r in records if _matches(engine, r, filters, anchors)]
    if opts.latest:
        records = records[:1]
    elif opts.last >= 0:
        records = records[:opts.last]
    elif not opts.all and not ({"status", "exited"} & set(filters)):
        records = [r for r in records if r["State"]["Running"]]
    rows = []
    for r in records:
        command = " ".join([r["Path"]] + r["Args"])
        if not opts.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append({
            "ID": r["Id"] if opts.no_trunc else r["Id"][:12],
            "Image": r["Config"]["Image"],
            "Command": quote(command),
            "CreatedAt": r["Created"],
            "RunningFor": human_duration(now - parse_rfc3339(r["Created"])) + " ago",
            "Status": status_text(r["State"], now),
            "State": r["State"]["Status"],
            "Ports": _ports(r),
            "Names": r["Name"].lstrip("/"),
            "Labels": ",".join(f"{k}={v}" for k, v in (r["Config"].get("Labels") or {}).items()),
            "Size": _size(r) if opts.size else "",
            "Mounts": "",
            "Networks": r["HostConfig"]["NetworkMode"],
        })
    return rows


def _ports(record: dict) -> str:
    ports = (record.get("NetworkSettings") or {}).get("Ports")
    if not ports:
        return ""
    from berth.network.ports import ps_ports

    return ps_ports(ports)


def _size(record: dict) -> str:
    """docker's SIZE column: the container's writable layer (virtual: plus the image)."""
    from berth.units import human_size

    upper = record["GraphDriver"]["Data"]["UpperDir"]
    lower = record["GraphDriver"]["Data"]["LowerDir"].split(":")
    own = _tree_size(upper)
    virtual = own + sum(_tree_size(d) for d in lower)
    return f"{human_size(own)} (virtual {human_size(virtual)})"


def _tree_size(path: str) -> int:
    from berth.engine.volumes import tree_size  # walks fd by fd: a container may swap a symlink in

    return tree_size(path)


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

    default = DEFAULT_PS_FORMAT + ("\t{{.Size}}" if opts.size else "")
    render_rows(opts.format, default, rows, PS_HEADER)
    return 0
