"""The bridge network: berth's own bridge (made on first use with docker's defaults) or the
user's (`-b`, used but never changed or deleted), its address pool, its firewall table,
and one veth endpoint per running container.

State: <root>/network/bridge.json (what the bridge was made with), leases/ (one file per
address, see ipam), ports/ (host ports handed out). The fast path of `run` reads the JSON
and checks that the bridge device exists; everything else happens once, under a lock."""

import _socket
import fcntl
import os
import struct

from berth.errors import Conflict, InvalidArgument
from berth.fs import Lock, make_dirs, read_json, write_json
from berth.network.ipam import Pool, choose_subnet, host_routes, parse_cidr
from berth.network.netlink import Netlink, in_netns

# What must match between the settings and the bridge as made; anything else is a change.
CONFIG_KEYS = ("name", "subnet", "gateway", "fixed_cidr", "mtu", "icc", "iptables")
# The firewall's revision, recorded in bridge.json: a table an older berth made is brought up
# to date in place on first use (2: nft.Firewall.loopback_guard, CVE-2020-8558).
FIREWALL_REVISION = 2


class Bridge:
    """The bridge as it is: name, subnet, gateway, container range, mtu, firewall choices."""

    __slots__ = ("name", "subnet", "gateway", "fixed_cidr", "mtu", "icc", "iptables", "created", "table", "revision")

    def __init__(self, state: dict):
        for key in self.__slots__:
            setattr(self, key, state.get(key))

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.partition("/")[2])

    def state(self) -> dict:
        return {key: getattr(self, key) for key in self.__slots__}

    def firewall(self):
        from berth.network.nft import Firewall  # lazy: only creating the bridge or publishing ports touches nftables

        return Firewall(self.table, self.name, self.subnet, self.icc)


def directory(root: str) -> str:
    return os.path.join(root, "network")


def load(root: str) -> Bridge | None:
    try:
        return Bridge(read_json(os.path.join(directory(root), "bridge.json")))
    except FileNotFoundError:
        return None


def ensure(root: str, settings) -> Bridge:
    """The bridge the settings ask for, made or adopted if needed. Settings that differ from
    the bridge in use are applied only while no container holds an address on it."""
    current = load(root)
    if current is not None and _matches(current, settings) and os.path.exists(f"/sys/class/net/{current.name}") \
            and current.revision == FIREWALL_REVISION:
        return current
    make_dirs(directory(root))
    with Lock(os.path.join(directory(root), "lock")):
        current = load(root)
        exists = current is not None and os.path.exists(f"/sys/class/net/{current.name}")
        if current is not None and exists and _matches(current, settings):
            if current.revision != FIREWALL_REVISION:
                _upgrade_firewall(root, current)
            return current
        if current is not None and not _matches(current, settings):
            holders = pool(root, current).leases()
            if holders:
                raise Conflict(f"cannot change the bridge settings while {len(holders)} container(s) use bridge "
                               f"{current.name} ({current.subnet}): stop them first")
            remove(root, current)
        bridge = _make(root, settings, current if current is not None and _matches(current, settings) else None)
        write_json(os.path.join(directory(root), "bridge.json"), bridge.state())
        return bridge


def _upgrade_firewall(root: str, bridge: Bridge) -> None:
    """A bridge an older berth made: add what its table lacks, keeping its published ports."""
    if bridge.iptables:
        bridge.firewall().add_loopback_guard()
    bridge.revision = FIREWALL_REVISION
    write_json(os.path.join(directory(root), "bridge.json"), bridge.state())


def _matches(bridge: Bridge, settings) -> bool:
    if bridge.name != settings.bridge_name or bridge.created == settings.user_bridge:
        return False
    if settings.bip and (bridge.gateway, bridge.prefix_len) != _split(settings.bip):
        return False
    return (bridge.fixed_cidr or "") == _network(settings.fixed_cidr) and bridge.mtu == settings.mtu and \
        bridge.icc == settings.icc and bridge.iptables == settings.iptables


def _split(interface: str) -> tuple[str, int]:
    address, _, prefix = interface.partition("/")
    return address, int(prefix)


def _network(cidr: str) -> str:
    if not cidr:
        return ""

    return parse_cidr(cidr if "/" in cidr else cidr + "/32")[2]


def _mac_follows_ports(name: str) -> bool:
    """A bridge's MAC is the lowest of its ports' until one is set (addr_assign_type 3)."""
    try:
        with open(f"/sys/class/net/{name}/addr_assign_type") as f:
            return f.read().strip() != "3"
    except OSError:
        return False


def _random_mac() -> str:
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in octets)


