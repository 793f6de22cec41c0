"""Port publishing end to end through the real `berth` CLI: every -p form and what `port`,
`ps` and `inspect` say about it, TCP and UDP through the kernel's DNAT (from the host, from
another container, from an "outside host" namespace this file makes), -P, conflicts, bad
input, network modes, and that every way a run ends takes its map elements, host ports,
lease and veth along. Traffic goes only to 127.0.0.1, to the test bridge's gateway and
containers, and to the /30 this file puts on its own veth pair."""

import contextlib
import ipaddress
import json
import os
import random
import re
import signal
import socket
import subprocess
import time

import pytest

from berth.network.netlink import Netlink, in_netns
from berth.network.nft import table_name
from berth.network.ports import ephemeral_range
from berth.runtime import syscalls as sc
from conftest import refused, wait_for

HTTP_GET = b"GET / HTTP/1.0\r\n\r\n"
PAGE = "published page"
# httpd on 80 and 81 in one container; its page says PAGE
HTTPD = (f"mkdir -p /www && echo '{PAGE}' > /www/index.html && httpd -p 81 -h /www && "
         "exec httpd -f -p 80 -h /www")


# -- what the test looks at ---------------------------------------------------------------

def gateway(b) -> str:
    return b.subnet.rsplit(".", 1)[0] + ".1"


def inspect(b, ref: str, template: str) -> str:
    return b.ok("inspect", "-f", template, ref).strip()


def inspect_json(b, ref: str, template: str):
    return json.loads(inspect(b, ref, "{{json " + template + "}}"))


