"""docker's namespace and cgroup flags on the real kernel: --pid host|container:<x>, --uts host,
--cgroupns host|private, --cgroup-parent, --oom-score-adj, --cpu-rt-period/--cpu-rt-runtime,
--blkio-weight(-device), --device-read/write-bps/iops, --kernel-memory, --storage-opt and the
Windows-only flags; each seen from inside the container, in its cgroup files and in inspect,
and each bad input refused with docker's words before anything is made."""

import contextlib
import fcntl
import json
import os
import struct
import subprocess
import termios

import pytest

from conftest import require_peer

CGROUP_ROOT = "/sys/fs/cgroup"
V2 = os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def inspect(b, ref: str, template: str) -> str:
    return b.ok("inspect", "-f", template, ref).strip()


def host_pid(b, ref: str) -> int:
    return int(inspect(b, ref, "{{.State.Pid}}"))


def v1_dir(controller: str, path: str) -> str:
    return os.path.join(CGROUP_ROOT, controller, path.strip("/"))


def cgroup_file(path: str, controller: str, name: str) -> str:
    """A file of the cgroup at `path` (the container's cgroupsPath): v2's one directory, or
    `controller`'s hierarchy on v1."""
    directory = os.path.join(CGROUP_ROOT, path.strip("/")) if V2 else v1_dir(controller, path)
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


@contextlib.contextmanager
def cgroup_parent(name: str, rt_runtime: int | None = None):
    """A parent cgroup of the test's own (on v1 in every hierarchy), removed afterwards with
    whatever berth left in it; `rt_runtime` gives it a real-time budget (v1's cpu controller)."""
    made = [os.path.join(CGROUP_ROOT, name)] if V2 else [v1_dir(h, name) for h in os.listdir(CGROUP_ROOT)]
    if rt_runtime is not None:
        os.makedirs(v1_dir("cpu", name))
        with open(os.path.join(v1_dir("cpu", name), "cpu.rt_runtime_us"), "w") as f:
            f.write(str(rt_runtime))
    try:
        yield "/" + name
    finally:
        for directory in made:
            if os.path.isdir(directory):
                for child in os.listdir(directory):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(directory, child))
                with contextlib.suppress(OSError):
                    os.rmdir(directory)


def root_disk() -> tuple[str, int, int]:
    """The block device "/" lives on: (its /dev path, major, minor)."""
    st = os.stat("/")
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
        name = dict(line.strip().split("=", 1) for line in f if "=" in line)["DEVNAME"]
    return "/dev/" + name, major, minor


def refuses_and_creates_nothing(b, says: str, *args: str, code: int = 125) -> str:
    before = set(b.container_ids())
    err = b.fails(code, "run", "--rm", *args, "busybox", "true", says=says)
    assert set(b.container_ids()) == before
    return err


def holds_cap_sys_resource() -> bool:
    """Lowering an OOM score needs CAP_SYS_RESOURCE, which some sandboxes withhold even from root."""
    with open("/proc/self/status") as f:
        effective = next(line for line in f if line.startswith("CapEff:")).split()[1]
    return bool(int(effective, 16) >> 24 & 1)


# -- --pid ----------------------------------------------------------------------------------

def test_pid_host_sees_the_hosts_processes(busybox):
    out = busybox.ok("run", "--rm", "--pid", "host", "busybox", "sh", "-c",
                     "readlink /proc/self/ns/pid; tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o pid | wc -l")
    ns, cmdline, count = out.splitlines()
    assert ns == os.readlink("/proc/self/ns/pid")
    with open("/proc/1/cmdline") as f:
        assert cmdline.strip() == f.read().replace("\0", " ").strip()
    assert int(count) > 10  # the host's processes, not a container's two
    # seen, not reached: the host's processes hold capabilities the container lacks (as in docker)
    reach = busybox.ok("run", "--rm", "--pid", "host", "busybox", "sh", "-c",
                       "for f in environ maps; do cat /proc/1/$f >/dev/null 2>&1; echo $f=$?; done; "
                       "ls /proc/1/root/ >/dev/null 2>&1; echo root/=$?")
    assert reach.split() == ["environ=1", "maps=1", "root/=1"]
    busybox.ok("create", "--name", "cc", "--pid", "host", "busybox")
    assert inspect(busybox, "cc", "{{.HostConfig.PidMode}}") == "host"


