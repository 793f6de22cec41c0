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
        self.listeners = []  # (proto, bound socket, container_port): the IPv6 ports, for the proxy
        self.proxy = None  # the identity of the proxy serving them (network.proxy)
        self.ipv6 = None  # whether IPv6 ports are published next to 0.0.0.0 ones (decided once)
        self.links = []  # (target ip, [(proto, port)]) allowed when icc is off
        self.link_env = []
        self.link_hosts = []
        self.reserving = False  # host ports may be held: release must look
        self.ports_only = False  # the container's address is on a user-defined network (prepare_ports)

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

    def prepare_ports(self, ip: str) -> None:
        """Only the published ports of a container whose address `ip` is on a user-defined
        network: kernel DNAT through the maps of the default bridge's table (made if needed),
        host ports held as for a container on the bridge; no lease, no veth."""
        if not self.engine.settings.bridged:
            from berth.errors import NotImplementedYet  # lazy: only this refusal

            raise NotImplementedYet("publishing ports of a container on a user-defined network needs the default "
                                    "bridge's firewall, which is disabled (bridge: none)")
        from berth.network import bridge  # lazy: only published ports

        self.ports_only = True
        self.bridge = bridge.ensure(self.engine.paths.root, self.engine.settings)
        self.ip = ip
        make_dirs(os.path.dirname(self.state_path))
        self._save()
        try:
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
            published = []
            for binding in wanted or [{"HostIp": "", "HostPort": ""}]:
                addresses = self._host_addresses(proto, binding.get("HostIp") or "")
                if not addresses:
                    continue
                try:
                    host_port = self._reserve(reservations, proto, addresses, binding.get("HostPort") or "",
                                              int(number))
                except Exception as err:
                    raise BerthError(f"failed to set up container networking: driver failed programming external "
                                     f"connectivity on endpoint {name} ({self.endpoint_id}): {err}") from None
                for address in addresses:
                    published.append({"HostIp": address, "HostPort": str(host_port)})
                    if ":" not in address:  # IPv6 is the proxy's (self.listeners)
                        self.mappings.append((proto, "" if address == "0.0.0.0" else address, host_port,
                                              self.ip, int(number)))
            ports[port] = published or None  # docker: a port with no binding made is null
        self.ports = ports
        if self.listeners:
            self._start_proxy()

    def _host_addresses(self, proto: str, host_ip: str) -> list[str]:
        """The host addresses a binding is published on, docker's way: an IPv4 address alone;
        none (0.0.0.0) also [::] when the IPv6 proxy runs (daemon.json userland-proxy, true by
        default) and the host has IPv6; an IPv6 address only with the proxy (docker, without
        it, cannot reach an IPv4-only container from IPv6 and publishes nothing)."""
        from berth.network.ports import normalize_host_ip  # lazy: only published ports

        address = normalize_host_ip(host_ip)
        if ":" not in address:
            return [address, "::"] if address == "0.0.0.0" and self._proxies_ipv6(proto) else [address]
        if not self.engine.settings.userland_proxy:
            return []
        if proto == "sctp":
            raise BerthError(f"cannot publish sctp on the IPv6 address {address}: berth's userland proxy "
                             "serves tcp and udp only")
        return [address]

    def _proxies_ipv6(self, proto: str) -> bool:
        if proto == "sctp":  # the proxy serves tcp and udp: an sctp port stays IPv4-only
            return False
        if self.ipv6 is None:
            from berth.network.proxy import ipv6_listenable  # lazy: only published ports

            self.ipv6 = self.engine.settings.userland_proxy and ipv6_listenable()
        return self.ipv6

    def _reserve(self, reservations, proto: str, addresses: list[str], spec: str, container_port: int) -> int:
        """A host port berth hands out AND holds, the same on every one of `addresses` (0.0.0.0
        and its [::] twin, as docker's). An IPv4 one is held by a socket bound to it for as
        long as this process (the container's supervisor) lives, so neither a host process nor
        another berth root can take it meanwhile, as docker's proxy holds it; traffic never
        reaches that socket: the kernel's DNAT rewrites it first. An IPv6 one is bound and
        listening for the proxy (self.listeners), which serves it."""
        twin = addresses[1] if len(addresses) > 1 else ""
        for _ in range(20):
            try:
                port = reservations.reserve(self.record["Id"], proto, addresses[0], spec, twin)
            except BerthError:
                # Held by a run nobody is left to release (a killed start, rm or supervisor)?
                # Then this is the command that finds it: release that, and try once more.
                if not spec or "-" in spec or not self._release_stale_holders(reservations, proto, addresses, spec):
                    raise
                port = reservations.reserve(self.record["Id"], proto, addresses[0], spec, twin)
            bound = []
            try:
                for address in addresses:
                    bound.append(self._bind(proto, address, port, container_port))
            except OSError:
                for sock in bound:
                    if sock is not None:
                        sock.close()
                if spec and "-" not in spec:  # that very port: someone else has it
                    raise
                continue  # taken meanwhile (another root): the next free one
            for address, sock in zip(addresses, bound, strict=True):
                if ":" in address:
                    self.listeners.append((proto, sock, container_port))
                elif sock is not None:
                    _HELD.setdefault(self.record["Id"], []).append(sock)
            return port
        raise OSError("all ports are allocated")

    def _bind(self, proto: str, address: str, port: int, container_port: int):
        """The socket that holds (IPv4) or serves (IPv6) address:port; None for IPv4 sctp."""
        if ":" in address:
            from berth.network.proxy import listen  # lazy: only IPv6 published ports

            return listen(proto, address, port, (self.ip, container_port))
        if proto == "sctp":
            return None
        import _socket  # lazy: only published ports

        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            raise OSError(f"Bind for {address}:{port} failed: port is already allocated") from None
        return sock

    def _start_proxy(self) -> None:
        from berth.engine.procs import identity  # lazy: only IPv6 published ports
        from berth.network.proxy import start  # lazy: only IPv6 published ports

        listeners, self.listeners = self.listeners, []
        self.proxy = identity(start([(proto, sock, (self.ip, port)) for proto, sock, port in listeners]))

    def _release_stale_holders(self, reservations, proto: str, addresses: list[str], spec: str) -> bool:
        port = reservations.wanted(spec)[0]
        holders = set().union(*(reservations.holders(proto, address, port) for address in addresses))
        released = False
        for holder in holders - {self.record["Id"]}:
            released = self.engine.release_stale_hold(holder) or released
        return released

    def attach(self, pid: int) -> None:
        from berth.network import bridge  # lazy: only a container on the bridge

        if not self.ports_only:
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
                                     "links": self.links, "ports": self.reserving, "proxy": self.proxy},
                   durable=False)

    def release(self) -> None:
        for _, sock, _ in self.listeners:
            sock.close()
        self.listeners = []
        if self.proxy:  # forked, maybe not recorded yet
            end_proxy(self.proxy)
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
        if not take_over_abandoned_claim(path, claimed):
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

    if state.get("proxy"):  # first: its IPv6 ports are free once its reservations are
        end_proxy(state["proxy"])
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