def visible(directory: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except FileNotFoundError:
        return []


def leases(b) -> list[str]:
    return visible(os.path.join(b.root, "network", "leases"))


def reservations(b) -> list[str]:
    return visible(os.path.join(b.run_root, "network", "ports"))


def berth_veths(b) -> list[str]:
    """Host ends of container veths enslaved to this test's bridge."""
    return [n for n in visible(f"/sys/class/net/{b.bridge}/brif") if n.startswith("berth")]


def map_elements(b) -> list[str]:
    """The elements of berth's publish_any and publish_addr maps for this root, as nft prints them."""
    found = []
    for name in ("publish_any", "publish_addr"):
        result = subprocess.run(["nft", "list", "map", "ip", table_name(b.root), name], capture_output=True,
                                text=True)
        if result.returncode != 0:
            refused(result, 1, "No such file or directory")  # no table: no elements (and no other failure)
            continue
        match = re.search(r"elements = \{(.*?)\}", result.stdout, re.S)
        if match:
            found += [f"{name}: {' '.join(e.split())}" for e in match.group(1).split(",")]
    return sorted(found)


def footprint(b) -> dict:
    return {"elements": map_elements(b), "reservations": reservations(b), "leases": leases(b),
            "veths": berth_veths(b)}


def settled_footprint(b, expected: dict) -> dict:
    """The footprint, the veths given time to match `expected` (the kernel removes a veth
    asynchronously when its container's network namespace dies); elements, host port
    reservations and leases must already be as expected when the command has returned."""
    now = footprint(b)
    if now["veths"] != expected["veths"]:
        wait_for(lambda: berth_veths(b) == expected["veths"], what=f"the veths to be {expected['veths']}")
        now["veths"] = berth_veths(b)
    return now


EMPTY = {"elements": [], "reservations": [], "leases": [], "veths": []}


# -- host ports ---------------------------------------------------------------------------

def _free_on_host(port: int) -> bool:
    """Nobody on the host uses `port`, on IPv4 nor on IPv6 (where its [::] twin is published)."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(family, kind) as probe:
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    probe.bind((address, port))
                except OSError:
                    return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` consecutive ports in 20000-30000 (below the ephemeral range) that the host does
    not use and that no nftables map on the host (another engine root's) already publishes."""
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    mapped = {int(p) for p in re.findall(r"(?:tcp|udp|sctp) \. (\d+) :", ruleset)}
    for _ in range(200):
        base = random.randint(20000, 30000 - count)
        ports = list(range(base, base + count))
        if not mapped.intersection(ports) and all(_free_on_host(p) for p in ports):
            return ports
    raise AssertionError("no free block of host ports in 20000-30000")


# -- traffic --------------------------------------------------------------------------------

def http_get(address: str, port: int, timeout: float = 2.0, sock: socket.socket | None = None) -> str | None:
    """The body httpd answers at address:port, or None when nothing answers (refused, timeout)."""
    conn = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with conn:
        conn.settimeout(timeout)
        try:
            conn.connect((address, port))
            conn.sendall(HTTP_GET)
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
        except OSError:
            return None
    head, _, body = reply.decode(errors="replace").partition("\r\n\r\n")
    assert head.startswith("HTTP/1."), reply
    return body.strip()


def wait_http(address: str, port: int) -> None:
    wait_for(lambda: http_get(address, port, timeout=1.0) == PAGE, what=f"httpd to answer on {address}:{port}")


def container_get(b, address: str, port: int, *run_args: str) -> str:
    """What a client inside a berth container (a new one, or `exec` into run_args[0]) reads."""
    client = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w2 {address} {port}"
    if run_args:
        result = b("exec", *run_args, "sh", "-c", client)
    else:
        result = b("run", "--rm", "busybox", "sh", "-c", client)
    return result.stdout.replace("\r\n", "\n").partition("\n\n")[2].strip()  # text mode may keep \r or not


@contextlib.contextmanager
def netns_of(b, ref: str):
    """A descriptor of the running container's network namespace."""
    pid = int(inspect(b, ref, "{{.State.Pid}}"))
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def socket_in(netns_fd: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket that lives in another network namespace (a socket keeps the one it was made in)."""
    with in_netns(netns_fd):
        return socket.socket(socket.AF_INET, kind)


def udp_exchange(server: socket.socket, address: str, port: int, client: socket.socket | None = None):
    """Send from the host (or `client`) to address:port, answer from `server`: (reply, peer the server saw)."""
    conn = client or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with conn:
        conn.settimeout(2.0)
        conn.sendto(b"ping", (address, port))
        data, peer = server.recvfrom(64)
        server.sendto(b"pong " + data, peer)
        return conn.recv(64), peer[0]


def outside_subnet(*avoid: str) -> ipaddress.IPv4Network:
    """A /30 in 10.200-254.x that overlaps no route of the host nor `avoid`."""
    from berth.network.ipam import host_routes

    taken = host_routes() + [ipaddress.ip_network(a) for a in avoid]
    while True:
        net = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}."
                                   f"{4 * random.randint(0, 63)}/30")
        if not any(net.overlaps(t) for t in taken):
            return net


@contextlib.contextmanager
def outside_host(*avoid: str):
    """Another machine next to the host: a network namespace joined to the host's by a veth
    pair, host end "bto<hex>". Yields (host-side address, its own address, namespace fd). The
    namespace is held only by the descriptor; both are gone afterwards, even on failure."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only makes the namespace, then waits for the parent to hold it
        try:
            os.close(ready_r)
            signal.alarm(30)
            sc.unshare(sc.CLONE_NEWNET)
            os.write(ready_w, b"x")
            time.sleep(30)
        finally:
            os._exit(0)
    os.close(ready_w)
    netns, veth = -1, "bto" + os.urandom(4).hex()
    try:
        assert os.read(ready_r, 1) == b"x", "the namespace child failed"
        netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        net = outside_subnet(*avoid)
        host_address, peer_address = (str(a) for a in net.hosts())
        with Netlink() as nl:
            nl.add_veth(veth, "eth0", peer_netns_fd=netns)
            nl.add_address(veth, host_address, 30)
            nl.set_link(veth, up=True)
        with in_netns(netns), Netlink() as nl:
            nl.set_link("lo", up=True)
            nl.set_link("eth0", up=True)
            nl.add_address("eth0", peer_address, 30)
        yield host_address, peer_address, netns
    finally:
        os.close(ready_r)
        os.kill(pid, signal.SIGKILL)  # our own child
        os.waitpid(pid, 0)
        if os.path.exists(f"/sys/class/net/{veth}"):
            with Netlink() as nl:
                nl.delete_link(veth)
        if netns >= 0:
            os.close(netns)


def outside_get(netns: int, address: str, port: int) -> str | None:
    """http_get from the outside namespace."""
    return http_get(address, port, timeout=1.0, sock=socket_in(netns))


# -- 1. the -p forms and how berth shows them ---------------------------------------------

def test_every_publish_form_in_port_ps_and_inspect(busybox):
    h, h2, h3, h4, h5 = free_ports(5)
    low, high = ephemeral_range()
    cid = busybox.ok("run", "-d", "--name", "forms", "-p", f"{h}:80", "-p", f"127.0.0.1:{h2}:81",
                     "-p", "127.0.0.1::82", "-p", "83", "-p", f"{h3}-{h4}:84-85", "-p", f"{h5}:86/udp",
                     "busybox", "sleep", "60").strip()
    ports = inspect_json(busybox, cid, ".NetworkSettings.Ports")
    r82, r83 = int(ports["82/tcp"][0]["HostPort"]), int(ports["83/tcp"][0]["HostPort"])
    assert low <= r82 <= high and low <= r83 <= high and r82 != r83
    # docker 28 (its userland proxy on, a host with IPv6): every address is 0.0.0.0 and [::]
    def both(port):
        return [{"HostIp": "0.0.0.0", "HostPort": str(port)}, {"HostIp": "::", "HostPort": str(port)}]

    assert ports == {
        "80/tcp": both(h),
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(h2)}],
        "82/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(r82)}],
        "83/tcp": both(r83),
        "84/tcp": both(h3),
        "85/tcp": both(h4),
        "86/udp": both(h5),
    }
    # docker keeps the request as given: no address is "", no port is ""
    assert inspect_json(busybox, cid, ".HostConfig.PortBindings") == {
        "80/tcp": [{"HostIp": "", "HostPort": str(h)}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(h2)}],
        "82/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "83/tcp": [{"HostIp": "", "HostPort": ""}],
        "84/tcp": [{"HostIp": "", "HostPort": str(h3)}],
        "85/tcp": [{"HostIp": "", "HostPort": str(h4)}],
        "86/udp": [{"HostIp": "", "HostPort": str(h5)}],
    }
    assert sorted(inspect_json(busybox, cid, ".Config.ExposedPorts")) == [
        "80/tcp", "81/tcp", "82/tcp", "83/tcp", "84/tcp", "85/tcp", "86/udp"]

    assert busybox.ok("port", "forms").splitlines() == [
        f"80/tcp -> 0.0.0.0:{h}", f"80/tcp -> [::]:{h}", f"81/tcp -> 127.0.0.1:{h2}", f"82/tcp -> 127.0.0.1:{r82}",
        f"83/tcp -> 0.0.0.0:{r83}", f"83/tcp -> [::]:{r83}", f"84/tcp -> 0.0.0.0:{h3}", f"84/tcp -> [::]:{h3}",
        f"85/tcp -> 0.0.0.0:{h4}", f"85/tcp -> [::]:{h4}", f"86/udp -> 0.0.0.0:{h5}", f"86/udp -> [::]:{h5}"]
    assert busybox.ok("port", "forms", "81") == f"127.0.0.1:{h2}\n"
    assert busybox.ok("port", "forms", "82/tcp") == f"127.0.0.1:{r82}\n"
    assert busybox.ok("port", "forms", "86/udp") == f"0.0.0.0:{h5}\n[::]:{h5}\n"
    missing = busybox("port", "forms", "99")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.strip().endswith("No public port '99' published for forms"), missing.stderr
    assert busybox("port", "forms", "86").returncode == 1  # tcp unless said otherwise

    assert busybox.ok("ps", "--format", "{{.Names}}|{{.Ports}}") == (
        f"forms|0.0.0.0:{h}->80/tcp, [::]:{h}->80/tcp, 127.0.0.1:{h2}->81/tcp, 127.0.0.1:{r82}->82/tcp, "
        f"0.0.0.0:{r83}->83/tcp, [::]:{r83}->83/tcp, 0.0.0.0:{h3}->84/tcp, [::]:{h3}->84/tcp, "
        f"0.0.0.0:{h4}->85/tcp, [::]:{h4}->85/tcp, 0.0.0.0:{h5}->86/udp, [::]:{h5}->86/udp\n")
    # IPv4 by kernel NAT (7 map elements), [::] by the proxy: 12 host ports reserved
    assert len(map_elements(busybox)) == 7 and len(reservations(busybox)) == 12