def test_pid_container_shares_the_donors_processes_and_can_signal_them(busybox):
    busybox.ok("run", "-d", "--name", "donor", "busybox", "sh", "-c", "sleep 301 & exec sleep 300")
    donor_id = inspect(busybox, "donor", "{{.Id}}")
    listing = busybox.ok("run", "--rm", "--pid", "container:donor", "busybox", "ps", "-o", "pid,args")
    pids = {line.split(None, 1)[1]: line.split()[0] for line in listing.splitlines()[1:]}
    assert pids["sleep 300"] == "1" and "sleep 301" in pids  # the donor's pid 1 and its child
    joined = busybox.ok("run", "--rm", "--pid", "container:donor", "busybox", "readlink", "/proc/self/ns/pid")
    assert joined.strip() == os.readlink(f"/proc/{host_pid(busybox, 'donor')}/ns/pid")
    busybox.ok("run", "--rm", "--pid", "container:" + donor_id[:12], "busybox", "kill", pids["sleep 301"])
    after = busybox.ok("exec", "donor", "ps", "-o", "args")
    assert "sleep 301" not in after and "sleep 300" in after
    busybox.ok("create", "--name", "joiner", "--pid", "container:donor", "busybox")
    assert inspect(busybox, "joiner", "{{.HostConfig.PidMode}}") == "container:" + donor_id


def test_a_joiner_ends_with_its_pid_donor(busybox):
    """The donor's pid 1 is the namespace's init: when it ends, the kernel kills the joiners."""
    busybox.ok("run", "-d", "--name", "donor", "busybox", "sleep", "300")
    busybox.ok("run", "-d", "--name", "joiner", "--pid", "container:donor", "busybox", "sleep", "300")
    busybox.ok("rm", "-f", "donor")
    assert busybox.ok("wait", "joiner").strip() == "137"


def test_the_last_pid_flag_wins_as_in_docker(busybox):
    busybox.ok("create", "--name", "cc", "--pid", "container:nosuch", "--pid", "host", "busybox")
    assert inspect(busybox, "cc", "{{.HostConfig.PidMode}}") == "host"


def test_pid_container_needs_an_existing_running_donor(busybox):
    refuses_and_creates_nothing(busybox, "No such container: nosuch", "--pid", "container:nosuch")
    stopped = busybox.ok("create", "--name", "stopped", "busybox", "sleep", "60").strip()
    busybox.fails(125, "run", "--rm", "--pid", "container:stopped", "busybox", "true",
                  says=f"container {stopped} is not running")
    assert busybox.container_ids() == [stopped]


def test_bad_namespace_modes_are_refused_like_docker(busybox):
    refuses_and_creates_nothing(busybox, "--pid: invalid PID mode", "--pid", "foo")
    refuses_and_creates_nothing(busybox, "--pid: invalid PID mode", "--pid", "container:")
    refuses_and_creates_nothing(busybox, "--uts: invalid UTS mode", "--uts", "container:x")
    refuses_and_creates_nothing(busybox, "--cgroupns: invalid CGROUP mode", "--cgroupns", "foo")
    refuses_and_creates_nothing(busybox, "conflicting options: hostname and the UTS mode", "--uts", "host",
                                "--hostname", "web")


# -- --uts ----------------------------------------------------------------------------------

