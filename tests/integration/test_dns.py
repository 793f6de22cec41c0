"""The embedded DNS resolver of user networks (docker's 127.0.0.11) against real containers:
names, aliases and short IDs from busybox's nslookup in another container of the network,
nothing across networks, 50 connects/disconnects without a stale answer, a restart, hostile
packets, forwarding to an upstream the test runs itself (in a container's namespace: no real
resolver is ever asked), one resolver process per root that ends with its last container.

Only names this root owns are ever looked up, except `*.upstream.test`, which the tests' own
upstream answers."""

import contextlib
import errno
import json
import os
import socket
import subprocess
import threading

from berth.runtime import syscalls as sc
from conftest import free_test_subnet, processes_named, wait_for


def make_network(b, name: str, *flags: str) -> str:
    subnet = free_test_subnet()
    b.ok("network", "create", "--subnet", subnet, "-o", f"com.docker.network.bridge.name=bd{os.urandom(4).hex()}",
         *flags, name)
    return subnet


def inspect(b, ref: str) -> dict:
    return json.loads(b.ok("inspect", ref))[0]


def address(b, container: str, network: str) -> str:
    return inspect(b, container)["NetworkSettings"]["Networks"][network]["IPAddress"]


def pid_of(b, container: str) -> int:
    return inspect(b, container)["State"]["Pid"]


def nslookup(b, container: str, name: str, *flags: str) -> tuple[int, str]:
    """busybox nslookup in `container`, asking the network's resolver only."""
    result = b("exec", container, "nslookup", *flags, name, "127.0.0.11", timeout=30)
    return result.returncode, result.stdout + result.stderr


def addresses_in(output: str) -> list[str]:
    """The answers of an nslookup: its Address lines after the server's own."""
    return [line.split()[-1] for line in output.split("Name:", 1)[-1].splitlines()[1:]
            if line.startswith("Address") and "127.0.0.11" not in line] if "Name:" in output else []


def resolver_processes(b) -> list[int]:
    """Pids of berth-dns processes serving `b`'s root (its run-root on their command line)."""
    return processes_named("berth-dns", b.run_root)


def in_netns(pid: int, work) -> object:
    """work() run in the network namespace of process `pid` (a thread of ours: setns moves
    only the calling thread), its result returned."""
    result = {}

    def run():
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
        finally:
            os.close(fd)
        try:
            result["value"] = work()
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller
            result["error"] = err

    thread = threading.Thread(target=run)  # the thread ends with it: its namespace goes with it
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def query(pid: int, name: str, qtype: str = "A", tcp: bool = False):
    """A DNS query to 127.0.0.11:53 from the namespace of `pid`: the parsed reply (dnslib)."""
    from dnslib import DNSRecord

    packet = DNSRecord.question(name, qtype).pack()

    def ask():
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(10)
            sock.connect(("127.0.0.11", 53))
            if tcp:
                sock.sendall(len(packet).to_bytes(2, "big") + packet)
                size = int.from_bytes(_read(sock, 2), "big")
                return _read(sock, size)
            sock.send(packet)
            return sock.recv(65535)
    return DNSRecord.parse(in_netns(pid, ask))


def _read(sock, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the resolver closed the connection"
        data += chunk
    return data


def answers(reply) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr)


def rcode(reply) -> str:
    from dnslib import RCODE

    return RCODE[reply.header.rcode]


def test_names_aliases_and_short_ids_on_the_network(busybox):
    b = busybox
    with networks(b, "app") as upstream:
        names_on_the_network(b, upstream)


