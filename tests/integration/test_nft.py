"""berth's nftables firewall against the real kernel, inside network namespaces each test makes
and throws away (nftables tables are per network namespace): the tables themselves, real TCP
and UDP through the kernel's DNAT, icc=false links, and the exception berth makes in a
docker-style iptables FORWARD drop. Nothing is created in, or sent through, the host's namespace."""

import contextlib
import os
import signal
import socket
import subprocess
import traceback

import pytest

from berth.errors import BerthError, Conflict, InvalidArgument
from berth.network.netlink import Netlink
from berth.network.nft import Firewall, nft, run_command, table_name
from berth.runtime import syscalls as sc
from conftest import collect_child

TABLE = "berth_test"
BR = "brnft0"
SUBNET = "10.213.0.0/24"
GATEWAY = "10.213.0.1"
OUTSIDE_HOST, OUTSIDE = "10.214.0.1", "10.214.0.2"  # the host's end and a client beyond it
A, B = "10.213.0.2", "10.213.0.3"  # two containers on BR
OK, FAILS = 2.0, 1.0  # socket timeouts: for what must work, and for what must not


def isolated(work) -> None:
    """Run work(lab) in a forked child with its own network namespaces; its failure fails here."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        report = b"ok"
        try:
            os.close(read_fd)
            signal.alarm(60)  # a hung child still ends
            work(Lab())
        except BaseException:
            report = traceback.format_exc().encode()
        finally:
            os.write(write_fd, report)
            os._exit(0)
    os.close(write_fd)
    report, status = collect_child(read_fd, pid)
    assert report == b"ok", report.decode() or f"test child ended with status {status}"


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


class Lab:
    """In the test child: a private "host" namespace, and "container"/"outside" namespaces
    held only by file descriptors (no process, no name in /run/netns)."""

    def __init__(self):
        sc.unshare(sc.CLONE_NEWNET)
        self.fds = {"host": os.open("/proc/self/ns/net", os.O_RDONLY)}
        with Netlink() as nl:
            nl.set_link("lo", up=True)

    def enter(self, name: str) -> None:
        sc.setns(self.fds[name], sc.CLONE_NEWNET)

    @contextlib.contextmanager
    def inside(self, name: str):
        self.enter(name)
        try:
            yield
        finally:
            self.enter("host")

    def namespace(self, name: str) -> None:
        sc.unshare(sc.CLONE_NEWNET)
        self.fds[name] = os.open("/proc/self/ns/net", os.O_RDONLY)
        with Netlink() as nl:
            nl.set_link("lo", up=True)
        self.enter("host")

    def bridge(self, br_netfilter: bool = True) -> None:
        with Netlink() as nl:
            nl.add_bridge(BR)
            nl.add_address(BR, GATEWAY, 24)
            nl.set_link(BR, up=True)
        write("/proc/sys/net/ipv4/ip_forward", "1")
        write(f"/proc/sys/net/ipv4/conf/{BR}/route_localnet", "1")
        write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1" if br_netfilter else "0")

    def container(self, name: str, address: str) -> None:
        """A namespace `name` on BR: eth0 with `address`, default route via the gateway."""
        self.namespace(name)
        with Netlink() as nl:
            nl.add_veth(f"v{name}", "eth0", peer_netns_fd=self.fds[name])
            nl.set_link(f"v{name}", master=BR, up=True)
        with self.inside(name), Netlink() as nl:
            nl.set_link("eth0", up=True)
            nl.add_address("eth0", address, 24)
            nl.add_default_route(GATEWAY, "eth0")

    def outside(self) -> None:
        """A client network beyond the host: 10.214.0.0/24, the host at .1."""
        self.namespace("outside")
        with Netlink() as nl:
            nl.add_veth("vout", "eth0", peer_netns_fd=self.fds["outside"])
            nl.add_address("vout", OUTSIDE_HOST, 24)
            nl.set_link("vout", up=True)
        with self.inside("outside"), Netlink() as nl:
            nl.set_link("eth0", up=True)
            nl.add_address("eth0", OUTSIDE, 24)

    def listen(self, name: str, port: int, kind=socket.SOCK_STREAM) -> socket.socket:
        with self.inside(name):
            server = socket.socket(socket.AF_INET, kind)
        server.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            server.listen(8)
        server.settimeout(OK)
        return server

    def tcp(self, client: str, server: socket.socket, address: str, port: int, timeout: float = OK):
        """Connect from namespace `client` to address:port and exchange bytes with `server`
        (the socket that should receive the connection). Returns (reply, peer address the
        server saw), or None when the connection is refused or times out."""
        with self.inside(client):
            conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with conn:
            conn.settimeout(timeout)
            try:
                conn.connect((address, port))
            except OSError:
                return None
            conn.sendall(b"ping")
            accepted, peer = server.accept()
            with accepted:
                accepted.settimeout(OK)
                accepted.sendall(b"pong " + accepted.recv(64))
            return conn.recv(64), peer[0]

    def udp(self, client: str, server: socket.socket, address: str, port: int):
        with self.inside(client):
            conn = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with conn:
            conn.settimeout(OK)
            conn.sendto(b"ping", (address, port))
            data, peer = server.recvfrom(64)
            server.sendto(b"pong " + data, peer)
            return conn.recv(64), peer[0]


def tables() -> list[str]:
    return [line.strip() for line in nft("list", "tables")[1].splitlines()]


def iptables_rules(chain: str) -> list[str]:
    return [line for line in sh("iptables", "-S", chain).splitlines() if line.startswith("-A ")]


# -- names, validation, the command helper ---------------------------------------------------

def test_table_name():
    assert table_name("/var/lib/berth") == "berth"
    assert table_name("/var/lib/berth/") == "berth"
    other = table_name("/tmp/berth-test-1/root")
    assert other.startswith("berth_") and len(other) == 14 and all(c in "0123456789abcdef" for c in other[6:])
    assert other != table_name("/tmp/berth-test-2/root")


def test_invalid_values_never_reach_nft():
    with pytest.raises(InvalidArgument):
        Firewall("berth; flush ruleset", BR, SUBNET)
    with pytest.raises(InvalidArgument):
        Firewall(TABLE, 'br"0', SUBNET)
    with pytest.raises(InvalidArgument):
        Firewall(TABLE, BR, "10.213.0.0")
    fw = Firewall(TABLE, BR, SUBNET)
    for mapping in [("icmp", "", 80, A, 80), ("tcp", "", 0, A, 80), ("tcp", "", 80, "10.213.0", 80),
                    ("tcp", "::", 80, A, 80), ("tcp", "", 80, A, 70000)]:
        with pytest.raises(InvalidArgument):
            fw.publish([mapping])


def test_run_command_feeds_stdin_and_collects_both_outputs():
    big = os.urandom(300_000)  # more than a pipe holds, both ways
    status, out, err = run_command(["/bin/sh", "-c", "cat; echo oops >&2; exit 3"], big)
    assert (status, out, err) == (3, big, b"oops\n")
    assert run_command(["/bin/true"]) == (0, b"", b"")


# -- the tables ---------------------------------------------------------------------------

def test_setup_is_idempotent_and_teardown_leaves_foreign_tables():
    def work(lab):
        fw = Firewall(TABLE, BR, SUBNET, icc=False)
        assert not fw.exists()
        fw.teardown()  # nothing there: fine, and it creates nothing (not even `ip filter`)
        assert tables() == []
        nft(script="table ip other {\n chain input { type filter hook input priority 0; tcp dport 22 accept; }\n}\n")
        foreign = nft("list", "table", "ip", "other")[1]

        fw.setup()
        first = nft("list", "ruleset")[1]
        fw.setup()
        assert nft("list", "ruleset")[1] == first
        assert fw.exists()
        assert tables() == ["table ip other", f"table ip {TABLE}", f"table bridge {TABLE}"]
        ours = nft("list", "table", "ip", TABLE)[1]
        assert "map publish_any" in ours and "map publish_addr" in ours
        assert f'ip saddr {SUBNET} oifname != "{BR}" masquerade' in ours
        assert "chain forward" in nft("list", "table", "bridge", TABLE)[1]

        fw.publish([("tcp", "", 8080, A, 80)])
        fw.setup()  # recreating starts empty: the engine publishes again after it
        assert "elements" not in nft("list", "map", "ip", TABLE, "publish_any")[1]

        fw.teardown()
        assert not fw.exists()
        assert tables() == ["table ip other"]
        assert nft("list", "table", "ip", "other")[1] == foreign
        fw.teardown()

        Firewall(TABLE, BR, SUBNET, icc=True).setup()  # icc: no forward chain at all
        bridge_table = nft("list", "table", "bridge", TABLE)[1]
        assert "set links" in bridge_table and "chain" not in bridge_table

    isolated(work)


def test_publish_conflicts_and_unpublish_of_absent_entries():
    def work(lab):
        fw = Firewall(TABLE, BR, SUBNET)
        with pytest.raises(BerthError, match="No such file or directory"):
            fw.publish([("tcp", "", 8080, A, 80)])  # no table yet: nft's own error
        fw.setup()
        fw.publish([("tcp", "", 8080, A, 80), ("udp", "127.0.0.1", 53, A, 53)])
        fw.publish([("tcp", "", 8080, A, 80)])  # the same again is fine
        with pytest.raises(Conflict, match="Bind for 0.0.0.0:8080 failed: port is already allocated"):
            fw.publish([("tcp", "", 9090, B, 90), ("tcp", "", 8080, B, 80)])
        assert "9090" not in nft("list", "table", "ip", TABLE)[1]  # one transaction: all or nothing
        fw.unpublish([("tcp", "", 8080, B, 80), ("tcp", "", 7, B, 7), ("udp", "127.0.0.1", 53, A, 53)])
        listing = nft("list", "table", "ip", TABLE)[1]
        assert "tcp . 8080 : 10.213.0.2 . 80" in listing  # another container's entry stays
        assert "udp . 53" not in listing

    isolated(work)


# -- real traffic -------------------------------------------------------------------------

@pytest.mark.parametrize("br_netfilter", [True, False], ids=["br_netfilter", "no_br_netfilter"])
def test_published_ports_carry_traffic(br_netfilter):
    def work(lab):
        lab.bridge(br_netfilter)
        lab.container("a", A)
        lab.container("b", B)
        lab.outside()
        fw = Firewall(TABLE, BR, SUBNET)
        fw.setup()
        web = lab.listen("a", 80)
        dns = lab.listen("a", 53, socket.SOCK_DGRAM)
        published = [("tcp", "", 8080, A, 80), ("tcp", OUTSIDE_HOST, 8081, A, 80), ("udp", "", 5353, A, 53)]
        fw.publish(published)

        assert lab.tcp("host", web, "127.0.0.1", 8080) == (b"pong ping", GATEWAY)  # masqueraded from lo
        assert lab.tcp("host", web, GATEWAY, 8080) == (b"pong ping", GATEWAY)
        assert lab.tcp("outside", web, OUTSIDE_HOST, 8080) == (b"pong ping", OUTSIDE)  # client kept
        assert lab.tcp("b", web, GATEWAY, 8080) == (b"pong ping", GATEWAY)  # hairpin
        assert lab.tcp("b", web, OUTSIDE_HOST, 8080) == (b"pong ping", GATEWAY)
        assert lab.udp("outside", dns, OUTSIDE_HOST, 5353) == (b"pong ping", OUTSIDE)
        # an address-specific mapping answers on that address only
        assert lab.tcp("outside", web, OUTSIDE_HOST, 8081) == (b"pong ping", OUTSIDE)
        assert lab.tcp("host", web, GATEWAY, 8081, FAILS) is None
        # containers reach beyond the host masqueraded as the host
        beyond = lab.listen("outside", 9000)
        assert lab.tcp("a", beyond, OUTSIDE, 9000) == (b"pong ping", OUTSIDE_HOST)

        fw.unpublish(published)
        assert lab.tcp("host", web, "127.0.0.1", 8080, FAILS) is None
        assert lab.tcp("outside", web, OUTSIDE_HOST, 8080, FAILS) is None
        assert lab.tcp("outside", web, OUTSIDE_HOST, 8081, FAILS) is None

    isolated(work)


@pytest.mark.parametrize("br_netfilter", [True, False], ids=["br_netfilter", "no_br_netfilter"])
def test_icc_false_allows_only_links(br_netfilter):
    def work(lab):
        lab.bridge(br_netfilter)
        lab.container("a", A)
        lab.container("b", B)
        fw = Firewall(TABLE, BR, SUBNET, icc=False)
        fw.setup()
        a80, b80, b81 = lab.listen("a", 80), lab.listen("b", 80), lab.listen("b", 81)

        assert lab.tcp("a", b80, B, 80, FAILS) is None
        assert lab.tcp("host", b80, B, 80) == (b"pong ping", GATEWAY)  # the host is not another container

        fw.allow_link(A, B, [("tcp", 80)])
        assert lab.tcp("a", b80, B, 80) == (b"pong ping", A)
        assert lab.tcp("b", a80, A, 80, FAILS) is None  # the link is one way
        assert lab.tcp("a", b81, B, 81, FAILS) is None  # and for its ports only

        fw.disallow_link(A, B, [("tcp", 80)])
        fw.disallow_link(A, B, [("tcp", 80)])  # absent is fine
        assert lab.tcp("a", b80, B, 80, FAILS) is None

    isolated(work)


# -- the exception in iptables-nft's FORWARD drop -----------------------------------------------

def docker_like_filter(docker_user: bool) -> None:
    sh("iptables", "-P", "FORWARD", "DROP")
    if docker_user:
        sh("iptables", "-N", "DOCKER-USER")
        sh("iptables", "-A", "DOCKER-USER", "-s", "192.0.2.7/32", "-j", "DROP")  # the user's own rule
        sh("iptables", "-A", "DOCKER-USER", "-j", "RETURN")
        sh("iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
    else:
        sh("iptables", "-A", "FORWARD", "-s", "192.0.2.7/32", "-j", "DROP")


def test_forward_drop_gets_our_exception_in_docker_user():
    def work(lab):
        lab.bridge(br_netfilter=True)
        lab.container("a", A)
        lab.container("b", B)
        lab.outside()
        docker_like_filter(docker_user=True)
        before = iptables_rules("DOCKER-USER")
        b80 = lab.listen("b", 80)
        assert lab.tcp("a", b80, B, 80, FAILS) is None  # the premise: docker's drop kills our bridge

        fw = Firewall(TABLE, BR, SUBNET)
        fw.setup()
        fw.setup()
        comment = f'-m comment --comment "berth:{TABLE}" -j ACCEPT'
        assert iptables_rules("DOCKER-USER") == [f"-A DOCKER-USER -i {BR} {comment}",
                                                 f"-A DOCKER-USER -o {BR} {comment}", *before]
        assert lab.tcp("a", b80, B, 80) == (b"pong ping", A)
        fw.publish([("tcp", "", 8080, B, 80)])
        assert lab.tcp("outside", b80, OUTSIDE_HOST, 8080) == (b"pong ping", OUTSIDE)

        fw.teardown()
        assert iptables_rules("DOCKER-USER") == before
        assert lab.tcp("a", b80, B, 80, FAILS) is None

    isolated(work)


def test_forward_drop_without_docker_user_gets_our_exception_on_top():
    def work(lab):
        lab.bridge(br_netfilter=True)
        lab.container("a", A)
        lab.container("b", B)
        docker_like_filter(docker_user=False)
        before = iptables_rules("FORWARD")
        fw = Firewall(TABLE, BR, SUBNET)
        fw.setup()
        assert iptables_rules("FORWARD")[:2] == [f'-A FORWARD -i {BR} -m comment --comment "berth:{TABLE}" -j ACCEPT',
                                                 f'-A FORWARD -o {BR} -m comment --comment "berth:{TABLE}" -j ACCEPT']
        assert iptables_rules("FORWARD")[2:] == before
        b80 = lab.listen("b", 80)
        assert lab.tcp("a", b80, B, 80) == (b"pong ping", A)
        fw.teardown()
        assert iptables_rules("FORWARD") == before

    isolated(work)


def test_no_drop_policy_no_exception():
    def work(lab):
        fw = Firewall(TABLE, BR, SUBNET)
        fw.setup()  # no `ip filter` at all: none is created
        assert tables() == [f"table ip {TABLE}", f"table bridge {TABLE}"]

        sh("iptables", "-N", "DOCKER-USER")
        sh("iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
        before = sh("iptables", "-S")
        fw.setup()
        assert sh("iptables", "-S") == before

        sh("iptables", "-P", "FORWARD", "DROP")
        fw.setup()
        assert f"berth:{TABLE}" in sh("iptables", "-S", "DOCKER-USER")
        sh("iptables", "-P", "FORWARD", "ACCEPT")  # the drop went away: so does our exception
        fw.setup()
        assert sh("iptables", "-S") == before
        fw.teardown()
        assert sh("iptables", "-S") == before

    isolated(work)
