"""/sys/fs/cgroup inside a container, as docker shows it: the container's own cgroups only
(on v1 a tmpfs with one bind per hierarchy and symlinks for co-mounted controllers), read-only
unless --privileged, and a cgroup namespace rooted there. Also through berth-runtime bundles."""

import os
import subprocess
import sys

import pytest
from test_runtime_cli import base_config, runtime  # noqa: F401 (runtime is a fixture)

from conftest import refused, wait_for

CGROUP_ROOT = "/sys/fs/cgroup"
V2 = os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))
v1_only = pytest.mark.skipif(V2, reason="cgroup mode: checks the v1 layout; this host is cgroup v2")
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["ro", "nosuid", "noexec", "nodev"]}


def host_hierarchies() -> list[str]:
    """The names of the host's v1 hierarchies under /sys/fs/cgroup (cgroup2's "unified" is no v1 one)."""
    names = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mount_point = pre.split()[4]
            if post.split()[0] == "cgroup" and os.path.dirname(mount_point) == CGROUP_ROOT:
                names.append(os.path.basename(mount_point))
    return sorted(names)


def host_file(container_id: str, hierarchy: str, name: str) -> str | None:
    try:
        with open(os.path.join(CGROUP_ROOT, hierarchy, "berth", container_id, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def cgroup_mounts(mountinfo: str) -> dict:
    """mount point -> (per-mount options, fs type) of the lines under /sys/fs/cgroup."""
    found = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        if fields[4].startswith(CGROUP_ROOT):
            found[fields[4]] = (fields[5].split(","), post.split()[0])
    return found


@v1_only
def test_lists_the_hosts_hierarchies(busybox):
    listed = busybox.ok("run", "--rm", "busybox", "ls", CGROUP_ROOT).split()
    assert sorted(listed) == host_hierarchies()


def test_memory_limit_is_the_containers(busybox):
    name = "memory.max" if V2 else "memory/memory.limit_in_bytes"
    out = busybox.ok("run", "--rm", "-m", "64m", "busybox", "cat", f"{CGROUP_ROOT}/{name}")
    assert out.strip() == "67108864"


def test_pids_limit_is_the_containers(busybox):
    name = "pids.max" if V2 else "pids/pids.max"
    out = busybox.ok("run", "--rm", "--pids-limit", "77", "busybox", "cat", f"{CGROUP_ROOT}/{name}")
    assert out.strip() == "77"


def test_read_only_by_default(busybox):
    pids = "pids.max" if V2 else "pids/pids.max"
    own = CGROUP_ROOT if V2 else f"{CGROUP_ROOT}/pids"
    script = (f"echo 5 > {CGROUP_ROOT}/{pids} && echo wrote-limit; mkdir {own}/child && echo made-dir; "
              f"grep ' {CGROUP_ROOT}' /proc/self/mountinfo")
    result = busybox("run", "--rm", "busybox", "sh", "-c", script)
    assert "wrote-limit" not in result.stdout and "made-dir" not in result.stdout
    assert "Read-only file system" in result.stderr
    mounts = cgroup_mounts(result.stdout)
    assert CGROUP_ROOT in mounts
    for point, (options, _) in mounts.items():
        if not V2 and point == CGROUP_ROOT:  # v1's tmpfs of binds stays rw, as runc (so docker) leaves it
            assert {"rw", "nosuid", "nodev", "noexec"} <= set(options)
        else:
            assert {"ro", "nosuid", "nodev", "noexec"} <= set(options)


def test_privileged_writes_reach_the_containers_own_cgroup(busybox):
    pids = "pids.max" if V2 else "pids/pids.max"
    cid = busybox.ok("run", "-d", "--privileged", "--pids-limit", "50", "busybox", "sh", "-c",
                     f"echo 77 > {CGROUP_ROOT}/{pids} && touch /tmp/wrote; sleep 60").strip()
    try:
        hierarchy = "" if V2 else "pids"
        wait_for(lambda: host_file(cid, hierarchy, "pids.max") == "77", what="the container's write on the host")
        mounts = cgroup_mounts(busybox.ok("exec", cid, "cat", "/proc/self/mountinfo"))
        assert CGROUP_ROOT in mounts
        assert all("rw" in options for options, _ in mounts.values())
    finally:
        busybox("rm", "-f", cid)


def test_proc_self_cgroup_is_the_namespace_root(busybox):
    lines = busybox.ok("run", "--rm", "--cgroupns", "private", "busybox", "cat", "/proc/self/cgroup").splitlines()
    assert lines
    assert all(line.split(":", 2)[2] == "/" for line in lines), lines


def test_other_cgroups_are_not_visible(busybox):
    other = busybox.ok("run", "-d", "busybox", "sleep", "60").strip()
    try:
        memory = "" if V2 else "/memory"
        script = (f"find {CGROUP_ROOT} -mindepth {1 if V2 else 2} -type d; echo ---; "
                  f"cat {CGROUP_ROOT}{memory}/cgroup.procs")
        dirs, _, procs = busybox.ok("run", "--rm", "busybox", "sh", "-c", script).partition("---\n")
        assert dirs.split() == []  # no berth/, no other container, no host's system slices
        assert other[:12] not in dirs
        assert "1" in procs.split() and len(procs.split()) <= 2  # sh (pid 1) and cat
    finally:
        busybox("rm", "-f", other)


@v1_only
def test_co_mounted_hierarchies_get_symlinks(tmp_path):
    """mount_cgroup with a co-mounted hierarchy (this host may have none), in a private mount namespace."""
    sources = {name: tmp_path / name for name in ("cpu,cpuacct", "memory")}
    for source in sources.values():
        source.mkdir()
        (source / "marker").write_text("x")
    host_dirs = {name: str(source) for name, source in sources.items()}
    target = tmp_path / "cgroup"
    target.mkdir()
    script = f"""
import os
from berth.runtime import mount
mount.mount_cgroup({str(target)!r}, mount.parse_options(["ro", "nosuid", "noexec", "nodev"])[0], {host_dirs!r})
print(sorted(os.listdir({str(target)!r})))
print(os.readlink({str(target)!r} + "/cpu"), os.readlink({str(target)!r} + "/cpuacct"))
print(open({str(target)!r} + "/cpu/marker").read())
for path in ({str(target)!r} + "/new", {str(target)!r} + "/memory/new"):
    try:
        os.mkdir(path)
        print("wrote", path)
    except OSError as err:
        print(err.strerror)
"""
    source_dir = os.path.dirname(os.path.dirname(__import__("berth").__file__))
    result = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": source_dir}, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['cpu', 'cpu,cpuacct', 'cpuacct', 'memory']", "cpu,cpuacct cpu,cpuacct", "x",
        f"wrote {target}/new",  # the tmpfs itself stays rw (runc's mountCgroupV1; docker shows the same)
        "Read-only file system",
    ]


def test_runtime_bundle_with_a_cgroup_mount(runtime):  # noqa: F811
    container_id = runtime.new_id()
    pids = "pids.max" if V2 else "pids/pids.max"
    config = base_config(container_id, "sh", "-c", f"cat {CGROUP_ROOT}/{pids}; echo 5 > {CGROUP_ROOT}/{pids}")
    config["mounts"].insert(4, CGROUP_MOUNT)
    config["linux"]["namespaces"].append({"type": "cgroup"})
    config["linux"]["resources"] = {"pids": {"limit": 42}}
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert result.stdout == "42\n"
    refused(result, 1, f"can't create {CGROUP_ROOT}/{pids}: Read-only file system")  # sh's exit code


def test_runtime_bundle_without_a_cgroup_mount_shows_sysfs_dir(runtime):  # noqa: F811
    result = runtime.run_container("sh", "-c", f"grep -c ' {CGROUP_ROOT} ' /proc/self/mountinfo; true")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0\n"