def test_uts_host_sees_the_host_name_and_cannot_change_it(busybox):
    out = busybox.ok("run", "--rm", "--uts", "host", "busybox", "sh", "-c",
                     "hostname; readlink /proc/self/ns/uts; hostname changed 2>&1; echo $?")
    name, ns, *refusal = out.splitlines()
    assert name == os.uname().nodename
    assert ns == os.readlink("/proc/self/ns/uts")
    assert refusal[-1] != "0" and "not permitted" in refusal[0]
    assert os.uname().nodename == name
    busybox.ok("create", "--name", "cc", "--uts", "host", "busybox")
    assert inspect(busybox, "cc", "{{.HostConfig.UTSMode}}") == "host"


# -- --cgroupns -----------------------------------------------------------------------------

def cgroup_lines(b, *args: str) -> list[str]:
    return b.ok("run", "--rm", *args, "busybox", "cat", "/proc/self/cgroup").splitlines()


def test_cgroupns_default_is_dockers_for_the_hosts_cgroup_mode(busybox):
    """private on cgroup v2, host on v1 (this host's mode decides which is checked)."""
    cid = busybox.ok("create", "busybox", "cat", "/proc/self/cgroup").strip()
    assert inspect(busybox, cid, "{{.HostConfig.CgroupnsMode}}") == ("private" if V2 else "host")
    lines = busybox.ok("start", "-a", cid).splitlines()
    paths = {line.split(":", 2)[2] for line in lines}
    assert paths == ({"/"} if V2 else {f"/berth/{cid}"}), lines


def test_cgroupns_private_and_host(busybox):
    private = cgroup_lines(busybox, "--cgroupns", "private")
    assert private and all(line.split(":", 2)[2] == "/" for line in private), private
    cid = busybox.ok("create", "--cgroupns", "host", "busybox", "sh", "-c",
                     "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup").strip()
    *lines, ns = busybox.ok("start", "-a", cid).splitlines()
    assert ns == os.readlink("/proc/self/ns/cgroup")
    assert all(line.split(":", 2)[2] == f"/berth/{cid}" for line in lines), lines


def test_daemon_json_default_cgroupns_mode(busybox):
    busybox.configure(**{"default-cgroupns-mode": "private"})
    cid = busybox.ok("create", "busybox").strip()
    assert inspect(busybox, cid, "{{.HostConfig.CgroupnsMode}}") == "private"
    busybox.configure(**{"default-cgroupns-mode": "shared"})
    busybox.fails(125, "create", "busybox", says='default cgroup namespace mode (shared) is invalid. Must be either '
                                                 '"host" or "private"')


# -- --cgroup-parent ------------------------------------------------------------------------

def test_cgroup_parent_holds_the_containers_cgroup(busybox):
    name = "berth-test-parent-" + os.urandom(4).hex()
    with cgroup_parent(name) as parent:
        cid = busybox.ok("run", "-d", "--cgroup-parent", name, "-m", "32m", "busybox", "sleep", "60").strip()
        path = f"{parent}/{cid}"
        assert inspect(busybox, cid, "{{.HostConfig.CgroupParent}}") == name
        assert cgroup_file(path, "memory", "memory.max" if V2 else "memory.limit_in_bytes") == str(32 << 20)
        assert str(host_pid(busybox, cid)) in cgroup_file(path, "pids", "cgroup.procs").split()
        inside = busybox.ok("exec", cid, "cat", "/proc/self/cgroup").splitlines()
        assert V2 or all(line.split(":", 2)[2] == path for line in inside), inside
        assert "sleep 60" in busybox.ok("top", cid)
        busybox.ok("update", "--pids-limit", "20", cid)
        assert cgroup_file(path, "pids", "pids.max") == "20"
        busybox.ok("pause", cid)
        busybox.ok("unpause", cid)
        busybox.ok("rm", "-f", cid)
        assert not os.path.exists(os.path.join(CGROUP_ROOT, path.strip("/")) if V2 else v1_dir("memory", path))


