"""The Engine API's streams as real clients use them: attach (docker's `run` attaches before it
starts), logs, exec; the docker CLI 28 and 20.10 and docker-py, through pipes and a pty, and
clients that hang up midway (the container goes on, the service's connection process ends)."""

import base64
import hashlib
import json
import os
import pty
import select
import socket
import time

import docker
import pytest

from conftest import ApiService, wait_for

CLIENTS = [ApiService.DOCKER_28, ApiService.DOCKER_20]


def state(api: ApiService, name: str) -> str:
    return api.berth.ok("inspect", "--format", "{{.State.Status}}", name).strip()


def connection_processes(api: ApiService) -> list[int]:
    """The service's children: one process per open connection."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == api.process.pid:
                children.append(int(entry))
    return children


class Terminal:
    """A docker CLI on a pty of its own, as a user at a terminal runs it."""

    def __init__(self, api: ApiService, *args: str):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(ApiService.DOCKER_28, [ApiService.DOCKER_28, *args], api.env)
        self.seen = b""

    def expect(self, wanted: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            if time.monotonic() > deadline:
                pytest.fail(f"no {wanted!r} on the terminal; it shows {self.seen!r}")
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    pytest.fail(f"the terminal closed before {wanted!r}; it showed {self.seen!r}")
                self.seen += data
        return self.seen

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def exit_code(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while True:
            if select.select([self.fd], [], [], 0.1)[0]:  # keep the pty drained
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, 9)
                pytest.fail(f"the docker CLI did not end; the terminal shows {self.seen!r}")


def raw_request(api: ApiService, method: str, path: str, body: bytes = b"", upgrade: bool = False) -> socket.socket:
    """A connection with one request sent and its head read: the body or the raw stream follows,
    until the service closes the connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(api.sock)
    head = f"{method} {path} HTTP/1.1\r\nHost: d\r\nContent-Length: {len(body)}\r\n"
    head += "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "Connection: close\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    sock.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, f"the service closed the connection: {data!r}"
        data += chunk
    assert data.split(b" ", 2)[1] in (b"101", b"200", b"201"), data
    return sock


# -- docker run: create, attach, wait, start --------------------------------------------------

@pytest.mark.parametrize("client", CLIENTS)
def test_run_prints_the_output_and_exits_with_the_containers_code(api, client):
    result = api.docker("run", "--name", "r1", "busybox", "sh", "-c", "echo hi; echo oops >&2; exit 3",
                        client=client)
    assert (result.returncode, result.stdout, result.stderr) == (3, "hi\n", "oops\n")
    api.berth.ok("rm", "r1")
    assert api.docker_ok("run", "--rm", "busybox", "echo", "hi", client=client) == "hi\n"
    wait_for(lambda: api.berth.ok("ps", "-aq") == "", 20, "--rm to remove it")


def test_run_with_stdin_gets_our_input_and_its_end(api):
    assert api.docker_ok("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done", input="piped\n") == \
        "piped\ndone\n"


def test_run_it_on_a_terminal(api):
    term = Terminal(api, "run", "-it", "busybox", "sh")
    term.expect(b"# ")
    term.type(b"echo $((6*7)); exit 3\r")
    term.expect(b"42\r\n")
    assert term.exit_code() == 3


def test_detach_keys_leave_it_running_and_attach_comes_back(api):
    term = Terminal(api, "run", "-it", "--name", "d1", "busybox", "sh")
    term.expect(b"# ")
    term.type(b"\x10\x11")  # ctrl-p ctrl-q
    assert term.exit_code() == 0
    assert state(api, "d1") == "running"
    term = Terminal(api, "attach", "d1")
    term.type(b"echo again\r")
    term.expect(b"again\r\n")
    term.type(b"exit 7\r")
    assert term.exit_code() == 7
    wait_for(lambda: state(api, "d1") == "exited", 20, "d1 to end")


def test_custom_detach_keys(api):
    api.docker_ok("run", "-dit", "--name", "d2", "busybox", "sh")
    term = Terminal(api, "attach", "--detach-keys", "ctrl-a,x", "d2")
    term.type(b"echo here\r")
    term.expect(b"here\r\n")
    term.type(b"\x01x")
    term.exit_code()
    assert state(api, "d2") == "running"


