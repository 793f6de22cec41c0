"""User-defined networks (docker's `network create -d bridge`): their durable records under
<root>/networks/<id>/network.json, names reserved atomically in <root>/networks/names/, IPAM
leases per network (<id>/leases/, exclusive-create files as the default bridge's), and a
container's endpoints on them for one run (<run-root>/containers/<id>/endpoint-<net>.json)."""

import os
import time

from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, NotImplementedYet
from berth.fs import Lock, make_dirs, pid_alive, read_json, remove_tree, write_json

BRIDGE_NAME = "com.docker.network.bridge.name"
MTU = "com.docker.network.driver.mtu"
ICC = "com.docker.network.bridge.enable_icc"
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
BUILTIN = ("bridge", "host", "none")
OVERLAP = "Pool overlaps with other one on this address space"


class NetworkRequest:
    """What `network create` (or POST /networks/create) asks for, in docker's terms."""

    __slots__ = ("name", "driver", "subnets", "gateways", "ip_ranges", "internal", "attachable", "options",
                 "labels", "ipam_driver", "ipam_options", "ipv6")

    def __init__(self, name: str, **fields):
        self.name = name
        self.driver = fields.pop("driver", None) or "bridge"
        self.subnets = list(fields.pop("subnets", None) or ())
        self.gateways = list(fields.pop("gateways", None) or ())
        self.ip_ranges = list(fields.pop("ip_ranges", None) or ())
        self.internal = bool(fields.pop("internal", False))
        self.attachable = bool(fields.pop("attachable", False))
        self.options = dict(fields.pop("options", None) or {})
        self.labels = dict(fields.pop("labels", None) or {})
        self.ipam_driver = fields.pop("ipam_driver", None) or "default"
        self.ipam_options = fields.pop("ipam_options", None) or None
        self.ipv6 = bool(fields.pop("ipv6", False))
        if fields:
            raise TypeError(f"unknown fields {sorted(fields)}")


# -- the store -------------------------------------------------------------------------------

def directory(root: str) -> str:
    return os.path.join(root, "networks")


def _record_path(root: str, network_id: str) -> str:
    return os.path.join(directory(root), network_id, "network.json")


def _names(root: str) -> str:
    return os.path.join(directory(root), "names")


def network_lock(root: str, network_id: str) -> Lock:
    """The network's own flock: held to change its endpoints (leases) or to remove it."""
    return Lock(os.path.join(directory(root), network_id, "lock"))


def _create_lock(root: str) -> Lock:
    """Held while a network is created or removed: subnets are chosen and checked under it."""
    make_dirs(directory(root))
    return Lock(os.path.join(directory(root), "lock"))


def records(root: str) -> list[dict]:
    """Every user network of this root (stored records), by name."""
    try:
        entries = os.listdir(directory(root))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if len(entry) == 64:
            try:
                found.append(read_json(_record_path(root, entry)))
            except (FileNotFoundError, ValueError):
                continue  # being created or removed
    return sorted(found, key=lambda r: r["Name"])


def by_name(root: str, name: str) -> dict | None:
    if not _valid_name(name):
        return None
    try:
        with open(os.path.join(_names(root), name)) as f:
            network_id = f.read().partition("\n")[0]
        return read_json(_record_path(root, network_id))
    except (FileNotFoundError, ValueError, NotADirectoryError):
        return None


def find(root: str, ref: str) -> dict | None:
    """A user network by full ID, name, or unique ID prefix (docker's order)."""
    if len(ref) == 64 and _is_hex(ref):
        try:
            return read_json(_record_path(root, ref))
        except FileNotFoundError:
            pass
    found = by_name(root, ref)
    if found is not None:
        return found
    if ref and _is_hex(ref):
        matches = [r for r in records(root) if r["Id"].startswith(ref)]
        if len(matches) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        if matches:
            return matches[0]
    return None


