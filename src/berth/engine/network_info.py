"""`network ls` and `network inspect`: docker's built-in networks (bridge, host, none) and
the user-defined ones (engine.usernets), and making sure the bridge exists (docker's exists
from the daemon's start; berth's from first use)."""

from berth.engine.networks import BUILTIN, DRIVERS, network_ids
from berth.errors import InvalidArgument


class NetworkSummary:
    """One network as `network ls` lists it: ID, name, driver, scope (always local), and for
    a user-defined one its record."""

    __slots__ = ("id", "name", "driver", "scope", "record")

    def __init__(self, network_id: str, name: str, record: dict | None = None):
        self.id = network_id
        self.name = name
        self.driver = DRIVERS.get(name, "bridge")
        self.scope = "local"
        self.record = record

    @property
    def internal(self) -> bool:
        return bool(self.record and self.record["Internal"])

    @property
    def labels(self) -> dict:
        return (self.record or {}).get("Labels") or {}

    @property
    def created(self) -> str:
        return self.record["Created"] if self.record else "0001-01-01T00:00:00Z"


def _networks(engine) -> dict:
    """name -> ID of the built-in networks this engine has (no bridge with `bridge: none`)."""
    ids = network_ids(engine.paths.root)
    return {name: ids[name] for name in BUILTIN if name != "bridge" or engine.settings.bridged}


def _user_records(engine) -> list[dict]:
    import os  # lazy: only when listing

    if not os.path.isdir(os.path.join(engine.paths.root, "networks")):
        return []
    from berth.engine.usernets import records  # lazy: only with user-defined networks

    return records(engine.paths.root)


NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def list_networks(engine, filters: list[str] = ()) -> list[NetworkSummary]:
    """The networks, by name, that pass docker's `network ls` filters (`key=value`)."""
    found = [NetworkSummary(network_id, name) for name, network_id in _networks(engine).items()]
    found += [NetworkSummary(r["Id"], r["Name"], r) for r in _user_records(engine)]
    found.sort(key=lambda n: n.name)
    if not filters:
        return found
    from berth.filters import label_holds, parse_filters, passes, regexp_holds  # lazy: only --filter

    wanted = parse_filters(filters, NETWORK_FILTERS)
    for value in wanted.get("type", ()):
        if value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter: 'type'='{value}'")
    for value in wanted.get("dangling", ()):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument('invalid value for filter \'dangling\', must be "true" (or "1"), '
                                  'or "false" (or "0")')
    used = set()
    if "dangling" in wanted:
        used = {n for c in engine.containers() for n in (c["NetworkSettings"].get("Networks") or {})}
    return [n for n in found if passes(wanted, _checks(n, regexp_holds, label_holds, used))]


def _checks(network: NetworkSummary, regexp_holds, label_holds, used: set) -> dict:
    """Each `network ls` filter key's test of one value on this network. A built-in network
    is never dangling (docker never counts them unused); a user one is when no container
    refers to it."""
    builtin = network.record is None
    return {
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not builtin and network.name not in used),
        "driver": lambda v: network.driver == v,
        "id": lambda v: regexp_holds(v, network.id),
        "label": lambda v: label_holds(network.labels, v),
        "name": lambda v: regexp_holds(v, network.name),
        "scope": lambda v: network.scope == v,
        "type": lambda v: v == ("builtin" if builtin else "custom"),
    }


def ensure_bridge(engine):
    """The bridge the engine's settings ask for, made (or adopted, or changed while no
    container holds an address on it) if needed; None when bridged networking is off."""
    from berth.network.bridge import ensure  # lazy: netlink and nftables, only for the bridge

    return ensure(engine.paths.root, engine.settings)


def inspect_network(engine, ref: str) -> dict | None:
    """A network by name, ID or ID prefix, as `network inspect` shows it; None if none matches."""
    match = [(n, i) for n, i in _networks(engine).items() if ref in (n, i)]
    if match:
        return network_json(engine, *match[0])
    if _user_records(engine):
        from berth.engine.usernets import find  # lazy: only with user-defined networks

        record = find(engine.paths.root, ref)
        if record is not None:
            return user_network_json(engine, record)
    match = [(n, i) for n, i in _networks(engine).items() if ref and i.startswith(ref)]
    return network_json(engine, *match[0]) if match else None


def _containers(engine, name: str, network_id: str | None = None) -> dict:
    """docker's Containers of a network: its running endpoints."""
    containers = {}
    for record in engine.containers():
        endpoint = (record["NetworkSettings"].get("Networks") or {}).get(name)
        if not endpoint or not record["State"]["Running"] or network_id and endpoint.get("NetworkID") != network_id:
            continue
        address = endpoint.get("IPAddress")
        if name in BUILTIN and record["HostConfig"].get("NetworkMode") != name:
            continue
        containers[record["Id"]] = {
            "Name": record["Name"].lstrip("/"), "EndpointID": endpoint.get("EndpointID", ""),
            "MacAddress": endpoint.get("MacAddress", ""),
            "IPv4Address": f"{address}/{endpoint['IPPrefixLen']}" if address else "", "IPv6Address": ""}
    return containers


def user_network_json(engine, record: dict) -> dict:
    from berth.engine.usernets import public  # lazy: only with user-defined networks

    shown = public(record)
    shown["Containers"] = _containers(engine, record["Name"], record["Id"])
    # docker's field order: Containers before Options and Labels
    order = ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv4", "EnableIPv6", "IPAM", "Internal", "Attachable",
             "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"]
    return {key: shown[key] for key in order if key in shown}


def network_json(engine, name: str, network_id: str) -> dict:
    containers = _containers(engine, name)
    ipam, options = None, {}
    if name == "bridge":
        settings = engine.settings
        bridge = ensure_bridge(engine)
        if bridge is not None:
            ipam = [{"Subnet": bridge.subnet, "Gateway": bridge.gateway,
                     **({"IPRange": bridge.fixed_cidr} if bridge.fixed_cidr else {})}]
        options = {"com.docker.network.bridge.default_bridge": "true",
                   "com.docker.network.bridge.enable_icc": str(settings.icc).lower(),
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                   "com.docker.network.bridge.name": settings.bridge_name,
                   "com.docker.network.driver.mtu": str(settings.mtu)}
    return {"Name": name, "Id": network_id, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": DRIVERS[name], "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": options, "Labels": {}}
