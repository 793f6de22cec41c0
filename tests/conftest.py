"""Shared fixtures: a private berth root per test, the busybox rootfs tar, and cleanup
that leaves no container, mount or cgroup behind even when a test fails."""

import contextlib
import os
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def berth_binary() -> str:
    path = os.environ.get("BERTH_BIN") or shutil.which("berth")
    if not path:
        pytest.exit("berth is not installed: run scripts/install (or set BERTH_BIN)", 2)
    return path


def runtime_binary() -> str:
    path = os.environ.get("BERTH_RUNTIME_BIN") or shutil.which("berth-runtime")
    if not path:
        pytest.exit("berth-runtime is not installed: run scripts/install", 2)
    return path


def free_test_subnet() -> str:
    """A /24 in 10.200-254.x.0 that no route of the host touches: this test's bridge subnet."""
    import ipaddress
    import random

    from berth.network.ipam import host_routes

    routes = host_routes()
    while True:
        subnet = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(subnet.overlaps(route) for route in routes):
            return str(subnet)


class Berth:
    """Runs the real `berth` command against this test's own --root/--run-root and its own
    engine settings (daemon.json): its own bridge name and subnet, so tests never share one."""

    def __init__(self, base: str):
        self.base = base
        self.root = os.path.join(base, "root")
        self.run_root = os.path.join(base, "run")
        self.config_file = os.path.join(base, "daemon.json")
        self.binary = berth_binary()
        self.bridge = "bt" + os.urandom(4).hex()
        self.subnet = free_test_subnet()
        self.configure()

    def configure(self, **settings) -> None:
        """Rewrite this berth's daemon.json: its bridge and subnet plus `settings` (daemon.json keys)."""
        import json

        gateway = self.subnet.rsplit(".", 1)[0] + ".1/24"
        values = {"default-bridge": self.bridge, "bip": gateway, **settings}
        with open(self.config_file, "w") as f:
            json.dump({k: v for k, v in values.items() if v is not None}, f)

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, "--run-root", self.run_root, "--config-file", self.config_file,
                *args]

    def teardown_network(self) -> None:
        """Remove the bridge, nftables tables and firewall exception berth made for this root."""
        from berth.network import bridge

        made = bridge.load(self.root)
        if made is not None:
            bridge.remove(self.root, made)

    def __call__(self, *args: str, input: bytes | str | None = None, timeout: float = 60,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        return subprocess.run(self.cmd(*args), input=input, capture_output=True, text=text, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL if input is None else None)

    def ok(self, *args: str, **kw) -> str:
        result = self(*args, **kw)
        assert result.returncode == 0, f"berth {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def container_ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(os.path.join(self.root, "containers")) if len(n) == 64]
        except FileNotFoundError:
            return []

    def import_busybox(self, tar: str, name: str = "busybox:latest", *changes: str) -> str:
        args = ["import"]
        for change in changes or ('CMD ["sh"]',):
            args += ["-c", change]
        return self.ok(*args, tar, name).strip()


def cgroup_dirs(container_id: str) -> list[str]:
    found = []
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base):
        for parent in ("berth", "berth-runtime"):
            path = os.path.join(base, hierarchy, parent, container_id)
            if os.path.isdir(path):
                found.append(path)
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        path = os.path.join(base, "berth", container_id)
        if os.path.isdir(path):
            found.append(path)
    return found


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if f" {path}" in line]


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("busybox") / "busybox.tar")
    with open(path, "wb") as out:
        subprocess.run([os.path.join(REPO, "scripts", "make-busybox-rootfs")], stdout=out, check=True)
    return path


@contextlib.contextmanager
def private_berth(busybox_tar: str):
    """A Berth with its own empty root, and everything it made removed afterwards."""
    base = tempfile.mkdtemp(prefix="berth-test-")
    b = Berth(base)
    b.busybox_tar = busybox_tar
    try:
        yield b
    finally:
        for container_id in b.container_ids():
            b("rm", "-f", container_id)
            for path in cgroup_dirs(container_id):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        for line in reversed(mounts_under(base)):
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        b.teardown_network()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def berth(busybox_tar):
    with private_berth(busybox_tar) as b:
        yield b


@pytest.fixture
def fresh(busybox_tar):
    """A second, empty berth root (to load into, to compare with)."""
    with private_berth(busybox_tar) as b:
        yield b


@pytest.fixture
def busybox(berth) -> "Berth":
    """A berth root that already holds busybox:latest."""
    berth.import_busybox(berth.busybox_tar)
    return berth


def collect_child(read_fd: int, pid: int) -> tuple[bytes, int]:
    """Everything a forked test child wrote to our pipe (until it closes), then its wait status."""
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    return data, status