def test_attach_replays_the_log_with_logs_1(api):
    api.berth.ok("run", "-d", "--name", "l1", "busybox", "sh", "-c", "echo early; sleep 1; echo late")
    wait_for(lambda: "early" in api.berth.ok("logs", "l1"), 20, "the first line")
    sock = raw_request(api, "POST", "/v1.47/containers/l1/attach?logs=1&stream=1&stdout=1", upgrade=True)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    sock.close()
    assert data == b"\x01\0\0\0\0\0\0\x06early\n\x01\0\0\0\0\0\0\x05late\n"


def test_docker_py_attach_socket_before_the_start(api):
    client = docker.APIClient(base_url=api.url)
    cid = api.berth.ok("create", "busybox", "sh", "-c", "echo out; echo err >&2").strip()
    sock = client.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
    api.berth.ok("start", cid)  # through the waiting attach: it sees the first byte
    data = b""
    while chunk := sock._sock.recv(4096):
        data += chunk
    sock.close()
    assert data == b"\x01\0\0\0\0\0\0\x04out\n\x02\0\0\0\0\0\0\x04err\n"


def test_docker_py_run_in_the_foreground(api):
    client = docker.DockerClient(base_url=api.url)
    assert client.containers.run("busybox", ["sh", "-c", "echo hello"], remove=True) == b"hello\n"
    assert client.containers.run("busybox", ["sh", "-c", "echo e >&2"], stdout=False, stderr=True,
                                 remove=True) == b"e\n"


# -- clients that hang up ---------------------------------------------------------------------

def test_a_client_gone_mid_attach_leaves_the_container_running(api):
    api.berth.ok("run", "-d", "--name", "a1", "busybox", "sh", "-c", "while :; do echo tick; sleep 0.2; done")
    sock = raw_request(api, "POST", "/v1.47/containers/a1/attach?stream=1&stdout=1", upgrade=True)
    assert sock.recv(64).endswith(b"tick\n")
    assert connection_processes(api)
    sock.close()
    wait_for(lambda: not connection_processes(api), 20, "the connection's process to end")
    assert state(api, "a1") == "running"


def test_a_client_gone_mid_logs_follow(api):
    api.berth.ok("run", "-d", "--name", "f1", "busybox", "sh", "-c", "while :; do echo tick; sleep 0.2; done")
    sock = raw_request(api, "GET", "/v1.47/containers/f1/logs?follow=1&stdout=1")
    assert b"tick" in sock.recv(64)
    sock.close()
    wait_for(lambda: not connection_processes(api), 20, "the connection's process to end")
    assert state(api, "f1") == "running"


def test_a_client_gone_before_the_start_leaves_it_startable(api):
    api.berth.ok("create", "--name", "c1", "busybox", "echo", "later")
    sock = raw_request(api, "POST", "/v1.47/containers/c1/attach?stream=1&stdout=1", upgrade=True)
    sock.close()
    wait_for(lambda: not connection_processes(api), 20, "the connection's process to end")
    api.berth.ok("start", "c1")
    wait_for(lambda: state(api, "c1") == "exited", 20, "c1 to end")
    assert api.berth.ok("logs", "c1") == "later\n"


def test_start_attached_with_the_cli(api):
    api.berth.ok("create", "--name", "s2", "busybox", "sh", "-c", "echo started; exit 4")
    result = api.docker("start", "-a", "s2")
    assert (result.returncode, result.stdout) == (4, "started\n")


# -- logs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("client", CLIENTS)
def test_logs_follow_a_container_writing_over_time(api, client):
    api.berth.ok("run", "-d", "--name", "w1", "busybox", "sh", "-c",
                 "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done")
    result = api.docker("logs", "-f", "w1", client=client)
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("out1\nout2\nout3\n", "err1\nerr2\nerr3\n")