def names_on_the_network(b, upstream):
    web_id = b.ok("run", "-d", "--name", "web", "--network", "app", "--network-alias", "frontend", "busybox",
                  "sleep", "300").strip()
    b.ok("run", "-d", "--name", "client", "--network", "app", "busybox", "sleep", "300")
    web_ip = address(b, "web", "app")

    for name in ("web", "frontend", web_id[:12], "WEB", "web.app", "web."):
        code, output = nslookup(b, "client", name)
        assert code == 0 and addresses_in(output) == [web_ip], f"{name}: {output}"
    # IPv4 only: AAAA is an empty NOERROR (docker's), not NXDOMAIN
    code, output = nslookup(b, "client", "web", "-type=aaaa")
    assert code == 0 and "NXDOMAIN" not in output and addresses_in(output) == [], output
    # the address gives name.network back
    code, output = nslookup(b, "client", ".".join(reversed(web_ip.split("."))) + ".in-addr.arpa", "-type=ptr")
    assert code == 0 and "name = web.app" in output, output
    # a lookup made the moment a container starts is answered (it is served before it runs)
    output = b.ok("run", "--rm", "--network", "app", "busybox", "nslookup", "frontend", "127.0.0.11")
    assert addresses_in(output) == [web_ip], output
    # a name of this root that is not on the network: NXDOMAIN, not forwarded
    b.ok("create", "--name", "stopped", "--network", "app", "busybox")
    code, output = nslookup(b, "client", "stopped")
    assert code != 0 and "NXDOMAIN" in output, output
    # resolv.conf points at the resolver, and it answers over TCP too
    assert b.ok("exec", "client", "cat", "/etc/resolv.conf").startswith("nameserver 127.0.0.11\n")
    assert answers(query(pid_of(b, "client"), "frontend", tcp=True)) == [web_ip]
    assert upstream.asked == []  # all of them were ours


def test_no_resolution_across_networks(busybox):
    b = busybox
    with networks(b, "red", "blue") as upstream:
        across_networks(b)
        assert upstream.asked == []  # names of the other network are ours: never forwarded


def across_networks(b):
    b.ok("run", "-d", "--name", "r1", "--network", "red", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "b1", "--network", "blue", "--network-alias", "bee", "busybox", "sleep", "300")
    for name in ("b1", "bee", "b1.blue"):
        code, output = nslookup(b, "r1", name)
        assert code != 0 and "NXDOMAIN" in output, f"{name}: {output}"
    code, output = nslookup(b, "b1", "r1")
    assert code != 0 and "NXDOMAIN" in output, output
    # the PTR of another network's container is not told either
    blue_ip = address(b, "b1", "blue")
    reply = query(pid_of(b, "r1"), ".".join(reversed(blue_ip.split("."))) + ".in-addr.arpa", "PTR")
    assert rcode(reply) == "NXDOMAIN" and not reply.rr

    # connected to both, a container sees both; disconnected, blue's names go at once
    b.ok("network", "connect", "blue", "r1")
    assert addresses_in(nslookup(b, "r1", "bee")[1]) == [blue_ip]
    assert addresses_in(nslookup(b, "b1", "r1")[1]) == [address(b, "r1", "blue")]
    b.ok("network", "disconnect", "blue", "r1")
    assert "NXDOMAIN" in nslookup(b, "r1", "bee")[1]
    assert "NXDOMAIN" in nslookup(b, "b1", "r1")[1]


def test_internal_network_resolves_its_names_and_forwards_nothing(busybox):
    b = busybox
    with networks(b, "open") as upstream:
        make_network(b, "sealed", "--internal")
        b.ok("run", "-d", "--name", "vault", "--network", "sealed", "busybox", "sleep", "300")
        b.ok("run", "-d", "--name", "guard", "--network", "sealed", "busybox", "sleep", "300")
        guard = pid_of(b, "guard")
        assert answers(query(guard, "vault")) == [address(b, "vault", "sealed")]
        reply = query(guard, "www.upstream.test")  # docker's resolver forwards nothing from there
        assert rcode(reply) == "SERVFAIL" and not reply.rr
        # connected to a network with a way out, it forwards again
        b.ok("network", "connect", "open", "guard")
        assert answers(query(guard, "www.upstream.test")) == ["192.0.2.53"]
        b.ok("network", "disconnect", "open", "guard")  # and no more once it is only on the internal one
        assert rcode(query(guard, "www.upstream.test")) == "SERVFAIL"
        assert upstream.names() == {"www.upstream.test."} and len(upstream.asked) == 1


def test_churn_of_connects_and_disconnects_leaves_no_stale_answer(busybox):
    b = busybox
    with networks(b, "churn", "home") as upstream:
        churn(b, upstream)


