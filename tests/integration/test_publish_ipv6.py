"""`-p` on IPv6, as docker 28 with its default userland proxy: a port published on every
address is also served on [::] by a proxy process (the kernel cannot DNAT IPv6 to the
container's IPv4 address), `-p [::1]:...` on that address alone, `-p 127.0.0.1:...` never on
IPv6. What `port`, `ps` and inspect show (both families, one port number), TCP and UDP
through [::1], a port the host holds on [::] (docker's error, nothing left behind), the proxy
gone with every end of the run (stop, restart, rm -f, its supervisor killed), daemon.json
`userland-proxy: false`, and a host without IPv6 (a network namespace of this test's whose
loopback has no ::1). Traffic goes only to loopback and the test bridge's containers."""

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess

import pytest
from test_publish import (
    EMPTY,
    PAGE,
    footprint,
    free_ports,
    gateway,
    http_get,
    inspect,
    inspect_json,
    netns_of,
    settled_footprint,
    socket_in,
)

from berth.engine.procs import same_process, start_time
from conftest import listening, refused, wait_for

# httpd on 80, 81 and 82 in one container; its page says PAGE
HTTPD = (f"mkdir -p /www && echo '{PAGE}' > /www/index.html && httpd -p 81 -h /www && httpd -p 82 -h /www && "
         "exec httpd -f -p 80 -h /www")


def get6(port: int, timeout: float = 2.0) -> str | None:
    """What httpd answers at [::1]:port, or None."""
    return http_get("::1", port, timeout, socket.socket(socket.AF_INET6, socket.SOCK_STREAM))


def wait_http6(port: int) -> None:
    wait_for(lambda: get6(port, timeout=1.0) == PAGE, what=f"httpd to answer on [::1]:{port}")


def network_state(b, cid: str) -> dict:
    with open(os.path.join(b.run_root, "containers", cid, "network.json")) as f:
        return json.load(f)


def proxy_of(b, cid: str) -> list:
    """The identity [pid, start time] of the container's proxy, as its run recorded it."""
    proxy = network_state(b, cid)["proxy"]
    assert proxy and same_process(proxy), proxy
    return proxy


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def supervisor_of(b, cid: str) -> int:
    with open(os.path.join(b.run_root, "containers", cid, "state.json")) as f:
        return json.load(f)["monitor"][0]


def host_listens(port: int) -> bool:
    """Anything listening on TCP `port` in the host's network namespace (IPv4 or IPv6)."""
    return listening(os.getpid(), port)


