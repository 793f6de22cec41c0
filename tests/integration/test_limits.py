"""Resource limits enforced by the kernel on this (cgroup v1) host, seen from inside and outside:
OOM kills, CPU shares under contention, pids, device access, ulimits; the cgroup files and
inspect; `berth update` on a running container; `berth stats`; and the v2 eBPF device
filter, which the hybrid host's cgroup2 mount runs for real."""

import json
import os
import re
import subprocess

import pytest

from conftest import cgroup_dirs, wait_for

V1 = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"
MB = 1024 * 1024


def cgroup_file(container_id: str, controller: str, name: str) -> str:
    with open(os.path.join(V1, controller, "berth", container_id, name)) as f:
        return f.read().strip()


def inspect(b, ref: str, template: str) -> str:
    return b.ok("inspect", "-f", template, ref).strip()


def cpu_time(container_id: str) -> int:
    return int(cgroup_file(container_id, "cpuacct", "cpuacct.usage"))


pytestmark = pytest.mark.skipif(os.path.exists(os.path.join(V1, "cgroup.controllers")),
                                reason="cgroup mode: these check cgroup v1 files; this host is cgroup v2")


def test_memory_limit_ends_in_an_oom_kill(busybox):
    result = busybox("run", "--name", "hog", "-m", "32m", "busybox", "sh", "-c", "x=a; while :; do x=$x$x; done")
    assert result.returncode == 137
    cid = inspect(busybox, "hog", "{{.Id}}")
    assert inspect(busybox, "hog", "{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.Status}}") == "true 137 exited"
    assert inspect(busybox, "hog", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}") == f"{32 * MB} {64 * MB}"
    assert busybox.ok("wait", "hog").strip() == "137"
    assert "Exited (137)" in busybox.ok("ps", "-a", "--filter", "name=hog")
    assert cgroup_dirs(cid) == []


def test_oom_kill_of_a_detached_container_is_recorded(busybox):
    busybox.ok("run", "-d", "--name", "hog", "-m", "16m", "busybox", "sh", "-c", "x=a; while :; do x=$x$x; done")
    assert busybox.ok("wait", "hog").strip() == "137"
    assert inspect(busybox, "hog", "{{.State.OOMKilled}}") == "true"
    assert cgroup_dirs(inspect(busybox, "hog", "{{.Id}}")) == []