def churn(b, upstream):
    subnet = json.loads(b.ok("network", "inspect", "churn"))[0]["IPAM"]["Config"][0]["Subnet"]
    b.ok("run", "-d", "--name", "asker", "--network", "churn", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "mover", "--network", "home", "busybox", "sleep", "300")
    asker = pid_of(b, "asker")
    base = subnet.rsplit(".", 1)[0]
    for round_number in range(25):  # 25 connects and 25 disconnects, each answered at once
        ip = f"{base}.{100 + round_number}"
        alias = f"mover-{round_number}"
        b.ok("network", "connect", "--alias", alias, "--ip", ip, "churn", "mover")
        for name in ("mover", alias):
            reply = query(asker, name)
            assert answers(reply) == [ip], f"round {round_number}, {name}: {reply}"
        if round_number:  # an alias that is gone is nobody's: the upstream's to answer
            assert rcode(query(asker, f"mover-{round_number - 1}")) == "NXDOMAIN"
        b.ok("network", "disconnect", "churn", "mover")
        for name in ("mover", alias):
            reply = query(asker, name)
            assert rcode(reply) == "NXDOMAIN" and not reply.rr, f"round {round_number}, {name}: {reply}"
    # the mover itself is still served on its own network after all that
    assert answers(query(pid_of(b, "mover"), "mover")) == [address(b, "mover", "home")]
    assert upstream.names() == {f"mover-{n}." for n in range(25)}  # only the gone aliases


def test_restart_keeps_resolution(busybox):
    b = busybox
    with networks(b, "app") as upstream:
        restarts(b)
        assert upstream.names() == {"db."}  # the old name, once renamed: nobody's any more


def restarts(b):
    b.ok("run", "-d", "--name", "db", "--network", "app", "--network-alias", "store", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "api", "--network", "app", "busybox", "sleep", "300")
    b.ok("restart", "-t", "0", "db")
    db_ip = address(b, "db", "app")
    assert addresses_in(nslookup(b, "api", "store")[1]) == [db_ip]
    # the restarted container is served again in its new namespace
    assert addresses_in(nslookup(b, "db", "api")[1]) == [address(b, "api", "app")]
    b.ok("stop", "-t", "0", "db")
    assert "NXDOMAIN" in nslookup(b, "api", "db")[1]
    b.ok("start", "db")
    assert addresses_in(nslookup(b, "api", "db")[1]) == [address(b, "db", "app")]
    b.ok("rename", "db", "database")
    assert addresses_in(nslookup(b, "api", "database")[1]) == [address(b, "database", "app")]
    assert "NXDOMAIN" in nslookup(b, "api", "db")[1]


def test_malformed_packets_never_end_the_resolver(busybox):
    b = busybox
    with networks(b, "app"):  # a packet that parses as a question for another name goes there
        malformed(b)


def malformed(b):
    from dnslib import DNSRecord

    b.ok("run", "-d", "--name", "target", "--network", "app", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "attacker", "--network", "app", "busybox", "sleep", "300")
    attacker = pid_of(b, "attacker")
    [resolver] = resolver_processes(b)
    valid = DNSRecord.question("target", "A").pack()
    header = valid[:12]
    packets = [
        b"", b"\x00", header[:11],
        header,  # a header that announces a question it lacks
        header[:4] + b"\x00\x05" + header[6:] + valid[12:],  # five questions announced, one sent
        valid[:2] + b"\x81\x80" + valid[4:],  # a response: never answered (no reflection loop)
        header + b"\xc0\x0c\x00\x01\x00\x01",  # a name that points at itself
        header + b"\x3f" + b"a" * 10,  # a label longer than the packet
        valid[:2] + b"\x28\x00" + valid[4:],  # an UPDATE (opcode 5)
        header + b"\x00" * 2000,
        *[os.urandom(size) for size in (3, 12, 40, 512, 4096) for _ in range(20)],
    ]

    def attack():
        replies = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            sock.connect(("127.0.0.11", 53))
            for packet in packets:
                sock.send(packet)
                try:
                    replies.append(sock.recv(65535))
                except (TimeoutError, ConnectionRefusedError):
                    replies.append(None)
        for payload in (b"\x00", b"\xff\xff" + b"x" * 100, b"\x00\x05abcde", b"\x00\x0c" + header):
            with socket.socket() as sock:  # TCP: short, oversized, garbage, then hang up
                sock.connect(("127.0.0.11", 53))
                sock.sendall(payload)
        return replies

    replies = in_netns(attacker, attack)
    assert replies[5] is None  # the response got no answer
    formerr = [r for r in replies[3:5] if r is not None]
    assert formerr and all(r[:2] == header[:2] and r[3] & 0x0F == 1 for r in formerr)  # FORMERR, its id
    assert replies[8] is not None and replies[8][3] & 0x0F == 4  # NOTIMP
    assert resolver_processes(b) == [resolver]
    assert answers(query(attacker, "target")) == [address(b, "target", "app")]
    assert answers(query(attacker, "target", tcp=True)) == [address(b, "target", "app")]


