"""--log-driver syslog as docker's driver sends: one message per line to the server of
syslog-address (udp, tcp, unix, unixgram), priority facility<<3|severity (stdout info, stderr
err), srslog's formats, the tag; docker's dual-logging cache keeps `logs` working unless
cache-disabled; bad options refused at create in docker's words; an unreachable stream
server fails the start. The servers are sockets this test opens on loopback."""

import os
import re
import socket

import pytest

from conftest import wait_for


class Server:
    """A syslog server on loopback (or a unix socket): what it received, message by message."""

    def __init__(self, transport: str, path: str = ""):
        self.transport = transport
        if transport in ("udp", "unixgram"):
            family = socket.AF_UNIX if transport == "unixgram" else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            self.sock = socket.socket(socket.AF_UNIX if transport == "unix" else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(path or ("127.0.0.1", 0))
        if transport in ("tcp", "unix"):
            self.sock.listen(4)
        self.address = f"{transport}://{path}" if path else f"{transport}://127.0.0.1:{self.sock.getsockname()[1]}"
        self.data = b""
        self.conns = []

    def poll(self) -> None:
        import select

        while True:
            ready, _, _ = select.select([self.sock, *self.conns], [], [], 0.05)
            if not ready:
                return
            for s in ready:
                if s is self.sock and self.transport in ("tcp", "unix"):
                    self.conns.append(self.sock.accept()[0])
                    continue
                chunk = s.recv(65536)
                if not chunk and s in self.conns:
                    self.conns.remove(s)
                    s.close()
                self.data += chunk

    def lines(self, count: int) -> list[str]:
        def enough():
            self.poll()
            return self.data.count(b"\n") >= count
        wait_for(enough, 20, f"{count} syslog messages")
        return self.data.decode().splitlines()

    def close(self) -> None:
        for s in self.conns:
            s.close()
        self.sock.close()


@pytest.fixture
def server(request, tmp_path):
    made = []

    def make(transport: str) -> Server:
        path = str(tmp_path / f"syslog-{transport}.sock") if transport.startswith("unix") else ""
        made.append(Server(transport, path))
        return made[-1]
    yield make
    for s in made:
        s.close()


UNIX_FORMAT = re.compile(r"^<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+)\[(\d+)\]: (.*)$")


@pytest.mark.parametrize("transport", ["udp", "tcp", "unixgram", "unix"])
def test_each_line_is_a_message_with_dockers_priority_and_tag(busybox, server, transport):
    srv = server(transport)
    out = busybox.ok("run", "--log-driver", "syslog", "--log-opt", f"syslog-address={srv.address}", "--name", "sl",
                     "busybox", "sh", "-c", "echo hello; echo oops >&2; echo; echo last")
    container_id = busybox.ok("inspect", "--format", "{{.Id}}", "sl").strip()
    messages = sorted(srv.lines(3))
    parsed = [UNIX_FORMAT.match(m).groups() for m in messages]
    # daemon facility (3): info 30, err 27; the tag is the short ID; no message for the empty line
    assert sorted((p[0], p[2], p[4]) for p in parsed) == [
        ("27", container_id[:12], "oops"), ("30", container_id[:12], "hello"), ("30", container_id[:12], "last")]
    assert "hello" in out
    # docker's dual logging: the local cache still answers `logs`
    assert busybox.ok("logs", "sl") == "hello\n\nlast\n"
    busybox.ok("rm", "sl")


@pytest.mark.parametrize("fmt, pattern", [
    ("rfc3164", r"^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d (\S+) web\[\d+\]: hi$"),
    ("rfc5424", r"^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) (\S+) web \d+ web - hi$"),
    ("rfc5424micro", r"^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d) (\S+) web \d+ web - hi$"),
])
def test_formats_facility_and_tag_options(busybox, server, fmt, pattern):
    srv = server("udp")
    busybox.ok("run", "--rm", "--log-driver", "syslog", "--log-opt", f"syslog-address={srv.address}",
               "--log-opt", f"syslog-format={fmt}", "--log-opt", "syslog-facility=local3", "--log-opt", "tag=web",
               "busybox", "echo", "hi")
    line = srv.lines(1)[0]
    m = re.match(pattern, line)
    assert m, line
    assert m.group(1) == str(19 << 3 | 6)  # local3, info
    assert os.uname().nodename in line


def test_cache_disabled_means_logs_cannot_read(busybox, server):
    srv = server("udp")
    busybox.ok("run", "--name", "nc", "--log-driver", "syslog", "--log-opt", f"syslog-address={srv.address}",
               "--log-opt", "cache-disabled=true", "busybox", "echo", "x")
    assert srv.lines(1)[0].endswith(": x")
    busybox.fails(1, "logs", "nc", says="configured logging driver does not support reading")
    busybox.ok("rm", "nc")


@pytest.mark.parametrize("opt, says", [
    ("syslog-address=foo://127.0.0.1", "unsupported scheme: 'foo'"),
    ("syslog-address=unix:///nonexistent/syslog.sock", "stat /nonexistent/syslog.sock: no such file or directory"),
    ("syslog-facility=bogus", "invalid syslog facility"),
    ("syslog-facility=24", "invalid syslog facility"),
    ("syslog-format=rfc1", "invalid syslog format"),
    ("max-size=10m", "unknown log opt 'max-size' for syslog log driver"),
])
def test_bad_syslog_options_are_refused_at_create(busybox, opt, says):
    extra = [] if opt.startswith("syslog-address") else ["--log-opt", "syslog-address=udp://127.0.0.1:9"]
    busybox.fails(125, "create", "--log-driver", "syslog", "--log-opt", opt, *extra, "busybox", "true", says=says)
    assert busybox.ok("ps", "-aq") == ""


def test_a_stream_server_not_listening_fails_the_start(busybox):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]  # bound, never listening: connections are refused
    try:
        busybox.fails(125, "run", "--name", "down", "--log-driver", "syslog", "--log-opt",
                      f"syslog-address=tcp://127.0.0.1:{port}", "busybox", "true",
                      says=f"failed to initialize logging driver: dial tcp 127.0.0.1:{port}: connect: "
                           "connection refused")
    finally:
        probe.close()
    busybox.ok("rm", "-f", "down")


def test_a_server_that_goes_away_costs_lines_never_the_container(busybox, server):
    srv = server("tcp")
    busybox.ok("run", "-d", "--name", "flaky", "--log-driver", "syslog", "--log-opt",
               f"syslog-address={srv.address}", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 30 ]; do echo line$i; i=$((i+1)); sleep 0.1; done")
    srv.lines(2)
    srv.close()  # the server dies mid-stream
    wait_for(lambda: busybox.ok("inspect", "--format", "{{.State.Status}}", "flaky").strip() == "exited", 30,
             "the container to end")
    assert busybox.ok("inspect", "--format", "{{.State.ExitCode}}", "flaky").strip() == "0"
    assert busybox.ok("logs", "flaky").count("line") == 30  # the cache has every line
    busybox.ok("rm", "flaky")
