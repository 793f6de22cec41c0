"""A container's networking in docker's terms: the --network archetypes (bridge, none,
host, container:<x>), its DNS inputs, and its endpoint on the bridge for one run (address
lease, veth, published ports, links), recorded in <run-root>/containers/<id>/network.json
so whoever sees the run end can undo exactly that."""

import os

from berth.errors import BerthError, Conflict, NotFound, UsageError
from berth.fs import make_dirs, pid_alive, read_json, write_json

BUILTIN = ("bridge", "host", "none")
DRIVERS = {"none": "null", "host": "host", "bridge": "bridge"}


def parse_ip(value: str):
    import ipaddress  # lazy: only --ip, --dns and friends

    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def validate_dns(servers: list[str]) -> list[str]:
    for server in servers:
        if parse_ip(server) is None:
            raise UsageError(f'invalid argument "{server}" for "--dns" flag: {server} is not an ip address')
    return list(servers)


def parse_extra_hosts(values: list[str], host_gateway: str | None = None) -> list[tuple[str, str]]:
    """docker's --add-host name:ip (IPv6 allowed, also in brackets; `name=ip` too);
    `host-gateway` stands for `host_gateway` (the bridge's address) where one is given."""
    hosts = []
    for value in values:
        sep = "=" if "=" in value else ":"
        name, found, address = value.partition(sep)
        if not found or not name or not address:
            raise UsageError(f'invalid argument "{value}" for "--add-host" flag: bad format for add-host: '
                                  f'"{value}"')
        address = address.strip("[]")
        if address == "host-gateway":
            hosts.append((name, host_gateway or address))
            continue
        if parse_ip(address) is None:
            raise UsageError(f'invalid argument "{value}" for "--add-host" flag: invalid IP address in '
                                  f'add-host: "{address}"')
        hosts.append((name, address))
    return hosts


def network_ids(root: str) -> dict:
    """Stable IDs for the built-in networks, made once per berth root."""
    path = os.path.join(root, "networks.json")
    try:
        ids = read_json(path)
    except FileNotFoundError:
        ids = {}
    if all(name in ids for name in BUILTIN):
        return ids
    ids = {**{name: os.urandom(32).hex() for name in BUILTIN}, **ids}
    make_dirs(root)
    write_json(path, ids)
    return ids


def network_settings(networks: dict | None = None) -> dict:
    """A container's NetworkSettings while it has no address (created or stopped), docker's keys."""
    return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": networks or {}}


def endpoint(network_id: str) -> dict:
    """NetworkSettings.Networks[<name>] of a container without an address on it."""
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
            "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}