# -- 2. traffic ---------------------------------------------------------------------------

def test_tcp_through_published_ports_from_host_containers_and_outside(busybox):
    h, h2 = free_ports(2)
    gw = gateway(busybox)
    busybox.ok("run", "-d", "--name", "web", "-p", f"{h}:80", "-p", f"127.0.0.1:{h2}:81",
               "busybox", "sh", "-c", HTTPD)
    web_ip = inspect(busybox, "web", "{{.NetworkSettings.IPAddress}}")
    wait_http(web_ip, 80)
    wait_http(web_ip, 81)

    assert http_get("127.0.0.1", h) == PAGE
    assert http_get(gw, h) == PAGE
    assert http_get("127.0.0.1", h2) == PAGE
    assert http_get(gw, h2, timeout=1.0) is None  # bound to 127.0.0.1 only
    assert container_get(busybox, gw, h) == PAGE  # hairpin: another container through the gateway
    assert container_get(busybox, gw, h2) == ""

    with outside_host(busybox.subnet) as (host_address, own_address, netns):
        # retried while the new link comes up
        wait_for(lambda: outside_get(netns, host_address, h) == PAGE, what="the page from outside")
        with socket_in(netns) as probe:  # the client really is beyond the host
            probe.connect((host_address, h))
            assert probe.getsockname()[0] == own_address
        assert outside_get(netns, host_address, h2) is None  # the link is up: the port is closed to it

    busybox.ok("stop", "-t", "0", "web")
    assert http_get("127.0.0.1", h, timeout=1.0) is None


