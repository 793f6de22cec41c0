"""`berth-runtime`, runc's command line over an OCI bundle: create/start/state/kill/delete/run.

In crun's style: `base_config()` builds the OCI config dict, each test changes what it needs,
writes a bundle (busybox rootfs + config.json) and drives the real binary."""

import json
import os
import subprocess
import uuid

import pytest

from conftest import cgroup_dirs, refused, runtime_binary, wait_for

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# docker's default capability set, and its bit mask as /proc/<pid>/status prints it
DEFAULT_CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6,
    "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
    "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}
DEFAULT_CAPS_MASK = sum(1 << bit for bit in DEFAULT_CAPS.values())  # 0xa80425fb


def base_config(container_id: str, *args: str) -> dict:
    caps = sorted(DEFAULT_CAPS)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args) or ["true"],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": "berth-rt-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "cgroupsPath": f"/berth-runtime/{container_id}",
        },
    }


class Runtime:
    """Runs the real berth-runtime with this test's own --root; remembers every id it
    created so the fixture can `delete -f` them whatever happens."""

    def __init__(self, tmp_path, busybox_tar: str):
        self.state_root = str(tmp_path / "state")
        self.bundle = str(tmp_path / "bundle")
        self.tmp = tmp_path
        self.binary = runtime_binary()
        self.ids: list[str] = []
        rootfs = os.path.join(self.bundle, "rootfs")
        os.makedirs(rootfs)
        subprocess.run(["tar", "-xf", busybox_tar, "-C", rootfs], check=True)

    def new_id(self) -> str:
        container_id = "rt-" + uuid.uuid4().hex[:12]
        self.ids.append(container_id)
        return container_id

    def write_config(self, config: dict) -> None:
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(config, f, indent=2)

    def __call__(self, *args: str, cwd: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "--root", self.state_root, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, cwd=cwd, timeout=timeout)

    def create(self, container_id: str) -> tuple[subprocess.CompletedProcess, str]:
        """`create` with stdio on files: the container keeps them open after create returns,
        so pipes would never reach EOF. Returns (result, path of the container's stdout)."""
        out = str(self.tmp / f"{container_id}.out")
        with open(out, "w") as stdout, open(str(self.tmp / f"{container_id}.err"), "w+") as stderr:
            result = subprocess.run([self.binary, "--root", self.state_root, "create", "-b", self.bundle,
                                     container_id], stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    timeout=60)
            stderr.seek(0)
            result.stderr = stderr.read()
        return result, out

    def state(self, container_id: str) -> dict:
        result = self("state", container_id)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_for(self, container_id: str, status: str) -> dict:
        return wait_for(lambda: (state := self.state(container_id))["status"] == status and state,
                        what=f"{container_id} to be {status}")

    def run_container(self, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
        """Write a config for `args` (or `config`) and `run` it in the foreground."""
        container_id = self.new_id()
        self.write_config(config or base_config(container_id, *args))
        return self("run", "-b", self.bundle, container_id)

    def cleanup(self) -> None:
        for container_id in self.ids:
            if os.path.isdir(os.path.join(self.state_root, container_id)):
                self("delete", "-f", container_id)
            for path in cgroup_dirs(container_id):
                try:
                    os.rmdir(path)
                except OSError:
                    pass


@pytest.fixture
def runtime(tmp_path, busybox_tar):
    rt = Runtime(tmp_path, busybox_tar)
    try:
        yield rt
    finally:
        rt.cleanup()


# -- run ------------------------------------------------------------------------

def test_run_prints_output_and_returns_exit_code(runtime):
    result = runtime.run_container("sh", "-c", "echo hello; exit 7")
    assert result.stdout == "hello\n"
    assert result.returncode == 7


def test_run_uses_the_current_directory_as_bundle(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "echo", "from-cwd"))
    result = runtime("run", container_id, cwd=runtime.bundle)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from-cwd\n"


def test_run_removes_state_and_cgroup_when_done(runtime):
    result = runtime.run_container("true")
    container_id = runtime.ids[-1]
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(os.path.join(runtime.state_root, container_id))
    assert cgroup_dirs(container_id) == []


def test_hostname_from_config(runtime):
    result = runtime.run_container("hostname")
    assert result.stdout == "berth-rt-test\n"


def test_process_is_pid_1_and_alone_in_its_pid_namespace(runtime):
    result = runtime.run_container("ps")
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows == [["1", "root", "ps"]]


def test_process_user(runtime):
    container_id = runtime.new_id()
    config = base_config(container_id, "sh", "-c", "id -u; id -g")
    config["process"]["user"] = {"uid": 65534, "gid": 65534}
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert result.stdout == "65534\n65534\n", result.stderr


def test_env_and_cwd(runtime):
    container_id = runtime.new_id()
    config = base_config(container_id, "sh", "-c", 'pwd; echo "$GREETING"')
    config["process"]["cwd"] = "/tmp"
    config["process"]["env"].append("GREETING=hi there")
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert result.stdout == "/tmp\nhi there\n", result.stderr


