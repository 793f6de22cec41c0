"""The Engine API's container endpoints, as the real docker CLI (28 and Debian's 20.10) and
docker-py drive them, checked against the berth CLI's view of the same root."""

import io
import json
import socket
import subprocess
import tarfile
import time

import pytest
from test_api_service import request

from conftest import ApiService

docker_py = pytest.importorskip("docker")

MANY_FLAGS = ["-e", "A=1", "-w", "/tmp", "-u", "1:2", "--entrypoint", "/bin/sh", "-h", "hh", "--domainname", "dd",
              "-l", "a=b", "-t", "-i", "-p", "127.0.0.1:18080:80", "--expose", "90", "--stop-signal", "SIGUSR1",
              "--stop-timeout", "5", "--health-cmd", "true", "--health-interval", "3s", "-v", "/tmp:/mnt:ro",
              "-v", "/data", "--tmpfs", "/run:size=1m", "--mount", "type=tmpfs,target=/t2",
              "--restart", "on-failure:3", "--dns", "10.9.9.9",
              "--dns-search", "example.com", "--dns-option", "ndots:2", "--add-host", "a:10.1.2.3",
              "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--security-opt", "no-new-privileges", "-m", "64m",
              "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", "50", "--ulimit", "nofile=100:200", "--init",
              "--log-driver", "json-file", "--log-opt", "max-size=1m", "--read-only", "--shm-size", "1m",
              "--sysctl", "net.ipv4.ip_forward=1", "--group-add", "10", "--oom-score-adj", "5", "--ipc", "shareable",
              "--pid", "host", "--device", "/dev/null:/dev/mynull:r", "--label", "x=y"]
