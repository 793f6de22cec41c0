"""`berth-runtime`, runc's command line over an OCI bundle: create/start/state/kill/delete/run, exec,
ps, pause/resume, update, list, events, features, checkpoint, the global flags and bad input.

In crun's style: `base_config()` builds the OCI config dict, each test changes what it needs,
writes a bundle (busybox rootfs + config.json) and drives the real binary."""

import array
import json
import os
import re
import socket
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


# -- the rest of runc's verbs and global flags ----------------------------------------------------


def _running(runtime, *args: str, config: dict | None = None) -> str:
    """A started container running `args` (default: a long sleep); its id."""
    container_id = runtime.new_id()
    runtime.write_config(config or base_config(container_id, *(args or ("sleep", "100"))))
    created, _ = runtime.create(container_id)
    assert created.returncode == 0, created.stderr
    started = runtime("start", container_id)
    assert started.returncode == 0, started.stderr
    return container_id


def _cgroup_file(container_id: str, controller: str, name: str) -> str:
    for path in cgroup_dirs(container_id):
        if os.path.exists(os.path.join(path, name)) and (controller in path or "cgroup.controllers" in
                                                         os.listdir(path)):
            with open(os.path.join(path, name)) as f:
                return f.read().strip()
    raise AssertionError(f"no {name} for {container_id}")


