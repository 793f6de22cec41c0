"""The Engine API service under bad input and load: malformed and mistyped JSON, bodies over the
limit, slow and vanishing clients, 1,000 sequential requests and 50 concurrent clients, TCP mode,
the idle exit and a second service on a taken socket. Whatever a client does, the service lives
on, answers the others, and a connection's process ends with its client (checked by PID: the
service's children, as /proc/<pid>/task/*/children lists them)."""

import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time

from test_api_service import UnixConnection, request

from conftest import ApiService, require_peer, wait_for

TICKER = "while true; do echo tick; sleep 0.2; done"


def children(pid: int) -> set[int]:
    """The live processes forked by process `pid` (a zombie is one that ended, not yet reaped)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found.update(int(child) for child in f.read().split())
    return {child for child in found if _state(child) not in ("Z", "")}


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return ""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def raw(api: ApiService, data: bytes = b"") -> socket.socket:
    """A raw connection to the service that has sent `data`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(api.sock)
    if data:
        s.sendall(data)
    return s


def read_head(s: socket.socket) -> bytes:
    """The status line and headers of the response on `s` (and whatever of its body came along)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"the service closed the connection before answering: {data!r}"
        data += chunk
    return data


def server_of(api: ApiService, before: set[int]) -> int:
    """The process the service forked for the connection just opened."""
    return wait_for(lambda: next(iter(children(api.process.pid) - before), None), 10, "the connection's process")


def post_json(api: ApiService, path: str, body: bytes) -> tuple[int, dict]:
    status, _, data = request(api, "POST", path, body, {"Content-Type": "application/json"})
    return status, json.loads(data)


def alive(api: ApiService) -> None:
    status, _, body = request(api, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert api.process.poll() is None, f"the service ended:\n{api.output()}"


# -- bad bodies ------------------------------------------------------------------------------

def test_malformed_json_is_a_400_and_makes_nothing(api):
    for path in ("/v1.47/containers/create", "/v1.47/volumes/create"):
        for body in (b"{bad", b'{"Image": "busybox"', b"\xff\xfe", b"[1, 2]", b'"a string"'):
            status, answer = post_json(api, path, body)
            assert status == 400, f"POST {path} {body!r} -> {status} {answer}"
            assert isinstance(answer.get("message"), str) and answer["message"]
    assert api.berth.container_ids() == []
    assert api.berth.ok("volume", "ls", "-q") == ""
    alive(api)


def test_wrong_types_are_a_400_and_make_nothing(api):
    """docker's Go decoder refuses a value of the wrong type (400 `json: cannot unmarshal ...`)."""
    wrong = []
    for body in ({"Image": 5}, {"Image": "busybox", "Cmd": 5}, {"Image": "busybox", "Env": "A=1"},
                 {"Image": "busybox", "HostConfig": {"Memory": "lots"}}, {"Image": "busybox", "HostConfig": []},
                 {"Image": "busybox", "ExposedPorts": ["80/tcp"]}, {"Image": "busybox", "Labels": {"a": 1}}):
        status, answer = post_json(api, "/v1.47/containers/create", json.dumps(body).encode())
        if status != 400 or "message" not in answer:
            wrong.append(f"create {body} -> {status} {answer}")
    for body in ({"Name": 5}, {"Name": "v", "Labels": "x"}, {"Name": "v", "DriverOpts": [1]}):
        status, answer = post_json(api, "/v1.47/volumes/create", json.dumps(body).encode())
        if status != 400 or "message" not in answer:
            wrong.append(f"volume create {body} -> {status} {answer}")
    assert wrong == []
    assert api.berth.container_ids() == []
    assert api.berth.ok("volume", "ls", "-q") == ""
    alive(api)


def test_unknown_fields_are_ignored_as_docker_does(api):
    body = {"Image": "busybox", "Cmd": ["true"], "NoSuchField": {"x": 1}, "HostConfig": {"AlsoUnknown": True}}
    status, answer = post_json(api, "/v1.47/containers/create?name=unknown-fields", json.dumps(body).encode())
    assert status == 201, answer
    assert api.berth.ok("inspect", "--format", "{{.Name}}", answer["Id"]).strip() == "/unknown-fields"
    status, answer = post_json(api, "/v1.47/volumes/create", b'{"Name": "unknownvol", "Bogus": 2}')
    assert status == 201 and answer["Name"] == "unknownvol"


