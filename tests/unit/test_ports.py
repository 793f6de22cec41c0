"""-p/--expose/-P parsing, host port reservations and the `port`/`ps` renderings. Expected
values are what docker 28's CLI produces for the same input; sockets bind only on 127.0.0.1
(bindings on other addresses use sctp, which reservations do not probe)."""

import errno
import fcntl
import os
import signal
import socket

import pytest

from berth.errors import BerthError, InvalidArgument, NotFound
from berth.network.ports import (
    Reservations,
    displayable_ports,
    ephemeral_range,
    parse_expose,
    parse_publish,
    port_lines,
    ps_ports,
    publish_all,
    summary_ports,
)


def binding(host_ip="", host_port=""):
    return {"HostIp": host_ip, "HostPort": host_port}


# --- -p ------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, bindings", [
    ("80", {"80/tcp": [binding()]}),
    ("8080:80", {"80/tcp": [binding("", "8080")]}),
    (":80", {"80/tcp": [binding()]}),
    ("127.0.0.1::80", {"80/tcp": [binding("127.0.0.1")]}),
    ("127.0.0.1:8080:80", {"80/tcp": [binding("127.0.0.1", "8080")]}),
    ("[::1]:8080:80", {"80/tcp": [binding("::1", "8080")]}),
    ("[::1]::80", {"80/tcp": [binding("::1")]}),
    ("::1:8080:80", {"80/tcp": [binding("::1", "8080")]}),
    ("[1.2.3.4]:80:80", {"80/tcp": [binding("1.2.3.4", "80")]}),
    ("80/udp", {"80/udp": [binding()]}),
    ("53:53/sctp", {"53/sctp": [binding("", "53")]}),
    ("80/TCP", {"80/tcp": [binding()]}),
    ("80/", {"80/tcp": [binding()]}),
    ("0", {"0/tcp": [binding()]}),
    ("0080:0090", {"90/tcp": [binding("", "80")]}),
    ("80-82", {"80/tcp": [binding()], "81/tcp": [binding()], "82/tcp": [binding()]}),
    ("8000-8002:80-82/udp", {"80/udp": [binding("", "8000")], "81/udp": [binding("", "8001")],
                             "82/udp": [binding("", "8002")]}),
    ("8000-8010:80", {"80/tcp": [binding("", "8000-8010")]}),  # the range to allocate into
    ("8000-8000:80", {"80/tcp": [binding("", "8000")]}),
    ("1-2-3", {"1/tcp": [binding()], "2/tcp": [binding()]}),  # nat.ParsePortRange ignores a third part
    ("published=8080,target=80", {"80/tcp": [binding("", "8080")]}),
    ("published=53,target=53,protocol=udp", {"53/udp": [binding("", "53")]}),
    ("target=80", {"80/tcp": [binding()]}),
])
def test_publish_forms(spec, bindings):
    exposed, got = parse_publish([spec])
    assert got == bindings
    assert exposed == {port: {} for port in bindings}


def test_publish_merges_bindings_per_port_and_sorts_keys_like_docker_json():
    exposed, bindings = parse_publish(["90", "8000-8010:80", "80", "[::1]:9000:80", "127.0.0.1::53/udp", "100"])
    assert list(exposed) == ["100/tcp", "53/udp", "80/tcp", "90/tcp"]
    assert list(bindings) == ["100/tcp", "53/udp", "80/tcp", "90/tcp"]
    assert bindings["80/tcp"] == [binding("", "8000-8010"), binding(), binding("::1", "9000")]