def test_capabilities_from_config(runtime):
    result = runtime.run_container("grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in result.stdout.splitlines())
    assert int(caps["CapEff"], 16) == DEFAULT_CAPS_MASK
    assert int(caps["CapBnd"], 16) == DEFAULT_CAPS_MASK
    assert int(caps["CapPrm"], 16) == DEFAULT_CAPS_MASK


def test_mounts_from_config(runtime):
    result = runtime.run_container("cat", "/proc/mounts")
    mounts = {fields[1]: (fields[2], fields[3].split(",")) for fields in map(str.split, result.stdout.splitlines())}
    assert mounts["/proc"][0] == "proc"
    assert mounts["/dev"][0] == "tmpfs"
    assert mounts["/dev/pts"][0] == "devpts"
    assert mounts["/dev/mqueue"][0] == "mqueue"
    assert mounts["/dev/shm"][0] == "tmpfs"
    assert mounts["/sys"][0] == "sysfs" and "ro" in mounts["/sys"][1]


def test_masked_path_reads_empty(runtime):
    # /proc/interrupts: non-empty on any host; some kernels have no /proc/kcore at all
    assert os.path.getsize("/proc/interrupts") == 0 and open("/proc/interrupts").read()
    result = runtime.run_container("sh", "-c", "wc -c < /proc/interrupts")
    assert result.stdout.split() == ["0"], result.stderr


def test_readonly_path_is_a_read_only_mount(runtime):
    result = runtime.run_container("sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid")
    # EROFS, not just the EPERM of a missing capability; sh's exit code comes back
    refused(result, 1, "can't create /proc/sys/kernel/ns_last_pid: Read-only file system")


def test_network_namespace_has_only_loopback(runtime):
    result = runtime.run_container("ls", "/sys/class/net")
    assert result.stdout.split() == ["lo"]


# -- create / start / state / delete ---------------------------------------------

def test_create_then_state_is_created_with_a_pid(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "true"))
    result, _ = runtime.create(container_id)
    assert result.returncode == 0, result.stderr
    state = runtime.state(container_id)
    assert state["status"] == "created"
    assert state["id"] == container_id
    assert state["pid"] > 0
    assert state["bundle"] == runtime.bundle
    assert os.path.exists(f"/proc/{state['pid']}")


def test_start_runs_the_created_process_and_it_stops(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "echo", "started"))
    result, out = runtime.create(container_id)
    assert result.returncode == 0, result.stderr
    assert open(out).read() == ""  # nothing runs before start
    start = runtime("start", container_id)
    assert start.returncode == 0, start.stderr
    assert runtime.wait_for(container_id, "stopped")["status"] == "stopped"
    assert open(out).read() == "started\n"


def test_delete_removes_state_dir_and_cgroups(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "true"))
    assert runtime.create(container_id)[0].returncode == 0
    assert cgroup_dirs(container_id) != []  # linux.cgroupsPath is where the container lives
    assert runtime("start", container_id).returncode == 0
    runtime.wait_for(container_id, "stopped")
    result = runtime("delete", container_id)
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(os.path.join(runtime.state_root, container_id))
    assert cgroup_dirs(container_id) == []
    refused(runtime("state", container_id), 1, "container does not exist")  # runc's words and exit code


def test_kill_stops_a_running_container(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "sleep", "100"))
    assert runtime.create(container_id)[0].returncode == 0
    assert runtime("start", container_id).returncode == 0
    assert runtime.state(container_id)["status"] == "running"
    result = runtime("kill", container_id, "KILL")
    assert result.returncode == 0, result.stderr
    assert runtime.wait_for(container_id, "stopped")["status"] == "stopped"
    assert runtime("delete", container_id).returncode == 0
    assert cgroup_dirs(container_id) == []


def test_delete_of_a_running_container_needs_force(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "sleep", "100"))
    assert runtime.create(container_id)[0].returncode == 0
    assert runtime("start", container_id).returncode == 0
    pid = runtime.state(container_id)["pid"]
    # runc: "cannot delete container <id> that is not stopped: running", exit 1
    refused(runtime("delete", container_id), 1, "that is not stopped: running")
    assert runtime.state(container_id)["status"] == "running"
    forced = runtime("delete", "-f", container_id)
    assert forced.returncode == 0, forced.stderr
    assert not os.path.exists(os.path.join(runtime.state_root, container_id))
    assert cgroup_dirs(container_id) == []
    assert not _alive(pid)


def test_kill_of_a_stopped_container_fails(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "true"))
    assert runtime.create(container_id)[0].returncode == 0
    assert runtime("start", container_id).returncode == 0
    runtime.wait_for(container_id, "stopped")
    refused(runtime("kill", container_id, "KILL"), 1, "container not running")  # runc's words and exit code


def test_create_of_an_existing_id_fails(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "true"))
    assert runtime.create(container_id)[0].returncode == 0
    again, _ = runtime.create(container_id)
    refused(again, 1, f"container with id exists: {container_id}")  # runc's words and exit code
    assert runtime.state(container_id)["status"] == "created"  # the first one is untouched


def test_state_of_a_missing_container_fails(runtime):
    result = runtime("state", "rt-does-not-exist")
    refused(result, 1, "container does not exist")
    assert result.stdout == ""


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
