"""`network ls` and `network inspect` for the built-in networks (bridge, host, none), and
making sure the bridge exists (docker's exists from the daemon's start; berth's from first use)."""

from berth.engine.networks import BUILTIN, DRIVERS, network_ids
from berth.errors import InvalidArgument


class NetworkSummary:
    """One network as `network ls` lists it: ID, name, driver; scope is always local."""

    __slots__ = ("id", "name", "driver", "scope")

    def __init__(self, network_id: str, name: str):
        self.id = network_id
        self.name = name
        self.driver = DRIVERS[name]
        self.scope = "local"


def _networks(engine) -> dict:
    """name -> ID of the networks this engine has (no bridge with `bridge: none`)."""
    ids = network_ids(engine.paths.root)
    return {name: ids[name] for name in BUILTIN if name != "bridge" or engine.settings.bridged}


NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def list_networks(engine, filters: list[str] = ()) -> list[NetworkSummary]:
    """The networks, by name, that pass docker's `network ls` filters (`key=value`)."""
    found = [NetworkSummary(network_id, name) for name, network_id in sorted(_networks(engine).items())]
    if not filters:
        return found
    from berth.filters import parse_filters, passes, regexp_holds  # lazy: only --filter

    wanted = parse_filters(filters, NETWORK_FILTERS)
    for value in wanted.get("type", ()):
        if value not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter: 'type'='{value}'")
    for value in wanted.get("dangling", ()):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument('invalid value for filter \'dangling\', must be "true" (or "1"), '
                                  'or "false" (or "0")')
    return [n for n in found if passes(wanted, _checks(n, regexp_holds))]


def _checks(network: NetworkSummary, regexp_holds) -> dict:
    """Each `network ls` filter key's test of one value on this network. Every network is
    built in: never dangling (docker never counts them unused), never labelled."""
    return {
        "dangling": lambda v: v.lower() in ("false", "0"),
        "driver": lambda v: network.driver == v,
        "id": lambda v: regexp_holds(v, network.id),
        "label": lambda v: False,
        "name": lambda v: regexp_holds(v, network.name),
        "scope": lambda v: network.scope == v,
        "type": lambda v: v == "builtin",
    }


def ensure_bridge(engine):
    """The bridge the engine's settings ask for, made (or adopted, or changed while no
    container holds an address on it) if needed; None when bridged networking is off."""
    from berth.network.bridge import ensure  # lazy: netlink and nftables, only for the bridge

    return ensure(engine.paths.root, engine.settings)


def inspect_network(engine, ref: str) -> dict | None:
    """A network by name, ID or ID prefix, as `network inspect` shows it; None if none matches."""
    match = [(n, i) for n, i in _networks(engine).items() if ref in (n, i) or (ref and i.startswith(ref))]
    return network_json(engine, *match[0]) if match else None


def network_json(engine, name: str, network_id: str) -> dict:
    containers = {}
    for record in engine.containers():
        if record["HostConfig"].get("NetworkMode") == name and record["State"]["Running"]:
            endpoint = (record["NetworkSettings"].get("Networks") or {}).get(name) or {}
            address = endpoint.get("IPAddress")
            containers[record["Id"]] = {
                "Name": record["Name"].lstrip("/"), "EndpointID": endpoint.get("EndpointID", ""),
                "MacAddress": endpoint.get("MacAddress", ""),
                "IPv4Address": f"{address}/{endpoint['IPPrefixLen']}" if address else "", "IPv6Address": ""}
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