def test_container_reaches_its_own_published_port(busybox):
    """docker's hairpin: a container reaches itself through the host's address and its
    published port (with br_netfilter the DNATed packet is bridged back out of the port it
    came in by, which the bridge allows only in hairpin mode)."""
    (h,) = free_ports(1)
    busybox.ok("run", "-d", "--name", "self", "-p", f"{h}:80", "busybox", "sh", "-c", HTTPD)
    wait_http(inspect(busybox, "self", "{{.NetworkSettings.IPAddress}}"), 80)
    assert container_get(busybox, gateway(busybox), h, "self") == PAGE


def test_udp_through_a_published_port(busybox):
    (h5,) = free_ports(1)
    gw = gateway(busybox)
    busybox.ok("run", "-d", "--name", "udp", "-p", f"{h5}:86/udp", "busybox", "sleep", "60")
    # busybox's nc has no -u: the echo server is this test's socket, inside the container's namespace
    with netns_of(busybox, "udp") as netns, socket_in(netns, socket.SOCK_DGRAM) as server:
        server.bind(("0.0.0.0", 86))
        server.settimeout(2.0)
        assert udp_exchange(server, "127.0.0.1", h5) == (b"pong ping", gw)  # masqueraded from loopback
        assert udp_exchange(server, gw, h5)[0] == b"pong ping"
        with outside_host(busybox.subnet) as (host_address, own_address, outside):
            client = socket_in(outside, socket.SOCK_DGRAM)
            assert udp_exchange(server, host_address, h5, client) == (b"pong ping", own_address)  # not NATed
        # tcp on the same number is not published
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.settimeout(1.0)
            assert tcp.connect_ex(("127.0.0.1", h5)) != 0


# -- 3. -P --------------------------------------------------------------------------------