class Endpoint:
    """One run of a container on the bridge. prepare() before the runtime starts (may refuse:
    nothing is left then), attach(pid) from the runtime's on_created hook, release() to undo."""

    def __init__(self, engine, record: dict):
        self.engine = engine
        self.record = record
        self.bridge = None
        self.ip = ""
        self.endpoint_id = os.urandom(32).hex()
        self.ports = {}  # NetworkSettings.Ports
        self.mappings = []  # (proto, host_ip, host_port, container_ip, container_port) for the firewall
        self.links = []  # (target ip, [(proto, port)]) allowed when icc is off
        self.link_env = []
        self.link_hosts = []
        self.reserving = False  # host ports may be held: release must look

    @property
    def state_path(self) -> str:
        return network_state_path(self.engine.paths, self.record["Id"])

    def prepare(self) -> None:
        from berth.network import bridge  # lazy: only a container on the bridge

        self.bridge = bridge.ensure(self.engine.paths.root, self.engine.settings)
        self._resolve_links()
        container_id = self.record["Id"]
        make_dirs(os.path.dirname(self.state_path))
        self._save()  # before any lease: whoever finds this file can release what follows
        try:
            self.ip = bridge.pool(self.engine.paths.root, self.bridge).allocate(container_id)
            self._save()
            self._reserve_ports()
            self._save()
        except BaseException:
            self.release()
            raise

    def _resolve_links(self) -> None:
        if not self.record["HostConfig"].get("Links"):
            return
        from berth.network.links import hosts_line, link_env  # lazy: only --link

        for entry in self.record["HostConfig"]["Links"]:
            target_name, _, link_name = entry.partition(":")
            alias = link_name.rpartition("/")[2]
            try:
                target = self.engine.get(target_name)
            except NotFound:
                raise NotFound(f"could not get container for {target_name.lstrip('/')}") from None
            if not target["State"]["Running"]:
                raise Conflict(f"Cannot link to a non running container: {target['Name']} AS {link_name}")
            ip = (target["NetworkSettings"].get("Networks") or {}).get("bridge", {}).get("IPAddress")
            if not ip:
                raise Conflict(f"Cannot link to {target['Name']}, as it does not belong to the default network")
            exposed = sorted(target["Config"].get("ExposedPorts") or {})
            self.link_env += link_env(self.record["Name"].lstrip("/"), alias, ip, exposed,
                                      target["Config"].get("Env") or [])
            self.link_hosts.append(hosts_line(alias, target["Config"]["Hostname"], target["Name"].lstrip("/"), ip))
            self.links.append((ip, [(p.partition("/")[2] or "tcp", int(p.partition("/")[0].split("-")[0]))
                                    for p in exposed]))

    def _reserve_ports(self) -> None:
        host = self.record["HostConfig"]
        exposed = self.record["Config"].get("ExposedPorts") or {}
        bindings = host.get("PortBindings") or {}
        if host.get("PublishAllPorts"):
            from berth.network.ports import publish_all  # lazy: only -P

            bindings = publish_all(exposed, bindings)
        ports = {port: None for port in exposed}
        if not bindings:
            self.ports = ports
            return
        from berth.network.ports import Reservations  # lazy: only published ports

        self.reserving = True
        self._save()
        reservations = Reservations(ports_directory(self.engine.paths))
        name = self.record["Name"].lstrip("/")
        for port, wanted in bindings.items():
            number, _, proto = port.partition("/")
            proto = proto or "tcp"
            ports[port] = []
            for binding in wanted or [{"HostIp": "", "HostPort": ""}]:
                host_ip = binding.get("HostIp") or ""
                try:
                    host_port = self._reserve(reservations, proto, host_ip, binding.get("HostPort") or "")
                except Exception as err:
                    raise BerthError(f"driver failed programming external connectivity on endpoint {name} "
                                     f"({self.endpoint_id}): {err}") from None
                ports[port].append({"HostIp": host_ip or "0.0.0.0", "HostPort": str(host_port)})
                self.mappings.append((proto, "" if host_ip in ("", "0.0.0.0") else host_ip, host_port,
                                      self.ip, int(number)))
        self.ports = ports

    def _reserve(self, reservations, proto: str, host_ip: str, spec: str) -> int:
        """A host port berth hands out AND holds: a socket bound to it for as long as this
        process (the container's supervisor) lives, so neither a host process nor another
        berth root can take it meanwhile, as docker's proxy holds it. Traffic never reaches
        the socket: the kernel's DNAT rewrites it first."""
        for _ in range(20):
            try:
                port = reservations.reserve(self.record["Id"], proto, host_ip, spec)
            except BerthError:
                # Held by a run nobody is left to release (a killed start, rm or supervisor)?
                # Then this is the command that finds it: release that, and try once more.
                if not spec or "-" in spec or not self._release_stale_holders(reservations, proto, host_ip, spec):
                    raise
                port = reservations.reserve(self.record["Id"], proto, host_ip, spec)
            if proto == "sctp":
                return port
            import _socket  # lazy: only published ports

            family = _socket.AF_INET6 if ":" in host_ip else _socket.AF_INET
            sock = _socket.socket(family, _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM)
            try:
                sock.bind((host_ip or "0.0.0.0", port))
            except OSError:
                sock.close()
                if spec and "-" not in spec:  # that very port: someone else has it
                    raise OSError(f"Bind for {host_ip or '0.0.0.0'}:{port} failed: port is already allocated") \
                        from None
                continue  # taken meanwhile (another root): the next free one
            _HELD.setdefault(self.record["Id"], []).append(sock)
            return port
        raise OSError("all ports are allocated")

    def _release_stale_holders(self, reservations, proto: str, host_ip: str, spec: str) -> bool:
        released = False
        for holder in reservations.holders(proto, host_ip, reservations.wanted(spec)[0]) - {self.record["Id"]}:
            released = self.engine.release_stale_hold(holder) or released
        return released

    def attach(self, pid: int) -> None:
        from berth.network import bridge  # lazy: only a container on the bridge

        bridge.attach(pid, self.bridge, self.ip, bridge.veth_name(self.endpoint_id), self.mac_address(),
                      self.link_local_ips())
        if self.bridge.iptables and (self.mappings or self.links and not self.bridge.icc):
            firewall = self.bridge.firewall()
            if self.mappings:
                firewall.publish(self.mappings)
            if not self.bridge.icc:
                for target_ip, ports in self.links:
                    firewall.allow_link(self.ip, target_ip, ports)

    def hosts(self, extra: list[tuple[str, str]]) -> str:
        """/etc/hosts: localhost lines, --add-host entries, link lines, then this container."""
        from berth.engine import dnsfiles  # lazy: only a start writes /etc/hosts

        text = dnsfiles.hosts(extra)
        text += "".join(line + "\n" for line in self.link_hosts)
        config = self.record["Config"]
        names = config["Hostname"]
        if config.get("Domainname"):  # docker: the FQDN first, then the short name
            names = f"{names}.{config['Domainname']} {names}"
        return text + f"{self.ip}\t{names}\n"

    def ipam_config(self) -> dict | None:
        return (self.record["NetworkSettings"].get("Networks") or {}).get("bridge", {}).get("IPAMConfig")

    def link_local_ips(self) -> list[str]:
        """--link-local-ip: docker adds them to eth0 beside the bridge address."""
        return list((self.ipam_config() or {}).get("LinkLocalIPs") or ())

    def mac_address(self) -> str:
        """--mac-address, else docker's MAC derived from the address."""
        from berth.network.bridge import mac_address  # lazy: only a container on the bridge

        return self.record["Config"].get("MacAddress") or mac_address(self.ip)

    def network_settings(self, pid: int) -> dict:
        mac = self.mac_address()
        settings = {**endpoint(network_ids(self.engine.paths.root)["bridge"]), "IPAMConfig": self.ipam_config(),
                    "EndpointID": self.endpoint_id,
                    "Gateway": self.bridge.gateway, "IPAddress": self.ip, "IPPrefixLen": self.bridge.prefix_len,
                    "MacAddress": mac}
        return {**network_settings({"bridge": settings}), "SandboxID": self.endpoint_id,
                "SandboxKey": f"/proc/{pid}/ns/net", "Ports": self.ports, "EndpointID": self.endpoint_id,
                "Gateway": self.bridge.gateway, "IPAddress": self.ip, "IPPrefixLen": self.bridge.prefix_len,
                "MacAddress": mac}

    def _save(self) -> None:
        write_json(self.state_path, {"endpoint": self.endpoint_id, "ip": self.ip, "mappings": self.mappings,
                                     "links": self.links, "ports": self.reserving}, durable=False)

    def release(self) -> None:
        release(self.engine, self.record["Id"])


