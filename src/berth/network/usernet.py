"""User-defined bridge networks on the host: each one's bridge device, and their firewall in one
nftables table per root (`<root's table>_net`, families ip and bridge) with docker's semantics:
isolation between berth's bridges (DOCKER-ISOLATION), icc per network, internal networks
that reach nothing beyond their bridge, masquerade for the others."""

import os

from berth.errors import Conflict, InvalidArgument
from berth.network.bridge import _random_mac, _sysctl
from berth.network.netlink import Netlink
from berth.network.nft import nft, sync_forward_exception, user_table_name


class UserBridge:
    """What the host side of one user network is: bridge name, subnet, gateway, options."""

    __slots__ = ("id", "name", "subnet", "gateway", "mtu", "icc", "internal", "masquerade")

    def __init__(self, network_id: str, name: str, subnet: str, gateway: str, mtu: int = 1500, icc: bool = True,
                 internal: bool = False, masquerade: bool = True):
        if not name or len(name) > 15 or any(c in name for c in ' "\\/\t\n:') or not name.isprintable():
            raise InvalidArgument(f"invalid bridge name: {name!r}")
        self.id, self.name, self.subnet, self.gateway = network_id, name, subnet, gateway
        self.mtu, self.icc, self.internal, self.masquerade = mtu, icc, internal, masquerade

    @property
    def prefix_len(self) -> int:
        return int(self.subnet.partition("/")[2])

    @property
    def chain(self) -> str:
        return "n" + self.id[:12]


def firewall_table(root: str) -> str:
    return user_table_name(root)


def bridge_name(network_id: str) -> str:
    """The bridge of a user network without --opt com.docker.network.bridge.name: berth's
    prefix (docker's is br-), unique per network."""
    return "berth-" + network_id[:9]


def create(root: str, bridge: UserBridge, default_bridge: str | None, again: bool = False) -> None:
    """Make the bridge device and its firewall; on any failure, nothing of it is left. `again`:
    the network exists and its making is being completed (a create killed midway, a reboot):
    a device of that name with nothing plugged in is made afresh, one in use is kept as it is,
    and the firewall (idempotent) is applied either way."""
    device = f"/sys/class/net/{bridge.name}"
    if os.path.exists(device) and not again:
        raise Conflict(f"bridge name {bridge.name} is already in use by another interface")
    try:
        if again and os.path.exists(device) and not os.listdir(f"{device}/brif"):
            with Netlink() as nl:
                nl.delete_link(bridge.name)
        if not os.path.exists(device):
            with Netlink() as nl:
                nl.add_bridge(bridge.name)
                nl.set_link(bridge.name, mtu=bridge.mtu)
                nl.set_link(bridge.name, mac=_random_mac())  # as docker: the gateway's MAC stays put
                nl.add_address(bridge.name, bridge.gateway, bridge.prefix_len)
                nl.set_link(bridge.name, up=True)
        if not bridge.internal:
            _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            # ports published on 127.0.0.1 reach its containers by kernel NAT, as the default
            # bridge's do; the input chain below guards loopback as nft.Firewall.loopback_guard
            _sysctl(f"/proc/sys/net/ipv4/conf/{bridge.name}/route_localnet", "1")
        table = firewall_table(root)
        nft(script=_base(table) + _network_rules(table, bridge, default_bridge))
        sync_forward_exception(bridge.name, f"berth:{table}:{bridge.name}", install=True)
    except BaseException:
        if not again:  # a network being completed keeps what it has: the next use tries again
            remove(root, bridge, last=False)
        raise


def remove(root: str, bridge: UserBridge, last: bool) -> None:
    """Undo create(): firewall entries (the whole table when `last`), bridge device. Idempotent."""
    table = firewall_table(root)
    status, _, _ = nft("list", "table", "ip", table, check=False)
    if status == 0:
        if last:
            nft(script="".join(f"add table {f} {table}\ndelete table {f} {table}\n" for f in ("ip", "bridge")))
        else:
            nft(script=_remove_rules(table, bridge))
    sync_forward_exception(bridge.name, f"berth:{table}:{bridge.name}", install=False)
    if os.path.exists(f"/sys/class/net/{bridge.name}"):
        try:
            with Netlink() as nl:
                nl.delete_link(bridge.name)
        except FileNotFoundError:
            pass