def test_publish_all_maps_image_and_flag_exposed_ports(busybox):
    busybox.import_busybox(busybox.busybox_tar, "exposer:latest", "EXPOSE 7000", 'CMD ["sh"]')
    low, high = ephemeral_range()
    busybox.ok("run", "-d", "--name", "all", "-P", "--expose", "7001-7002", "exposer",
               "nc", "-ll", "-p", "7000", "-e", "echo", "seven")
    ports = inspect_json(busybox, "all", ".NetworkSettings.Ports")
    assert sorted(ports) == ["7000/tcp", "7001/tcp", "7002/tcp"]
    host_ports = {port: int(b[0]["HostPort"]) for port, b in ports.items()}
    # docker 28: 0.0.0.0 and [::], one port number for both
    assert all([(a["HostIp"], a["HostPort"]) for a in b] == [("0.0.0.0", str(host_ports[port])),
                                                             ("::", str(host_ports[port]))]
               for port, b in ports.items())
    assert all(low <= p <= high for p in host_ports.values()) and len(set(host_ports.values())) == 3
    assert busybox.ok("port", "all").splitlines() == [f"{port} -> {address}:{host_ports[port]}"
                                                      for port in ("7000/tcp", "7001/tcp", "7002/tcp")
                                                      for address in ("0.0.0.0", "[::]")]
    assert inspect(busybox, "all", "{{.HostConfig.PublishAllPorts}}") == "true"
    assert inspect_json(busybox, "all", ".HostConfig.PortBindings") == {}
    def reply() -> bytes:
        with socket.socket() as conn:
            conn.settimeout(1.0)
            try:
                conn.connect(("127.0.0.1", host_ports["7000/tcp"]))
                return conn.recv(64)
            except OSError:
                return b""

    wait_for(lambda: reply() == b"seven\n", what="nc's answer through the published port")


# -- 4. conflicts -------------------------------------------------------------------------

def test_port_held_by_a_container_or_a_host_process_is_refused(busybox):
    h, p = free_ports(2)
    busybox.ok("run", "-d", "--name", "holder", "-p", f"{h}:80", "busybox", "sleep", "60")
    held = footprint(busybox)
    assert len(held["elements"]) == 1 and len(held["leases"]) == 1 and len(held["veths"]) == 1

    for name, spec, address in (("second", f"{h}:80", "0.0.0.0"), ("narrower", f"127.0.0.1:{h}:80", "127.0.0.1")):
        result = busybox("run", "-d", "--name", name, "-p", spec, "busybox", "sleep", "60")
        assert result.returncode == 125, result
        assert f"Bind for {address}:{h} failed: port is already allocated" in result.stderr
        assert result.stderr.count("\n") == 1
        assert inspect(busybox, name, "{{.State.Running}}") == "false"
        assert inspect(busybox, name, "{{.State.Status}}") == "created"
        assert inspect_json(busybox, name, ".NetworkSettings.Ports") == {}
        assert settled_footprint(busybox, held) == held

    with socket.socket() as listener:  # a host process on 127.0.0.1:p
        listener.bind(("127.0.0.1", p))
        listener.listen(1)
        result = busybox("run", "-d", "--name", "third", "-p", f"127.0.0.1:{p}:80", "busybox", "sleep", "60")
        assert result.returncode == 125, result
        assert f"Bind for 127.0.0.1:{p} failed: port is already allocated" in result.stderr
        assert inspect(busybox, "third", "{{.State.Running}}") == "false"
        assert settled_footprint(busybox, held) == held

    busybox.ok("stop", "-t", "0", "holder")
    assert settled_footprint(busybox, EMPTY) == EMPTY
    busybox.ok("start", "second")  # the same container, now that its port is free
    assert busybox.ok("port", "second") == f"80/tcp -> 0.0.0.0:{h}\n80/tcp -> [::]:{h}\n"
    busybox.ok("start", "third")
    assert busybox.ok("port", "third") == f"80/tcp -> 127.0.0.1:{p}\n"
    busybox.ok("rm", "-f", "second")
    busybox.ok("run", "-d", "--name", "again", "-p", f"{h}:80", "busybox", "sleep", "60")
    assert busybox.ok("port", "again", "80") == f"0.0.0.0:{h}\n[::]:{h}\n"