class Upstream:
    """A tiny DNS server the test runs on port 53 (UDP and TCP) of `address`, in the network
    namespace of process `pid` (the host's without one): it answers NAME.upstream.test (A) with
    192.0.2.53 (an answer only: no traffic goes there) and NXDOMAIN otherwise, and records what
    it was asked, from where and how. The tests' containers forward to one, never to a real
    resolver."""

    def __init__(self, address: str, pid: int | None = None):
        self.asked = []
        self.sock, self.listener = in_netns(pid, lambda: self._bind(address)) if pid else self._bind(address)
        for serve in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=serve, daemon=True).start()

    @staticmethod
    def _bind(address: str):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((address, 53))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, 53))
        tcp.listen(8)
        return udp, tcp

    def _answer(self, data: bytes, client: str, proto: str) -> bytes:
        from dnslib import RR, A, DNSRecord

        request = DNSRecord.parse(data)
        name = str(request.q.qname).lower()
        self.asked.append((name, client, proto))
        reply = request.reply()
        if name.endswith(".upstream.test.") and request.q.qtype == 1:
            reply.add_answer(RR(request.q.qname, rdata=A("192.0.2.53")))
        elif not name.endswith(".upstream.test."):
            reply.header.rcode = 3
        return reply.pack()

    def _serve_udp(self) -> None:
        while True:
            try:
                data, client = self.sock.recvfrom(65535)
            except OSError:
                return
            self.sock.sendto(self._answer(data, client[0], "udp"), client)

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, client = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                size = int.from_bytes(_read(conn, 2), "big")
                reply = self._answer(_read(conn, size), client[0], "tcp")
                conn.sendall(len(reply).to_bytes(2, "big") + reply)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.asked}

    def close(self) -> None:
        self.sock.close()
        self.listener.close()


@contextlib.contextmanager
def networks(b, *names: str):
    """User networks `names`, and a test-owned upstream on the first one's gateway (the
    bridge's address on the host) that daemon.json names as every container's DNS server: a
    name the resolver forwards reaches it, never a real resolver."""
    for name in names:
        make_network(b, name)
    address = gateway(b, names[0])
    upstream = Upstream(address)
    b.configure(dns=[address])
    try:
        yield upstream
    finally:
        upstream.close()


def test_forwarding_to_the_containers_upstream(busybox):
    b = busybox
    with networks(b, "app") as sink:
        forwarding(b)
        assert sink.asked == []  # --dns replaces daemon.json's servers


def forwarding(b):
    b.ok("run", "-d", "--name", "dns", "--network", "app", "busybox", "sleep", "300")
    upstream_ip = address(b, "dns", "app")
    # on *:53 of its container, as a DNS server in a container binds (127.0.0.11:53 is translated
    # to the resolver's own ports, as docker's is: it does not take the container's port 53)
    upstream = wait_for(lambda: _bound_upstream(pid_of(b, "dns")), what="*:53 free in the container (NAT set up)")
    try:
        b.ok("run", "-d", "--name", "client", "--network", "app", "--dns", upstream_ip, "busybox", "sleep", "300")
        client_ip = address(b, "client", "app")
        code, output = nslookup(b, "client", "www.upstream.test")
        assert code == 0 and addresses_in(output) == ["192.0.2.53"], output
        # an upstream's NXDOMAIN is the client's; our own names never reach the upstream
        assert rcode(query(pid_of(b, "client"), "nothing.test")) == "NXDOMAIN"
        assert answers(query(pid_of(b, "client"), "dns")) == [upstream_ip]
        # forwarded from the container's own namespace (its address), as docker's resolver does
        assert upstream.asked and all(source == client_ip for _, source, _ in upstream.asked), upstream.asked
        assert upstream.names() == {"www.upstream.test.", "nothing.test."}
        # with ndots set by the user, a single-label name nobody here knows stays here (docker's)
        b.ok("run", "-d", "--name", "dotted", "--network", "app", "--dns", upstream_ip, "--dns-opt", "ndots:2",
             "busybox", "sleep", "300")
        reply = query(pid_of(b, "dotted"), "intranet")
        assert rcode(reply) == "NOERROR" and not reply.rr and "intranet." not in upstream.names()
        assert answers(query(pid_of(b, "dotted"), "www.upstream.test")) == ["192.0.2.53"]
        # a query over TCP is forwarded over TCP
        assert answers(query(pid_of(b, "client"), "tcp.upstream.test", tcp=True)) == ["192.0.2.53"]
        assert upstream.asked[-1] == ("tcp.upstream.test.", client_ip, "tcp")
        # an upstream that does not answer (a container with no DNS server): SERVFAIL once every
        # server had its time
        b.ok("run", "-d", "--name", "lonely", "--network", "app", "--dns", client_ip, "busybox", "sleep", "300")
        reply = query(pid_of(b, "lonely"), "silent.upstream.test")
        assert rcode(reply) == "SERVFAIL" and not reply.rr
    finally:
        upstream.close()


