"""`ps`: the containers, filtered and ordered as docker's daemon lists them (its ContainerList),
each as a summary with the status text and ports docker shows. Imported by `berth ps`: keep
it cheap (filters and port formatting load only when a listing needs them)."""

import time

from berth.errors import InvalidArgument
from berth.units import human_duration, parse_rfc3339

FILTERS = ("id", "name", "label", "exited", "status", "ancestor", "before", "since", "health")
HEALTH_STATUSES = ("starting", "healthy", "unhealthy", "none")  # = engine.health.STATUSES, without importing it
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


class ContainerSummary:
    """One container as `ps` lists it: its ID, image (as given), the command line, when it was
    created (the record's RFC 3339 text), docker's status text ("Up 2 minutes") and state,
    its published ports as `ps` shows them, its name, labels, network mode, and, when sizes
    were asked for, the bytes of its writable layer and of that plus its image (else None)."""

    __slots__ = ("id", "image", "command", "created", "status", "state", "ports", "name", "labels",
                 "network_mode", "size_rw", "size_root_fs")

    def __init__(self, record: dict, now: float, sizes: tuple[int, int] | None = None):
        self.id = record["Id"]
        self.image = record["Config"]["Image"]
        self.command = " ".join([record["Path"]] + record["Args"])
        self.created = record["Created"]
        self.status = status_text(record["State"], now)
        self.state = record["State"]["Status"]
        self.ports = _ports(record)
        self.name = record["Name"].lstrip("/")
        self.labels = record["Config"].get("Labels") or {}
        self.network_mode = record["HostConfig"]["NetworkMode"]
        self.size_rw, self.size_root_fs = sizes if sizes is not None else (None, None)


def status_text(state: dict, now: float) -> str:
    if state["Restarting"]:
        return f"Restarting ({state['ExitCode']}) {human_duration(now - parse_rfc3339(state['FinishedAt']))} ago"
    if state["Running"]:
        up = "Up " + human_duration(now - parse_rfc3339(state["StartedAt"]))
        if state["Paused"]:
            return up + " (Paused)"
        health = state.get("Health")
        if health:  # docker's Health.String()
            return up + (" (health: starting)" if health["Status"] == "starting" else f" ({health['Status']})")
        return up
    if state["Status"] == "created":
        return "Created"
    finished = parse_rfc3339(state["FinishedAt"])
    return f"Exited ({state['ExitCode']}) {human_duration(now - finished)} ago"


def parse_filters(values: list[str]) -> dict:
    from berth.filters import parse_filters as parse  # lazy: only `ps --filter`

    filters = parse(values, FILTERS, {"status": lambda v: v in STATUSES,
                                      "exited": lambda v: v.lstrip("-").isdigit()})
    for value in filters.get("health", ()):
        if value not in HEALTH_STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    return filters


def list_containers(engine, all_containers: bool = False, latest: bool = False, last: int = -1,
                    filters: list[str] = (), size: bool = False) -> list[ContainerSummary]:
    """The running containers (every one with `all_containers`, or with a status or exited
    filter), newest first; `latest`: only the newest, `last` >= 0: the newest `last`, of every
    state. `filters` are docker's `key=value` strings."""
    wanted = parse_filters(filters) if filters else {}
    now = time.time()
    records = sorted(engine.containers(), key=lambda r: r["Created"], reverse=True)
    engine.recover_abandoned()  # a look at them repairs what killed supervisors left
    if wanted:
        anchors = {}
        for key in ("before", "since"):
            for value in wanted.get(key, ()):
                anchors[(key, value)] = engine.get(value)["Created"]
        records = [r for r in records if _matches(engine, r, wanted, anchors)]
    if latest:
        records = records[:1]
    elif last >= 0:
        records = records[:last]
    elif not all_containers and not ({"status", "exited"} & set(wanted)):
        records = [r for r in records if r["State"]["Running"]]
    return [ContainerSummary(r, now, _sizes(r) if size else None) for r in records]


def _matches(engine, record: dict, filters: dict, anchors: dict) -> bool:
    import re  # lazy: only filters, and `ps` must stay cheap

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
        "health": lambda v: (state.get("Health") or {}).get("Status", "none") == v,
    }
    return all(any(checks[key](value) for value in values) for key, values in filters.items())


def _label_matches(labels: dict, wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _ancestor_matches(engine, record: dict, wanted: str) -> bool:
    image = engine.images.lookup(wanted)
    return image is not None and record["Image"] == image.id


def _ports(record: dict) -> str:
    ports = (record.get("NetworkSettings") or {}).get("Ports")
    if not ports:
        return ""
    from berth.network.ports import ps_ports  # lazy: only containers with ports

    return ps_ports(ports)


def _sizes(record: dict) -> tuple[int, int]:
    """docker's SizeRw (the writable layer) and SizeRootFs (plus the image's layers)."""
    from berth.engine.volumes import tree_size  # lazy: only `ps -s`; fd by fd, a container may swap a symlink in

    data = record["GraphDriver"]["Data"]
    own = tree_size(data["UpperDir"])
    return own, own + sum(tree_size(d) for d in data["LowerDir"].split(":"))