# -- 5. bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("99999", "invalid containerPort: 99999"),
    ("a:b", "invalid containerPort: b"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("80-82:90-91", "invalid ranges specified for container and host Ports: 90-91 and 80-82"),
])
def test_bad_publish_specs_create_nothing(busybox, spec, message):
    result = busybox("run", "-d", "-p", spec, "busybox", "sleep", "60")
    assert result.returncode == 125, result
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stdout == ""
    assert busybox.ok("ps", "-aq") == ""
    assert not os.path.exists(f"/sys/class/net/{busybox.bridge}")
    refused(subprocess.run(["nft", "list", "table", "ip", table_name(busybox.root)], capture_output=True, text=True),
            1, "No such file or directory")


# -- 6. network modes ---------------------------------------------------------------------

def test_publish_with_other_network_modes(busybox):
    (h,) = free_ports(1)
    busybox.ok("run", "-d", "--name", "owner", "--network", "none", "-p", f"{h}:80", "busybox", "sleep", "60")
    # docker: none runs the container and publishes nothing, keeping the request
    assert inspect(busybox, "owner", "{{.State.Running}}") == "true"
    assert busybox.ok("port", "owner") == ""
    assert inspect_json(busybox, "owner", ".NetworkSettings.Ports") == {}
    assert inspect_json(busybox, "owner", ".HostConfig.PortBindings") == {
        "80/tcp": [{"HostIp": "", "HostPort": str(h)}]}
    assert busybox.ok("ps", "--format", "{{.Names}}|{{.Ports}}") == "owner|\n"

    for args in (["-p", f"{h}:80"], ["-P", "--expose", "80"]):
        joined = busybox("run", "-d", "--network", "container:owner", *args, "busybox", "sleep", "60")
        assert joined.returncode == 125, joined
        assert joined.stderr.count("\n") == 1
        assert "conflicting options: port publishing and the container type network mode" in joined.stderr
    assert len(busybox.ok("ps", "-aq").split()) == 1

    host = busybox("run", "-d", "--name", "hostnet", "--network", "host", "-p", f"{h}:80", "busybox", "sleep", "60")
    assert host.returncode == 0, host
    assert "WARNING: Published ports are discarded when using host network mode\n" in host.stderr
    assert inspect(busybox, "hostnet", "{{.State.Running}}") == "true"
    assert busybox.ok("port", "hostnet") == ""
    assert inspect_json(busybox, "hostnet", ".NetworkSettings.Ports") == {}
    assert map_elements(busybox) == [] and reservations(busybox) == []


# -- 7. every end of a run gives everything back --------------------------------------------

def kill_supervisor_and_container(b, cid: str) -> None:
    """As on a crash: the supervisor and the container die, nobody records the end."""
    from berth.engine.procs import identity, same_process

    with open(os.path.join(b.run_root, "containers", cid, "state.json")) as f:
        processes = json.load(f)
    victims = [identity(processes["monitor"][0]), identity(processes["pid"][0])]
    for pid, _ in victims:
        os.kill(pid, signal.SIGKILL)  # processes this test started
    wait_for(lambda: not any(same_process(v) for v in victims), what="the supervisor and the container to die")