def proxies_below(b) -> list[int]:
    """Live (not zombie) processes named berth-proxy forked by this test's berth (its root is
    in the command line they inherited)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if comm(int(pid)) == "berth-proxy" and start_time(int(pid)) is not None:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b.root.encode() in f.read():
                        found.append(int(pid))
    return found


# -- 1. what docker 28 shows, and TCP through [::1] -------------------------------------------

def test_every_form_shows_both_families_and_ipv6_reaches_the_container(busybox):
    h, h2, h3, h4, h5, h6 = free_ports(6)
    cid = busybox.ok("run", "-d", "--name", "web", "-p", f"{h}:80", "-p", f"127.0.0.1:{h2}:81",
                     "-p", f"[::1]:{h3}:82", "-p", f"{h4}:83/udp", "-p", f"{h5}-{h6}:84-85",
                     "busybox", "sh", "-c", HTTPD).strip()
    assert inspect_json(busybox, cid, ".NetworkSettings.Ports") == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(h)}, {"HostIp": "::", "HostPort": str(h)}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(h2)}],
        "82/tcp": [{"HostIp": "::1", "HostPort": str(h3)}],
        "83/udp": [{"HostIp": "0.0.0.0", "HostPort": str(h4)}, {"HostIp": "::", "HostPort": str(h4)}],
        "84/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(h5)}, {"HostIp": "::", "HostPort": str(h5)}],
        "85/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(h6)}, {"HostIp": "::", "HostPort": str(h6)}],
    }
    assert inspect_json(busybox, cid, ".HostConfig.PortBindings")["82/tcp"] == [{"HostIp": "::1",
                                                                              "HostPort": str(h3)}]
    assert busybox.ok("port", "web").splitlines() == [
        f"80/tcp -> 0.0.0.0:{h}", f"80/tcp -> [::]:{h}", f"81/tcp -> 127.0.0.1:{h2}", f"82/tcp -> [::1]:{h3}",
        f"83/udp -> 0.0.0.0:{h4}", f"83/udp -> [::]:{h4}", f"84/tcp -> 0.0.0.0:{h5}", f"84/tcp -> [::]:{h5}",
        f"85/tcp -> 0.0.0.0:{h6}", f"85/tcp -> [::]:{h6}"]
    assert busybox.ok("port", "web", "80") == f"0.0.0.0:{h}\n[::]:{h}\n"
    assert busybox.ok("port", "web", "82/tcp") == f"[::1]:{h3}\n"
    assert busybox.ok("ps", "--format", "{{.Ports}}") == (
        f"0.0.0.0:{h}->80/tcp, [::]:{h}->80/tcp, 127.0.0.1:{h2}->81/tcp, [::1]:{h3}->82/tcp, "
        f"0.0.0.0:{h4}->83/udp, [::]:{h4}->83/udp, 0.0.0.0:{h5}->84/tcp, [::]:{h5}->84/tcp, "
        f"0.0.0.0:{h6}->85/tcp, [::]:{h6}->85/tcp\n")
    # the kernel's DNAT carries IPv4 (no [::] entry in nft), one proxy process the IPv6 side
    assert len(footprint(busybox)["elements"]) == 5
    proxy = proxy_of(busybox, cid)
    assert comm(proxy[0]) == "berth-proxy" and parent(proxy[0]) == supervisor_of(busybox, cid)
    assert proxies_below(busybox) == [proxy[0]]

    wait_http6(h)
    assert http_get("127.0.0.1", h) == PAGE
    assert get6(h3) == PAGE
    with socket.socket(socket.AF_INET6) as conn:  # the container sees the proxy's connection from the bridge
        conn.settimeout(2.0)
        conn.connect(("::1", h))
        assert conn.getpeername()[:2] == ("::1", h)
    # 127.0.0.1 only: nothing on IPv6; [::1] only: nothing on IPv4
    with socket.socket(socket.AF_INET6) as probe:
        assert probe.connect_ex(("::1", h2)) != 0
    assert http_get("127.0.0.1", h3, timeout=1.0) is None
    # nothing listens in the container on 84: the proxy closes the client, as docker-proxy does
    with socket.socket(socket.AF_INET6) as conn:
        conn.settimeout(2.0)
        conn.connect(("::1", h5))
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert conn.recv(64) == b""


def test_a_large_transfer_both_ways_through_the_proxy(busybox):
    """Bytes arrive whole and in order through the spliced pipes, and each side's end (EOF)
    is passed on: nc in the container echoes 8 MB back through `cat`, then closes."""
    (h,) = free_ports(1)
    busybox.ok("run", "-d", "--name", "echo", "-p", f"{h}:7", "busybox", "nc", "-ll", "-p", "7", "-e", "cat")
    wait_for(lambda: listening(int(inspect(busybox, "echo", "{{.State.Pid}}")), 7), what="nc to listen")
    data = os.urandom(8 << 20)
    received = bytearray()
    with socket.create_connection(("::1", h), timeout=20) as conn:
        view, sent = memoryview(data), 0
        conn.setblocking(False)
        with selectors.DefaultSelector() as sel:
            sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while True:
                for _, mask in sel.select(timeout=20):
                    if mask & selectors.EVENT_WRITE and sent < len(data):
                        with contextlib.suppress(BlockingIOError):
                            sent += conn.send(view[sent:sent + 65536])
                        if sent == len(data):
                            conn.shutdown(socket.SHUT_WR)
                            sel.modify(conn, selectors.EVENT_READ)
                    if mask & selectors.EVENT_READ:
                        chunk = conn.recv(1 << 20)
                        if not chunk:
                            break
                        received += chunk
                else:
                    continue
                break
    assert len(received) == len(data) and received == data


def test_the_proxy_passes_every_byte_and_each_end_of_stream():
    """The proxy alone (network.proxy, forked by this test) between a client on [::1] and a
    server of this test on 127.0.0.1: transfers of many sizes each way arrive whole, and the
    end of each stream is passed on wherever it falls in the proxy's rounds of splicing."""
    import random
    import threading

    from berth.network import proxy

    sizes = [random.choice([0, 1, 4095, 65536, 65537]) + random.randint(0, 3 << 20) for _ in range(40)]

    def read_all(conn: socket.socket) -> bytes:
        data = b""
        while chunk := conn.recv(1 << 20):
            data += chunk
        return data

    def serve(server: socket.socket) -> None:
        for _ in range(2 * len(sizes)):
            conn, _ = server.accept()
            with conn:
                request = read_all(conn)  # an upload ("u" + data), or a download's size ("d" + digits)
                conn.sendall(str(len(request) - 1).encode() if request[:1] == b"u" else bytes(int(request[1:])))

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        (front,) = free_ports(1)
        backend = server.getsockname()
        pid = proxy.start([("tcp", proxy.listen("tcp", "::1", front, backend), backend)])
        try:
            threading.Thread(target=serve, args=(server,), daemon=True).start()
            for size in sizes:
                for request, answer in ((b"u" + bytes(size), str(size).encode()), (b"d%d" % size, bytes(size))):
                    with socket.create_connection(("::1", front), timeout=10) as conn:
                        conn.sendall(request)
                        conn.shutdown(socket.SHUT_WR)
                        assert read_all(conn) == answer
        finally:
            os.kill(pid, signal.SIGKILL)  # our own child
            os.waitpid(pid, 0)


