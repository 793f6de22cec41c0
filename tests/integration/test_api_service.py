"""The Engine API service itself: the socket, versions, docker's errors, the ping and version
endpoints, as the real docker CLI and a raw HTTP client see them."""

import http.client
import json
import os
import socket
import stat

from conftest import ApiService


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def request(api: ApiService, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = UnixConnection(api.sock)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_ping_carries_dockers_headers(api):
    status, headers, body = request(api, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["Api-Version"] == "1.47" and headers["Ostype"] == "linux"
    assert headers["Docker-Experimental"] == "false" and headers["Server"].startswith("berth/")
    status, headers, body = request(api, "HEAD", "/_ping")
    assert status == 200 and body == b"" and headers["Api-Version"] == "1.47"


def test_versions_outside_the_range_are_refused_as_docker_does(api):
    status, _, body = request(api, "GET", "/v1.99/version")
    assert status == 400
    assert json.loads(body) == {"message": "client version 1.99 is too new. Maximum supported API version is 1.47"}
    status, _, body = request(api, "GET", "/v1.12/version")
    assert status == 400 and "is too old. Minimum supported API version is 1.24" in json.loads(body)["message"]
    for path in ("/version", "/v1.40/version", "/v1.47/version"):
        status, _, body = request(api, "GET", path)
        assert status == 200 and json.loads(body)["ApiVersion"] == "1.47"


def test_unknown_paths_and_methods(api):
    status, headers, body = request(api, "GET", "/v1.47/no/such/thing")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": "page not found"}
    status, _, body = request(api, "DELETE", "/v1.47/version")
    assert status == 405 and "message" in json.loads(body)


def test_a_malformed_request_gets_a_400_and_the_service_lives_on(api):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(api.sock)
    s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400")
    status, _, _ = request(api, "GET", "/_ping")
    assert status == 200 and api.process.poll() is None


def test_the_socket_is_only_roots(api):
    mode = os.stat(api.sock).st_mode
    assert stat.S_ISSOCK(mode)
    # no `berth` group on this machine: 0600, as docker's socket without a docker group
    assert stat.S_IMODE(mode) == 0o600
    pid = os.fork()
    if pid == 0:  # nobody cannot connect
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(api.sock)
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "a user outside the group reached the API socket"


def test_docker_cli_sees_the_engine(api):
    for client in (api.DOCKER_28, api.DOCKER_20):
        out = api.docker_ok("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}", client=client)
        assert out.strip() == "0.1.0 1.47"
    info = api.docker_ok("info", "--format", "{{.DockerRootDir}} {{.OSType}}")
    assert info.strip() == f"{api.berth.root} linux"


def test_events_stream_as_the_docker_cli_reads_them(api):
    api.berth.ok("volume", "create", "evvol")
    out = api.docker_ok("events", "--since", "0", "--until", str(int(__import__("time").time()) + 1),
                        "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}")
    assert "volume create evvol" in out