def test_cgroup_parent_nested_absolute(busybox):
    name = "berth-test-parent-" + os.urandom(4).hex()
    with cgroup_parent(name) as parent:
        cid = busybox.ok("create", "--cgroup-parent", f"{parent}/inner", "busybox", "cat", "/proc/self/cgroup").strip()
        lines = busybox.ok("start", "-a", cid).splitlines()
        assert V2 or {line.split(":", 2)[2] for line in lines} == {f"{parent}/inner/{cid}"}, lines


# -- --oom-score-adj ------------------------------------------------------------------------

def test_oom_score_adj_of_the_containers_processes(busybox):
    busybox.ok("run", "-d", "--name", "high", "--oom-score-adj", "500", "busybox", "sleep", "60")
    with open(f"/proc/{host_pid(busybox, 'high')}/oom_score_adj") as f:
        assert f.read().strip() == "500"
    assert busybox.ok("exec", "high", "cat", "/proc/self/oom_score_adj").strip() == "500"
    assert inspect(busybox, "high", "{{.HostConfig.OomScoreAdj}}") == "500"
    # nor can the container make itself less likely to be killed (no CAP_SYS_RESOURCE)
    lowered = busybox("exec", "high", "sh", "-c", "echo -100 > /proc/self/oom_score_adj")
    assert lowered.returncode != 0
    assert busybox.ok("exec", "high", "cat", "/proc/self/oom_score_adj").strip() == "500"
    assert busybox.ok("run", "--rm", "busybox", "cat", "/proc/self/oom_score_adj").strip() == "0"


def test_a_negative_oom_score_adj_needs_cap_sys_resource(busybox):
    if holds_cap_sys_resource():
        assert busybox.ok("run", "--rm", "--oom-score-adj", "-500", "busybox", "cat",
                          "/proc/self/oom_score_adj").strip() == "-500"
    else:  # this sandbox's root lacks it: a clear refusal (runc's is "can't get final child's PID from pipe")
        refuses_and_creates_nothing(busybox, 'failed to write "-500" to /proc/self/oom_score_adj: permission denied',
                                    "--oom-score-adj", "-500")


def test_oom_score_adj_out_of_range(busybox):
    for value in ("1001", "-1001"):
        refuses_and_creates_nothing(busybox, f"Invalid value {value}, range for oom score adj is [-1000, 1000]",
                                    "--oom-score-adj", value)
    refuses_and_creates_nothing(busybox, 'invalid argument "x" for "--oom-score-adj" flag', "--oom-score-adj", "x")


# -- block I/O --------------------------------------------------------------------------------