# -- 2. UDP -----------------------------------------------------------------------------------

def test_udp_through_ipv6(busybox):
    h, h2 = free_ports(2)
    busybox.ok("run", "-d", "--name", "udp", "-p", f"{h}:86/udp", "-p", f"127.0.0.1:{h2}:87/udp",
               "busybox", "sleep", "60")
    with netns_of(busybox, "udp") as netns, socket_in(netns, socket.SOCK_DGRAM) as server:
        server.bind(("0.0.0.0", 86))
        server.settimeout(3.0)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.settimeout(3.0)
            for round_ in range(3):  # one flow: every datagram from the same proxy socket
                client.sendto(b"ping %d" % round_, ("::1", h))
                data, peer = server.recvfrom(64)
                assert data == b"ping %d" % round_ and peer[0] == gateway(busybox)
                if round_ == 0:
                    first_peer = peer
                assert peer == first_peer
                server.sendto(b"pong " + data, peer)
                reply, source = client.recvfrom(64)
                assert reply == b"pong ping %d" % round_ and source[:2] == ("::1", h)  # from where it went
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as stray:  # 127.0.0.1 only: nobody on [::1]
        stray.settimeout(1.0)
        stray.connect(("::1", h2))
        stray.send(b"x")
        with pytest.raises((ConnectionRefusedError, TimeoutError)):
            stray.recv(8)


# -- 3. -P ------------------------------------------------------------------------------------

def test_publish_all_gives_both_families_one_port(busybox):
    busybox.ok("run", "-d", "--name", "all", "-P", "--expose", "7000", "--expose", "7001/udp", "busybox",
               "sleep", "60")
    ports = inspect_json(busybox, "all", ".NetworkSettings.Ports")
    assert sorted(ports) == ["7000/tcp", "7001/udp"]
    for bindings in ports.values():
        assert [b["HostIp"] for b in bindings] == ["0.0.0.0", "::"]
        assert bindings[0]["HostPort"] == bindings[1]["HostPort"]
    tcp = int(ports["7000/tcp"][0]["HostPort"])
    assert host_listens(tcp)  # the proxy's [::] listener


# -- 4. a port taken on IPv6 ----------------------------------------------------------------------

