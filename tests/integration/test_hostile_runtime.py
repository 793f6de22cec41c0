"""The runtime never writes outside the rootfs it builds (issue 11, hole 7): every path under
it (/dev and its nodes and symlinks, mount targets and what is made for them, masked and
read-only paths, cwd) is resolved inside it, whatever symlinks the rootfs holds or swaps in.

Both doors: `berth-runtime` on a bundle whose rootfs is hostile, and `berth run` of an image
whose layer ships the symlinks. Each attack aims at a directory the test made on the host and
checks, from the host, that nothing appeared in it; the container either runs with what it asked
for inside its own rootfs or fails with one line (exit 1 for berth-runtime, 125 for run)."""

import ctypes
import io
import os
import shutil
import subprocess
import tarfile
import threading
import time

import pytest
from test_runtime_cli import base_config, runtime  # noqa: F401 (runtime is a fixture)

from conftest import refused


@pytest.fixture
def host_dir(tmp_path):
    """An empty host directory the attacks aim at; the test fails if anything lands in it."""
    path = tmp_path / "host-target"
    path.mkdir()
    yield str(path)
    assert os.listdir(path) == [], f"the runtime wrote into the host directory {path}"


def _rootfs(rt) -> str:
    return os.path.join(rt.bundle, "rootfs")


def _clean_failure(result: subprocess.CompletedProcess, code: int) -> None:
    """A refusal: `code`, one line on stderr, no traceback."""
    refused(result, code)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- berth-runtime: a bundle whose rootfs is hostile ------------------------------------------

def test_dev_symlink_to_a_host_dir_gets_nothing_written(runtime, host_dir):  # noqa: F811
    """The hole as reported: `dev -> /some/host/dir` got fd/stdin/stdout/stderr links on the host.
    Now /dev (a tmpfs here) is made where the link leads inside the rootfs."""
    rootfs = _rootfs(runtime)
    shutil.rmtree(os.path.join(rootfs, "dev"))
    os.symlink(host_dir, os.path.join(rootfs, "dev"))
    result = runtime.run_container("sh", "-c", "test -c /dev/null && readlink /dev/stdout && ls /dev/pts")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("/proc/self/fd/1\n")
    inside = rootfs + host_dir  # the link's target, resolved in the rootfs
    assert os.path.isdir(inside)


def test_devices_without_a_dev_mount_stay_in_the_rootfs(runtime, host_dir):  # noqa: F811
    """No /dev tmpfs: the device nodes and /dev's symlinks go into the rootfs itself."""
    rootfs = _rootfs(runtime)
    shutil.rmtree(os.path.join(rootfs, "dev"))
    os.symlink(host_dir, os.path.join(rootfs, "dev"))
    container_id = runtime.new_id()
    config = base_config(container_id, "sh", "-c", "test -c /dev/zero && readlink /dev/fd")
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/proc/self/fd\n"
    made = set(os.listdir(rootfs + host_dir))  # the link's target, resolved in the rootfs
    assert {"null", "zero", "tty", "fd", "stdin", "stdout", "stderr"} <= made


def test_relative_dotdot_symlink_stays_in_the_rootfs(runtime, host_dir):  # noqa: F811
    """`dev -> ../../../../<host dir>`: `..` stops at the rootfs."""
    rootfs = _rootfs(runtime)
    shutil.rmtree(os.path.join(rootfs, "dev"))
    os.symlink("../" * 20 + host_dir.lstrip("/"), os.path.join(rootfs, "dev"))
    result = runtime.run_container("test", "-c", "/dev/null")
    assert result.returncode == 0, result.stderr


class Swapper:
    """A concurrent attacker: swaps `name` in `directory` between a real directory and a symlink
    to the host directory with renameat2(RENAME_EXCHANGE) (never a moment without either), as
    fast as it can, until stopped."""

    def __init__(self, directory: str, name: str, link_target: str):
        self.directory = directory
        self.name = name
        os.mkdir(os.path.join(directory, name))
        os.symlink(link_target, os.path.join(directory, name + ".swap"))
        self.stop = threading.Event()
        self.swaps = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        a, b = self.name.encode(), (self.name + ".swap").encode()
        try:
            while not self.stop.is_set():
                libc.renameat2(fd, a, fd, b, 2)
                self.swaps += 1
        finally:
            os.close(fd)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_dev_linked_to_the_rootfs_itself_is_refused(runtime):  # noqa: F811
    """`dev -> /`: a tmpfs there would cover the whole rootfs (runc: "on the top of rootfs")."""
    rootfs = _rootfs(runtime)
    shutil.rmtree(os.path.join(rootfs, "dev"))
    os.symlink("/", os.path.join(rootfs, "dev"))
    result = runtime.run_container("true")
    _clean_failure(result, 1)
    assert 'at "/dev": mountpoint /dev is on the top of the rootfs' in result.stderr