def test_version_is_in_runcs_format(runtime):
    result = runtime("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("berth-runtime version ") and lines[1].startswith("commit: ")
    assert lines[2].startswith("spec: 1.")


def test_exec_runs_in_the_container_and_returns_its_exit_code(runtime):
    container_id = _running(runtime)
    result = runtime("exec", container_id, "sh", "-c", "hostname; echo $$; tr '\\0' ' ' < /proc/1/cmdline; exit 3")
    assert result.returncode == 3, result.stderr
    hostname, pid, *init = result.stdout.split()
    assert hostname == "berth-rt-test" and int(pid) > 1 and init == ["sleep", "100"]  # its pid namespace
    flags = runtime("exec", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000:1001", container_id,
                    "sh", "-c", "echo $FOO; pwd; id -u; id -g")
    assert flags.stdout.split() == ["bar", "/tmp", "1000", "1001"], flags.stderr
    process = runtime.tmp / "process.json"
    process.write_text(json.dumps({"args": ["sh", "-c", "echo from-process-json; exit 4"], "cwd": "/",
                                   "env": [f"PATH={DEFAULT_PATH}"], "user": {"uid": 0, "gid": 0}}))
    from_file = runtime("exec", "--process", str(process), container_id)
    assert (from_file.returncode, from_file.stdout) == (4, "from-process-json\n"), from_file.stderr


def test_exec_user_takes_numbers_only_as_runc_does(runtime):
    """runc 1.1's exec --user is "uid[:gid]" read by strconv.Atoi (it looks no name up in the
    container's /etc/passwd); a name fails with runc's words and exit code, 255; without a gid
    the process keeps the one it had."""
    container_id = _running(runtime)
    refused(runtime("exec", "--user", "nobody", container_id, "id"), 255,
            'exec failed: parsing nobody as int for uid failed: strconv.Atoi: parsing "nobody": invalid syntax')
    refused(runtime("exec", "--user", "abc:def", container_id, "id"), 255,
            'exec failed: parsing def as int for gid failed: strconv.Atoi: parsing "def": invalid syntax')
    only_uid = runtime("exec", "--user", "65534", container_id, "sh", "-c", "id -u; id -g")
    assert only_uid.stdout.split() == ["65534", "0"], only_uid.stderr
    if os.path.exists(RUNC):  # runc, on the same bundle, says the same
        runc_id = runtime.new_id()
        created = subprocess.run([RUNC, "--root", str(runtime.tmp / "runc-state"), "run", "-d", "-b", runtime.bundle,
                                  runc_id], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, timeout=60)
        try:
            assert created.returncode == 0
            theirs = _runc(runtime, "exec", "--user", "nobody", runc_id, "id")
            ours = runtime("exec", "--user", "nobody", container_id, "id")
            assert theirs.returncode == ours.returncode == 255
            assert re.search(r'msg="(.*)"', theirs.stderr).group(1).replace('\\"', '"') in ours.stderr
        finally:
            _runc(runtime, "delete", "-f", runc_id)


def test_exec_joins_the_cgroup_and_detaches_with_a_pid_file(runtime):
    container_id = _running(runtime)
    pid_file = str(runtime.tmp / "exec.pid")
    result = _exec_detached(runtime, "--pid-file", pid_file, container_id, "sleep", "50")
    assert result.returncode == 0
    pid = int(open(pid_file).read())
    listed = runtime("ps", "--format", "json", container_id)
    assert sorted(json.loads(listed.stdout)) == sorted([runtime.state(container_id)["pid"], pid])
    table = runtime("ps", container_id)
    assert table.stdout.splitlines()[0].split()[:2] == ["UID", "PID"]
    assert len(table.stdout.splitlines()) == 3 and "sleep 50" in table.stdout


def _exec_detached(runtime, *args: str) -> subprocess.CompletedProcess:
    """exec -d, its stdio not on pipes: the process keeps them, so a pipe would never end."""
    return subprocess.run([runtime.binary, "--root", runtime.state_root, "exec", "-d", *args], timeout=60,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_exec_with_added_cap(runtime):
    container_id = _running(runtime)
    result = runtime("exec", "--cap", "CAP_SYS_ADMIN", container_id, "grep", "CapEff", "/proc/self/status")
    assert int(result.stdout.split()[1], 16) == DEFAULT_CAPS_MASK | 1 << 21, result.stderr


def test_exec_in_a_stopped_container_fails(runtime):
    container_id = _running(runtime, "true")
    runtime.wait_for(container_id, "stopped")
    refused(runtime("exec", container_id, "true"), 255, "exec failed: cannot exec in a stopped container")


def test_pause_and_resume(runtime):
    container_id = _running(runtime)
    assert runtime("pause", container_id).returncode == 0
    assert runtime.state(container_id)["status"] == "paused"
    assert _cgroup_file(container_id, "freezer", "freezer.state") == "FROZEN" if not os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers") else True
    refused(runtime("exec", container_id, "true"), 255, "exec failed: cannot exec in a paused container")
    refused(runtime("delete", container_id), 1, "that is not stopped: paused")
    assert runtime("resume", container_id).returncode == 0
    assert runtime.state(container_id)["status"] == "running"
    refused(runtime("resume", container_id), 1, "container not paused")


def test_kill_of_a_paused_container_kills_it(runtime):
    container_id = _running(runtime)
    assert runtime("pause", container_id).returncode == 0
    assert runtime("kill", container_id, "9").returncode == 0
    runtime.wait_for(container_id, "stopped")


def test_kill_all_signals_every_process_of_the_cgroup(runtime):
    container_id = _running(runtime)
    pid_file = str(runtime.tmp / "exec.pid")
    assert _exec_detached(runtime, "--pid-file", pid_file, container_id, "sleep", "60").returncode == 0
    extra = int(open(pid_file).read())
    assert runtime("kill", "--all", container_id, "SIGKILL").returncode == 0
    wait_for(lambda: not _alive(extra), what="the exec'd process to die")
    runtime.wait_for(container_id, "stopped")
    refused(runtime("kill", container_id, "NOSUCHSIGNAL"), 1, "unknown signal")


def test_update_memory_flag_and_resources_on_stdin(runtime):
    container_id = _running(runtime)
    assert runtime("update", "--memory", "64m", "--pids-limit", "40", container_id).returncode == 0
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert _cgroup_file(container_id, "", "memory.max") == str(64 << 20)
    else:
        assert _cgroup_file(container_id, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert _cgroup_file(container_id, "pids", "pids.max") == "40"
    result = subprocess.run([runtime.binary, "--root", runtime.state_root, "update", "--resources", "-", container_id],
                            input='{"pids": {"limit": 50}}', capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert _cgroup_file(container_id, "pids", "pids.max") == "50"
    bad = subprocess.run([runtime.binary, "--root", runtime.state_root, "update", "-r", "-", container_id],
                         input="{not json", capture_output=True, text=True, timeout=30)
    refused(bad, 1, "invalid JSON")


def test_list_table_json_and_quiet(runtime):
    container_id = _running(runtime)
    table = runtime("list")
    assert table.stdout.split()[:6] == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert container_id in table.stdout and "running" in table.stdout
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert [(c["id"], c["status"], c["bundle"]) for c in listed] == [(container_id, "running", runtime.bundle)]
    assert runtime("list", "-q").stdout == container_id + "\n"


def test_events_stats_is_one_json_object(runtime):
    container_id = _running(runtime)
    result = runtime("events", "--stats", container_id)
    event = json.loads(result.stdout)
    assert event["type"] == "stats" and event["id"] == container_id
    assert event["data"]["pids"]["current"] == 1
    assert event["data"]["memory"]["usage"]["usage"] > 0 and event["data"]["cpu"]["usage"]["total"] > 0


def test_features_is_runtime_spec_features_json(runtime):
    features = json.loads(runtime("features").stdout)
    assert features["ociVersionMin"] == "1.0.0" and features["ociVersionMax"].startswith("1.")
    assert features["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                                 "poststop"]
    assert "CAP_SYS_ADMIN" in features["linux"]["capabilities"] and "rbind" in features["mountOptions"]
    assert set(features["linux"]["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}


def test_checkpoint_and_restore_are_refused_clearly(runtime):
    """The refusal says why: CRIU missing, or CRIU present but `criu check` failing (its last
    Error line quoted); as a JSON log line with --log-format json."""
    container_id = _running(runtime)
    missing = runtime("--criu", str(runtime.tmp / "no-criu"), "restore", container_id)
    refused(missing, 1, ("restore is not supported", "CRIU is not installed"))
    log = runtime.tmp / "log.json"
    result = runtime("--log", str(log), "--log-format", "json", "checkpoint", "--image-path",
                     str(runtime.tmp / "img"), container_id)
    refused(result, 1, "checkpoint is not supported")
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "checkpoint is not supported" in entry["msg"]
    criu = subprocess.run(["criu", "check"], capture_output=True, text=True) if _which("criu") else None
    if criu is None:
        assert "CRIU is not installed" in entry["msg"]
    elif criu.returncode != 0:
        last = [line.strip() for line in (criu.stderr + criu.stdout).splitlines() if "Error" in line][-1]
        assert "fails `criu check`" in entry["msg"] and last in entry["msg"], entry["msg"]
    else:
        assert "berth-runtime does not drive it" in entry["msg"]
    assert runtime.state(container_id)["status"] == "running"


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def test_errors_go_to_the_json_log_the_shim_reads(runtime):
    log = runtime.tmp / "log.json"
    result = runtime("--log", str(log), "--log-format", "json", "state", "rt-missing")
    assert result.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error" and "container does not exist" in entries[-1]["msg"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", entries[-1]["time"])


def test_console_socket_gets_exactly_one_fd_the_pty_master(runtime):
    container_id = runtime.new_id()
    config = base_config(container_id, "sh", "-c", "tty")
    config["process"]["terminal"] = True
    runtime.write_config(config)
    path = str(runtime.tmp / "console.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)
    creating = subprocess.Popen([runtime.binary, "--root", runtime.state_root, "create", "-b", runtime.bundle,
                                 "--console-socket", path, container_id], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn, _ = server.accept()
        _, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * 8))
        conn.close()
        fds = [fd for _, _, data in ancillary for fd in array.array("i", data)]
        assert creating.wait(30) == 0, creating.stderr.read()
        assert len(fds) == 1
        master = fds[0]
        assert os.major(os.fstat(master).st_rdev) == 5  # the pty multiplexer (ptmx): a master
        assert runtime("start", container_id).returncode == 0
        assert os.read(master, 100).startswith(b"/dev/pts/0")
        os.close(master)
    finally:
        server.close()
        if creating.poll() is None:
            creating.kill()
            creating.wait()


def test_preserve_fds_passes_fd_3_into_the_container(runtime):
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "sh", "-c", "echo through-fd-3 >&3"))
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run([runtime.binary, "--root", runtime.state_root, "run", "--preserve-fds", "1", "-b",
                                 runtime.bundle, container_id], stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=60, close_fds=False, preexec_fn=lambda: os.dup2(write_end, 3))
        os.close(write_end)
        assert result.returncode == 0, result.stderr
        assert os.read(read_end, 100) == b"through-fd-3\n"
    finally:
        os.close(read_end)


def test_delete_force_of_a_missing_container_succeeds(runtime):
    assert runtime("delete", "--force", "rt-never-made").returncode == 0
    refused(runtime("delete", "rt-never-made"), 1, "container does not exist")


# -- bad input: a clear error, exit 1, nothing left behind -------------------------------------


def _nothing_left(runtime, container_id: str) -> None:
    assert not os.path.exists(os.path.join(runtime.state_root, container_id))
    assert cgroup_dirs(container_id) == []


def test_malformed_config_is_refused_cleanly(runtime):
    container_id = runtime.new_id()
    with open(os.path.join(runtime.bundle, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": ')
    refused(runtime.create(container_id)[0], 1, "invalid JSON")
    _nothing_left(runtime, container_id)


def test_missing_config_is_refused_cleanly(runtime):
    container_id = runtime.new_id()
    refused(runtime("create", "-b", str(runtime.tmp), container_id), 1, "config.json not found")
    _nothing_left(runtime, container_id)


def test_unsupported_spec_version_is_refused_cleanly(runtime):
    container_id = runtime.new_id()
    config = base_config(container_id, "true")
    config["ociVersion"] = "2.0.0"
    runtime.write_config(config)
    refused(runtime.create(container_id)[0], 1, "unsupported spec version")
    _nothing_left(runtime, container_id)


def test_missing_command_fails_create_not_start(runtime):
    """runc's check: create looks the command up, so a typo never leaves a created container."""
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "no-such-command"))
    refused(runtime.create(container_id)[0], 1, 'exec: "no-such-command": executable file not found')
    _nothing_left(runtime, container_id)


def test_unknown_verb_and_flag_are_refused(runtime):
    refused(runtime("frobnicate", "x"), 1, "unknown command")
    refused(runtime("create", "--frobnicate", "x"), 1, "flag provided but not defined: -frobnicate")
    refused(runtime("--frobnicate", "state", "x"), 1, "flag provided but not defined")
    refused(runtime("state", "../escape"), 1, "invalid id format")


def test_systemd_cgroup_without_systemd_is_refused_cleanly(runtime):
    assert not os.path.isdir("/run/systemd/system"), "this test is for hosts without systemd"
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id, "true"))
    refused(runtime("--systemd-cgroup", "create", "-b", runtime.bundle, container_id), 1,
            "systemd not running on this host")
    _nothing_left(runtime, container_id)


def test_state_dir_on_a_read_only_filesystem_is_refused_cleanly(runtime):
    read_only = runtime.tmp / "ro-root"
    read_only.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)], check=True)
    try:
        container_id = runtime.new_id()
        runtime.write_config(base_config(container_id, "true"))
        result = subprocess.run([runtime.binary, "--root", str(read_only), "create", "-b", runtime.bundle,
                                 container_id], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        refused(result, 1, "read-only file system")
        assert os.listdir(read_only) == [] and cgroup_dirs(container_id) == []
    finally:
        subprocess.run(["umount", str(read_only)], check=True)


# -- runc's create flags: --no-new-keyring, --no-pivot ---------------------------------------------

RUNC = "/usr/bin/runc"


def _session_keyrings(container_id: str) -> list[str]:
    """The host's /proc/keys lines of the keyring "_ses.<id>" (runc's name), its serial dropped."""
    with open("/proc/keys") as f:
        return [" ".join(line.split()[1:2] + line.split()[3:5] + line.split()[7:8]) for line in f
                if line.split()[8].rstrip(":") == f"_ses.{container_id}"]


def _runc(runtime, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RUNC, "--root", str(runtime.tmp / "runc-state"), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.skipif(not os.path.exists("/proc/keys"), reason="kernel without keyrings")
def test_init_joins_a_session_keyring_of_its_own_unless_no_new_keyring(runtime):
    """runc's default: the container joins a new session keyring "_ses.<id>", made searchable by
    its uid (perm 3f1b0000, as runc's); --no-new-keyring keeps the caller's (no such keyring)."""
    container_id = _running(runtime)
    ours = _session_keyrings(container_id)
    assert [line.split()[1:] for line in ours] == [["perm", "3f1b0000", "keyring"]], ours
    assert runtime("exec", container_id, "true").returncode == 0
    kept = runtime.new_id()
    runtime.write_config(base_config(kept, "sleep", "100"))
    detached = subprocess.run([runtime.binary, "--root", runtime.state_root, "run", "-d", "--no-new-keyring", "-b",
                               runtime.bundle, kept], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60)  # the container keeps them: no pipes
    assert detached.returncode == 0
    assert runtime.state(kept)["status"] == "running" and _session_keyrings(kept) == []
    if os.path.exists(RUNC):  # the same as runc's, flag for flag
        runc_id = runtime.new_id()
        runtime.write_config(base_config(runc_id, "sleep", "100"))
        try:
            created = subprocess.run([RUNC, "--root", str(runtime.tmp / "runc-state"), "create", "-b", runtime.bundle,
                                      runc_id], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, timeout=60)
            assert created.returncode == 0
            assert [line.split()[1:] for line in _session_keyrings(runc_id)] == [["perm", "3f1b0000", "keyring"]]
        finally:
            _runc(runtime, "delete", "-f", runc_id)


def test_no_pivot_runs_with_the_rootfs_moved_onto_root(runtime):
    """--no-pivot: MS_MOVE of the rootfs onto / and chroot instead of pivot_root; the container
    sees its rootfs as /, with the mountinfo runc shows with the same flag."""
    with open(os.path.join(runtime.bundle, "rootfs", "marker-of-this-rootfs"), "w"):
        pass
    script = "ls /marker-of-this-rootfs && cat /proc/self/mountinfo"
    results = {}
    for name, command in (("berth", runtime), ("runc", lambda *a: _runc(runtime, *a))):
        if name == "runc" and not os.path.exists(RUNC):
            continue
        container_id = runtime.new_id()
        runtime.write_config(base_config(container_id, "sh", "-c", script))
        result = command("run", "--no-pivot", "-b", runtime.bundle, container_id)
        assert result.returncode == 0, (name, result.stderr)
        lines = result.stdout.splitlines()
        assert lines[0] == "/marker-of-this-rootfs"
        # mount ids and device numbers differ from run to run
        results[name] = [" ".join(line.split()[3:]) for line in lines[1:]]
    assert results["berth"][0].startswith(os.path.join(runtime.bundle, "rootfs") + " / ")
    if "runc" in results:
        assert results["berth"] == results["runc"]


def test_events_stats_report_blkio_and_hugetlb_as_runc_does(runtime):
    """events --stats: "blkio" as libcontainer's BlkioStats (per device and op, omitempty fields)
    and "hugetlb" per page size; the same keys and ops as runc's for the same bundle and I/O.
    Throttle rules on the bundle's disk make a v1 kernel account the container's I/O."""
    st_dev = os.stat(runtime.bundle).st_dev
    device = {"major": os.major(st_dev), "minor": os.minor(st_dev), "rate": 1 << 40}
    script = ("dd if=/dev/zero of=/io-test bs=4096 count=20 oflag=direct 2>/dev/null; "
              "dd if=/io-test of=/dev/null bs=4096 iflag=direct 2>/dev/null; rm /io-test; sleep 100")
    shapes = {}
    for name, binary, state in (("berth", runtime.binary, runtime.state_root),
                                ("runc", RUNC, str(runtime.tmp / "runc-state"))):
        if name == "runc" and not os.path.exists(RUNC):
            continue
        container_id = runtime.new_id()
        config = base_config(container_id, "sh", "-c", script)
        config["linux"]["resources"] = {"blockIO": {"throttleReadBpsDevice": [device],
                                                    "throttleWriteBpsDevice": [device]}}
        runtime.write_config(config)
        started = subprocess.run([binary, "--root", state, "run", "-d", "-b", runtime.bundle, container_id],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 timeout=60)
        try:
            if started.returncode != 0:
                pytest.skip(f"{name} cannot throttle the bundle's device {device}")

            def read_all(binary=binary, state=state, container_id=container_id):
                stats = subprocess.run([binary, "--root", state, "events", "--stats", container_id],
                                       capture_output=True, text=True, timeout=30)
                data = json.loads(stats.stdout)["data"]
                served = data["blkio"].get("ioServicedRecursive", [])
                done = any(e.get("op") == "Read" and e.get("value", 0) >= 20 for e in served)
                return done and data
            data = wait_for(read_all, what=f"{name}'s container I/O to be accounted")
            shapes[name] = ({key: [entry.get("op") for entry in entries] for key, entries in data["blkio"].items()},
                            sorted(data["hugetlb"]))
            entry = data["blkio"]["ioServiceBytesRecursive"][0]
            assert entry["major"] == device["major"] and entry.get("minor", 0) == device["minor"]
            assert all(set(stat) <= {"usage", "max", "failcnt"} and "failcnt" in stat
                       for stat in data["hugetlb"].values())
        finally:
            subprocess.run([binary, "--root", state, "delete", "-f", container_id], capture_output=True)
    assert "Read" in shapes["berth"][0]["ioServiceBytesRecursive"]
    if "runc" in shapes:
        assert shapes["berth"] == shapes["runc"]


# -- a foreground terminal without --console-socket: runc's own pty proxy ------------------------

def _on_a_terminal(args: list[str], typed: bytes = b"") -> tuple[bytes, int]:
    """Run `args` with a new pty as its controlling terminal and stdio (the caller's terminal),
    type `typed` into it, and return (all it printed, its exit code)."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output = b""
    try:
        if typed:
            import select
            import time

            deadline = time.monotonic() + 30
            while b"ready" not in output and time.monotonic() < deadline:
                if select.select([master], [], [], 0.1)[0]:
                    output += os.read(master, 4096)
            assert b"ready" in output, output
            os.write(master, typed)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave fd closed
                break
            if not chunk:
                break
            output += chunk
        return output, process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


TTY_SCRIPT = "tty; echo out-$((6*7)); echo ready; read x; echo got-$x; exit 5"


def test_run_and_exec_with_a_terminal_in_the_foreground_proxy_the_pty(runtime):
    """run -t / exec -t without --console-socket: berth-runtime makes the pty and copies between it
    and its own stdio, as runc does; the process's exit code is passed. A detached run or a
    create without a socket is still refused (runc's refusal)."""
    container_id = runtime.new_id()
    config = base_config(container_id, "sh", "-c", TTY_SCRIPT)
    config["process"]["terminal"] = True
    runtime.write_config(config)
    output, code = _on_a_terminal([runtime.binary, "--root", runtime.state_root, "run", "-b", runtime.bundle,
                                   container_id], typed=b"hello\r")
    assert code == 5, output
    assert output.startswith(b"/dev/pts/0\r\nout-42\r\n") and b"got-hello\r\n" in output, output
    if os.path.exists(RUNC):  # byte for byte what runc prints on the same terminal
        runc_id = runtime.new_id()
        theirs = _on_a_terminal([RUNC, "--root", str(runtime.tmp / "runc-state"), "run", "-b", runtime.bundle,
                                 runc_id], typed=b"hello\r")
        assert theirs == (output, code)
    refused(runtime("run", "-d", "-b", runtime.bundle, runtime.new_id()), 1,
            "cannot allocate tty if runc will detach without setting console socket")
    refused(runtime("create", "-b", runtime.bundle, runtime.new_id()), 1,
            "cannot allocate tty if runc will detach without setting console socket")
    running = _running(runtime)
    output, code = _on_a_terminal([runtime.binary, "--root", runtime.state_root, "exec", "-t", running,
                                   "sh", "-c", TTY_SCRIPT], typed=b"again\r")
    assert code == 5 and b"out-42\r\n" in output and b"got-again\r\n" in output, output
    assert re.match(rb"/dev/pts/\d+\r\n", output), output
    refused(_exec_detached_capturing(runtime, "-t", running, "true"), 255,
            "exec failed: cannot allocate tty if runc will detach without setting console socket")


def _exec_detached_capturing(runtime, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([runtime.binary, "--root", runtime.state_root, "exec", "-d", *args], timeout=60,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
