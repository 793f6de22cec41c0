"""`ps`: the containers, filtered and ordered as docker's daemon lists them (its ContainerList),
each as a summary with the status text and ports docker shows. Imported by `berth ps`: keep
it cheap (filters and port formatting load only when a listing needs them)."""

import time

from berth.errors import InvalidArgument
from berth.units import human_duration, parse_rfc3339

# docker's ps filters: label values must all hold, the values of any other key are
# alternatives (berth.filters.passes)
FILTERS = ("id", "name", "label", "exited", "status", "ancestor", "before", "since", "health", "volume", "network",
           "publish", "expose", "is-task")
HEALTH_STATUSES = ("starting", "healthy", "unhealthy", "none")  # = engine.health.STATUSES, without importing it
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


class ContainerSummary:
    """One container as `ps` lists it: its ID, image (as given) and image ID, the command
    line, when it was created (the record's RFC 3339 text), docker's status text ("Up 2
    minutes") and state,
    its published ports as `ps` shows them, its name, labels, network mode, the networks it
    is on, its mounts (volume names, else sources) and how many are local volumes; `sizes()`
    measures its writable layer on demand (docker computes sizes only when asked)."""

    __slots__ = ("id", "image", "image_id", "command", "created", "status", "state", "ports", "name", "labels",
                 "network_mode", "networks", "mounts", "local_volumes", "record", "_graph", "_sizes")

    def __init__(self, record: dict, now: float):
        self.id = record["Id"]
        self.image = record["Config"]["Image"]
        self.image_id = record["Image"]
        self.command = " ".join([record["Path"]] + record["Args"])
        self.created = record["Created"]
        self.status = status_text(record["State"], now)
        self.state = record["State"]["Status"]
        self.ports = _ports(record)
        self.name = record["Name"].lstrip("/")
        self.labels = record["Config"].get("Labels") or {}
        self.network_mode = record["HostConfig"]["NetworkMode"]
        self.networks = _networks(record)
        mounts = record.get("Mounts") or ()
        self.mounts = [m.get("Name") or m.get("Source", "") for m in mounts]
        self.local_volumes = sum(m.get("Driver") == "local" for m in mounts)
        self.record = record  # all of it, for the API's summary (ports, networks, mounts as docker shapes them)
        self._graph = record["GraphDriver"]["Data"]
        self._sizes = None

    def sizes(self) -> tuple[int, int]:
        """docker's SizeRw and SizeRootFs, measured on the first call."""
        if self._sizes is None:
            self._sizes = self.measure(self._graph)
        return self._sizes

    @staticmethod
    def measure(graph_data: dict) -> tuple[int, int]:
        """docker's SizeRw (the writable layer) and SizeRootFs (plus the image's layers) of the
        container whose GraphDriver.Data this is."""
        from berth.engine.volumes import tree_size  # lazy: only sizes; fd by fd, a container may swap a symlink in

        own = tree_size(graph_data["UpperDir"])
        return own, own + sum(tree_size(d) for d in graph_data["LowerDir"].split(":"))


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

    filters = parse(values, FILTERS, {"status": lambda v: v in STATUSES})
    for value in filters.get("exited", ()):
        if not value.lstrip("-").isdigit():
            raise InvalidArgument(f'strconv.Atoi: parsing "{value}": invalid syntax')  # docker's words
    for value in filters.get("health", ()):
        if value not in HEALTH_STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for health: {value}")
    for key in {"publish", "expose"} & set(filters):
        filters[key] = [_port_keys(value) for value in filters[key]]
    return filters


def list_containers(engine, all_containers: bool = False, latest: bool = False, last: int = -1,
                    filters: list[str] = ()) -> list[ContainerSummary]:
    """The running containers (every one with `all_containers`, or with a status or exited
    filter), newest first; `latest`: only the newest, `last` > 0: the newest `last`, of every
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
    elif last > 0:  # docker's CLI: -n 0 is no -n
        records = records[:last]
    elif not all_containers and not ({"status", "exited"} & set(wanted)):
        records = [r for r in records if r["State"]["Running"]]
    return [ContainerSummary(r, now) for r in records]


def _matches(engine, record: dict, filters: dict, anchors: dict) -> bool:
    from berth.filters import label_holds, passes, regexp_holds  # lazy: only filters

    return passes(filters, _checks(engine, record, anchors, label_holds, regexp_holds))


def _checks(engine, record: dict, anchors: dict, label_holds, regexp_holds) -> dict:
    """Each ps filter key's test of one value on this container (moby's includeContainerInList)."""
    state = record["State"]
    name = record["Name"]
    return {
        "id": lambda v: regexp_holds(v, record["Id"]),
        # docker matches the name with and without its leading slash
        "name": lambda v: regexp_holds(v, name) or regexp_holds(v, name.lstrip("/")),
        "label": lambda v: label_holds(record["Config"].get("Labels"), v),
        "exited": lambda v: state["Status"] == "exited" and state["ExitCode"] == int(v),
        "status": lambda v: state["Status"] == v,
        "ancestor": lambda v: _ancestor_matches(engine, record, v),
        "before": lambda v: record["Created"] < anchors[("before", v)],
        "since": lambda v: record["Created"] > anchors[("since", v)],
        "health": lambda v: (state.get("Health") or {}).get("Status", "none") == v,
        "volume": lambda v: any(v in (m.get("Name"), m.get("Source"), m.get("Destination"))
                                for m in record.get("Mounts") or ()),
        "network": lambda v: v in _networks(record) or any((entry or {}).get("NetworkID", "").startswith(v)
                                                            for entry in _network_entries(record).values()),
        "publish": lambda keys: any(k in _published(record) for k in keys),
        "expose": lambda keys: any(k in (record["Config"].get("ExposedPorts") or {}) for k in keys),
        "is-task": lambda v: v.lower() in ("false", "0"),  # no container of berth is a swarm task
    }


def _port_keys(value: str) -> tuple:
    """publish/expose values: `port[/proto]` or `start-end[/proto]` -> the "80/tcp" keys they name."""
    ports, _, proto = value.partition("/")
    start, dash, end = ports.partition("-")
    if not start.isdigit() or (dash and not end.isdigit()) or proto not in ("", "tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid filter '{value}'")
    return tuple(f"{port}/{proto or 'tcp'}" for port in range(int(start), int(end or start) + 1))


def _published(record: dict) -> set:
    ports = (record.get("NetworkSettings") or {}).get("Ports") or {}
    bound = {key for key, bindings in ports.items() if bindings}
    return bound | set(record["HostConfig"].get("PortBindings") or {})


def _network_entries(record: dict) -> dict:
    return (record.get("NetworkSettings") or {}).get("Networks") or {}


def _networks(record: dict) -> list[str]:
    """The networks `ps` shows: those the container is on, else (stopped) its network mode's."""
    names = sorted(_network_entries(record))
    if names:
        return names
    mode = record["HostConfig"]["NetworkMode"]
    if mode.startswith("container:"):
        return []
    return ["bridge" if mode in ("default", "") else mode]


def _ancestor_matches(engine, record: dict, wanted: str) -> bool:
    image = engine.images.lookup(wanted)
    return image is not None and record["Image"] == image.id


def _ports(record: dict) -> str:
    ports = (record.get("NetworkSettings") or {}).get("Ports")
    if not ports:
        return ""
    from berth.network.ports import ps_ports  # lazy: only containers with ports

    return ps_ports(ports)