def _make(root: str, settings, previous: Bridge | None) -> Bridge:
    """Create (or adopt) the bridge device, then its sysctls and firewall."""
    import ipaddress  # lazy: only creating the bridge

    from berth.network.nft import table_name  # lazy: only creating the bridge touches nftables

    name = settings.bridge_name
    present = os.path.exists(f"/sys/class/net/{name}")
    created = not settings.user_bridge
    if settings.user_bridge:
        if not present:
            raise InvalidArgument(f"bridge device with non default name {name} must be created manually")
        address = interface_address(name)
        if address is None:
            raise InvalidArgument(f"bridge {name} has no IPv4 address: give it one (ip addr add ... dev {name})")
    elif settings.bip:
        address = settings.bip
    elif previous is not None:
        address = f"{previous.gateway}/{previous.prefix_len}"
    elif present and interface_address(name):
        address = interface_address(name)  # berth's bridge from an earlier root: keep its subnet, like docker0
    else:
        subnet = choose_subnet(host_routes())
        address = f"{next(subnet.hosts())}/{subnet.prefixlen}"
    interface = ipaddress.ip_interface(address)
    if settings.fixed_cidr and not ipaddress.ip_network(settings.fixed_cidr, strict=False).subnet_of(interface.network):
        raise InvalidArgument(f"fixed-cidr {settings.fixed_cidr} is not inside the bridge subnet {interface.network}")
    if created:
        with Netlink() as nl:
            if not present:
                nl.add_bridge(name)
            # Set after creation: only then does the kernel keep it instead of following the ports'.
            nl.set_link(name, mtu=settings.mtu)
            if _mac_follows_ports(name):  # as docker: else the gateway's MAC moves as containers come and go
                nl.set_link(name, mac=_random_mac())
            if interface_address(name) != str(interface):
                nl.add_address(name, str(interface.ip), interface.network.prefixlen)
            nl.set_link(name, up=True)
    bridge = Bridge({"name": name, "subnet": str(interface.network), "gateway": str(interface.ip),
                     "fixed_cidr": _network(settings.fixed_cidr), "mtu": settings.mtu, "icc": settings.icc,
                     "iptables": settings.iptables, "created": created, "table": table_name(root),
                     "revision": FIREWALL_REVISION})
    try:
        if settings.ip_forward:
            _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        if settings.iptables:
            # Published ports reach containers from the host's 127.0.0.1 by kernel NAT, not a proxy.
            _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
            bridge.firewall().setup()
            from berth.network.nft import isolate_from_user_networks  # lazy: only creating the bridge

            isolate_from_user_networks(root, name)
    except BaseException:
        remove(root, bridge)  # nothing half-made stays behind
        raise
    return bridge


def remove(root: str, bridge: Bridge) -> None:
    """Undo what berth made for `bridge`: its firewall tables and, if berth created the
    device, the device. A user's bridge is left as it was."""
    bridge.firewall().teardown()
    if bridge.created and os.path.exists(f"/sys/class/net/{bridge.name}"):
        with Netlink() as nl:
            nl.delete_link(bridge.name)
    try:
        os.unlink(os.path.join(directory(root), "bridge.json"))
    except FileNotFoundError:
        pass


def _sysctl(path: str, value: str) -> None:
    with open(path, "r+") as f:
        if f.read().strip() != value:
            f.seek(0)
            f.write(value)


def interface_address(name: str) -> str | None:
    """The first IPv4 address of `name` as "a.b.c.d/len", or None (two ioctls, no netlink dump)."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("256s", name.encode())
        try:
            address = fcntl.ioctl(sock.fileno(), 0x8915, request)[20:24]  # SIOCGIFADDR
            mask = fcntl.ioctl(sock.fileno(), 0x891B, request)[20:24]  # SIOCGIFNETMASK
        except OSError:
            return None
    finally:
        sock.close()
    return f"{_socket.inet_ntoa(address)}/{bin(int.from_bytes(mask, 'big')).count('1')}"


def pool(root: str, bridge: Bridge):
    return Pool(os.path.join(directory(root), "leases"), bridge.subnet, bridge.gateway, bridge.fixed_cidr or None)


def mac_address(ip: str) -> str:
    """docker's MAC for an IPv4 address: 02:42 then the address's four bytes."""
    return "02:42:" + ":".join(f"{int(part):02x}" for part in ip.split("."))


def veth_name(endpoint_id: str) -> str:
    """The host end of a container's veth: berth's prefix, unique per start."""
    return "berth" + endpoint_id[:10]


def attach(pid: int, bridge: Bridge, ip: str, veth: str, mac: str | None = None, link_local: list[str] = (),
           ifname: str = "eth0", route: bool = True) -> None:
    """Give the container whose pid 1 is `pid` its `ifname` on the bridge (its MAC `mac`, else
    docker's derived from `ip`, and its --link-local-ip addresses as docker adds them: /16 for
    IPv4, /64 for IPv6): the veth's peer is created directly inside its network namespace, then
    addressed there, and the default route goes through the bridge's gateway if `route`.
    `bridge` is any object with name, mtu, prefix_len and gateway (a user network's too)."""
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Netlink() as nl:
            nl.add_veth(veth, ifname, mtu=bridge.mtu, master=bridge.name, up=True, peer_netns_fd=netns,
                        peer_mac=mac or mac_address(ip))
        _sysctl(f"/sys/class/net/{veth}/brport/hairpin_mode", "1")  # to itself via a published port, as docker
        with in_netns(netns), Netlink() as nl:
            nl.add_address(ifname, ip, bridge.prefix_len)
            for address in link_local:
                nl.add_address(ifname, address, 64 if ":" in address else 16)
            nl.set_link(ifname, up=True)
            if route:
                nl.add_default_route(bridge.gateway, ifname)
    finally:
        os.close(netns)


def detach(veth: str) -> None:
    """Delete the host end (and with it the container's end) if it is still there. When the
    container's network namespace dies the kernel removes both by itself."""
    if not os.path.exists(f"/sys/class/net/{veth}"):
        return

    try:
        with Netlink() as nl:
            nl.delete_link(veth)
    except OSError:
        pass  # gone meanwhile
