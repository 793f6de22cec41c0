"""berth-runtime under the real engines that call runc: containerd (ctr and the
io.containerd.runc.v2 shim), dockerd (--add-runtime) and podman (--runtime). Each peer is started
here with its own directories, sockets and cgroup parent, and everything it made goes at the
end. Where the peer drives runc too, the same steps with runc must show the same."""

import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

from conftest import free_test_subnet, private_berth, require_peer, runtime_binary, wait_for

RUNC = "/usr/sbin/runc"


@pytest.fixture(scope="module")
def image_tar(busybox_tar, tmp_path_factory) -> str:
    """busybox:latest as `berth save` writes it (a docker-archive every peer loads)."""
    path = str(tmp_path_factory.mktemp("peers") / "busybox-image.tar")
    with private_berth(busybox_tar) as b:
        b.import_busybox(busybox_tar)
        b.ok("save", "-o", path, "busybox:latest")
    return path


def _stop(process: subprocess.Popen) -> None:
    """End a peer daemon we started, by its pid."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _started(peer_class, image_tar: str):
    """A module's peer: started with the image loaded, closed (and all it made gone) at the end."""
    peer = peer_class(image_tar)
    try:
        yield peer
    finally:
        peer.close()


def _discard(base: str, cgroup_parent: str) -> None:
    """What a stopped peer leaves: mounts under its directory, its cgroups, the directory."""
    _unmount_under(base)
    _remove_cgroup_tree(cgroup_parent)
    shutil.rmtree(base, ignore_errors=True)