@pytest.mark.parametrize("ending", ["stop", "rm -f", "supervisor killed"])
def test_run_end_releases_ports(busybox, ending):
    h, h2 = free_ports(2)
    publish = ["-p", f"{h}:80", "-p", f"127.0.0.1:{h2}:81/udp"]
    cid = busybox.ok("run", "-d", *publish, "busybox", "sleep", "60").strip()
    running = footprint(busybox)
    assert len(running["elements"]) == 2 and len(running["reservations"]) == 3  # 0.0.0.0 and [::] of h
    assert len(running["leases"]) == 1 and len(running["veths"]) == 1

    if ending == "stop":
        busybox.ok("stop", "-t", "0", cid)
    elif ending == "rm -f":
        busybox.ok("rm", "-f", cid)
    else:
        kill_supervisor_and_container(busybox, cid)
    busybox.ok("ps", "-a")
    assert settled_footprint(busybox, EMPTY) == EMPTY
    if ending != "rm -f":
        assert inspect_json(busybox, cid, ".NetworkSettings.Ports") == {}

    reuse = busybox.ok("run", "-d", *publish, "busybox", "sleep", "60").strip()
    assert busybox.ok("port", reuse).splitlines() == [f"80/tcp -> 0.0.0.0:{h}", f"80/tcp -> [::]:{h}",
                                                      f"81/udp -> 127.0.0.1:{h2}"]
    busybox.ok("rm", "-f", reuse)
    assert settled_footprint(busybox, EMPTY) == EMPTY


def test_supervisor_killed_alone_keeps_the_running_container_published(busybox):
    """Without its supervisor the container still runs (berth's state stays truthful), so it
    keeps its port and traffic; the next stop gives everything back."""
    (h,) = free_ports(1)
    cid = busybox.ok("run", "-d", "--name", "orphan", "-p", f"{h}:80", "busybox", "sh", "-c", HTTPD).strip()
    wait_http(inspect(busybox, cid, "{{.NetworkSettings.IPAddress}}"), 80)
    with open(os.path.join(busybox.run_root, "containers", cid, "state.json")) as f:
        monitor = json.load(f)["monitor"][0]
    os.kill(monitor, signal.SIGKILL)  # a process this test started
    running = footprint(busybox)
    busybox.ok("ps")
    assert inspect(busybox, cid, "{{.State.Running}}") == "true"
    assert http_get("127.0.0.1", h) == PAGE
    assert footprint(busybox) == running
    refused = busybox("run", "-d", "-p", f"{h}:80", "busybox", "true")
    assert refused.returncode == 125 and "port is already allocated" in refused.stderr
    busybox.ok("stop", "-t", "1", cid)
    assert settled_footprint(busybox, EMPTY) == EMPTY
    assert http_get("127.0.0.1", h, timeout=1.0) is None


# -- 8. cycles ----------------------------------------------------------------------------

def test_start_kill_cycles_leak_nothing(busybox):
    h, h2 = free_ports(2)
    cid = busybox.ok("create", "-p", f"{h}:80", "-p", f"127.0.0.1:{h2}:81", "busybox", "sleep", "60").strip()
    busybox.ok("start", cid)  # the bridge and its table exist from here on
    busybox.ok("kill", cid)
    busybox.ok("wait", cid)
    before = settled_footprint(busybox, EMPTY)
    assert before == EMPTY
    for _ in range(20):
        busybox.ok("start", cid)
        now = footprint(busybox)
        assert len(now["elements"]) == 2 and len(now["reservations"]) == 3 and len(now["leases"]) == 1, now
        busybox.ok("kill", cid)
        busybox.ok("wait", cid)
    assert settled_footprint(busybox, before) == before


# -- the host port belongs to the container, not only to this engine root ----------------------

def test_a_port_published_by_another_engine_root_is_refused(busybox, fresh):
    (h,) = free_ports(1)
    busybox.ok("run", "-d", "-p", f"{h}:80", "busybox", "sleep", "60")
    fresh.import_busybox(fresh.busybox_tar)
    result = fresh("run", "-d", "--name", "intruder", "-p", f"{h}:80", "busybox", "sleep", "60")
    assert result.returncode == 125, result
    assert f"Bind for 0.0.0.0:{h} failed: port is already allocated" in result.stderr


def test_a_published_port_cannot_be_bound_by_a_host_process(busybox):
    (h,) = free_ports(1)
    busybox.ok("run", "-d", "-p", f"{h}:80", "busybox", "sleep", "60")
    with socket.socket() as squatter:
        with pytest.raises(OSError, match="Address already in use"):
            squatter.bind(("0.0.0.0", h))