def test_device_throttles_in_the_cgroup_files_and_inspect(busybox):
    disk, major, minor = root_disk()
    cid = busybox.ok("run", "-d", "--device-read-bps", f"{disk}:1mb", "--device-write-bps", f"{disk}:2mb",
                     "--device-read-iops", f"{disk}:100", "--device-write-iops", f"{disk}:200",
                     "busybox", "sleep", "60").strip()
    path = f"/berth/{cid}"
    if V2:
        line = cgroup_file(path, "io", "io.max")
        assert f"{major}:{minor} rbps=1048576 wbps=2097152 riops=100 wiops=200" in line, line
    else:
        for name, value in (("read_bps", 1 << 20), ("write_bps", 2 << 20), ("read_iops", 100), ("write_iops", 200)):
            assert cgroup_file(path, "blkio", f"blkio.throttle.{name}_device") == f"{major}:{minor} {value}"
    host = json.loads(inspect(busybox, cid, "{{json .HostConfig}}"))
    assert host["BlkioDeviceReadBps"] == [{"Path": disk, "Rate": 1 << 20}]
    assert host["BlkioDeviceWriteBps"] == [{"Path": disk, "Rate": 2 << 20}]
    assert host["BlkioDeviceReadIOps"] == [{"Path": disk, "Rate": 100}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": disk, "Rate": 200}]


def blkio_weight_supported() -> bool:
    if V2:
        with open(os.path.join(CGROUP_ROOT, "cgroup.controllers")) as f:
            return "io" in f.read().split()
    return any(os.path.exists(v1_dir("blkio", name)) for name in ("blkio.weight", "blkio.bfq.weight"))


def test_blkio_weight_is_applied_or_discarded_as_docker(busybox):
    """A kernel without CFQ or BFQ (this host's) has no weight: docker's warning, and the
    weight dropped from HostConfig; with one, the weight file holds it."""
    disk, major, minor = root_disk()
    result = busybox("run", "-d", "--name", "weighted", "--blkio-weight", "300", "--blkio-weight-device", f"{disk}:400",
                     "busybox", "sleep", "60")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    if blkio_weight_supported():
        assert inspect(busybox, "weighted", "{{.HostConfig.BlkioWeight}}") == "300"
        name = ("io.bfq.weight" if os.path.exists(f"{CGROUP_ROOT}/berth/{cid}/io.bfq.weight") else "io.weight") \
            if V2 else ("blkio.weight" if os.path.exists(v1_dir("blkio", "blkio.weight")) else "blkio.bfq.weight")
        assert cgroup_file(f"/berth/{cid}", "blkio", name).split()[-1] in ("300", str(1 + 290 * 9999 // 990))
    else:
        assert "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. " \
               "Weight discarded." in result.stderr
        assert "WARNING: Your kernel does not support Block I/O weight_device or the cgroup is not mounted. " \
               "Weight-device discarded." in result.stderr
        template = "{{.HostConfig.BlkioWeight}} {{json .HostConfig.BlkioWeightDevice}}"
        assert inspect(busybox, "weighted", template) == "0 []"


def test_bad_block_io_values_are_refused_like_docker(busybox):
    for flag, value, says in (
            ("--blkio-weight", "70000", 'strconv.ParseUint: parsing "70000": value out of range'),
            ("--blkio-weight", "-1", 'strconv.ParseUint: parsing "-1": invalid syntax'),
            ("--blkio-weight-device", "/dev/vda", "bad format: /dev/vda"),
            ("--blkio-weight-device", "vda:500", "bad format for device path: vda:500"),
            ("--blkio-weight-device", "/dev/vda:5", "invalid weight for device: /dev/vda:5"),
            ("--device-read-bps", "/dev/vda:1x", "invalid rate for device: /dev/vda:1x. The correct format is "
                                                 "<device-path>:<number>[<unit>]. Number must be a positive integer. "
                                                 "Unit is optional and can be kb, mb, or gb"),
            ("--device-write-bps", "foo:1mb", "bad format for device path: foo:1mb"),
            ("--device-read-iops", "/dev/vda:x", "invalid rate for device: /dev/vda:x. The correct format is "
                                                 "<device-path>:<number>. Number must be a positive integer"),
            ("--device-write-iops", "/dev/vda", "bad format: /dev/vda")):
        refuses_and_creates_nothing(busybox, f'invalid argument "{value}" for "{flag}" flag: {says}', flag, value)
    refuses_and_creates_nothing(busybox, "stat /dev/berth-nosuch: no such file or directory",
                                "--device-write-iops", "/dev/berth-nosuch:10")


# -- real-time CPU ----------------------------------------------------------------------------

def test_cpu_realtime_in_a_parent_with_a_budget(busybox):
    if V2:
        refuses_and_creates_nothing(busybox, "Your kernel does not support CPU real-time scheduler",
                                    "--cpu-rt-runtime", "1000")
        return
    name = "berth-test-rt-" + os.urandom(4).hex()
    with cgroup_parent(name, rt_runtime=100000) as parent:
        cid = busybox.ok("run", "-d", "--cgroup-parent", parent, "--cpu-rt-period", "100000", "--cpu-rt-runtime",
                         "5000", "busybox", "sleep", "60").strip()
        path = f"{parent}/{cid}"
        assert cgroup_file(path, "cpu", "cpu.rt_period_us") == "100000"
        assert cgroup_file(path, "cpu", "cpu.rt_runtime_us") == "5000"
        busybox.ok("update", "--cpu-rt-runtime", "8000", cid)
        assert cgroup_file(path, "cpu", "cpu.rt_runtime_us") == "8000"
        assert inspect(busybox, cid, "{{.HostConfig.CpuRealtimePeriod}} {{.HostConfig.CpuRealtimeRuntime}}") == \
            "100000 8000"
        busybox.ok("rm", "-f", cid)


def test_daemon_json_gives_a_real_time_containers_parents_a_budget(busybox):
    """docker's daemon cpu-rt-runtime: the parents of a real-time container get the budget
    (here a parent of the test's own, so the host's berth/ parent is left as it is)."""
    if V2:
        return
    busybox.configure(**{"cpu-rt-runtime": 100000})
    name = "berth-test-rt-" + os.urandom(4).hex()
    with cgroup_parent(name) as parent:
        cid = busybox.ok("run", "-d", "--cgroup-parent", f"{parent}/inner", "--cpu-rt-runtime", "5000", "busybox",
                         "sleep", "60").strip()
        for level in (parent, f"{parent}/inner"):
            assert cgroup_file(level, "cpu", "cpu.rt_runtime_us") == "100000"
        assert cgroup_file(f"{parent}/inner/{cid}", "cpu", "cpu.rt_runtime_us") == "5000"
        busybox.ok("rm", "-f", cid)


def test_cpu_realtime_without_a_budget_or_too_long_is_refused(busybox):
    refuses_and_creates_nothing(busybox, "cpu real-time runtime cannot be higher than cpu real-time period",
                                "--cpu-rt-period", "1000", "--cpu-rt-runtime", "5000")
    if V2:
        return
    # berth's parent has no real-time budget (as docker's, unless its daemon is given one): the kernel says no
    result = busybox("run", "--rm", "--cpu-rt-runtime", "1000", "busybox", "true")
    err = result.stderr
    assert result.returncode == 125 and "Traceback" not in err
    assert "cpu.rt_runtime_us: invalid argument (more than the parent cgroup's real-time budget)" in err
    assert busybox.container_ids() == []


# -- deprecated, storage, Windows-only ----------------------------------------------------------

def test_kernel_memory_warns_and_has_no_effect(busybox):
    result = busybox("run", "-d", "--name", "kmem", "--kernel-memory", "8m", "busybox", "sleep", "60")
    assert result.returncode == 0, result.stderr
    assert "WARNING: Specifying a kernel memory limit is deprecated and will be removed in a future release." \
        in result.stderr
    cid = result.stdout.strip()
    assert inspect(busybox, "kmem", "{{.HostConfig.KernelMemory}}") == str(8 << 20)
    if not V2 and os.path.exists(v1_dir("memory", f"/berth/{cid}/memory.kmem.limit_in_bytes")):
        assert int(cgroup_file(f"/berth/{cid}", "memory", "memory.kmem.limit_in_bytes")) > 1 << 40  # unlimited
    refuses_and_creates_nothing(busybox, "Minimum kernel memory limit allowed is 6MB", "--kernel-memory", "4m")


def test_storage_opt_is_refused_without_project_quotas(busybox):
    refuses_and_creates_nothing(busybox, "--storage-opt is supported only for overlay over xfs with 'pquota' mount "
                                         "option", "--storage-opt", "size=1G")
    refuses_and_creates_nothing(busybox, "invalid storage option", "--storage-opt", "size")
    refuses_and_creates_nothing(busybox, "Unknown option foo", "--storage-opt", "foo=1")


@pytest.mark.parametrize("flag, value", [("--cpu-count", "1"), ("--cpu-percent", "50"),
                                         ("--io-maxbandwidth", "1m"), ("--io-maxiops", "10")])
def test_windows_only_flags_are_refused_as_dockers_cli_does(busybox, flag, value):
    for command in ("run", "create"):
        busybox.fails(1, command, flag, value, "busybox", "true",
                      says=f'"{flag}" is only supported on a Docker daemon running on windows')
    assert busybox.container_ids() == []


def test_memory_swappiness_null_or_value(busybox):
    busybox.ok("create", "--name", "plain", "busybox")
    assert json.loads(inspect(busybox, "plain", "{{json .HostConfig.MemorySwappiness}}")) is None
    busybox.ok("create", "--name", "set", "--memory-swappiness", "30", "busybox")
    assert inspect(busybox, "set", "{{.HostConfig.MemorySwappiness}}") == "30"
    refuses_and_creates_nothing(busybox, "invalid value: 101. Valid memory swappiness range is 0-100",
                                "--memory-swappiness", "101")


# -- inspect ----------------------------------------------------------------------------------

def test_console_size_is_the_terminal_of_the_creating_cli(busybox):
    """docker's CLI records its stdout's terminal size at create; off a terminal, [0, 0]."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        created = subprocess.run(busybox.cmd("create", "--name", "termed", "busybox"), stdout=slave,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=60)
        assert created.returncode == 0, created.stderr
    finally:
        os.close(slave)
        os.close(master)
    assert inspect(busybox, "termed", "{{json .HostConfig.ConsoleSize}}") == "[33,101]"
    busybox.ok("create", "--name", "plain", "busybox")
    assert inspect(busybox, "plain", "{{json .HostConfig.ConsoleSize}}") == "[0,0]"


def test_host_config_has_the_fields_docker_prints(busybox):
    """`docker create busybox` on this machine's dockerd and `berth create busybox`: the same
    HostConfig fields, and the same values for the resource and namespace ones."""
    docker = require_peer("docker")
    created = subprocess.run([docker, "create", "busybox"], capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    docker_id = created.stdout.strip()
    try:
        theirs = json.loads(subprocess.run([docker, "inspect", docker_id], capture_output=True, text=True,
                                           timeout=60, check=True).stdout)[0]["HostConfig"]
    finally:
        subprocess.run([docker, "rm", "-f", docker_id], capture_output=True, timeout=60)
    ours = json.loads(busybox.ok("inspect", busybox.ok("create", "busybox").strip()))[0]["HostConfig"]
    assert [key for key in theirs if key not in ours] == []
    same = ("ConsoleSize", "CgroupnsMode", "PidMode", "UTSMode", "OomScoreAdj", "CgroupParent", "BlkioWeight",
            "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps", "CpuRealtimePeriod", "CpuRealtimeRuntime", "DeviceCgroupRules", "DeviceRequests",
            "KernelMemory", "KernelMemoryTCP", "MemorySwappiness", "Ulimits", "CpuCount", "CpuPercent",
            "IOMaximumIOps", "IOMaximumBandwidth", "PidsLimit")
    assert {key: ours[key] for key in same} == {key: theirs[key] for key in same}


def test_daemon_json_cgroup_parent_is_the_default_parent(busybox):
    """daemon.json's cgroup-parent holds every container that names no --cgroup-parent; a
    container's own --cgroup-parent still wins."""
    name = "berth-test-parent-" + os.urandom(4).hex()
    with cgroup_parent(name) as parent:
        busybox.configure(**{"cgroup-parent": name})
        try:
            cid = busybox.ok("run", "-d", "-m", "32m", "busybox", "sleep", "60").strip()
            path = f"{parent}/{cid}"
            assert cgroup_file(path, "memory", "memory.max" if V2 else "memory.limit_in_bytes") == str(32 << 20)
            assert str(host_pid(busybox, cid)) in cgroup_file(path, "pids", "cgroup.procs").split()
            own = busybox.ok("run", "--rm", "--cgroup-parent", f"{name}/own", "busybox", "cat",
                             "/proc/self/cgroup").splitlines()
            assert V2 or all(line.split(":", 2)[2].startswith(f"{parent}/own/") for line in own), own
            busybox.ok("rm", "-f", cid)
            assert not os.path.exists(os.path.join(CGROUP_ROOT, path.strip("/")) if V2 else v1_dir("memory", path))
        finally:
            busybox.configure()