def _bound_upstream(pid: int):
    """An Upstream on *:53 of a container, or None while the resolver still holds 127.0.0.11:53
    itself (it moves behind NAT right after the container started)."""
    try:
        return Upstream("0.0.0.0", pid)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        return None


def gateway(b, network: str) -> str:
    """The network's gateway: the bridge's address on the host, where nobody answers DNS."""
    return json.loads(b.ok("network", "inspect", network))[0]["IPAM"]["Config"][0]["Gateway"]


def test_one_resolver_per_root_ending_with_its_last_container(busybox):
    b = busybox
    with networks(b, "one", "two") as upstream:
        one_resolver(b)
        assert upstream.asked == []


def one_resolver(b):
    assert resolver_processes(b) == []
    # started by several CLIs at once: still one
    starts = [subprocess.Popen(b.cmd("run", "-d", "--name", f"c{i}", "--network", "one" if i % 2 else "two",
                                     "busybox", "sleep", "300"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for i in range(6)]
    for start in starts:
        _, err = start.communicate(timeout=60)
        assert start.returncode == 0, err
    [resolver] = resolver_processes(b)
    with open(f"/proc/{resolver}/status") as f:
        parent = dict(line.split(":", 1) for line in f.read().splitlines())["PPid"].strip()
    with open(f"/proc/{parent}/cmdline", "rb") as f:  # not a child of the CLI or supervisor that started it
        assert b.base.encode() not in f.read()
    served = _status(b)
    assert len(served["Served"]) == 6 and served["Pid"] == resolver
    assert addresses_in(nslookup(b, "c1", "c3")[1]) == [address(b, "c3", "one")]
    assert "NXDOMAIN" in nslookup(b, "c1", "c2")[1]
    assert sorted(os.listdir(os.path.join(b.run_root, "dns"))) == ["control.sock", "lock", "resolver.json"]

    b.ok("rm", "-f", "c0", "c1", "c2", "c3", "c4")
    assert resolver_processes(b) == [resolver]
    b.ok("stop", "-t", "0", "c5")
    wait_for(lambda: not resolver_processes(b), what="the resolver to end with its last container")
    assert sorted(os.listdir(os.path.join(b.run_root, "dns"))) == ["lock"]
    # the next container starts a new one
    b.ok("start", "c5")
    [resolver] = resolver_processes(b)
    assert addresses_in(nslookup(b, "c5", "c5")[1]) == [address(b, "c5", "one")]
    # a resolver killed: the next one started serves every running container again
    os.kill(resolver, 9)
    wait_for(lambda: not resolver_processes(b), what="the killed resolver to go")
    b.ok("run", "-d", "--name", "c7", "--network", "one", "busybox", "sleep", "300")
    assert addresses_in(nslookup(b, "c5", "c7")[1]) == [address(b, "c7", "one")]
    assert addresses_in(nslookup(b, "c7", "c5")[1]) == [address(b, "c5", "one")]


def _status(b) -> dict:
    """The resolver's own account (engine.dns.status)."""
    from berth.engine.containers import Engine
    from berth.engine.dns import status
    from berth.paths import Paths

    return status(Engine(Paths(b.root, b.run_root), config_file=b.config_file))