def test_limits_are_in_the_cgroup_files_and_inspect(busybox):
    cid = busybox.ok("run", "-d", "-m", "32m", "--memory-reservation", "16m", "--memory-swappiness", "30",
                     "--cpu-shares", "512", "--cpus", "1.5", "--cpuset-cpus", "0", "--cpuset-mems", "0",
                     "--pids-limit", "50", "--oom-kill-disable", "busybox", "sleep", "60").strip()
    assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(32 * MB)
    assert cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes") == str(64 * MB)
    assert cgroup_file(cid, "memory", "memory.soft_limit_in_bytes") == str(16 * MB)
    assert cgroup_file(cid, "memory", "memory.swappiness") == "30"
    assert "oom_kill_disable 1" in cgroup_file(cid, "memory", "memory.oom_control")
    assert cgroup_file(cid, "cpu", "cpu.shares") == "512"
    assert cgroup_file(cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "150000"
    assert cgroup_file(cid, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(cid, "cpuset", "cpuset.mems") == "0"
    assert cgroup_file(cid, "pids", "pids.max") == "50"
    host = json.loads(busybox.ok("inspect", "-f", "{{json .HostConfig}}", cid))
    assert {k: host[k] for k in ("Memory", "MemorySwap", "MemoryReservation", "MemorySwappiness", "OomKillDisable",
                                 "CpuShares", "NanoCpus", "CpusetCpus", "CpusetMems", "PidsLimit")} == {
        "Memory": 32 * MB, "MemorySwap": 64 * MB, "MemoryReservation": 16 * MB, "MemorySwappiness": 30,
        "OomKillDisable": True, "CpuShares": 512, "NanoCpus": 1_500_000_000, "CpusetCpus": "0", "CpusetMems": "0",
        "PidsLimit": 50}


def test_cpu_period_and_quota_and_a_limit_beyond_the_host(busybox):
    cid = busybox.ok("run", "-d", "--cpu-period", "50000", "--cpu-quota", "25000", "-m", "1t", "busybox",
                     "sleep", "60").strip()
    assert cgroup_file(cid, "cpu", "cpu.cfs_period_us") == "50000"
    assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "25000"
    assert inspect(busybox, cid, "{{.HostConfig.Memory}}") == str(1 << 40)  # accepted, as docker does


def test_cpu_shares_govern_the_containers_processes(busybox):
    """Two busy loops pinned to one CPU, at the default and at 512 shares: each runs in its own
    cgroup, whose cpu.shares the kernel weighs them by (1024 : 512). How the CPU is then split
    is the scheduler's business and a timing: not checked here."""
    spin = ["busybox", "sh", "-c", "while :; do :; done"]
    heavy = busybox.ok("run", "-d", "--cpuset-cpus", "0", *spin).strip()
    light = busybox.ok("run", "-d", "--cpuset-cpus", "0", "--cpu-shares", "512", *spin).strip()
    for cid, shares in ((heavy, "1024"), (light, "512")):
        assert cgroup_file(cid, "cpu", "cpu.shares") == shares
        assert cgroup_file(cid, "cpuset", "cpuset.cpus") == "0"
        pid = inspect(busybox, cid, "{{.State.Pid}}")
        for controller in ("cpu", "cpuacct", "cpuset"):
            assert pid in cgroup_file(cid, controller, "cgroup.procs").split()
        wait_for(lambda cid=cid: cpu_time(cid) > 0, what="the loop to use the CPU its cgroup accounts")


def test_pids_limit_makes_fork_fail(busybox):
    result = busybox("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
                     "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait")
    assert "can't fork" in result.stderr


def test_device_is_created_and_allowed_and_others_are_not(busybox):
    out = busybox.ok("run", "--rm", "--device", "/dev/null:/dev/mynull:rw", "busybox", "sh", "-c",
                     "stat -c '%t:%T %F' /dev/mynull; echo data > /dev/mynull && echo written; "
                     "mknod /tmp/mem c 1 1 && echo mknod-ok; head -c1 /tmp/mem; "
                     "mknod /tmp/disk b 7 0 && echo mknod-ok; head -c1 /tmp/disk; true")
    assert out.splitlines() == ["1:3 character special file", "written", "mknod-ok", "mknod-ok"]
    result = busybox("run", "--rm", "busybox", "sh", "-c", "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem")
    assert "Operation not permitted" in result.stderr


def test_device_permissions_are_enforced(busybox):
    # /dev/loop-control (10:237) is not among docker's default devices; opening it does nothing.
    result = busybox("run", "--name", "perm", "--device", "/dev/loop-control:/dev/lc:r", "busybox", "sh", "-c",
                     "exec 3</dev/lc && echo readable; exec 4>/dev/lc && echo writable")
    assert result.stdout.strip() == "readable"
    assert "Operation not permitted" in result.stderr
    devices = json.loads(busybox.ok("inspect", "-f", "{{json .HostConfig.Devices}}", "perm"))
    assert devices == [{"PathOnHost": "/dev/loop-control", "PathInContainer": "/dev/lc", "CgroupPermissions": "r"}]


def test_device_cgroup_rule(busybox):
    out = busybox.ok("run", "--rm", "--device-cgroup-rule", "c 1:7 r", "busybox", "sh", "-c",
                     "mknod /tmp/full c 1 7 && head -c1 /tmp/full | wc -c")
    assert out.strip() == "1"


def test_ulimits(busybox):
    out = busybox.ok("run", "--rm", "--ulimit", "nofile=1024:2048", "--ulimit", "nproc=100", "busybox", "sh", "-c",
                     "ulimit -n; ulimit -Hn; ulimit -u")
    assert out.split() == ["1024", "2048", "100"]


@pytest.mark.parametrize("args, message", [
    (["-m", "10x"], "invalid argument \"10x\" for \"-m, --memory\" flag: invalid suffix: 'x'"),
    (["-m", "4m"], "Minimum memory limit allowed is 6MB"),
    (["--cpuset-cpus", "99"], "Requested CPUs are not available - requested 99, available: "),
    (["--cpu-shares", "abc"], 'invalid argument "abc" for "-c, --cpu-shares" flag: strconv.ParseInt: parsing "abc"'),
    (["--device", "/dev/nonexistent"], 'error gathering device information while adding custom device '
                                       '"/dev/nonexistent": no such file or directory'),
    (["--cpus", "abc"], "failed to parse abc as a rational number"),
    (["--memory-swap", "10m"], "You should always set the Memory limit when using Memoryswap limit, see usage"),
    (["--ulimit", "nofile=10:5"], "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
])
def test_bad_resource_input_creates_nothing(busybox, args, message):
    result = busybox("run", "--rm", *args, "busybox", "true")
    assert result.returncode == 125
    first, _, rest = result.stderr.partition("\n")
    assert message in first
    assert rest in ("", "See 'berth run --help'.\n"), result.stderr  # pflag's hint after a flag error
    assert busybox.container_ids() == []


def test_update_a_running_container(busybox):
    cid = busybox.ok("run", "-d", "-m", "32m", "busybox", "sleep", "60").strip()
    assert busybox.ok("update", "-m", "64m", "--memory-swap", "128m", "--cpu-shares", "300", "--pids-limit", "20",
                      "--cpuset-cpus", "1", "--restart", "on-failure:3", cid).strip() == cid
    assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(64 * MB)
    assert cgroup_file(cid, "memory", "memory.memsw.limit_in_bytes") == str(128 * MB)
    assert cgroup_file(cid, "cpu", "cpu.shares") == "300"
    assert cgroup_file(cid, "pids", "pids.max") == "20"
    assert cgroup_file(cid, "cpuset", "cpuset.cpus") == "1"
    assert inspect(busybox, cid, "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} "
                                 "{{.HostConfig.RestartPolicy.Name}}") == f"{64 * MB} 300 20 on-failure"
    busybox.ok("update", "--pids-limit", "-1", "--cpus", "0.5", cid)
    assert cgroup_file(cid, "pids", "pids.max") == "max"
    assert cgroup_file(cid, "cpu", "cpu.cfs_quota_us") == "50000"


def test_update_errors_like_docker(busybox):
    cid = busybox.ok("run", "-d", "-m", "32m", "--cpus", "1", "busybox", "sleep", "60").strip()
    for args, message, code in (
        ([], "you must provide one or more flags when using this command", 1),
        (["-m", "100m"], f"Error response from daemon: Cannot update container {cid}: Memory limit should be "
                         "smaller than already set memoryswap limit, update the memoryswap at the same time", 1),
        (["--cpu-period", "50000"], f"Cannot update container {cid}: Conflicting options: CPU Period cannot be "
                                    "updated as NanoCPUs has already been set", 1),
        (["-m", "2m"], "Error response from daemon: Minimum memory limit allowed is 6MB", 1),
        (["--cpuset-cpus", "99"], "Requested CPUs are not available - requested 99", 1),
        (["-m", "10x"], 'invalid argument "10x" for "-m, --memory" flag', 125),
    ):
        result = busybox("update", *args, cid)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(32 * MB)
    result = busybox("update", "-c", "100", cid, "missing")
    assert result.returncode == 1
    assert result.stdout.strip() == cid
    assert "No such container: missing" in result.stderr


def test_update_a_stopped_container_applies_at_start(busybox):
    busybox.ok("create", "--name", "later", "-m", "32m", "busybox", "sleep", "60")
    busybox.ok("update", "-m", "48m", "later")
    busybox.ok("start", "later")
    cid = inspect(busybox, "later", "{{.Id}}")
    assert cgroup_file(cid, "memory", "memory.limit_in_bytes") == str(48 * MB)


def test_stats_no_stream(busybox):
    cid = busybox.ok("run", "-d", "--name", "busy", "-m", "32m", "busybox", "sh", "-c",
                     "x=$(head -c 2000000 /dev/zero | tr '\\0' a); sleep 60; echo ${#x}").strip()
    gateway = busybox.subnet.rsplit(".", 1)[0] + ".1"
    busybox.ok("exec", "busy", "ping", "-c", "2", "-i", "0.2", gateway)  # traffic to our own bridge only
    busybox.ok("create", "--name", "idle", "busybox", "true")
    lines = busybox.ok("stats", "--no-stream").splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
                                             "BLOCK I/O", "PIDS"]
    assert len(lines) == 2  # only the running one
    row = json.loads(busybox.ok("stats", "--no-stream", "--format", "{{json .}}", "busy"))
    assert sorted(row) == ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"]
    assert (row["ID"], row["Name"], row["Container"], row["PIDs"]) == (cid[:12], "busy", "busy", "2")
    usage, limit = row["MemUsage"].split(" / ")
    assert limit == "32MiB"
    number, unit = re.fullmatch(r"([\d.]+)(B|KiB|MiB)", usage).groups()
    in_bytes = float(number) * {"B": 1, "KiB": 1024, "MiB": MB}[unit]
    assert 2_000_000 < in_bytes < 32 * MB
    assert 0 < float(row["MemPerc"].rstrip("%")) < 100
    received, sent = row["NetIO"].split(" / ")
    assert received != "0B" and sent != "0B"
    assert re.fullmatch(r"\d+\.\d\d%", row["CPUPerc"])
    everything = busybox.ok("stats", "--no-stream", "-a", "--no-trunc", "--format", "{{.ID}} {{.MemUsage}}")
    idle = inspect(busybox, "idle", "{{.Id}}")
    assert f"{idle} 0B / 0B" in everything.splitlines()
    result = busybox("stats", "--no-stream", "missing")
    assert result.returncode == 1 and "No such container: missing" in result.stderr


def test_stats_streams_and_reports_cpu(busybox):
    busybox.ok("run", "-d", "--name", "spin", "busybox", "sh", "-c", "while :; do :; done")
    stream = subprocess.Popen(busybox.cmd("stats", "--format", "{{.Name}} {{.CPUPerc}}", "spin"),
                              stdout=subprocess.PIPE, text=True)
    try:
        lines = [stream.stdout.readline() for _ in range(2)]
    finally:
        stream.kill()
        stream.wait()
    for line in lines:  # a busy loop uses some CPU (how much is a timing: not checked)
        name, percent = line.split()
        assert name == "spin"
        assert re.fullmatch(r"\d+\.\d\d%", percent) and float(percent.rstrip("%")) > 0, lines


@pytest.mark.skipif(not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")),
                    reason="cgroup mode: no hybrid cgroup2 mount here")
def test_v2_device_filter_is_enforced_by_the_kernel():
    """The eBPF program berth attaches on cgroup v2 hosts, attached here to a cgroup of the
    hybrid host's cgroup2 mount: the kernel runs it on every device open next to v1's rules."""
    from berth.runtime.cgroups.v2 import V2Cgroup

    path = f"/berth-test/bpf-{os.getpid()}"
    group = V2Cgroup(path, UNIFIED)
    os.makedirs(group.dir)
    try:
        group.apply({"devices": [{"allow": False, "access": "rwm"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]})
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_fd)
            group.add(os.getpid())
            results = []
            for device, mode in (("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY), ("/dev/zero", os.O_WRONLY),
                                 ("/dev/full", os.O_RDONLY)):
                try:
                    os.close(os.open(device, mode))
                    results.append("ok")
                except PermissionError:
                    results.append("EPERM")
            os.write(write_fd, " ".join(results).encode())
            os._exit(0)
        os.close(write_fd)
        outcome = os.read(read_fd, 100).decode()
        os.close(read_fd)
        os.waitpid(child, 0)
        assert outcome == "ok ok EPERM EPERM"
    finally:
        group.destroy()
        try:
            os.rmdir(os.path.join(UNIFIED, "berth-test"))
        except OSError:
            pass