def serve_ipv6_again(engine, record: dict) -> None:
    """The IPv6 side of a running container's published ports, when its proxy died with a
    killed supervisor: a new proxy, the child of the supervisor adopting the container (the
    caller), recorded in the run's network.json. Called with the container's lock held. A
    port the host took meanwhile cannot be served: then none is (the IPv4 side runs on by
    kernel NAT), as a docker-proxy that died is not started again."""
    path = network_state_path(engine.paths, record["Id"])
    try:
        state = read_json(path)
    except FileNotFoundError:
        return  # released meanwhile
    from berth.engine.procs import same_process  # lazy: only IPv6 published ports

    if not state.get("proxy") or same_process(state["proxy"]):
        return
    from berth.network.proxy import listen  # lazy: only IPv6 published ports

    listeners = []
    try:
        for port, bindings in (record["NetworkSettings"].get("Ports") or {}).items():
            number, _, proto = port.partition("/")
            backend = (state["ip"], int(number))
            for binding in bindings or ():
                if ":" in binding["HostIp"]:
                    listeners.append((proto, listen(proto, binding["HostIp"], int(binding["HostPort"]), backend),
                                      backend))
    except OSError:
        for _, sock, _ in listeners:
            sock.close()
        return
    from berth.engine.procs import identity  # lazy: only IPv6 published ports
    from berth.network.proxy import start  # lazy: only IPv6 published ports

    try:
        state["proxy"] = identity(start(listeners))
    except OSError:  # no fork: the adoption itself goes on
        for _, sock, _ in listeners:
            sock.close()
        return
    write_json(path, state, durable=False)


def end_proxy(proxy: list) -> None:
    """End the IPv6 proxy of a run (network.proxy) if it still runs, and wait until it is gone
    (its listening sockets closed); reaped if it is our child (we are its supervisor)."""
    from berth.engine.procs import kill_and_wait  # lazy: only IPv6 published ports

    if kill_and_wait(proxy):
        try:
            os.waitpid(proxy[0], os.WNOHANG)
        except ChildProcessError:
            pass  # not ours: its supervisor reaps it


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


def take_over_abandoned_claim(path: str, claimed: str) -> bool:
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