JSON = {"Content-Type": "application/json"}
PER_CONTAINER = ("Id", "Name", "Created", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath", "GraphDriver")


def _differences(a, b, path=""):
    """Where two inspect documents differ: (path, a's value, b's value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            found += _differences(a.get(key, "<missing>"), b.get(key, "<missing>"), f"{path}.{key}")
        return found
    return [] if a == b else [(path, a, b)]


def _without_ids(record: dict) -> dict:
    record = {k: v for k, v in record.items() if k not in PER_CONTAINER}
    record["Mounts"] = [{k: v for k, v in m.items() if k not in ("Name", "Source")} for m in record["Mounts"]]
    return record


def test_create_with_many_flags_is_the_container_berth_create_makes(api: ApiService):
    """The API's create translation gives what `berth create` gives for the same flags."""
    through_api = api.docker_ok("create", "--name", "viaapi", *MANY_FLAGS, "busybox", "-c", "echo hi").strip()
    by_cli = api.berth.ok("create", "--name", "viacli", *MANY_FLAGS, "busybox", "-c", "echo hi").strip()
    records = json.loads(api.berth.ok("inspect", through_api, by_cli))
    assert _differences(_without_ids(records[0]), _without_ids(records[1])) == []
    api.docker_ok("rm", "-v", "viaapi", "viacli")


def test_run_detached_and_its_lifecycle(api: ApiService):
    cid = api.docker_ok("run", "-d", "--name", "web", "-l", "role=web", "busybox", "sleep", "300").strip()
    assert len(cid) == 64
    listed = api.docker_ok("ps", "--format", "{{.ID}} {{.Names}} {{.Command}} {{.State}} {{.Labels}}")
    assert listed.strip() == f'{cid[:12]} web "sleep 300" running role=web'
    assert api.docker_ok("inspect", "--format", "{{.State.Status}} {{.Config.Cmd}} {{.Name}}", "web").strip() == \
        "running [sleep 300] /web"
    assert api.berth.ok("inspect", "-f", "{{.State.Running}}", "web").strip() == "true"

    api.docker_ok("pause", "web")
    assert api.berth.ok("inspect", "-f", "{{.State.Status}}", "web").strip() == "paused"
    api.docker_ok("unpause", "web")
    api.docker_ok("stop", "-t", "1", "web")
    assert api.berth.ok("inspect", "-f", "{{.State.Status}}", "web").strip() == "exited"
    assert api.docker_ok("ps", "-q") == ""
    assert api.docker_ok("ps", "-aq", "--filter", "status=exited").strip() == cid[:12]

    failed = api.docker("kill", "web")  # docker: 409, "... is not running"
    assert failed.returncode == 1 and f"Container {cid} is not running" in failed.stderr

    api.docker_ok("start", "web")
    api.docker_ok("restart", "-t", "1", "web")
    assert api.berth.ok("inspect", "-f", "{{.State.Running}}", "web").strip() == "true"
    api.docker_ok("rename", "web", "web2")
    assert api.berth.ok("ps", "--format", "{{.Names}}").strip() == "web2"

    api.docker_ok("update", "--memory", "100m", "--memory-swap", "200m", "web2")
    assert api.berth.ok("inspect", "-f", "{{.HostConfig.Memory}}", "web2").strip() == str(100 << 20)

    refused = api.docker("rm", "web2")
    assert refused.returncode == 1
    assert "cannot remove container \"/web2\": container is running" in refused.stderr
    api.docker_ok("rm", "-f", "web2")
    assert api.berth.ok("ps", "-aq") == ""


def test_create_start_wait(api: ApiService):
    """wait is answered (headers) before the container starts, as `docker run` needs it."""
    api.docker_ok("create", "--name", "job", "busybox", "sh", "-c", "sleep 0.3; exit 3")
    waiter = subprocess.Popen(["/usr/local/bin/docker", "wait", "job"], env=api.env, stdout=subprocess.PIPE,
                              text=True)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(api.sock)
        sock.sendall(b"POST /v1.47/containers/job/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 0\r\n\r\n")
        sock.settimeout(10)
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")  # before the start below
        api.docker_ok("start", "job")
        body = b""
        while b"StatusCode" not in body:
            body += sock.recv(4096)
        sock.close()
        assert b'{"StatusCode": 3, "Error": null}' in body
        # docker wait of a created container waits for it to run and end (condition not-running here)
        assert waiter.wait(30) == 0 and waiter.stdout.read().strip() in ("3", "0")
    finally:
        waiter.kill()
        waiter.wait()
    assert api.docker_ok("wait", "job").strip() == "3"  # ended: at once
    api.docker_ok("rm", "job")


def test_top_diff_export_stats_cp_port(api: ApiService, tmp_path):
    api.docker_ok("run", "-d", "--name", "box", "-p", "127.0.0.1:18081:80", "busybox", "sh", "-c",
                  "echo hi > /made; sleep 300")
    deadline = time.monotonic() + 10
    while "/made" not in api.docker_ok("diff", "box") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "A /made" in api.docker_ok("diff", "box").splitlines()
    top = api.docker_ok("top", "box", "-o", "pid,comm").splitlines()
    assert top[0].split() == ["PID", "COMMAND"] and [line.split()[1] for line in top[1:]] == ["sleep"]
    exported = subprocess.run(["/usr/local/bin/docker", "export", "box"], env=api.env, capture_output=True)
    assert exported.returncode == 0
    names = tarfile.open(fileobj=io.BytesIO(exported.stdout)).getnames()
    assert "made" in names and "bin/busybox" in names
    stats = api.docker_ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "box")
    assert stats.split() == ["box", "1"]  # busybox sh execs its last command
    assert api.docker_ok("port", "box").strip() == "80/tcp -> 127.0.0.1:18081"

    api.docker_ok("cp", "box:/made", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "hi\n"
    (tmp_path / "in.txt").write_text("to the container\n")
    api.docker_ok("cp", str(tmp_path / "in.txt"), "box:/tmp/")
    copied = api.berth.ok("cp", "box:/tmp/in.txt", "-")
    assert b"to the container" in copied.encode() if isinstance(copied, str) else copied
    with open(tmp_path / "one.tar", "wb") as f:
        with tarfile.open(fileobj=f, mode="w") as archive:
            archive.add(tmp_path / "in.txt", "in.txt")
    for path, status, says in (("/nosuch", 404, "Could not find the file /nosuch in container box"),
                               ("/bin/sh", 400, "extraction point is not a directory")):
        answer = request(api, "PUT", f"/v1.47/containers/box/archive?path={path}", (tmp_path / "one.tar").read_bytes())
        assert answer[0] == status and json.loads(answer[2]) == {"message": says}
    missing = api.docker("cp", "box:/nosuch", str(tmp_path / "x"))
    assert missing.returncode == 1 and "Could not find the file /nosuch in container box" in missing.stderr
    api.docker_ok("rm", "-f", "box")


def test_errors_in_dockers_words(api: ApiService):
    status, _, body = request(api, "GET", "/v1.47/containers/nosuch/json")
    assert (status, json.loads(body)) == (404, {"message": "No such container: nosuch"})
    status, _, body = request(api, "POST", "/v1.47/containers/create", b'{"Image": "busybox:nosuch"}',
                              JSON)
    assert (status, json.loads(body)) == (404, {"message": "No such image: busybox:nosuch"})
    status, _, body = request(api, "POST", "/v1.47/containers/create", b'{"Image":', JSON)
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = request(api, "POST", "/v1.47/containers/create",
                              b'{"Image": "busybox", "HostConfig": {"Memory": 10}}', JSON)
    assert (status, json.loads(body)) == (400, {"message": "Minimum memory limit allowed is 6MB"})
    cid = api.docker_ok("create", "--name", "taken", "busybox").strip()
    status, _, body = request(api, "POST", "/v1.47/containers/create?name=taken", b'{"Image": "busybox"}',
                              JSON)
    assert status == 409 and json.loads(body)["message"] == (
        f'Conflict. The container name "/taken" is already in use by container "{cid}". You have to remove (or '
        "rename) that container to be able to reuse that name.")
    assert request(api, "POST", "/v1.47/containers/taken/stop")[0] == 304
    status, _, body = request(api, "POST", "/v1.47/containers/taken/resize?h=10&w=10")
    assert (status, json.loads(body)) == (409, {"message": f"Container {cid} is not running"})
    status, _, body = request(api, "GET", "/v1.47/containers/taken/top")
    assert (status, json.loads(body)) == (409, {"message": f"container {cid} is not running"})
    status, _, body = request(api, "GET", "/v1.47/containers/taken/stats?stream=false")
    assert status == 200 and json.loads(body)["read"] == "0001-01-01T00:00:00Z"
    status, _, body = request(api, "POST", "/v1.47/containers/taken/rename?name=")
    assert (status, json.loads(body)) == (400, {"message": "Neither old nor new names may be empty"})
    status, _, body = request(api, "POST", "/v1.47/containers/taken/wait")  # not running: at once
    assert (status, json.loads(body)) == (200, {"StatusCode": 0, "Error": None})
    status, _, body = request(api, "POST", "/v1.47/containers/taken/kill")
    assert status == 409 and f"Container {cid} is not running" in json.loads(body)["message"]
    assert api.berth.ok("ps", "-aq").strip() == cid[:12]  # nothing half-made by the failures
    assert request(api, "DELETE", "/v1.47/containers/taken")[0] == 204


def test_docker_20_client(api: ApiService):
    old = ApiService.DOCKER_20
    cid = api.docker_ok("run", "-d", "--name", "old", "busybox", "sleep", "300", client=old).strip()
    assert api.docker_ok("ps", "--format", "{{.ID}} {{.Names}}", client=old).strip() == f"{cid[:12]} old"
    assert api.docker_ok("diff", "old", client=old) == ""  # docker's null: no changes
    assert api.docker_ok("stats", "--no-stream", "--format", "{{.Name}}", "old", client=old).strip() == "old"
    api.docker_ok("stop", "-t", "1", "old", client=old)
    api.docker_ok("rm", "old", client=old)
    assert api.berth.ok("ps", "-aq") == ""


def test_docker_py(api: ApiService):
    client = docker_py.DockerClient(base_url=api.url)
    try:
        container = client.containers.run("busybox", ["sh", "-c", "echo x > /f; sleep 300"], detach=True,
                                          name="py", labels={"k": "v"}, ports={"80/tcp": ("127.0.0.1", 18082)})
        assert [c.name for c in client.containers.list(filters={"label": "k=v"})] == ["py"]
        assert client.containers.list(filters={"label": "k=other"}) == []
        container.reload()
        assert container.status == "running" and container.labels == {"k": "v"}
        assert container.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18082"}]}
        summary = client.api.containers(filters={"name": "py"})[0]
        assert summary["Names"] == ["/py"] and summary["Ports"] == [
            {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 18082, "Type": "tcp"}]
        assert summary["HostConfig"] == {"NetworkMode": "bridge"} and "bridge" in summary["NetworkSettings"]["Networks"]
        started = time.monotonic()
        stats = container.stats(stream=False, one_shot=True)
        assert time.monotonic() - started < 2
        assert stats["id"] == container.id and stats["pids_stats"]["current"] == 1
        assert stats["memory_stats"]["usage"] > 0 and stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0

        buffer = io.BytesIO()
        info = tarfile.TarInfo("put.txt")
        info.size = 4
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.addfile(info, io.BytesIO(b"data"))
        assert container.put_archive("/tmp", buffer.getvalue())
        chunks, stat = container.get_archive("/tmp/put.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            assert archive.extractfile("put.txt").read() == b"data"
        assert stat["name"] == "put.txt" and stat["size"] == 4 and stat["mode"] == 0o644
        _, dir_stat = container.get_archive("/tmp")
        assert dir_stat["mode"] == (1 << 31) | (1 << 20) | 0o777  # Go's ModeDir | ModeSticky | perm
        with pytest.raises(docker_py.errors.NotFound):
            container.get_archive("/nosuch")
        assert {"Path": "/f", "Kind": 1} in container.diff()
        assert container.top()["Titles"][:2] == ["UID", "PID"]

        container.kill()
        assert container.wait(timeout=20)["StatusCode"] == 137
        container.remove()
        created = client.containers.create("busybox", "true", labels={"old": "1"})
        pruned = client.containers.prune(filters={"label": "old=1"})
        assert pruned["ContainersDeleted"] == [created.id] and pruned["SpaceReclaimed"] >= 0
        assert client.containers.list(all=True) == []
    finally:
        client.close()
        for ref in api.berth.ok("ps", "-aq").split():
            api.berth.ok("rm", "-f", ref)


def test_list_with_size_limit_and_stats_stream(api: ApiService):
    for name in ("one", "two", "three"):
        api.docker_ok("create", "--name", name, "busybox", "true")
    status, _, body = request(api, "GET", "/v1.47/containers/json?all=1&limit=2&size=1")
    listed = json.loads(body)
    assert status == 200 and [c["Names"] for c in listed] == [["/three"], ["/two"]]
    assert all(c["SizeRootFs"] > 0 and c["State"] == "created" and c["Status"] == "Created" for c in listed)
    assert all(isinstance(c["Created"], int) and c["Ports"] == [] for c in listed)
    status, _, body = request(api, "GET", '/v1.47/containers/json?all=1&filters={"name":["^/on"]}')
    assert [c["Names"] for c in json.loads(body)] == [["/one"]]
    status, _, body = request(api, "GET", '/v1.47/containers/json?filters={"bogus":["x"]}')
    assert status == 400
    status, _, body = request(api, "POST", "/v1.47/containers/prune")
    assert status == 200 and len(json.loads(body)["ContainersDeleted"]) == 3
    assert api.berth.ok("ps", "-aq") == ""


def _read_lines(sock: socket.socket, count: int) -> list[bytes]:
    """The first `count` JSON lines of a chunked stream (chunk sizes skipped)."""
    data = b""
    while True:
        lines = [ln for ln in data.split(b"\r\n") if ln.startswith(b"{")]
        if len(lines) >= count:
            return lines[:count]
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk


def test_stats_stream_and_resize(api: ApiService):
    api.docker_ok("run", "-d", "-t", "--name", "term", "busybox", "sh")
    status, _, body = request(api, "POST", "/v1.47/containers/term/resize?h=33&w=111")
    assert status == 200
    assert api.berth.ok("exec", "term", "stty", "size", "-F", "/proc/1/fd/0").strip() == "33 111"

    sock = socket.socket(socket.AF_UNIX)
    sock.connect(api.sock)
    sock.settimeout(10)
    sock.sendall(b"GET /v1.47/containers/term/stats HTTP/1.1\r\nHost: x\r\n\r\n")
    first, second = (json.loads(line) for line in _read_lines(sock, 2))
    sock.close()
    assert first["preread"] == "0001-01-01T00:00:00Z" and second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"] and second["name"] == "/term"
    api.docker_ok("rm", "-f", "term")


def test_failed_start_of_an_auto_remove_container_removes_it(api: ApiService):
    """docker's CLI waits (condition=removed) for the daemon to remove an --rm container whose
    start failed."""
    result = api.docker("run", "-d", "--rm", "--name", "gone", "busybox", "nosuchcmd", timeout=30)
    assert result.returncode == 127 and 'exec: "nosuchcmd": executable file not found' in result.stderr
    assert api.berth.ok("ps", "-aq") == ""
    result = api.docker("run", "-d", "--name", "kept", "busybox", "nosuchcmd", timeout=30)
    assert result.returncode == 127
    assert api.berth.ok("ps", "-a", "--format", "{{.Names}} {{.State}}").strip() == "kept created"
    api.docker_ok("rm", "kept")