def test_mount_target_swapped_for_a_symlink_while_mounting(runtime, host_dir):  # noqa: F811
    """A tmpfs on /mnt/x while /mnt is swapped between a directory and `-> <host dir>` (another
    container sharing the tree could do it): the old runtime joined a path string, then made
    /mnt/x through it; a few seconds of attempts, each a full create of the container."""
    rootfs = _rootfs(runtime)
    container_id = runtime.new_id()
    config = base_config(container_id, "true")
    config["mounts"].append({"destination": "/mnt/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    runtime.write_config(config)
    outcomes = []
    deadline = time.monotonic() + 4
    with Swapper(rootfs, "mnt", host_dir) as swapper:
        while time.monotonic() < deadline and not os.listdir(host_dir):
            result = runtime("run", "-b", runtime.bundle, container_id)
            if result.returncode != 0:
                _clean_failure(result, 1)
            outcomes.append(result.returncode)
    assert os.listdir(host_dir) == [], f"host directory written after {len(outcomes)} attempts"
    assert swapper.swaps > 1000


def test_cwd_through_a_leaked_host_directory_fd(runtime, tmp_path):  # noqa: F811
    """runc's CVE-2024-21626: process.cwd = /proc/self/fd/N, N a host directory the runtime was
    given. The container must not start with its cwd on the host."""
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "marker").write_text("host file\n")
    fd = os.open(secret, os.O_RDONLY | os.O_DIRECTORY)
    try:
        container_id = runtime.new_id()
        config = base_config(container_id, "cat", "marker")
        config["process"]["cwd"] = f"/proc/self/fd/{fd}"
        runtime.write_config(config)
        result = subprocess.run([runtime.binary, "--root", runtime.state_root, "run", "-b", runtime.bundle,
                                 container_id], capture_output=True, text=True, pass_fds=[fd], timeout=60)
    finally:
        os.close(fd)
    assert "host file" not in result.stdout
    _clean_failure(result, 1)
    assert "chdir to cwd" in result.stderr


def test_masked_and_readonly_paths_through_symlinks_stay_inside(runtime, host_dir):  # noqa: F811
    """A masked path and a read-only path that are symlinks out of the rootfs: applied to what
    the link names inside the rootfs (here nothing: skipped), the host directory untouched."""
    rootfs = _rootfs(runtime)
    os.symlink(host_dir, os.path.join(rootfs, "etc", "masked"))
    os.symlink(host_dir, os.path.join(rootfs, "etc", "frozen"))
    os.makedirs(rootfs + host_dir + "-inside")
    os.symlink(host_dir + "-inside", os.path.join(rootfs, "etc", "frozen-inside"))
    container_id = runtime.new_id()
    config = base_config(container_id, "sh", "-c", "touch /etc/frozen-inside/x || echo refused")
    config["linux"]["maskedPaths"].append("/etc/masked")
    config["linux"]["readonlyPaths"] += ["/etc/frozen", "/etc/frozen-inside"]
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "refused\n"  # the read-only bind landed on the directory inside


def test_proc_on_a_symlink_is_refused(runtime):  # noqa: F811
    """`proc -> /`: proc would cover the whole rootfs; runc refuses proc and sysfs on anything
    but a directory."""
    rootfs = _rootfs(runtime)
    os.rmdir(os.path.join(rootfs, "proc"))
    os.symlink("/", os.path.join(rootfs, "proc"))
    result = runtime.run_container("true")
    _clean_failure(result, 1)
    assert "proc" in result.stderr and "ordinary directory" in result.stderr


def test_bind_redirected_into_proc_is_refused(runtime, tmp_path):  # noqa: F811
    """A bind whose target is a symlink into /proc (CVE-2019-19921's shape) is refused."""
    rootfs = _rootfs(runtime)
    os.symlink("/proc/sys/kernel/core_pattern", os.path.join(rootfs, "etc", "hosts"))
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    container_id = runtime.new_id()
    config = base_config(container_id, "true")
    config["mounts"].append({"destination": "/etc/hosts", "type": "bind", "source": str(hosts),
                             "options": ["rbind", "rprivate"]})
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    _clean_failure(result, 1)
    assert "inside /proc" in result.stderr


# -- berth run: an image whose layer is hostile ------------------------------------------------

def _image(busybox, tmp_path, name: str, links: dict[str, str]) -> str:
    """busybox's files with `links` (path -> symlink target) in place of what they replace,
    imported as `name`."""
    out = io.BytesIO()
    with tarfile.open(busybox.busybox_tar) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src:
            path = member.name.removeprefix("./")
            if any(path == link or path.startswith(link + "/") for link in links):
                continue
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
        for path, target in links.items():
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            dst.addfile(info)
    tar = tmp_path / f"{name}.tar"
    tar.write_bytes(out.getvalue())
    busybox.ok("import", "-c", 'CMD ["sh"]', str(tar), name)
    return name


def _ran_or_refused(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0:
        _clean_failure(result, 125)


def test_run_image_with_dev_linked_to_a_host_dir(busybox, tmp_path, host_dir):
    image = _image(busybox, tmp_path, "hostile-dev", {"dev": host_dir})
    result = busybox("run", "--rm", image, "sh", "-c", "test -c /dev/null && readlink /dev/stderr")
    _ran_or_refused(result)
    assert result.stdout == "/proc/self/fd/2\n"


def test_run_image_with_etc_linked_to_a_host_dir(busybox, tmp_path, host_dir):
    """/etc/hosts, /etc/hostname and /etc/resolv.conf are bound through `etc -> <host dir>`."""
    image = _image(busybox, tmp_path, "hostile-etc", {"etc": host_dir})
    result = busybox("run", "--rm", "--hostname", "inside", image, "cat", "/etc/hostname")
    _ran_or_refused(result)
    assert result.stdout == "inside\n"


def test_run_image_with_a_mount_target_linked_to_a_host_dir(busybox, tmp_path, host_dir):
    image = _image(busybox, tmp_path, "hostile-mnt", {"data": host_dir})
    result = busybox("run", "--rm", "--tmpfs", "/data/x", image, "sh", "-c", "touch /data/x/f && ls /data/x")
    _ran_or_refused(result)
    assert result.stdout == "f\n"


def test_run_mount_target_swapped_by_another_container(busybox, host_dir):
    """The same race through `berth run`: a container swaps /shared/m in a volume it shares
    between a directory and a symlink to a host directory, while another container with a tmpfs
    on /shared/m/x is started again and again (a few seconds of attempts)."""
    busybox.ok("volume", "create", "shared")
    swap = f"cd /shared && mkdir -p m && while :; do mv m m.d; ln -s {host_dir} m; rm m; mv m.d m; done"
    attacker = busybox.ok("run", "-d", "-v", "shared:/shared", "busybox", "sh", "-c", swap).strip()
    runs = 0
    try:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and not os.listdir(host_dir):
            result = busybox("run", "--rm", "-v", "shared:/shared", "--tmpfs", "/shared/m/x", "busybox", "true")
            _ran_or_refused(result)
            runs += 1
    finally:
        busybox("rm", "-f", attacker)
    assert os.listdir(host_dir) == [], f"host directory written after {runs} runs"


def test_a_fake_proc_in_the_rootfs_cannot_keep_capabilities(runtime):  # noqa: F811
    """A bundle without a /proc mount: after pivot_root, /proc/sys/kernel/cap_last_cap and
    /proc/self/status are whatever the rootfs ships. A rootfs claiming cap_last_cap 0 kept every
    capability above 0 in the bounding set; the runtime now asks the kernel (prctl, capget)."""
    from berth.runtime.caps import DEFAULT_CAPS, mask

    rootfs = _rootfs(runtime)
    os.makedirs(os.path.join(rootfs, "proc", "sys", "kernel"), exist_ok=True)
    os.makedirs(os.path.join(rootfs, "proc", "self"), exist_ok=True)
    with open(os.path.join(rootfs, "proc", "sys", "kernel", "cap_last_cap"), "w") as f:
        f.write("0\n")
    with open(os.path.join(rootfs, "proc", "self", "status"), "w") as f:
        f.write("CapPrm:\t000001ffffffffff\n")
    container_id = runtime.new_id()
    config = base_config(container_id, "sleep", "30")
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    runtime.write_config(config)
    result, _ = runtime.create(container_id)
    assert result.returncode == 0, result.stderr
    state = runtime.state(container_id)
    assert state["status"] == "created", (state, result.stderr)
    pid = state["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f if line.startswith("Cap"))
    assert int(status["CapBnd"], 16) == mask(DEFAULT_CAPS), status
    assert int(status["CapPrm"], 16) == mask(DEFAULT_CAPS), status
    assert runtime("delete", "-f", container_id).returncode == 0