def get(root: str, ref: str) -> dict:
    found = find(root, ref)
    if found is None:
        raise NotFound(f"network {ref} not found")
    return found


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _valid_name(name: str) -> bool:
    """A name is a file name under names/: no separators, never "." or ".."."""
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..") and len(name) <= 255 \
        and name.isprintable()


def public(record: dict) -> dict:
    """The record as docker shows it (berth's own keys dropped)."""
    return {k: v for k, v in record.items() if k != "Berth"}


# -- create ------------------------------------------------------------------------------------

def create(engine, req: NetworkRequest) -> dict:
    """Make a network: validated first (nothing is made for a bad request), then its name
    reserved, record written, bridge and firewall made; a failure undoes all of it."""
    root = engine.paths.root
    name = req.name
    if not name:
        raise InvalidArgument("network name cannot be empty")
    if name in BUILTIN:
        raise Conflict(f"network with name {name} already exists")
    if not _valid_name(name) or name.startswith("-"):
        raise InvalidArgument(f"invalid network name: {name!r}")
    _check_driver(req)
    options = dict(req.options)
    mtu = _mtu(options.get(MTU), engine.settings.mtu)
    icc = _bool_option(options, ICC, True)
    masquerade = _bool_option(options, MASQUERADE, True)
    configs = _ipam_configs(req)
    network_id = os.urandom(32).hex()
    bridge_dev = options.get(BRIDGE_NAME) or _bridge_name(network_id)
    from berth.network.usernet import UserBridge  # lazy: netlink and nftables, only for networks

    UserBridge(network_id, bridge_dev, "0.0.0.0/0", "0.0.0.0")  # the name checked before anything is made
    with _create_lock(root):
        if by_name(root, name) is not None:
            raise Conflict(f"network with name {name} already exists")
        taken = _taken_subnets(engine)
        for other in records(root):
            if other["Berth"]["bridge"] == bridge_dev:
                raise Conflict(f"bridge name {bridge_dev} is already in use by network {other['Name']}")
        if configs:
            for config in configs:
                if any(_overlaps(config["Subnet"], subnet) for subnet in taken):
                    raise Conflict(OVERLAP)
        else:
            configs = [_automatic(taken)]
        record = {"Name": name, "Id": network_id, "Created": _now(), "Scope": "local", "Driver": "bridge",
                  "EnableIPv4": True, "EnableIPv6": False,
                  "IPAM": {"Driver": req.ipam_driver, "Options": req.ipam_options, "Config": configs},
                  "Internal": req.internal, "Attachable": req.attachable, "Ingress": False,
                  "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": options, "Labels": req.labels,
                  "Berth": {"bridge": bridge_dev, "mtu": mtu, "icc": icc, "masquerade": masquerade,
                            "user_subnet": bool(req.subnets)}}
        _reserve_name(root, name, network_id)
        try:
            make_dirs(os.path.join(directory(root), network_id))
            write_json(_record_path(root, network_id), record)
            _make_bridge(engine, record)
        except BaseException:
            _discard(engine, record)
            raise
    from berth.engine import events  # lazy: only network changes

    events.emit(root, "network", "create", network_id, {"name": name, "type": "bridge"})
    return record


def _check_driver(req: NetworkRequest) -> None:
    if req.driver in ("host", "null"):
        raise Conflict(f'only one instance of "{req.driver}" network is allowed')
    if req.driver != "bridge":
        raise NotFound(f'plugin "{req.driver}" not found')
    if req.ipam_driver != "default":
        raise NotFound(f'plugin "{req.ipam_driver}" not found')
    if req.ipv6:
        raise NotImplementedYet("--ipv6: berth's user-defined networks are IPv4 only")


def _mtu(value: str | None, default: int) -> int:
    if value in (None, ""):
        return default
    if not str(value).isdigit() or not 68 <= int(value) <= 65535:
        raise InvalidArgument(f"invalid MTU number: {value}")
    return int(value)