def test_logs_tail_since_timestamps(api):
    api.berth.ok("run", "--name", "t1", "busybox", "sh", "-c", "for i in 1 2 3 4; do echo line$i; done")
    assert api.docker_ok("logs", "--tail", "2", "t1") == "line3\nline4\n"
    stamped = api.docker_ok("logs", "-t", "--tail", "1", "t1")
    assert stamped.endswith("Z line4\n") and stamped[:4].isdigit()
    assert api.docker_ok("logs", "--since", "1h", "t1") == "line1\nline2\nline3\nline4\n"
    assert api.docker_ok("logs", "--until", "1h", "t1") == ""
    assert api.docker_ok("logs", "t1") == api.berth.ok("logs", "t1")


def test_logs_of_a_tty_are_raw(api):
    api.berth.ok("run", "-t", "--name", "tt", "busybox", "echo", "raw")
    sock = raw_request(api, "GET", "/v1.47/containers/tt/logs?stdout=1")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert b"raw\r\n" in data and b"\x01\0\0\0" not in data
    assert api.docker_ok("logs", "tt") == api.berth.ok("logs", "tt")


def test_logs_of_a_driver_that_keeps_none(api):
    api.berth.ok("create", "--name", "quiet", "--log-driver", "none", "busybox", "true")
    result = api.docker("logs", "quiet")
    assert result.returncode == 1
    assert "configured logging driver does not support reading" in result.stderr


def test_docker_py_logs_stream(api):
    client = docker.DockerClient(base_url=api.url)
    api.berth.ok("run", "-d", "--name", "s1", "busybox", "sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.2; done")
    lines = b"".join(client.containers.get("s1").logs(stream=True, follow=True))
    assert lines == b"n1\nn2\nn3\n"


# -- exec -------------------------------------------------------------------------------------

@pytest.fixture
def sleeper(api):
    api.berth.ok("run", "-d", "--name", "e1", "busybox", "sleep", "300")
    return "e1"


@pytest.mark.parametrize("client", CLIENTS)
def test_exec_with_the_cli(api, sleeper, client):
    result = api.docker("exec", sleeper, "sh", "-c", "echo out; echo err >&2; exit 3", client=client)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert api.docker_ok("exec", "-i", sleeper, "sh", "-c", "cat; echo end", input="hello\n",
                         client=client) == "hello\nend\n"
    assert api.docker_ok("exec", "-u", "1000", "-w", "/tmp", "-e", "FOO=bar", sleeper, "sh", "-c",
                         'id -u; pwd; echo "$FOO"', client=client) == "1000\n/tmp\nbar\n"


def test_exec_detached_records_its_exit_code(api, sleeper):
    client = docker.APIClient(base_url=api.url)
    exec_id = client.exec_create(sleeper, ["sh", "-c", "sleep 0.5; exit 4"])["Id"]
    assert len(exec_id) == 64
    assert not client.exec_start(exec_id, detach=True)
    assert client.exec_inspect(exec_id)["Running"]
    wait_for(lambda: client.exec_inspect(exec_id)["ExitCode"] == 4, 20, "the exec's end")
    assert api.docker("exec", "-d", sleeper, "touch", "/tmp/made").returncode == 0
    wait_for(lambda: api.berth("exec", sleeper, "test", "-e", "/tmp/made").returncode == 0, 20, "the file")


def test_exec_it_on_a_terminal(api, sleeper):
    term = Terminal(api, "exec", "-it", sleeper, "sh")
    term.expect(b"# ")
    term.type(b"tty; exit 5\r")
    term.expect(b"/dev/pts/")
    assert term.exit_code() == 5


def test_docker_py_exec_run(api, sleeper):
    container = docker.DockerClient(base_url=api.url).containers.get(sleeper)
    code, output = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 2"])
    assert (code, output) == (2, b"out\nerr\n")
    code, (out, err) = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert (code, out, err) == (0, b"out\n", b"err\n")
    _, chunks = container.exec_run(["sh", "-c", "echo a; sleep 0.2; echo b"], stream=True)
    assert b"".join(chunks) == b"a\nb\n"
    code, output = container.exec_run(["tty"], tty=True)
    assert output.startswith(b"/dev/pts/")