# container ID -> the sockets holding its published host ports, in the supervisor's process
_HELD = {}


def held_sockets(container_id: str) -> list[int]:
    """The fds of the sockets holding the container's published ports (for the lean monitor)."""
    return [sock.fileno() for sock in _HELD.get(container_id, ())]


def network_state_path(paths, container_id: str) -> str:
    return os.path.join(paths.container_run(container_id), "network.json")


def ports_directory(paths) -> str:
    """Host ports live and die with the host: they are kept in the run root."""
    return os.path.join(paths.run_root, "network", "ports")


def release(engine, container_id: str, unplug: bool = True) -> bool:
    """Undo a run's endpoint from its network.json: firewall entries, veth (unless `unplug`
    is False: its network namespace is dying and takes the veth along), host ports, the
    address lease. Idempotent; False if there was nothing to undo."""
    for sock in _HELD.pop(container_id, ()):
        sock.close()
    path = network_state_path(engine.paths, container_id)
    claimed = f"{path}.releasing-{os.getpid()}"
    try:
        os.rename(path, claimed)  # of two commands releasing at once (rm -f, the supervisor) one does it
    except FileNotFoundError:
        if not _take_over_abandoned_claim(path, claimed):
            return False
    try:
        _undo(engine, container_id, read_json(claimed), unplug)
    except BaseException:
        _unclaim(claimed, path)  # failed (nft refused, say): the next start or rm tries again
        raise
    os.unlink(claimed)
    return True


def _undo(engine, container_id: str, state: dict, unplug: bool) -> None:
    from berth.network import bridge  # lazy: only a container on the bridge

    current = bridge.load(engine.paths.root)
    if current is not None and current.iptables and (state["mappings"] or state["links"] and not current.icc):
        firewall = current.firewall()
        if state["mappings"]:
            firewall.unpublish([tuple(m) for m in state["mappings"]])
        if not current.icc:
            for target_ip, ports in state["links"]:
                firewall.disallow_link(state["ip"], target_ip, [tuple(p) for p in ports])
    if unplug:
        bridge.detach(bridge.veth_name(state["endpoint"]))
    if state.get("ports"):
        from berth.network.ports import Reservations  # lazy: only published ports

        Reservations(ports_directory(engine.paths)).release(container_id)
    if current is not None:
        pool = bridge.pool(engine.paths.root, current)
        if state["ip"]:
            pool.release(state["ip"], container_id)
        else:  # killed between taking the lease and recording it
            pool.release_all(container_id)


def _unclaim(claimed: str, path: str) -> None:
    """Give a claim back under its own name; if a new run recorded an endpoint meanwhile, the
    claim stays, and is taken over once this process is gone."""
    try:
        os.link(claimed, path)
    except FileExistsError:
        return
    os.unlink(claimed)


def release_orphan(engine, container_id: str) -> None:
    """What a container that no longer exists still holds (a removal killed midway): its
    run's endpoint if recorded, else its host ports and address found by its ID."""
    if release(engine, container_id):
        return
    from berth.network import bridge  # lazy: only a container on the bridge
    from berth.network.ports import Reservations  # lazy: only published ports

    Reservations(ports_directory(engine.paths)).release(container_id)
    current = bridge.load(engine.paths.root)
    if current is not None:
        bridge.pool(engine.paths.root, current).release_all(container_id)


def _take_over_abandoned_claim(path: str, claimed: str) -> bool:
    """A release killed midway left its claim (network.json.releasing-<pid>): take it over."""
    directory, base = os.path.split(path)
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return False
    for entry in entries:
        pid = entry.rpartition("-")[2]
        if entry.startswith(base + ".releasing-") and pid.isdigit() and not pid_alive(int(pid)):
            try:
                os.rename(os.path.join(directory, entry), claimed)
                return True
            except FileNotFoundError:
                continue
    return False