def _base(t: str) -> str:
    """The table's frame, (re)written idempotently: base chains dispatch by bridge to each
    network's chains through verdict maps, so a network is added or removed as elements.
    Published ports go through the default bridge's DNAT maps; a client on the host's
    loopback is masqueraded into our bridges, and CVE-2020-8558's guard applies to them."""
    return f"""add table ip {t}
add set ip {t} bridges {{ type ifname; }}
add map ip {t} from_net {{ type ifname : verdict; }}
add map ip {t} to_net {{ type ifname : verdict; }}
add map ip {t} nat_net {{ type ifname : verdict; }}
add chain ip {t} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain ip {t} forward
add rule ip {t} forward iifname vmap @from_net
add rule ip {t} forward oifname vmap @to_net
add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
flush chain ip {t} postrouting
add rule ip {t} postrouting iifname vmap @nat_net
add rule ip {t} postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
add chain ip {t} input {{ type filter hook input priority filter; policy accept; }}
flush chain ip {t} input
add rule ip {t} input iifname @bridges ip saddr 127.0.0.0/8 drop
add rule ip {t} input iifname @bridges ip daddr 127.0.0.0/8 ct status dnat accept
add rule ip {t} input iifname @bridges ip daddr 127.0.0.0/8 ct state established accept
add rule ip {t} input iifname @bridges ip daddr 127.0.0.0/8 drop
add table bridge {t}
add set bridge {t} noicc {{ type ipv4_addr; flags interval; }}
add chain bridge {t} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain bridge {t} forward
add rule bridge {t} forward ip saddr @noicc ip daddr @noicc drop
"""


def _network_rules(t: str, bridge: UserBridge, default_bridge: str | None) -> str:
    """One network's chains: leaving its bridge (from_), entering it (to_), NAT (nat_).
    With br_netfilter, traffic bridged within it also passes the forward hook (icc there);
    without, the bridge family's noicc set stops it."""
    c, b, s = bridge.chain, bridge.name, bridge.subnet
    lines = [f"add chain ip {t} from_{c}", f"flush chain ip {t} from_{c}",
             f"add rule ip {t} from_{c} oifname \"{b}\" {'accept' if bridge.icc else 'drop'}",
             f"add chain ip {t} to_{c}", f"flush chain ip {t} to_{c}",
             f"add chain ip {t} nat_{c}", f"flush chain ip {t} nat_{c}"]
    if bridge.internal:  # nothing in or out but its own bridge
        lines += [f"add rule ip {t} from_{c} drop", f'add rule ip {t} to_{c} iifname != "{b}" drop']
    else:  # to and from berth's other bridges (the default one too): docker's isolation
        lines += [f"add rule ip {t} from_{c} oifname @bridges drop", f"add rule ip {t} to_{c} iifname @bridges drop"]
        if bridge.masquerade:
            lines.append(f'add rule ip {t} nat_{c} oifname != "{b}" masquerade')
    lines += [f'add element ip {t} bridges {{ "{b}" }}',
              f'add element ip {t} from_net {{ "{b}" : jump from_{c} }}',
              f'add element ip {t} to_net {{ "{b}" : jump to_{c} }}',
              f'add element ip {t} nat_net {{ "{b}" : jump nat_{c} }}']
    if default_bridge:
        lines.append(f'add element ip {t} bridges {{ "{default_bridge}" }}')
    if not bridge.icc:
        lines.append(f"add element bridge {t} noicc {{ {s} }}")
    return "".join(line + "\n" for line in lines)


def _remove_rules(t: str, bridge: UserBridge) -> str:
    """Its elements and chains; each element added first so that deleting one that is not
    there (a create killed midway) is no error (nft 1.0.6 has no `destroy`)."""
    c, b, s = bridge.chain, bridge.name, bridge.subnet
    elements = [("ip", "bridges", f'"{b}"'), ("ip", "from_net", f'"{b}" : jump from_{c}'),
                ("ip", "to_net", f'"{b}" : jump to_{c}'), ("ip", "nat_net", f'"{b}" : jump nat_{c}'),
                ("bridge", "noicc", s)]
    lines = []
    for kind in ("from", "to", "nat"):
        lines += [f"add chain ip {t} {kind}_{c}"]
    for family, name, element in elements:
        key = element.partition(" : ")[0]
        lines += [f"add element {family} {t} {name} {{ {element} }}", f"delete element {family} {t} {name} {{ {key} }}"]
    for kind in ("from", "to", "nat"):
        lines += [f"flush chain ip {t} {kind}_{c}", f"delete chain ip {t} {kind}_{c}"]
    return "".join(line + "\n" for line in lines)
