"""One interface over cgroup v1 and v2: create, apply OCI linux.resources, add a pid, read
usage (stats), update the resources of a running container, freeze, destroy; host_dirs
names the host directories a container sees at /sys/fs/cgroup.

`open_cgroup(path)` picks the backend by what the host mounts at /sys/fs/cgroup."""

import os

from berth.runtime.cgroups.files import read, write

CGROUP_ROOT = "/sys/fs/cgroup"
PARENT = "berth"  # every container's cgroup is under it (DESIGN: host footprint)


def cgroup_path(container_id: str) -> str:
    """OCI linux.cgroupsPath of a container: the one place it is spelled."""
    return f"/{PARENT}/{container_id}"


def open_cgroup(path: str, root: str = CGROUP_ROOT):
    """`path` is OCI linux.cgroupsPath, e.g. cgroup_path(<id>)."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        from berth.runtime.cgroups.v2 import V2Cgroup  # lazy: only the host's cgroup version

        return V2Cgroup(path, root)
    from berth.runtime.cgroups.v1 import V1Cgroup  # lazy: only the host's cgroup version

    return V1Cgroup(path, root)


class Features:
    """What the host's cgroups can enforce (docker's sysinfo): the engine warns about and
    drops what is missing, and checks cpusets against what is there."""

    __slots__ = ("version", "memory", "swap_limit", "swappiness", "oom_kill_disable", "cpus", "mems")


def features(root: str = CGROUP_ROOT) -> Features:
    found = Features()
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        controllers = (read(root, "cgroup.controllers") or "").split()
        found.version = 2
        found.memory = found.swap_limit = "memory" in controllers
        found.swappiness = found.oom_kill_disable = False  # no such knobs in v2
        found.cpus = read(root, "cpuset.cpus.effective")
        found.mems = read(root, "cpuset.mems.effective")
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
    if not found.cpus:
        found.cpus = read("/sys/devices/system/cpu", "online") or "0"
    if not found.mems:
        found.mems = read("/sys/devices/system/node", "online") or "0"
    return found


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