def test_a_port_the_host_holds_on_ipv6_fails_the_run_and_leaves_nothing(busybox):
    h, h2 = free_ports(2)
    with socket.socket(socket.AF_INET6) as squatter:  # a host process on [::]:h only (v6-only)
        squatter.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        squatter.bind(("::", h))
        squatter.listen(1)
        err = busybox.fails(125, "run", "-d", "--name", "late", "-p", f"{h}:80", "busybox", "sleep", "60")
        assert err.count("\n") == 1, err
        assert re.search(r"failed to set up container networking: driver failed programming external "
                         r"connectivity on endpoint late \([0-9a-f]{64}\): failed to bind host port for "
                         rf"\[::\]:{h}:10\.\d+\.\d+\.\d+:80/tcp: address already in use$", err.strip()), err
        assert inspect(busybox, "late", "{{.State.Status}}") == "created"
        assert inspect_json(busybox, "late", ".NetworkSettings.Ports") == {}
        assert settled_footprint(busybox, EMPTY) == EMPTY
        assert proxies_below(busybox) == []
        # the IPv4 side was given back too: a host process can take it
        with socket.socket() as v4:
            v4.bind(("0.0.0.0", h))
    busybox.ok("start", "late")
    assert busybox.ok("port", "late") == f"80/tcp -> 0.0.0.0:{h}\n80/tcp -> [::]:{h}\n"

    # a container holding [::1]:h2 keeps [::]:h2 from another, as docker's allocator does
    busybox.ok("run", "-d", "--name", "v6only", "-p", f"[::1]:{h2}:80", "busybox", "sleep", "60")
    held = footprint(busybox)
    err = busybox.fails(125, "run", "-d", "--name", "wide", "-p", f"{h2}:80", "busybox", "sleep", "60")
    assert f"Bind for :::{h2} failed: port is already allocated" in err
    assert settled_footprint(busybox, held) == held
    assert len(proxies_below(busybox)) == 2


# -- 5. the proxy ends with the run ---------------------------------------------------------------

@pytest.mark.parametrize("ending", ["stop", "rm -f", "kill", "supervisor killed"])
def test_the_proxy_ends_with_the_run(busybox, ending):
    (h,) = free_ports(1)
    cid = busybox.ok("run", "-d", "--name", "served", "-p", f"{h}:80", "busybox", "sh", "-c", HTTPD).strip()
    wait_http6(h)
    proxy = proxy_of(busybox, cid)
    if ending == "stop":
        busybox.ok("stop", "-t", "0", cid)
    elif ending == "rm -f":
        busybox.ok("rm", "-f", cid)
    elif ending == "kill":
        busybox.ok("kill", cid)
        busybox.ok("wait", cid)
    else:
        supervisor = supervisor_of(busybox, cid)
        os.kill(supervisor, signal.SIGKILL)  # a process this test started
    wait_for(lambda: not same_process(proxy), what="the proxy to end")
    wait_for(lambda: not host_listens_v6(h), what=f"nothing to listen on [::]:{h}")
    assert get6(h, timeout=1.0) is None
    if ending == "supervisor killed":
        # the container runs on (its IPv4 port by kernel NAT); the next command that looks at it
        # adopts it, and its new supervisor serves the IPv6 side again
        assert inspect(busybox, cid, "{{.State.Running}}") == "true"
        assert http_get("127.0.0.1", h) == PAGE
        wait_http6(h)
        again = proxy_of(busybox, cid)
        assert again != proxy and parent(again[0]) == supervisor_of(busybox, cid) != supervisor
        busybox.ok("stop", "-t", "0", cid)
        wait_for(lambda: not same_process(again), what="the new proxy to end")
    assert settled_footprint(busybox, EMPTY) == EMPTY
    assert proxies_below(busybox) == []
    if ending != "rm -f":  # the same port again, at once
        busybox.ok("start", cid)
        wait_http6(h)
        assert proxy_of(busybox, cid) != proxy


def test_a_start_that_fails_leaves_no_proxy(busybox):
    (h,) = free_ports(1)
    for detach in (["-d"], []):  # a detached supervisor, and the foreground run that supervises itself
        busybox.fails(127, "run", *detach, "-p", f"{h}:80", "busybox", "no-such-command",
                      says="executable file not found")
        assert proxies_below(busybox) == [] and not host_listens(h)
        assert settled_footprint(busybox, EMPTY) == EMPTY


def host_listens_v6(port: int) -> bool:
    with open("/proc/net/tcp6") as f:
        return any(row.split()[3] == "0A" and int(row.split()[1].rsplit(":", 1)[1], 16) == port
                   for row in f.read().splitlines()[1:])