def _unmount_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(path.rstrip("/") + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _cgroup_bases() -> list[str]:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return ["/sys/fs/cgroup"]
    return [e.path for e in os.scandir("/sys/fs/cgroup") if e.is_dir() and not e.is_symlink()]


def _remove_cgroup_tree(relative: str) -> list[str]:
    """rmdir <hierarchy>/<relative> and what is under it, deepest first; returns the
    directories below it that were still there."""
    left = []
    for base in _cgroup_bases():
        top = os.path.join(base, relative.strip("/"))
        for directory, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            if directory != top:
                left.append(directory)
            try:
                os.rmdir(directory)
            except OSError:
                pass
    return left


def _on_pty(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run `argv` with a pty as its terminal (what -t/-it want); its output and exit code."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every holder of the slave is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = process.wait(timeout)
    return code, b"".join(chunks).decode(errors="replace").replace("\r", "").replace("\x00", "")


def _no_runtime_state(root: str) -> list[str]:
    """Container state dirs a runtime left under its root (<root>/<namespace>/<id>; berth-runtime's
    seccomp cache is no container)."""
    left = []
    for namespace in os.listdir(root) if os.path.isdir(root) else ():
        directory = os.path.join(root, namespace)
        left += [os.path.join(directory, name) for name in os.listdir(directory) if name != "seccomp"]
    return left


# -- containerd -------------------------------------------------------------------------------


class Containerd:
    """A private containerd (own root, state, sockets, no CRI plugin) and `ctr` against it, in a
    namespace of its own, so its containers' cgroups are /<namespace>/<id>."""

    def __init__(self, image_tar: str):
        self.base = tempfile.mkdtemp(prefix="berth-ctd-")
        self.namespace = "berth-rt-" + uuid.uuid4().hex[:8]
        self.sock = os.path.join(self.base, "ctd.sock")
        config = os.path.join(self.base, "config.toml")
        with open(config, "w") as f:
            f.write(f'version = 2\nroot = "{self.base}/root"\nstate = "{self.base}/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n')
        self.log = open(os.path.join(self.base, "containerd.log"), "wb")
        self.process = subprocess.Popen([require_peer("containerd"), "--config", config], stdout=self.log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.ctr("version").returncode == 0 or self.process.poll() is not None, 30, "containerd")
        assert self.process.poll() is None, "containerd ended at start"
        imported = self.ctr("image", "import", image_tar)
        assert imported.returncode == 0, imported.stderr
        self.image = "docker.io/library/busybox:latest"

    def runc_root(self, binary: str) -> str:
        return os.path.join(self.base, "runc-root-" + os.path.basename(binary))

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", self.sock, "-n", self.namespace, *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def run_args(self, binary: str, *flags: str) -> list[str]:
        return ["run", "--runtime", "io.containerd.runc.v2", "--runc-binary", binary, "--runc-root",
                self.runc_root(binary), *flags]

    def task_status(self, container_id: str) -> str:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == container_id:
                return fields[2]
        return ""

    def close(self) -> None:
        try:
            for line in self.ctr("task", "ls", "-q").stdout.split():
                self.ctr("task", "kill", "-s", "KILL", line)
                wait_for(lambda line=line: self.task_status(line) in ("STOPPED", ""), 20, "task to stop")
                self.ctr("task", "rm", "-f", line)
            for line in self.ctr("containers", "ls", "-q").stdout.split():
                self.ctr("containers", "rm", line)
        finally:
            _stop(self.process)
            self.log.close()
            _discard(self.base, self.namespace)


@pytest.fixture(scope="module")
def containerd(image_tar):
    yield from _started(Containerd, image_tar)


def _cgroup_of(namespace: str, container_id: str) -> list[str]:
    return [path for path in (os.path.join(base, namespace, container_id) for base in _cgroup_bases())
            if os.path.isdir(path)]


SHOW = ("id; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; cut -d: -f2 /proc/self/cgroup | sort;"
        " awk '{print $2, $3}' /proc/self/mounts | sort; ulimit -n; ls /dev; echo $$; exit 7")


def test_ctr_run_shows_the_same_as_with_runc(containerd):
    results = {}
    for binary in (runtime_binary(), RUNC):
        container_id = "run-" + uuid.uuid4().hex[:8]
        result = containerd.ctr(*containerd.run_args(binary, "--rm"), containerd.image, container_id, "sh", "-c", SHOW)
        results[binary] = (result.returncode, result.stdout)
        assert not _cgroup_of(containerd.namespace, container_id), "the container's cgroup was left"
        assert not _no_runtime_state(containerd.runc_root(binary)), "the runtime's state dir was left"
    ours, theirs = results[runtime_binary()], results[RUNC]
    assert ours[0] == 7 and "CapEff" in ours[1] and "/proc" in ours[1], ours
    assert ours == theirs


def _lifecycle(containerd: Containerd, binary: str) -> list:
    """ctr's detached life of a container, what each step shows (pids normalized)."""
    container_id = "life-" + uuid.uuid4().hex[:8]
    seen = []
    started = containerd.ctr(*containerd.run_args(binary, "-d"), containerd.image, container_id, "sleep", "1000")
    seen.append(("run -d", started.returncode, started.stderr))
    seen.append(("status", containerd.task_status(container_id)))
    execed = containerd.ctr("task", "exec", "--exec-id", "e1", container_id, "sh", "-c",
                            "echo from-exec; tr '\\0' ' ' < /proc/1/cmdline; echo; exit 3")
    seen.append(("exec", execed.returncode, execed.stdout))
    listed = containerd.ctr("task", "ps", container_id)
    task_pid = [line.split()[1] for line in containerd.ctr("task", "ls").stdout.splitlines()
                if line.split()[:1] == [container_id]]
    pids = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    seen.append(("ps", listed.returncode, pids == task_pid))
    for verb in ("pause", "resume"):
        done = containerd.ctr("task", verb, container_id)
        seen.append((verb, done.returncode, done.stderr, containerd.task_status(container_id)))
    metrics = containerd.ctr("task", "metrics", container_id)
    names = sorted(line.split()[0] for line in metrics.stdout.splitlines()[3:] if line.strip())
    seen.append(("metrics", metrics.returncode, names))
    killed = containerd.ctr("task", "kill", "-s", "KILL", container_id)
    wait_for(lambda: containerd.task_status(container_id) == "STOPPED", 20, "the task to stop")
    seen.append(("kill", killed.returncode, containerd.task_status(container_id)))
    deleted = containerd.ctr("task", "delete", container_id)
    seen.append(("task delete", deleted.returncode, deleted.stdout))
    seen.append(("rm", containerd.ctr("containers", "rm", container_id).returncode))
    seen.append(("cgroup left", bool(_cgroup_of(containerd.namespace, container_id))))
    return seen


def test_ctr_detached_lifecycle_is_the_same_as_with_runc(containerd):
    ours = _lifecycle(containerd, runtime_binary())
    theirs = _lifecycle(containerd, RUNC)
    steps = dict((step[0], step[1:]) for step in ours)
    assert steps["status"] == ("RUNNING",)
    assert steps["exec"] == (3, "from-exec\nsleep 1000 \n")
    assert steps["ps"] == (0, True)
    assert steps["pause"][-1] == "PAUSED" and steps["resume"][-1] == "RUNNING"
    assert "memory.usage_in_bytes" in steps["metrics"][1] or "memory.usage" in " ".join(steps["metrics"][1])
    assert steps["kill"] == (0, "STOPPED") and steps["cgroup left"] == (False,)
    assert ours == theirs


def test_ctr_tty_is_the_same_as_with_runc(containerd):
    results = {}
    for binary in (runtime_binary(), RUNC):
        argv = ["ctr", "-a", containerd.sock, "-n", containerd.namespace,
                *containerd.run_args(binary, "--rm", "-t"), containerd.image, "tty-" + uuid.uuid4().hex[:8],
                "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 5"]
        results[binary] = _on_pty(argv)
    assert results[runtime_binary()][0] == 5
    assert "/dev/pts/0\nstdin-is-a-tty" in results[runtime_binary()][1]
    assert results[runtime_binary()] == results[RUNC]


def test_ctr_shows_the_runtime_error_from_its_json_log(containerd):
    """The shim reads berth-runtime's --log (JSON lines) for the message it shows."""
    container_id = "bad-" + uuid.uuid4().hex[:8]
    result = containerd.ctr(*containerd.run_args(runtime_binary(), "--rm"), containerd.image, container_id,
                            "no-such-command")
    assert result.returncode != 0
    assert "no-such-command" in result.stderr and "unable to retrieve OCI runtime error" not in result.stderr, \
        result.stderr
    containerd.ctr("containers", "rm", container_id)
    assert not _cgroup_of(containerd.namespace, container_id)
    assert not _no_runtime_state(containerd.runc_root(runtime_binary()))


def test_ctr_systemd_cgroup_is_refused_clearly_where_systemd_does_not_run(containerd):
    assert not os.path.isdir("/run/systemd/system"), "this test is for hosts without systemd"
    for binary in (runtime_binary(), RUNC):
        container_id = "sd-" + uuid.uuid4().hex[:8]
        result = containerd.ctr(*containerd.run_args(binary, "--rm", "--runc-systemd-cgroup", "--cgroup",
                                                     f"system.slice:berth:{container_id}"),
                                containerd.image, container_id, "true")
        containerd.ctr("containers", "rm", container_id)
        assert result.returncode != 0
        assert "systemd not running on this host, cannot use systemd cgroups manager" \
            in result.stderr, (binary, result.stderr)
        assert not _cgroup_of(containerd.namespace, container_id)


# -- dockerd ----------------------------------------------------------------------------------


class Dockerd:
    """A private Debian dockerd: own data root, exec root (its own containerd under it), socket,
    pidfile and cgroup parent; its default network on a bridge of our own (never --bridge=none:
    dockerd then deletes the host's docker0, the shared dockerd's), no iptables; berth-runtime
    as runtime "berth"."""

    def __init__(self, image_tar: str):
        self.base = tempfile.mkdtemp(prefix="berth-dkd-")
        self.sock = os.path.join(self.base, "docker.sock")
        self.cgroup_parent = "berth-test-dockerd-" + uuid.uuid4().hex[:8]
        self.log = open(os.path.join(self.base, "dockerd.log"), "wb")
        self.default_bridge = "bd" + uuid.uuid4().hex[:8]
        subprocess.run(["ip", "link", "add", self.default_bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", free_test_subnet().rsplit(".", 1)[0] + ".1/24", "dev",
                        self.default_bridge], check=True)
        try:
            self.process = subprocess.Popen(
                [require_peer("dockerd"), "--data-root", os.path.join(self.base, "data"),
                 "--exec-root", os.path.join(self.base, "exec"), "-H", "unix://" + self.sock,
                 "--pidfile", os.path.join(self.base, "docker.pid"), "--bridge", self.default_bridge,
                 "--iptables=false",
                 "--ip6tables=false", "--ip-masq=false", "--cgroup-parent", "/" + self.cgroup_parent,
                 "--add-runtime", "berth=" + runtime_binary()],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            wait_for(lambda: self.docker("version").returncode == 0 or self.process.poll() is not None, 60, "dockerd")
            assert self.process.poll() is None, "dockerd ended at start"
            loaded = self.docker("load", "-i", image_tar)
            assert loaded.returncode == 0, loaded.stderr
        except BaseException:
            if getattr(self, "process", None) is not None:
                _stop(self.process)
            subprocess.run(["ip", "link", "del", self.default_bridge], capture_output=True)
            raise
        self.network = self.bridge = None

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["/usr/bin/docker", "-H", "unix://" + self.sock, *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def make_network(self) -> str:
        """A user bridge of our own (name, subnet), for published ports."""
        if self.network is None:
            self.bridge = "bd" + uuid.uuid4().hex[:8]
            made = self.docker("network", "create", "--subnet", free_test_subnet(),
                               "-o", "com.docker.network.bridge.name=" + self.bridge, "berthnet")
            assert made.returncode == 0, made.stderr
            self.network = "berthnet"
        return self.network

    def close(self) -> None:
        try:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)
            if self.network:
                self.docker("network", "rm", self.network)
        finally:
            _stop(self.process)
            self.log.close()
            for bridge in (self.bridge, self.default_bridge):
                if bridge:
                    subprocess.run(["ip", "link", "del", bridge], capture_output=True)
            _discard(self.base, self.cgroup_parent)


@pytest.fixture(scope="module")
def dockerd(image_tar):
    yield from _started(Dockerd, image_tar)


DOCKER_SHOW = ("grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
               " id; hostname | wc -c; ls /dev; exit 4")


def test_docker_run_with_memory_and_cap_drop_is_the_same_as_with_runc(dockerd):
    results = {}
    for runtime in ("berth", "runc"):
        result = dockerd.docker("run", "--rm", "--runtime", runtime, "--cap-drop", "NET_RAW", "--memory", "64m",
                                "busybox:latest", "sh", "-c", DOCKER_SHOW)
        results[runtime] = (result.returncode, result.stdout, result.stderr)
    assert results["berth"][0] == 4, results["berth"]
    assert "CapEff:\t00000000a80405fb" in results["berth"][1]  # docker's default set without NET_RAW
    assert "67108864" in results["berth"][1]
    assert results["berth"] == results["runc"]


def _docker_detached(dockerd: Dockerd, runtime: str) -> list:
    name = "d" + uuid.uuid4().hex[:8]
    seen = [dockerd.docker("run", "-d", "--name", name, "--runtime", runtime, "busybox:latest",
                           "sleep", "1000").returncode]
    state = json.loads(dockerd.docker("inspect", name).stdout)[0]["State"]
    seen.append((state["Status"], state["Running"]))
    execed = dockerd.docker("exec", name, "sh", "-c", "echo from-exec; id -u; tr '\\0' ' ' < /proc/1/cmdline; exit 2")
    seen.append((execed.returncode, execed.stdout))
    seen.append(dockerd.docker("stop", "-t", "1", name).returncode)
    state = json.loads(dockerd.docker("inspect", name).stdout)[0]["State"]
    seen.append((state["Status"], state["ExitCode"]))
    seen.append(dockerd.docker("rm", name).returncode)
    return seen


def test_docker_detached_exec_stop_rm_is_the_same_as_with_runc(dockerd):
    ours = _docker_detached(dockerd, "berth")
    assert ours == [0, ("running", True), (2, "from-exec\n0\nsleep 1000 "), 0, ("exited", 137), 0]
    assert ours == _docker_detached(dockerd, "runc")


def test_docker_run_it_is_the_same_as_with_runc(dockerd):
    results = {runtime: _on_pty(["/usr/bin/docker", "-H", "unix://" + dockerd.sock, "run", "--rm", "-it",
                                 "--runtime", runtime, "busybox:latest", "sh", "-c",
                                 "tty; [ -t 0 ] && echo stdin-is-a-tty; stty size; exit 5"])
               for runtime in ("berth", "runc")}
    assert results["berth"][0] == 5 and "/dev/pts/0\nstdin-is-a-tty" in results["berth"][1], results["berth"]
    assert results["berth"] == results["runc"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_docker_published_port_reaches_the_container(dockerd):
    """iptables off: docker's userland proxy (docker-proxy) carries 127.0.0.1:<port> to the
    container on our own bridge, whose network namespace berth-runtime made (libnetwork's
    prestart hook)."""
    network = dockerd.make_network()
    port = _free_port()
    name = "web" + uuid.uuid4().hex[:8]
    started = dockerd.docker("run", "-d", "--name", name, "--runtime", "berth", "--network", network,
                             "-p", f"127.0.0.1:{port}:80", "busybox:latest", "httpd", "-f", "-p", "80", "-h", "/etc")
    assert started.returncode == 0, started.stderr
    try:
        hostname = dockerd.docker("exec", name, "hostname").stdout.strip()

        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2) as response:
                    return response.read().decode().strip()
            except OSError:
                return None

        assert wait_for(fetch, 20, "the published port") == hostname
    finally:
        dockerd.docker("rm", "-f", name)


# -- podman -----------------------------------------------------------------------------------


class Podman:
    """podman with a private store (root, runroot, tmpdir), cgroupfs under a cgroup parent of
    its own and no network, so the shared podman store and networks are untouched."""

    def __init__(self, image_tar: str):
        self.base = tempfile.mkdtemp(prefix="berth-pod-")
        self.cgroup_parent = "berth-test-podman-" + uuid.uuid4().hex[:8]
        loaded = self.podman(RUNC, "load", "-i", image_tar)
        assert loaded.returncode == 0, loaded.stderr

    def podman(self, runtime: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [require_peer("podman"), "--root", os.path.join(self.base, "root"), "--runroot",
             os.path.join(self.base, "run"), "--tmpdir", os.path.join(self.base, "tmp"), "--cgroup-manager",
             "cgroupfs", "--events-backend", "file", "--storage-driver", "vfs", "--runtime", runtime, *args],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def run_flags(self) -> list[str]:
        return ["--network", "none", "--cgroup-parent", "/" + self.cgroup_parent]

    def close(self) -> None:
        try:
            self.podman(RUNC, "rm", "-af", "-t", "0")
            self.podman(RUNC, "rmi", "-af")
        finally:
            _discard(self.base, self.cgroup_parent)


@pytest.fixture(scope="module")
def podman(image_tar):
    yield from _started(Podman, image_tar)


def _podman_steps(podman: Podman, runtime: str) -> list:
    seen = []
    once = podman.podman(runtime, "run", "--rm", *podman.run_flags(), "busybox:latest", "sh", "-c",
                         "grep -E '^Cap(Eff|Bnd)' /proc/self/status; id; exit 6")
    seen.append((once.returncode, once.stdout))
    name = "p" + uuid.uuid4().hex[:8]
    seen.append(podman.podman(runtime, "run", "-d", "--name", name, *podman.run_flags(), "busybox:latest",
                              "sleep", "1000").returncode)
    execed = podman.podman(runtime, "exec", name, "sh", "-c", "echo from-exec; tr '\\0' ' ' < /proc/1/cmdline")
    seen.append((execed.returncode, execed.stdout))
    seen.append(podman.podman(runtime, "stop", "-t", "1", name).returncode)
    seen.append(podman.podman(runtime, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                              name).stdout.strip())
    seen.append(podman.podman(runtime, "rm", name).returncode)
    seen.append(podman.podman(runtime, "ps", "-aq").stdout.strip())
    return seen


def test_podman_run_exec_stop_rm_is_the_same_as_with_runc(podman):
    ours = _podman_steps(podman, runtime_binary())
    assert ours[0][0] == 6 and "CapEff" in ours[0][1], ours
    assert ours[1:] == [0, (0, "from-exec\nsleep 1000 "), 0, "exited 137", 0, ""], ours
    assert ours == _podman_steps(podman, RUNC)
    left = [path for path in _remove_cgroup_tree(podman.cgroup_parent) if not path.endswith("/conmon")]
    assert not left, "a container's cgroup was left"  # conmon's own cgroup is podman's