def _bool_option(options: dict, key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None:
        return default
    lowered = str(value).lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise InvalidArgument(f'failed to parse {key} value: strconv.ParseBool: parsing "{value}": invalid syntax')


def _ipam_configs(req: NetworkRequest) -> list[dict]:
    """IPAM.Config from --subnet/--gateway/--ip-range, the docker CLI's checks and wording."""
    from berth.network.ipam import network_contains, parse_cidr  # lazy: only create

    if len(req.subnets) > 1:
        raise NotImplementedYet("several --subnet: berth's networks have one IPv4 subnet")
    configs = []
    for subnet in req.subnets:
        if ":" in subnet:
            raise NotImplementedYet("an IPv6 --subnet: berth's user-defined networks are IPv4 only")
        try:
            _, length, network = parse_cidr(subnet)
        except ValueError:
            raise InvalidArgument(f"invalid CIDR address: {subnet}") from None
        if length > 30:
            raise InvalidArgument(f"invalid subnet {subnet}: a /{length} has no room for a gateway and a container")
        configs.append({"Subnet": network})
    for gateway in req.gateways:
        if not configs:
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        try:
            parse_cidr(gateway + "/32")
        except ValueError:
            raise InvalidArgument(f"invalid gateway address: {gateway}") from None
        if not network_contains(configs[0]["Subnet"], gateway + "/32"):
            raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        if "Gateway" in configs[0]:
            raise InvalidArgument(f"cannot configure multiple gateways ({gateway}) for the same subnet")
        configs[0]["Gateway"] = gateway
    for ip_range in req.ip_ranges:
        if not configs:
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        try:
            _, _, network = parse_cidr(ip_range)
        except ValueError:
            raise InvalidArgument(f"invalid CIDR address: {ip_range}") from None
        if not network_contains(configs[0]["Subnet"], network):
            raise InvalidArgument(f"no matching subnet for range {ip_range}")
        if "IPRange" in configs[0]:
            raise InvalidArgument(f"cannot configure multiple ranges ({ip_range}) on the same subnet")
        configs[0]["IPRange"] = network
    for config in configs:
        config.setdefault("Gateway", _first_host(config["Subnet"]))
    return [{k: c[k] for k in ("Subnet", "IPRange", "Gateway") if k in c} for c in configs]


def _first_host(subnet: str) -> str:
    import ipaddress  # lazy: only create

    return str(next(ipaddress.ip_network(subnet).hosts()))


def _overlaps(a: str, b: str) -> bool:
    from berth.network.ipam import network_contains  # lazy: only create

    return network_contains(a, b) or network_contains(b, a)


def _taken_subnets(engine) -> list[str]:
    """Subnets a new network must not overlap: this root's networks, the default bridge's, and
    every route of the host (other roots' and other engines' bridges among them)."""
    from berth.network import bridge  # lazy: only create
    from berth.network.ipam import host_routes  # lazy: only create

    taken = [c["Subnet"] for r in records(engine.paths.root) for c in r["IPAM"]["Config"] or ()]
    default = bridge.load(engine.paths.root)
    if default is not None:
        taken.append(default.subnet)
    taken += [str(route) for route in host_routes()]
    return taken


def _automatic(taken: list[str]) -> dict:
    """docker's default-address-pools: the first that overlaps nothing taken."""
    from berth.network.ipam import default_pools  # lazy: only create

    for pool in default_pools():
        if not any(_overlaps(str(pool), subnet) for subnet in taken):
            return {"Subnet": str(pool), "Gateway": str(next(pool.hosts()))}
    raise BerthError("could not find an available, non-overlapping IPv4 address pool among the defaults to assign "
                     "to the network")


def _bridge_name(network_id: str) -> str:
    from berth.network.usernet import bridge_name  # lazy: only create

    return bridge_name(network_id)


def _reserve_name(root: str, name: str, network_id: str) -> None:
    """names/<name> created exclusively (called under the create lock): the name is taken or
    not, never by two networks; one whose network never got a record (a create killed midway,
    its creator gone) is taken back."""
    names = _names(root)
    make_dirs(names)
    path = os.path.join(names, name)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            try:
                with open(path) as f:
                    holder, _, pid = f.read().partition("\n")
            except FileNotFoundError:
                continue
            if os.path.exists(_record_path(root, holder)) or pid.isdigit() and pid_alive(int(pid)):
                raise Conflict(f"network with name {name} already exists") from None
            os.unlink(path)
            continue
        try:
            os.write(fd, f"{network_id}\n{os.getpid()}".encode())
        finally:
            os.close(fd)
        return
    raise Conflict(f"network with name {name} already exists")


def _now() -> str:
    from berth.units import format_rfc3339_nano  # lazy: only create

    return format_rfc3339_nano(time.time())


def host_bridge(record: dict):
    """The network's bridge as berth.network.usernet sees it."""
    from berth.network.usernet import UserBridge  # lazy: only networks

    config = record["IPAM"]["Config"][0]
    berth = record["Berth"]
    return UserBridge(record["Id"], berth["bridge"], config["Subnet"], config["Gateway"], berth["mtu"], berth["icc"],
                      record["Internal"], berth["masquerade"])


def _ready_marker(engine, network_id: str) -> str:
    """Exists while the network's bridge and firewall are made, this boot (in the run root)."""
    return os.path.join(engine.paths.run_root, "networks", network_id + ".ready")


def _make_bridge(engine, record: dict, again: bool = False) -> None:
    from berth.network import usernet  # lazy: only networks

    usernet.create(engine.paths.root, host_bridge(record), _default_bridge_name(engine), again)
    marker = _ready_marker(engine, record["Id"])
    make_dirs(os.path.dirname(marker))
    with open(marker, "w"):
        pass


def _default_bridge_name(engine) -> str | None:
    return engine.settings.bridge_name if engine.settings.bridged else None


def ensure_bridge(engine, record: dict):
    """The network's bridge and firewall, made again unless made this boot (after a reboot,
    or a create killed midway: then isolation is never left half-applied)."""
    bridge = host_bridge(record)
    marker = _ready_marker(engine, record["Id"])
    if not os.path.exists(marker):
        with _create_lock(engine.paths.root):
            if not os.path.exists(marker) and os.path.exists(_record_path(engine.paths.root, record["Id"])):
                _make_bridge(engine, record, again=True)
    return bridge


def _discard(engine, record: dict) -> None:
    """Undo a network: firewall and bridge, then its directory, then its name."""
    from berth.network import usernet  # lazy: only networks

    root = engine.paths.root
    others = [r for r in records(root) if r["Id"] != record["Id"]]
    usernet.remove(root, host_bridge(record), last=not others)
    try:
        os.unlink(_ready_marker(engine, record["Id"]))
    except FileNotFoundError:
        pass
    remove_tree(os.path.join(directory(root), record["Id"]))
    path = os.path.join(_names(root), record["Name"])
    try:
        with open(path) as f:
            if f.read().partition("\n")[0] == record["Id"]:
                os.unlink(path)
    except FileNotFoundError:
        pass


# -- leases and endpoints ----------------------------------------------------------------------

def pool(root: str, record: dict):
    from berth.network.ipam import Pool  # lazy: only networks

    config = record["IPAM"]["Config"][0]
    return Pool(os.path.join(directory(root), record["Id"], "leases"), config["Subnet"], config["Gateway"],
                config.get("IPRange"))


def active_endpoints(engine, record: dict) -> dict:
    """address -> container ID of the endpoints on the network now (leases of this boot whose
    holder still exists)."""
    return pool(engine.paths.root, record).leases()


# -- remove, prune -----------------------------------------------------------------------------

def remove(engine, ref: str) -> dict:
    if ref in BUILTIN:
        raise Conflict(f"{ref} is a pre-defined network and cannot be removed")
    record = find(engine.paths.root, ref)
    if record is None:
        from berth.engine.networks import network_ids  # lazy: only rm

        for name, network_id in network_ids(engine.paths.root).items():
            if ref and network_id.startswith(ref):  # a built-in one by its ID
                raise Conflict(f"{name} is a pre-defined network and cannot be removed")
        raise NotFound(f"network {ref} not found")
    with _create_lock(engine.paths.root), network_lock(engine.paths.root, record["Id"]):
        _release_abandoned(engine, record)
        if active_endpoints(engine, record):
            raise Conflict(f"error while removing network: network {record['Name']} id {record['Id']} has active "
                           "endpoints")
        _discard(engine, record)
    from berth.engine import events  # lazy: only network changes

    events.emit(engine.paths.root, "network", "destroy", record["Id"], {"name": record["Name"], "type": "bridge"})
    return record


def _release_abandoned(engine, record: dict) -> None:
    """Leases whose container no longer runs (a removal or a supervisor killed midway) go;
    one whose container is locked (being started right now) stays."""
    leases = pool(engine.paths.root, record)
    for address, holder in leases.leases().items():
        if not os.path.isdir(engine.paths.container(holder)):
            leases.release(address, holder)
            continue
        fd = engine.store.try_lock(holder)
        if fd is None:
            continue
        try:
            state = engine.load(holder)["State"]
            if not (state["Running"] or state["Restarting"]):
                leases.release(address, holder)
        except FileNotFoundError:
            leases.release(address, holder)
        finally:
            os.close(fd)


def prune(engine, filters: list[str]) -> list[str]:
    """docker's network prune: every user network no container refers to, that the filters
    (until, label, label!) do not spare. Returns the names removed."""
    from berth.filters import prune_filters, spared_by  # lazy: only prune
    from berth.units import parse_rfc3339_ns  # lazy: only prune

    wanted = prune_filters(filters)
    used = {n for c in engine.containers() for n in (c["NetworkSettings"].get("Networks") or {})}
    removed = []
    for record in records(engine.paths.root):
        if record["Name"] in used:
            continue
        if spared_by(wanted, parse_rfc3339_ns(record["Created"]) / 1e9, record.get("Labels")):
            continue
        try:
            remove(engine, record["Id"])
        except (Conflict, NotFound):
            continue
        removed.append(record["Name"])
    return removed


# -- a container's endpoints ----------------------------------------------------------------

def user_networks(record: dict) -> list[str]:
    """The names of the user networks the container is connected to, in connect order."""
    return [n for n in (record["NetworkSettings"].get("Networks") or {}) if n not in BUILTIN]


def dns_names(record: dict, aliases: list | None) -> list[str]:
    """docker 28's DNSNames: the container's name, its aliases, its short ID, its hostname."""
    names = [record["Name"].lstrip("/"), *(aliases or ()), record["Id"][:12], record["Config"].get("Hostname") or ""]
    return list(dict.fromkeys(n for n in names if n))


def endpoint_config(record: dict, network: dict, aliases: list[str] | None, ip: str | None,
                    mac: str | None = None) -> dict:
    """NetworkSettings.Networks[<name>] of a container connected to `network`, not running on it yet."""
    from berth.engine.networks import endpoint  # lazy: only networks

    check_ip(network, ip)
    settings = endpoint(network["Id"])
    settings["Aliases"] = list(aliases) if aliases else None
    if ip:
        settings["IPAMConfig"] = {"IPv4Address": ip}
    if mac:
        settings["MacAddress"] = mac
    return settings


def check_ip(network: dict, ip: str | None) -> None:
    """docker's checks of --ip against the network (user configured subnet, inside it)."""
    if not ip:
        return
    if not network["Berth"]["user_subnet"]:
        raise InvalidArgument("user specified IP address is supported only when connecting to networks with user "
                              "configured subnets")
    from berth.network.ipam import network_contains  # lazy: only --ip

    config = network["IPAM"]["Config"][0]
    if not network_contains(config.get("IPRange") or config["Subnet"], ip + "/32"):
        raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {ip}")


def _endpoint_path(engine, container_id: str, network_id: str) -> str:
    return os.path.join(engine.paths.container_run(container_id), f"endpoint-{network_id}.json")


class UserEndpoints:
    """A container's endpoints on its user networks for one run: prepare() takes the leases
    (nothing is left if it fails), attach(pid) plugs each veth into the container, release()
    undoes what is recorded. `first_if` is the first free interface number (eth0 may be the
    default bridge's); `route`: whether one of these gives the default route."""

    def __init__(self, engine, record: dict, names: list[str], first_if: int = 0, route: bool = True):
        self.engine = engine
        self.record = record
        self.names = names
        self.first_if = first_if
        self.route = route
        self.endpoints = []  # [(network record, bridge, state)]

    def prepare(self) -> None:
        container_id = self.record["Id"]
        make_dirs(self.engine.paths.container_run(container_id))
        try:
            taken = _ifnames_in_use(self.engine, container_id)
            index = self.first_if
            for name in self.names:
                wanted = self.record["NetworkSettings"]["Networks"][name]
                network = _network_for(self.engine, name, wanted)
                while f"eth{index}" in taken:
                    index += 1
                ifname = f"eth{index}"
                taken.add(ifname)
                self.endpoints.append(prepare_endpoint(self.engine, self.record, network, wanted, ifname))
        except BaseException:
            self.release()
            raise

    def attach(self, pid: int) -> None:
        route = self.route
        for network, bridge, state in self.endpoints:
            gives_route = route and not network["Internal"]
            plug(pid, bridge, state, gives_route)
            route = route and not gives_route

    def release(self) -> None:
        for _, _, state in self.endpoints:
            release_endpoint(self.engine, self.record["Id"], state["network"])
        self.endpoints = []

    def first_ip(self) -> str:
        return self.endpoints[0][2]["ip"] if self.endpoints else ""

    def network_settings(self, settings: dict) -> None:
        """Fill each network's entry in NetworkSettings.Networks, docker's fields."""
        for network, bridge, state in self.endpoints:
            fill_endpoint(self.record, settings["Networks"][network["Name"]], bridge, state)


def fill_endpoint(record: dict, entry: dict, bridge, state: dict) -> None:
    entry.update(NetworkID=state["network"], EndpointID=state["endpoint"], Gateway=bridge.gateway,
                 IPAddress=state["ip"], IPPrefixLen=bridge.prefix_len, MacAddress=state["mac"],
                 DNSNames=dns_names(record, entry.get("Aliases")))


def _network_for(engine, name: str, wanted: dict) -> dict:
    network = find(engine.paths.root, wanted.get("NetworkID") or name) or find(engine.paths.root, name)
    if network is None:
        raise NotFound(f"network {name} not found")
    return network


def _ifnames_in_use(engine, container_id: str) -> set:
    used = set()
    run = engine.paths.container_run(container_id)
    try:
        entries = os.listdir(run)
    except FileNotFoundError:
        return used
    if "network.json" in entries:
        used.add("eth0")  # the default bridge's
    for entry in entries:
        if entry.startswith("endpoint-") and entry.endswith(".json"):
            try:
                used.add(read_json(os.path.join(run, entry))["ifname"])
            except (FileNotFoundError, ValueError, KeyError):
                continue
    return used


def prepare_endpoint(engine, record: dict, network: dict, wanted: dict, ifname: str) -> tuple:
    """Take the container's address on `network` (its --ip, else the next free one) and record
    the endpoint before and after (release() finds what a kill left)."""
    from berth.network.bridge import mac_address, veth_name  # lazy: only networks

    container_id = record["Id"]
    bridge = ensure_bridge(engine, network)
    endpoint_id = os.urandom(32).hex()
    state = {"network": network["Id"], "name": network["Name"], "endpoint": endpoint_id, "ip": "", "ifname": ifname,
             "veth": veth_name(endpoint_id), "mac": ""}
    path = _endpoint_path(engine, container_id, network["Id"])
    if os.path.exists(path):
        raise Conflict(f"endpoint with name {record['Name'].lstrip('/')} already exists in network {network['Name']}")
    write_json(path, state, durable=False)
    try:
        wanted_ip = (wanted.get("IPAMConfig") or {}).get("IPv4Address")
        with network_lock(engine.paths.root, network["Id"]):
            if not os.path.exists(_record_path(engine.paths.root, network["Id"])):
                raise NotFound(f"network {network['Name']} not found")
            leases = pool(engine.paths.root, network)
            if wanted_ip:
                check_ip(network, wanted_ip)
                if not leases.claim(wanted_ip, container_id) and \
                        not (_release_stale_lease(engine, leases, wanted_ip) and leases.claim(wanted_ip, container_id)):
                    raise Conflict("failed to set up container networking: Address already in use")
                state["ip"] = wanted_ip
            else:
                state["ip"] = leases.allocate(container_id)
        state["mac"] = record["Config"].get("MacAddress") if record["HostConfig"].get("NetworkMode") == \
            network["Name"] and record["Config"].get("MacAddress") else wanted.get("MacAddress") or \
            mac_address(state["ip"])
        write_json(path, state, durable=False)
    except BaseException:
        release_endpoint(engine, container_id, network["Id"])
        raise
    return network, bridge, state


def _release_stale_lease(engine, leases, address: str) -> bool:
    holder = leases.leases().get(address)
    if holder is None:
        return True
    try:
        state = engine.load(holder)["State"]
        if state["Running"] or state["Restarting"]:
            return False
    except FileNotFoundError:
        pass
    leases.release(address, holder)
    return True


def plug(pid: int, bridge, state: dict, route: bool) -> None:
    from berth.network import bridge as bridges  # lazy: only networks

    bridges.attach(pid, bridge, state["ip"], state["veth"], state["mac"], ifname=state["ifname"], route=route)


def release_endpoint(engine, container_id: str, network_id: str, unplug: bool = True) -> bool:
    """Undo one recorded endpoint: its veth (unless the namespace dies with it anyway), its
    lease. Claimed by a rename first, so of two releasers one does it. False if none."""
    path = _endpoint_path(engine, container_id, network_id)
    claimed = f"{path}.releasing-{os.getpid()}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        from berth.engine.networks import take_over_abandoned_claim  # lazy: only a killed release

        if not take_over_abandoned_claim(path, claimed):
            return False
    state = read_json(claimed)
    if unplug and state.get("veth"):
        from berth.network.bridge import detach  # lazy: only networks

        detach(state["veth"])
    network = find(engine.paths.root, network_id)
    if network is not None:
        leases = pool(engine.paths.root, network)
        if state.get("ip"):
            leases.release(state["ip"], container_id)
        else:
            leases.release_all(container_id)
    os.unlink(claimed)
    return True


def release_all(engine, container_id: str, unplug: bool = True) -> None:
    """Every user-network endpoint a run of the container recorded."""
    try:
        entries = os.listdir(engine.paths.container_run(container_id))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.startswith("endpoint-"):
            release_endpoint(engine, container_id, entry[len("endpoint-"):].partition(".")[0], unplug)


def release_orphan(engine, container_id: str) -> None:
    """Leases a container that no longer exists holds on any user network (found by scanning)."""
    release_all(engine, container_id)
    for network in records(engine.paths.root):
        pool(engine.paths.root, network).release_all(container_id)


# -- connect, disconnect ----------------------------------------------------------------------

def _check_mode(record: dict) -> None:
    mode = record["HostConfig"].get("NetworkMode") or ""
    if mode == "host":
        raise Conflict("container cannot be disconnected from host network or connected to host network")
    if mode == "none":
        raise Conflict("container cannot be connected to multiple networks with one of the networks in private (none) "
                       "mode")
    if mode.startswith("container:"):
        raise Conflict("container sharing network namespace with another container or host cannot be connected to "
                       "any other network")


def connect(engine, ref: str, container_ref: str, aliases: list[str] = (), ip: str | None = None) -> dict:
    """docker network connect: the container joins the network now if it runs (a new ethN,
    the default route if it had none), else at its next start. Returns its record."""
    from berth.engine.state import is_running  # lazy: only connect

    if ref in ("host", "none"):
        raise Conflict("container cannot be disconnected from host network or connected to host network")
    if ref == "bridge":
        raise NotImplementedYet("connecting a container to the default bridge after it was created")
    network = get(engine.paths.root, ref)
    container_id = engine.get(container_ref)["Id"]
    with engine.locked(container_id) as record:
        _check_mode(record)
        networks = record["NetworkSettings"].setdefault("Networks", {})
        if network["Name"] in networks:
            raise Conflict(f"endpoint with name {record['Name'].lstrip('/')} already exists in network "
                           f"{network['Name']}")
        entry = endpoint_config(record, network, list(aliases), ip)
        if is_running(record):
            route = not any(n == "bridge" or n not in BUILTIN and not _internal(engine, n) for n in networks)
            taken = _ifnames_in_use(engine, container_id)
            index = 0
            while f"eth{index}" in taken:
                index += 1
            _, bridge, state = prepare_endpoint(engine, record, network, entry, f"eth{index}")
            try:
                plug(record["State"]["Pid"], bridge, state, route and not network["Internal"])
            except BaseException:
                release_endpoint(engine, container_id, network["Id"])
                raise
            fill_endpoint(record, entry, bridge, state)
        networks[network["Name"]] = entry
        engine.store.write(record, durable=False)
    from berth.engine import dns, events  # lazy: only connect

    events.emit(engine.paths.root, "network", "connect", network["Id"],
                {"container": container_id, "name": network["Name"], "type": "bridge"})
    if entry["IPAddress"]:
        dns.serve_container(engine, record)
        dns.refresh(engine)
    return record


def _internal(engine, name: str) -> bool:
    network = find(engine.paths.root, name)
    return network is None or network["Internal"]


def disconnect(engine, ref: str, container_ref: str, force: bool = False) -> None:
    """docker network disconnect: the container leaves the network (its ethN goes now if it
    runs). With `force`, a container that no longer exists is not an error: what it still
    holds on the network is released."""
    if ref in ("host", "none"):
        raise Conflict("container cannot be disconnected from host network or connected to host network")
    if ref == "bridge":
        raise NotImplementedYet("disconnecting a container from the default bridge")
    network = get(engine.paths.root, ref)
    try:
        container_id = engine.get(container_ref)["Id"]
    except NotFound:
        if not force:
            raise
        leases = pool(engine.paths.root, network)
        for address, holder in leases.leases().items():
            if holder.startswith(container_ref) and not os.path.isdir(engine.paths.container(holder)):
                leases.release(address, holder)
        return
    with engine.locked(container_id) as record:
        networks = record["NetworkSettings"].get("Networks") or {}
        if network["Name"] not in networks:
            raise Conflict(f"container {container_id} is not connected to network {network['Name']}")
        release_endpoint(engine, container_id, network["Id"])
        del networks[network["Name"]]
        engine.store.write(record, durable=False)
    from berth.engine import dns, events  # lazy: only disconnect

    events.emit(engine.paths.root, "network", "disconnect", network["Id"],
                {"container": container_id, "name": network["Name"], "type": "bridge"})
    if not user_networks(record):
        dns.forget_container(engine, container_id)
    elif record["State"].get("Running"):
        dns.serve_container(engine, record)  # its upstreams: none once only --internal networks are left
    dns.refresh(engine)