@pytest.mark.parametrize("spec, message", [
    ("99999", "invalid containerPort: 99999"),
    ("80:99999", "invalid containerPort: 99999"),
    ("a:b", "invalid containerPort: b"),
    ("80-70", "invalid containerPort: 80-70"),
    ("1-x", "invalid containerPort: 1-x"),
    ("-5", "invalid containerPort: -5"),
    ("８０", "invalid containerPort: ８０"),
    ("abc:80", "invalid hostPort: abc"),
    ("x-1:80", "invalid hostPort: x-1"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("01.2.3.4:80:80", "invalid IP address: 01.2.3.4"),
    ("fe80::1%eth0:80:80", "invalid IP address: fe80::1%eth0"),
    ("[::1:80:80", "invalid IP address [::1: address [::1:: missing ']' in address"),
    ("[::1]x:80:80", "invalid IP address [::1]x: address [::1]x:: missing port in address"),
    ("[::1]:x:80:80", "invalid IP address [::1]:x: address [::1]:x:: too many colons in address"),
    ("[[a]:80:80", "invalid IP address [[a]: address [[a]:: unexpected '[' in address"),
    ("8000-8001:80-82", "invalid ranges specified for container and host Ports: 80-82 and 8000-8001"),
    ("80/foo", "invalid proto: foo"),
    ("80/FOO", "invalid proto: FOO"),
    ("", "no port specified: <empty>"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("/udp", "no port specified: /udp<empty>"),
    ("target=80,x", "invalid publish opts format (should be name=value but got 'x')"),
    ("=1", "invalid publish opts format (should be name=value but got '=1')"),
])
def test_publish_errors_are_dockers(spec, message):
    with pytest.raises(InvalidArgument) as info:
        parse_publish(["80", spec])
    assert str(info.value) == message
    assert info.value.kind == "invalid"


def test_publish_checks_in_docker_order():
    # the address is checked before the ports, the proto last of all
    with pytest.raises(InvalidArgument, match="^invalid IP address: 1.2.3$"):
        parse_publish(["1.2.3:x:y/foo"])
    with pytest.raises(InvalidArgument, match="^invalid containerPort: y$"):
        parse_publish(["x:y/foo"])
    # every long-form value is converted before any value is parsed
    with pytest.raises(InvalidArgument, match="should be name=value but got 'x'"):
        parse_publish(["99999", "target=80,x"])


# --- --expose and -P -----------------------------------------------------------------------

def test_expose_forms():
    assert parse_expose(["80"]) == {"80/tcp": {}}
    assert parse_expose(["7000-7002/udp", "80/"]) == {"7000/udp": {}, "7001/udp": {}, "7002/udp": {}, "80/tcp": {}}
    assert list(parse_expose(["90", "100", "53/udp"])) == ["100/tcp", "53/udp", "90/tcp"]
    # the CLI neither lowercases nor checks --expose's proto
    assert parse_expose(["90/TCP", "80/foo"]) == {"80/foo": {}, "90/TCP": {}}


@pytest.mark.parametrize("value, message", [
    ("80:80", "invalid port format for --expose: 80:80"),
    ("99999",
     'invalid range format for --expose: 99999, error: strconv.ParseUint: parsing "99999": value out of range'),
    ("a", 'invalid range format for --expose: a, error: strconv.ParseUint: parsing "a": invalid syntax'),
    ("80-70", "invalid range format for --expose: 80-70, error: invalid range specified for port: 80-70"),
    ("80-", 'invalid range format for --expose: 80-, error: strconv.ParseUint: parsing "": invalid syntax'),
    ("", "invalid range format for --expose: , error: empty string specified for ports"),
    ("/udp", "invalid range format for --expose: /udp, error: empty string specified for ports"),
])
def test_expose_errors_are_dockers(value, message):
    with pytest.raises(InvalidArgument) as info:
        parse_expose([value])
    assert str(info.value) == message


def test_publish_all_adds_a_random_binding_to_unbound_exposed_ports():
    exposed = {"80/tcp": {}, "443/tcp": {}, "53/udp": {}}
    bindings = {"80/tcp": [binding("127.0.0.1", "8080")], "53/udp": []}
    published = publish_all(exposed, bindings)
    assert published == {"80/tcp": [binding("127.0.0.1", "8080")], "443/tcp": [binding()], "53/udp": [binding()]}
    assert bindings == {"80/tcp": [binding("127.0.0.1", "8080")], "53/udp": []}  # input untouched
    assert publish_all({}, {}) == {}


# --- reservations --------------------------------------------------------------------------

def free_port(kind=socket.SOCK_STREAM, count=1) -> int:
    """A port where `count` consecutive ports are free on 127.0.0.1 (tcp and udp) right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + count > 65535:
            continue
        if all(bindable(port, k) for port in range(first, first + count)
               for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            return first
    raise AssertionError("no free loopback ports")


def bindable(port, kind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as err:
            assert err.errno == errno.EADDRINUSE
            return False
    return True


def allocated(ip, port):
    return f"^Bind for {ip}:{port} failed: port is already allocated$"


def test_fixed_port_is_reserved_once(tmp_path):
    port = free_port()
    ports = Reservations(str(tmp_path))
    assert ports.reserve("c1", "tcp", "127.0.0.1", str(port)) == port
    assert ports.reserved() == {("tcp", "127.0.0.1", port): "c1"}
    assert os.listdir(tmp_path) == [f"tcp-{port}-127.0.0.1"]  # nothing else left behind
    for holder in ("c2", "c1"):  # the same container cannot take it twice either
        with pytest.raises(BerthError, match=allocated("127.0.0.1", port)) as info:
            ports.reserve(holder, "tcp", "127.0.0.1", str(port))
        assert info.value.kind == "system"  # dockerd: 500, run exits 125
    assert ports.reserve("c2", "udp", "127.0.0.1", str(port)) == port  # another proto is another port


def test_a_port_the_host_is_using_is_already_allocated(tmp_path):
    port = free_port()
    ports = Reservations(str(tmp_path))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(BerthError, match=allocated("127.0.0.1", port)):
            ports.reserve("c1", "tcp", "127.0.0.1", str(port))
    assert ports.reserved() == {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:
        bound.bind(("127.0.0.1", port))
        with pytest.raises(BerthError, match=allocated("127.0.0.1", port)):
            ports.reserve("c1", "udp", "127.0.0.1", str(port))
    # the probe socket is closed again: the port stays usable by the kernel NAT and by anyone
    assert ports.reserve("c1", "tcp", "127.0.0.1", str(port)) == port
    assert bindable(port, socket.SOCK_STREAM)


def test_sctp_is_not_probed_and_wildcards_overlap_their_family(tmp_path):
    ports = Reservations(str(tmp_path))
    assert ports.reserve("a", "sctp", "", "8080") == 8080
    assert ports.reserved() == {("sctp", "0.0.0.0", 8080): "a"}  # "" is every IPv4 address
    for ip in ("127.0.0.1", "10.1.2.3", "0.0.0.0", ""):
        with pytest.raises(BerthError, match=allocated(ip or "0.0.0.0", 8080)):
            ports.reserve("b", "sctp", ip, "8080")
    assert ports.reserve("b", "sctp", "::1", "8080") == 8080  # IPv6 is another family (v6-only)
    with pytest.raises(BerthError, match=allocated("::", 8080)):
        ports.reserve("c", "sctp", "::", "8080")
    assert ports.reserve("c", "sctp", "0:0::2", "8080") == 8080
    assert ("sctp", "::2", 8080) in ports.reserved()  # IPv6 kept in its canonical form

    assert ports.reserve("d", "sctp", "127.0.0.1", "9090") == 9090
    assert ports.reserve("e", "sctp", "127.0.0.2", "9090") == 9090  # distinct addresses coexist
    with pytest.raises(BerthError, match=allocated("0.0.0.0", 9090)):
        ports.reserve("f", "sctp", "0.0.0.0", "9090")


def test_random_port_comes_from_the_kernels_ephemeral_range(tmp_path):
    start, end = ephemeral_range()
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert (start, end) == tuple(int(n) for n in f.read().split())
    ports = Reservations(str(tmp_path))
    first = ports.reserve("c1", "tcp", "127.0.0.1", "")
    second = ports.reserve("c1", "tcp", "127.0.0.1", "0")  # docker reads HostPort "0" as "any"
    assert start <= first <= end and start <= second <= end and first != second
    assert ports.reserved() == {("tcp", "127.0.0.1", first): "c1", ("tcp", "127.0.0.1", second): "c1"}


def test_ephemeral_range_falls_back_to_dockers_default(tmp_path):
    (tmp_path / "range").write_text("32768\t60999\n")
    assert ephemeral_range(str(tmp_path / "range")) == (32768, 60999)
    assert ephemeral_range(str(tmp_path / "missing")) == (49153, 65535)


def test_random_ports_are_handed_out_sequentially(tmp_path):
    ports = Reservations(str(tmp_path / "r"), port_range=(40000, 40002))
    assert [ports.reserve(c, "sctp", "", "") for c in ("a", "b")] == [40000, 40001]
    ports.release("a")
    # like docker's allocator: continue after the last port handed out, then wrap around
    assert ports.reserve("c", "sctp", "", "") == 40002
    assert ports.reserve("d", "sctp", "", "") == 40000
    with pytest.raises(BerthError, match="^all ports are allocated$"):
        ports.reserve("e", "sctp", "", "")
    assert ports.reserve("e", "udp", "127.0.0.1", str(free_port(socket.SOCK_DGRAM))) > 0  # other protos unaffected


def test_host_range_gives_the_next_free_port_in_it(tmp_path):
    ports = Reservations(str(tmp_path))
    assert ports.reserve("a", "sctp", "", "8001") == 8001
    assert ports.reserve("b", "sctp", "", "8000-8002") == 8000
    assert ports.reserve("c", "sctp", "", "8000-8002") == 8002  # 8001 is held
    with pytest.raises(BerthError, match="^all ports are allocated$"):
        ports.reserve("d", "sctp", "", "8000-8002")

    port = free_port(count=2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert ports.reserve("e", "tcp", "127.0.0.1", f"{port}-{port + 1}") == port + 1


@pytest.mark.parametrize("spec, message", [
    ("abc", '^Error parsing HostPort value\\(abc\\):strconv.ParseUint: parsing "abc": invalid syntax$'),
    ("0-5", "^invalid port range: 0-5$"),
])
def test_bad_host_port(tmp_path, spec, message):
    with pytest.raises(InvalidArgument, match=message):
        Reservations(str(tmp_path)).reserve("a", "tcp", "127.0.0.1", spec)


def test_bad_proto_or_address(tmp_path):
    ports = Reservations(str(tmp_path))
    with pytest.raises(InvalidArgument, match="unknown protocol: icmp"):
        ports.reserve("a", "icmp", "", "80")
    with pytest.raises(InvalidArgument, match="invalid IP address: 1.2.3"):
        ports.reserve("a", "sctp", "1.2.3", "80")


def test_release_frees_only_the_holders_ports_and_can_repeat(tmp_path):
    ports = Reservations(str(tmp_path / "never-made"))
    assert ports.release("a") == [] and ports.reserved() == {}
    ports = Reservations(str(tmp_path))
    ports.reserve("a", "sctp", "", "1000")
    ports.reserve("a", "sctp", "127.0.0.1", "1001")
    ports.reserve("ab", "sctp", "", "1002")
    assert sorted(ports.release("a")) == [("sctp", "0.0.0.0", 1000), ("sctp", "127.0.0.1", 1001)]
    assert ports.release("a") == []
    assert ports.reserved() == {("sctp", "0.0.0.0", 1002): "ab"}
    assert ports.reserve("b", "sctp", "", "1000") == 1000


def race(tmp_path, requests: list[tuple[str, str, str]]) -> list:
    """Fork one process per (proto, ip, port), start them together, return what each got."""
    start_r, start_w = os.pipe()
    children = []
    for i, (proto, ip, port) in enumerate(requests):
        result_r, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(start_w)
                os.read(start_r, 1)
                try:
                    got = Reservations(str(tmp_path)).reserve(f"c{i}", proto, ip, port)
                    os.write(result_w, str(got).encode())
                except BerthError as err:
                    os.write(result_w, str(err).encode())
            except BaseException:
                code = 1
            os._exit(code)
        os.close(result_w)
        children.append((pid, result_r))
    os.close(start_r)
    os.close(start_w)  # every child's read returns now
    results = []
    for pid, result_r in children:
        results.append(os.read(result_r, 4096).decode())
        os.close(result_r)
        assert os.waitpid(pid, 0)[1] == 0
    return results


def test_concurrent_runs_for_one_port_exactly_one_wins(tmp_path):
    port = free_port()
    results = race(tmp_path, [("tcp", "127.0.0.1", str(port))] * 8)
    assert results.count(str(port)) == 1
    assert results.count(f"Bind for 127.0.0.1:{port} failed: port is already allocated") == 7
    assert len(Reservations(str(tmp_path)).reserved()) == 1


def test_concurrent_wildcard_and_specific_address_exactly_one_wins(tmp_path):
    for round_ in range(5):
        port = str(20000 + round_)
        results = race(tmp_path, [("sctp", "0.0.0.0" if i % 2 else "127.0.0.1", port) for i in range(8)])
        assert results.count(port) == 1, results
    assert len(Reservations(str(tmp_path)).reserved()) == 5


def test_a_killed_reserver_does_not_block_the_next(tmp_path):
    ports = Reservations(str(tmp_path))
    ports.reserve("dead", "sctp", "", "7000")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # dies holding the directory lock, like a berth killed mid-reservation
        fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(ready_w, b"x")
        signal.pause()
        os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    os.close(ready_r)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert ports.release("dead") == [("sctp", "0.0.0.0", 7000)]
    assert ports.reserve("next", "sctp", "", "7000") == 7000


# --- `berth port` --------------------------------------------------------------------------

PORTS = {
    "80/tcp": [binding("0.0.0.0", "8080"), binding("::", "8080")],
    "443/tcp": None,
    "81/tcp": [],
    "53/udp": [binding("127.0.0.1", "32768")],
    "9/tcp": [binding("0.0.0.0", "10000")],
    "100/tcp": [binding("", "100")],
}


def test_port_lists_every_binding_in_natural_order():
    assert port_lines(PORTS) == [
        "9/tcp -> 0.0.0.0:10000",
        "53/udp -> 127.0.0.1:32768",
        "80/tcp -> 0.0.0.0:8080",
        "80/tcp -> [::]:8080",
        "100/tcp -> :100",
    ]
    assert port_lines(PORTS, "") == port_lines(PORTS)
    assert port_lines({}) == []
    # numbers inside addresses sort as numbers too
    ports = {"80/tcp": [binding("10.0.0.10", "80"), binding("10.0.0.9", "80"), binding("10.0.0.9", "1000")]}
    assert port_lines(ports, "80") == ["10.0.0.9:80", "10.0.0.9:1000", "10.0.0.10:80"]


def test_port_for_one_private_port():
    assert port_lines(PORTS, "80") == ["0.0.0.0:8080", "[::]:8080"]
    assert port_lines(PORTS, "80/tcp") == ["0.0.0.0:8080", "[::]:8080"]
    assert port_lines(PORTS, "53/udp") == ["127.0.0.1:32768"]


@pytest.mark.parametrize("private, error, message", [
    ("53", NotFound, "No public port '53' published for web"),  # tcp unless told
    ("443", NotFound, "No public port '443' published for web"),
    ("81", NotFound, "No public port '81' published for web"),
    ("80/TCP", NotFound, "No public port '80/TCP' published for web"),
    ("abc", InvalidArgument, 'invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax'),
    ("99999", InvalidArgument, 'invalid port (99999): strconv.ParseUint: parsing "99999": value out of range'),
    ("/tcp", InvalidArgument, 'invalid port (): strconv.ParseUint: parsing "": invalid syntax'),
])
def test_port_errors_are_dockers(private, error, message):
    with pytest.raises(error) as info:
        port_lines(PORTS, private, "web")
    assert str(info.value) == message
    assert info.value.kind in ("invalid", "not_found")  # the CLI exits 1 for either (outside run)


# --- `berth ps` ----------------------------------------------------------------------------

def test_ps_groups_consecutive_ports():
    ports = {
        "80/tcp": [binding("0.0.0.0", "8000")], "81/tcp": [binding("0.0.0.0", "8001")],
        "82/tcp": [binding("0.0.0.0", "8002")],
        "9000/tcp": [binding("0.0.0.0", "9000")], "9001/tcp": [binding("0.0.0.0", "9001"), binding("::", "9001")],
        "443/tcp": None, "444/tcp": None, "446/tcp": [], "53/udp": None,
    }
    # docker's order: ranges closed early, then open groups in the order first seen, then the
    # bindings whose host port differs from the container's, one by one
    assert ps_ports(ports) == ("443-444/tcp, 53/udp, 446/tcp, 0.0.0.0:9000-9001->9000-9001/tcp, "
                               "[::]:9001->9001/tcp, 0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp, "
                               "0.0.0.0:8002->82/tcp")


@pytest.mark.parametrize("ports, shown", [
    ({}, ""),
    ({"80/tcp": None}, "80/tcp"),
    ({"80/tcp": [binding("0.0.0.0", "8080")], "443/tcp": None}, "443/tcp, 0.0.0.0:8080->80/tcp"),
    ({"80/tcp": None, "81/tcp": None, "80/udp": None, "81/udp": None}, "80-81/tcp, 80-81/udp"),
    ({"1/tcp": None, "3/tcp": None, "5/tcp": None}, "1/tcp, 3/tcp, 5/tcp"),
    ({"8080/tcp": [binding("127.0.0.1", "8080")], "8081/tcp": [binding("127.0.0.2", "8081")]},
     "127.0.0.1:8080->8080/tcp, 127.0.0.2:8081->8081/tcp"),
    ({"80/tcp": [binding("::1", "81")]}, "[::1]:81->80/tcp"),
    ({"80/tcp": [binding("0.0.0.0", "8000-8010")]}, ""),  # an unallocated range is not shown
])
def test_ps_ports(ports, shown):
    assert ps_ports(ports) == shown


def test_summary_ports_is_the_api_shape():
    assert summary_ports({"80/tcp": [binding("0.0.0.0", "8080")], "53/udp": None, "x/tcp": None,
                          "81/tcp": [binding("", "")]}) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 53, "Type": "udp"},
        {"PrivatePort": 81, "Type": "tcp"},
    ]
    assert displayable_ports([{"PrivatePort": 81, "Type": "tcp"}, {"PrivatePort": 80, "Type": "tcp"}]) == "80-81/tcp"