def test_restart_gives_a_new_proxy_and_cycles_leak_nothing(busybox):
    (h,) = free_ports(1)
    cid = busybox.ok("run", "-d", "-p", f"{h}:80", "busybox", "sh", "-c", HTTPD).strip()
    seen = []
    for _ in range(3):
        wait_http6(h)
        seen.append(proxy_of(busybox, cid))
        busybox.ok("restart", "-t", "0", cid)
    wait_http6(h)
    assert all(not same_process(p) for p in seen) and len({p[0] for p in seen}) == 3
    assert len(proxies_below(busybox)) == 1
    busybox.ok("rm", "-f", cid)
    assert proxies_below(busybox) == [] and not host_listens(h)


# -- 6. daemon.json userland-proxy: false -----------------------------------------------------------

def test_without_the_userland_proxy_nothing_is_published_on_ipv6(busybox):
    h, h2 = free_ports(2)
    busybox.configure(**{"userland-proxy": False})
    cid = busybox.ok("run", "-d", "--name", "noproxy", "-p", f"{h}:80", "-p", f"[::1]:{h2}:82",
                     "busybox", "sh", "-c", HTTPD).strip()
    # docker: an IPv6 binding cannot reach an IPv4-only container without the proxy: none is made
    assert inspect_json(busybox, cid, ".NetworkSettings.Ports") == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(h)}], "82/tcp": None}
    assert busybox.ok("port", "noproxy") == f"80/tcp -> 0.0.0.0:{h}\n"
    assert busybox.ok("ps", "--format", "{{.Ports}}") == f"82/tcp, 0.0.0.0:{h}->80/tcp\n"
    assert network_state(busybox, cid)["proxy"] is None and proxies_below(busybox) == []
    wait_for(lambda: http_get("127.0.0.1", h, timeout=1.0) == PAGE, what="the IPv4 port")
    assert get6(h, timeout=1.0) is None and get6(h2, timeout=1.0) is None


# -- 7. a host without IPv6 --------------------------------------------------------------------------

@contextlib.contextmanager
def host_without_ipv6(base: str):
    """A network namespace whose loopback is up with 127.0.0.1 but no ::1 (disable_ipv6, as on
    a host booted so), with a mount namespace whose /sys shows its devices (the host's cgroup
    tree kept): berth runs in both through nsenter. Yields the command prefix."""
    cgroup = os.path.join(base, "cgroup")
    os.mkdir(cgroup)
    holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
                               f"mount --rbind /sys/fs/cgroup {cgroup} && mount -t sysfs sysfs /sys && "
                               f"mount --move {cgroup} /sys/fs/cgroup && exec sleep 600"])
    try:
        wait_for(lambda: comm(holder.pid) == "sleep", what="the namespaces")
        enter = ["nsenter", f"--net=/proc/{holder.pid}/ns/net", f"--mount=/proc/{holder.pid}/ns/mnt"]
        subprocess.run(enter + ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                                "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1"],
                       check=True)
        subprocess.run(enter + ["ip", "link", "set", "lo", "up"], check=True)
        yield enter
    finally:
        holder.kill()  # our own child
        holder.wait()


def test_a_host_without_ipv6_publishes_on_ipv4_only(busybox):
    h, h2 = free_ports(2)
    with host_without_ipv6(busybox.base) as enter:
        def berth(*args):
            return subprocess.run(enter + busybox.cmd(*args), capture_output=True, text=True, timeout=60)

        try:
            done = berth("run", "-d", "--name", "v4", "-p", f"{h}:80", "busybox", "sleep", "60")
            assert done.returncode == 0, done.stderr
            cid = done.stdout.strip()
            busybox.seen_ids.add(cid)
            assert berth("port", "v4").stdout == f"80/tcp -> 0.0.0.0:{h}\n"
            assert inspect_json(busybox, cid, ".NetworkSettings.Ports") == {
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(h)}]}
            assert network_state(busybox, cid)["proxy"] is None and proxies_below(busybox) == []
            # asked for by address, IPv6 fails as docker's bind does
            refused(berth("run", "-d", "--name", "v6", "-p", f"[::1]:{h2}:80", "busybox", "sleep", "60"), 125,
                    f"failed to bind host port for [::1]:{h2}:")
        finally:
            for name in ("v4", "v6"):
                berth("rm", "-f", name)
            assert berth("system", "reset", "-f").returncode == 0