def test_a_body_over_the_limit_is_a_413_before_it_is_read(api):
    from berth.api.http import MAX_BODY

    s = raw(api, b"POST /v1.47/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n{" % (MAX_BODY + 1))
    head = read_head(s)  # answered without waiting for the 16 MiB the client announced
    s.close()
    assert head.startswith(b"HTTP/1.1 413 "), head
    alive(api)


def test_a_chunked_body_over_the_limit_is_a_413(api):
    from berth.api.http import MAX_BODY

    s = raw(api, b"POST /v1.47/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
    sent = 0
    try:
        while sent <= MAX_BODY + (1 << 20):
            s.sendall(chunk)
            sent += 1 << 20
    except (BrokenPipeError, ConnectionResetError):
        pass  # the service answered and closed while we were still sending
    head = read_head(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 413 "), head
    assert api.berth.container_ids() == []
    alive(api)


def test_pipelined_requests_and_an_unread_body_are_served_in_order_on_one_connection(api):
    unread = b'{"ignored": true}'  # a 404 reads no body: the server must skip it to reach the next request
    s = raw(api, b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
                 b"POST /v1.47/no/such/path HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n\r\n%s"
                 b"GET /v1.40/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n" % (len(unread), unread))
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)  # bodies have no line end: "OKHTTP/1.1 404 ..."
    assert statuses == [b"200", b"404", b"200"], data
    assert data.endswith(b"}\n") and b'"ApiVersion": "1.47"' in data


# -- slow and vanishing clients -------------------------------------------------------------

def test_a_client_that_trickles_its_headers_is_served(api):
    s = raw(api)
    for byte in b"GET /v1.47/_ping HTTP/1.1\r\nHost: d\r\n\r\n":
        s.sendall(bytes((byte,)))
        time.sleep(0.01)
    head = read_head(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"OK")


def test_clients_that_never_finish_do_not_hold_up_the_others(api):
    before = children(api.process.pid)
    stuck = [raw(api, b"GET /v1.47/_ping HTTP/1.1\r\nHost: d\r\nX-Half: ")]  # headers never end
    stuck.append(raw(api, b"POST /v1.47/containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 100\r\n\r\n{\"Image\": "))  # a body never completed
    stuck.append(raw(api))  # connected, silent
    # the half-headed and the silent clients are waited on for ever (the half-bodied one too, once create reads)
    servers = wait_for(lambda: len(children(api.process.pid) - before) >= 2 and children(api.process.pid) - before,
                       10, "a process for each stuck client")
    for _ in range(20):
        alive(api)
    assert api.berth.container_ids() == []
    for s in stuck:
        s.close()
    wait_for(lambda: not servers & children(api.process.pid), 10, "the stuck clients' processes to end")


def test_a_client_gone_mid_events_ends_its_process(api):
    before = children(api.process.pid)
    s = raw(api, b"GET /v1.47/events HTTP/1.1\r\nHost: d\r\n\r\n")
    assert read_head(s).startswith(b"HTTP/1.1 200 ")
    server = server_of(api, before)
    api.berth.ok("volume", "create", "seen")  # an event flows to the client...
    data = b""
    while b"seen" not in data:
        data += s.recv(65536)
    s.close()  # ...which then hangs up, while its server waits for the next one
    wait_for(lambda: server not in children(api.process.pid), 10, "the events connection's process to end")
    alive(api)


def hang_up_on_a_ticker(api: ApiService, request: str, status: bytes) -> None:
    """Send `request` about a container that ticks, read two ticks, hang up: the connection's
    process ends, the container runs on, the service too."""
    container_id = api.berth.ok("run", "-d", "busybox", "sh", "-c", TICKER).strip()
    before = children(api.process.pid)
    s = raw(api, request.format(id=container_id).encode())
    data = read_head(s)
    assert data.startswith(b"HTTP/1.1 " + status), data
    server = server_of(api, before)
    while data.count(b"tick") < 2:  # streamed live
        data += s.recv(65536)
    s.close()
    wait_for(lambda: server not in children(api.process.pid), 10, "the connection's process to end")
    assert api.berth.ok("inspect", "--format", "{{.State.Running}}", container_id).strip() == "true"
    alive(api)


def test_a_client_gone_mid_logs_follow_ends_its_process(api):
    hang_up_on_a_ticker(api, "GET /v1.47/containers/{id}/logs?follow=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                             "Host: d\r\n\r\n", b"200 ")


def test_a_client_gone_mid_attach_ends_its_process_and_not_the_container(api):
    hang_up_on_a_ticker(api, "POST /v1.47/containers/{id}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                             "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
                        b"101 ")


def test_a_client_gone_mid_load_ends_its_process_and_loads_nothing(api):
    archive = os.path.join(api.berth.base, "other.tar")
    api.berth.ok("tag", "busybox", "other:1")
    api.berth.ok("save", "-o", archive, "other:1")
    api.berth.ok("rmi", "other:1")
    images = api.berth.ok("images", "-q", "--no-trunc")
    with open(archive, "rb") as f:
        data = f.read()
    before = children(api.process.pid)
    s = raw(api, b"POST /v1.47/images/load?quiet=1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(data))
    s.sendall(data[:len(data) // 2])
    server = server_of(api, before)
    s.close()
    wait_for(lambda: server not in children(api.process.pid), 10, "the load connection's process to end")
    assert api.berth.ok("images", "-q", "--no-trunc") == images
    assert "other" not in api.berth.ok("images", "--format", "{{.Repository}}")
    alive(api)


# -- load -----------------------------------------------------------------------------------

def test_a_thousand_sequential_requests_and_fifty_concurrent_clients(api):
    pid = api.process.pid
    alive(api)
    rss_before = rss_kb(pid)
    paths = ("/_ping", "/v1.47/version", "/v1.47/info", "/v1.40/_ping")
    start = time.monotonic()
    failed = []
    for i in range(1000):  # each on a connection of its own: a fork of the service each
        status, _, body = request(api, "GET", paths[i % len(paths)])
        if status != 200 or not body:
            failed.append((paths[i % len(paths)], status, body[:200]))
    sequential = time.monotonic() - start
    assert failed == []

    per_client, errors = 20, []

    def client(n: int) -> None:
        """Even clients keep one connection alive for their 20 requests, odd ones connect for each."""
        conn = UnixConnection(api.sock)
        try:
            for i in range(per_client):
                conn.request("GET", paths[(n + i) % len(paths)])
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200 or not body:
                    errors.append((n, i, resp.status, body[:200]))
                if n % 2:
                    conn.close()
                    conn = UnixConnection(api.sock)
        except (OSError, http.client.HTTPException) as err:
            errors.append((n, repr(err)))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    concurrent = time.monotonic() - start
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    wait_for(lambda: not children(pid), 10, "every connection's process to end")
    rss_after = rss_kb(pid)
    print(f"\nAPI load: 1000 sequential requests in {sequential:.2f} s, 50 clients x {per_client} in "
          f"{concurrent:.2f} s; service RSS {rss_before} kB before, {rss_after} kB after")
    # the service only accepts and forks: serving is its children's, so its memory stays put
    assert rss_after - rss_before < 8 << 10, f"the service grew from {rss_before} to {rss_after} kB"
    alive(api)


# -- the service process: TCP, idle exit, one per socket -------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OtherService:
    """Another `berth system service` of the same root (on TCP, or with other flags), its output in a file."""

    def __init__(self, api: ApiService, *args: str):
        self.log = os.path.join(api.berth.base, f"service-{len(os.listdir(api.berth.base))}.log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(api.berth.cmd("system", "service", *args), stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_tcp_on_loopback_serves_the_docker_cli_without_a_warning(api):
    port = free_port()
    service = OtherService(api, "--time", "0", f"tcp://127.0.0.1:{port}")
    try:
        wait_for(lambda: reachable("127.0.0.1", port) or service.process.poll() is not None, 20, "the TCP listener")
        result = subprocess.run([api.DOCKER_28, "version", "--format", "{{.Server.APIVersion}}"],
                                capture_output=True, text=True, timeout=60,
                                env={**api.env, "DOCKER_HOST": f"tcp://127.0.0.1:{port}"})
        assert (result.returncode, result.stdout.strip()) == (0, "1.47"), result.stderr
    finally:
        service.stop()
    assert "WARNING" not in service.output()


def test_tcp_on_an_address_not_loopback_warns(api):
    api.berth.ok("run", "--rm", "busybox", "true")  # makes this root's bridge: its gateway is an address berth made
    gateway = api.berth.subnet.rsplit(".", 1)[0] + ".1"
    wait_for(lambda: f"inet {gateway}/" in subprocess.run(["ip", "-4", "addr", "show", "dev", api.berth.bridge],
                                                          capture_output=True, text=True).stdout,
             10, "the bridge's gateway address")
    port = free_port()
    service = OtherService(api, "--time", "0", f"tcp://{gateway}:{port}")
    try:
        wait_for(lambda: reachable(gateway, port) or service.process.poll() is not None, 20, "the TCP listener")
        conn = http.client.HTTPConnection(gateway, port, timeout=30)
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
        conn.close()
    finally:
        service.stop()
    assert (f"WARNING: API listening on {gateway}:{port} without TLS: anyone who can reach it controls this host"
            in service.output())


def test_a_bad_tcp_uri_is_refused_in_one_line(api):
    for uri, says in (("tcp://127.0.0.1", "a tcp:// URI needs a port"), ("http://x", "use unix:///path or tcp://")):
        result = subprocess.run(api.berth.cmd("system", "service", "--time", "0", uri), capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 1 and says in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_idle_service_exits_after_its_time_and_not_while_a_client_is_connected(api):
    sock = os.path.join(api.berth.base, "idle.sock")
    service = OtherService(api, "--time", "1", f"unix://{sock}")
    try:
        wait_for(lambda: os.path.exists(sock) or service.process.poll() is not None, 20, "the idle service's socket")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(b"GET /v1.47/events HTTP/1.1\r\nHost: d\r\n\r\n")
        assert read_head(s).startswith(b"HTTP/1.1 200 ")
        time.sleep(2.5)  # longer than --time: an open connection is not idle
        assert service.process.poll() is None, service.output()
        s.close()
        wait_for(lambda: service.process.poll() is not None, 15, "the service to exit once idle")
        assert service.process.returncode == 0, service.output()
        assert not os.path.exists(sock), "the service left its socket behind"
    finally:
        service.stop()


def test_a_second_service_on_the_same_socket_is_refused(api):
    result = subprocess.run(api.berth.cmd("system", "service", "--time", "0", api.url), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {api.sock} is already served by another process"
    assert os.path.exists(api.sock)
    alive(api)


def test_a_stale_socket_of_a_killed_service_is_taken_over(api):
    sock = os.path.join(api.berth.base, "stale.sock")
    first = OtherService(api, "--time", "0", f"unix://{sock}")
    wait_for(lambda: os.path.exists(sock) or first.process.poll() is not None, 20, "the first service's socket")
    first.process.kill()
    first.process.wait()
    assert os.path.exists(sock)  # SIGKILL: no chance to remove it
    second = OtherService(api, "--time", "0", f"unix://{sock}")
    try:
        def answers() -> bool:
            try:
                conn = UnixConnection(sock)
                conn.request("GET", "/_ping")
                return conn.getresponse().read() == b"OK"
            except OSError:
                return second.process.poll() is not None
        wait_for(answers, 20, "the second service to answer")
        assert second.process.poll() is None, second.output()
    finally:
        second.stop()


def test_a_socket_activated_service_serves_systemds_socket_and_leaves_it(api):
    """berth.socket's protocol (sd_listen_fds: the socket as fd 3, LISTEN_PID/LISTEN_FDS), through
    systemd's own systemd-socket-activate, which execs the service at the first connection."""
    sock = os.path.join(api.berth.base, "activated.sock")
    activate = require_peer("systemd-socket-activate")
    log = os.path.join(api.berth.base, "activated.log")
    with open(log, "wb") as out:
        process = subprocess.Popen([activate, "-l", sock, *api.berth.cmd("system", "service", "--time", "1")],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(sock) or process.poll() is not None, 20, "systemd-socket-activate's socket")
        result = subprocess.run([api.DOCKER_28, "version", "--format", "{{.Server.APIVersion}}"], capture_output=True,
                                text=True, timeout=60, env={**api.env, "DOCKER_HOST": f"unix://{sock}"})
        assert (result.returncode, result.stdout.strip()) == (0, "1.47"), result.stderr
        wait_for(lambda: process.poll() is not None, 15, "the activated service to exit once idle")
        assert process.returncode == 0
        assert os.path.exists(sock), "the service removed the socket systemd owns"
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
