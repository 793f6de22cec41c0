"""One interface over cgroup v1 and v2: create, apply OCI linux.resources, add a pid, read
usage (stats), update the resources of a running container, freeze, destroy; host_dirs
names the host directories a container sees at /sys/fs/cgroup.

`open_cgroup(path)` picks the backend by what the host mounts at /sys/fs/cgroup."""

import os
import posixpath

from berth.runtime.cgroups.files import read, set_value, write

CGROUP_ROOT = "/sys/fs/cgroup"
PARENT = "berth"  # every container's cgroup is under it (DESIGN: host footprint)


def cgroup_path(container_id: str, parent: str | None = None) -> str:
    """OCI linux.cgroupsPath of a container: the one place it is spelled. `parent` is docker's
    --cgroup-parent (cgroupfs driver: the container's cgroup is <parent>/<id>); a relative one
    is taken from the hierarchy's root, as dockerd's (running there) makes it, so that every
    berth command finds the same cgroup whatever cgroup it runs in; cleaned as Go's filepath.Join
    cleans it, so no ".." leads out of the hierarchy."""
    if parent:
        return posixpath.normpath(f"/{parent}/{container_id}").replace("//", "/", 1)
    return f"/{PARENT}/{container_id}"


def unified(root: str = CGROUP_ROOT) -> bool:
    """Whether the host runs cgroup v2 alone (else v1, or v1 with an empty v2 beside it)."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def open_cgroup(path: str, root: str = CGROUP_ROOT):
    """`path` is OCI linux.cgroupsPath, e.g. cgroup_path(<id>)."""
    if unified(root):
        from berth.runtime.cgroups.v2 import V2Cgroup  # lazy: only the host's cgroup version

        return V2Cgroup(path, root)
    from berth.runtime.cgroups.v1 import V1Cgroup  # lazy: only the host's cgroup version

    return V1Cgroup(path, root)


class Features:
    """What the host's cgroups can enforce (docker's sysinfo): the engine warns about and
    drops what is missing, and checks cpusets against what is there."""

    __slots__ = ("version", "memory", "swap_limit", "swappiness", "oom_kill_disable", "cpus", "mems", "blkio_weight",
                 "blkio_weight_device", "blkio_read_bps", "blkio_write_bps", "blkio_read_iops", "blkio_write_iops",
                 "cpu_realtime")


def features(root: str = CGROUP_ROOT) -> Features:
    found = Features()
    if unified(root):
        controllers = (read(root, "cgroup.controllers") or "").split()
        found.version = 2
        found.memory = found.swap_limit = "memory" in controllers
        found.swappiness = found.oom_kill_disable = False  # no such knobs in v2
        found.cpus = read(root, "cpuset.cpus.effective")
        found.mems = read(root, "cpuset.mems.effective")
        io = "io" in controllers  # io.max and io.weight (or io.bfq.weight) come together
        found.blkio_weight = found.blkio_weight_device = io
        found.blkio_read_bps = found.blkio_write_bps = found.blkio_read_iops = found.blkio_write_iops = io
        found.cpu_realtime = False  # no real-time group scheduling in v2
    else:
        from berth.runtime.cgroups.v1 import hierarchies  # lazy: only on a v1 host

        mounts = hierarchies(root)
        memory = mounts.get("memory")
        found.version = 1
        found.memory = bool(memory)
        found.swap_limit = bool(memory) and os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes"))
        found.swappiness = bool(memory) and os.path.exists(os.path.join(memory, "memory.swappiness"))
        found.oom_kill_disable = bool(memory) and os.path.exists(os.path.join(memory, "memory.oom_control"))
        cpuset = mounts.get("cpuset")
        found.cpus = read(cpuset, "cpuset.cpus") if cpuset else None
        found.mems = read(cpuset, "cpuset.mems") if cpuset else None
        _v1_blkio_features(found, mounts.get("blkio"))
        cpu = mounts.get("cpu")
        found.cpu_realtime = bool(cpu) and all(os.path.exists(os.path.join(cpu, name))
                                               for name in ("cpu.rt_period_us", "cpu.rt_runtime_us"))
    if not found.cpus:
        found.cpus = read("/sys/devices/system/cpu", "online") or "0"
    if not found.mems:
        found.mems = read("/sys/devices/system/node", "online") or "0"
    return found


def give_realtime_budget(parent: str, period: int, runtime: int, root: str = CGROUP_ROOT) -> None:
    """docker's initCPURtController (daemon.json cpu-rt-period/cpu-rt-runtime): each cgroup
    from the top down to `parent` gets the real-time period and runtime, so a child of
    `parent` may ask for some (a v1 cgroup starts with none). Only v1 has real-time groups."""
    from berth.runtime.cgroups.v1 import hierarchies  # lazy: only a real-time container on a v1 host

    cpu = hierarchies(root).get("cpu")
    if cpu is None:
        return
    directory = cpu
    for part in [p for p in parent.split("/") if p]:
        directory = os.path.join(directory, part)
        os.makedirs(directory, exist_ok=True)
        for name, value in (("cpu.rt_period_us", period), ("cpu.rt_runtime_us", runtime)):
            if value:
                set_value(directory, name, value)


def _v1_blkio_features(found: Features, blkio: str | None) -> None:
    """docker's sysinfo for the v1 blkio hierarchy: CFQ's weight files or BFQ's, and the
    throttle files (what a kernel without CFQ, 5.0 on, still has)."""

    def has(*names: str) -> bool:
        return bool(blkio) and any(os.path.exists(os.path.join(blkio, name)) for name in names)

    found.blkio_weight = has("blkio.weight", "blkio.bfq.weight")
    found.blkio_weight_device = has("blkio.weight_device", "blkio.bfq.weight_device")
    found.blkio_read_bps = has("blkio.throttle.read_bps_device")
    found.blkio_write_bps = has("blkio.throttle.write_bps_device")
    found.blkio_read_iops = has("blkio.throttle.read_iops_device")
    found.blkio_write_iops = has("blkio.throttle.write_iops_device")


def warm_attach_lock() -> None:
    """Start, in a background thread, the slow part of the first cgroup attach.

    Moving a task between cgroups takes a global percpu rwsem whose writer waits for an
    RCU grace period (~10-15 ms here) unless another attach happened just before. A no-op
    attach of ourselves to our own cgroup pays that wait now, while the caller does other
    work, so the container's real attach a few ms later is fast (~0.2 ms)."""
    import _thread  # lazy: only the warm-up starts a thread

    _thread.start_new_thread(_attach_self, ())


def _attach_self() -> None:
    try:
        with open("/proc/self/cgroup") as f:
            line = f.readline().rstrip("\n")
        _, controllers, path = line.split(":", 2)
        hierarchy = "" if controllers == "" else (controllers.split(",")[0].removeprefix("name="))
        directory = os.path.join(CGROUP_ROOT, hierarchy, path.lstrip("/"))
        write(directory, "cgroup.procs", str(os.getpid()))
    except BaseException:
        pass  # only an optimisation