def test_exec_inspect_and_docker_errors(api, sleeper):
    client = docker.APIClient(base_url=api.url)
    exec_id = client.exec_create(sleeper, ["sh", "-c", "exit 6"], user="1000", privileged=True)["Id"]
    before = client.exec_inspect(exec_id)
    assert before["Running"] is False and before["ExitCode"] is None and before["Pid"] == 0
    assert before["ProcessConfig"] == {"tty": False, "entrypoint": "sh", "arguments": ["-c", "exit 6"],
                                       "privileged": True, "user": "1000"}
    assert before["ContainerID"] == api.berth.ok("inspect", "--format", "{{.Id}}", sleeper).strip()
    client.exec_start(exec_id)
    after = client.exec_inspect(exec_id)
    assert after["ExitCode"] == 6 and after["Pid"] > 0 and after["Running"] is False
    with pytest.raises(docker.errors.APIError) as err:
        client.exec_start(exec_id)
    assert err.value.status_code == 409 and "has already run" in str(err.value)
    with pytest.raises(docker.errors.NotFound, match="No such exec instance"):
        client.exec_inspect("0" * 64)
    api.berth.ok("create", "--name", "idle", "busybox", "true")
    with pytest.raises(docker.errors.APIError) as err:
        client.exec_create("idle", ["true"])
    assert err.value.status_code == 409 and "is not running" in str(err.value)
    api.berth.ok("rm", "-f", sleeper)
    with pytest.raises(docker.errors.NotFound):
        client.exec_inspect(exec_id)  # gone with its container


def test_exec_resize_reaches_its_terminal(api, sleeper):
    client = docker.APIClient(base_url=api.url)
    exec_id = client.exec_create(sleeper, ["sh", "-c", "sleep 1; stty size"], tty=True)["Id"]
    sock = client.exec_start(exec_id, tty=True, socket=True)
    wait_for(lambda: client.exec_inspect(exec_id)["Running"], 20, "the exec to run")
    client.exec_resize(exec_id, height=33, width=101)
    data = b""
    while chunk := sock._sock.recv(4096):
        data += chunk
    assert b"33 101" in data


def test_raw_exec_start_without_upgrade(api, sleeper):
    """dockerd hijacks a plain request too: a 200 head, then the stream until it closes."""
    sock = raw_request(api, "POST", f"/v1.47/containers/{sleeper}/exec",
                       json.dumps({"Cmd": ["echo", "x"], "AttachStdout": True}).encode())
    body = b""
    while b"}" not in body:
        body += sock.recv(4096)
    sock.close()
    exec_id = json.loads(body)["Id"]
    sock = raw_request(api, "POST", f"/v1.47/exec/{exec_id}/start", b'{"Detach": false, "Tty": false}')
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert data == b"\x01\0\0\0\0\0\0\x02x\n"


# -- attach over a websocket ------------------------------------------------------------------

def test_attach_over_a_websocket(api):
    api.berth.ok("run", "-di", "--name", "ws1", "busybox", "sh", "-c",
                 'echo ready; while read l; do echo "got $l"; done')
    wait_for(lambda: "ready" in api.berth.ok("logs", "ws1"), 20, "the container to be ready")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(api.sock)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /v1.47/containers/ws1/attach/ws?logs=1&stream=1&stdin=1&stdout=1 HTTP/1.1\r\nHost: d\r\n"
                 f"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert head.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Accept: " + accept + b"\r\n" in head

    def send(opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        sock.sendall(bytes((0x80 | opcode, 0x80 | len(payload))) + mask +
                     bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    received = b""
    while b"ready\n" not in received:  # the log replayed, in binary frames
        received += sock.recv(4096)
    assert received.startswith(b"\x82\x06ready\n")
    send(1, b"hello\n")
    while b"got hello\n" not in received:
        received += sock.recv(4096)
    send(8, b"\x03\xe8")  # close
    while chunk := sock.recv(4096):
        received += chunk
    assert received.endswith(b"\x88\x02\x03\xe8")
    assert state(api, "ws1") == "running"
