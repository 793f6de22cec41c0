"""One interface over cgroup v1 and v2: create, apply OCI linux.resources, add a pid, read
usage (stats), update the resources of a running container, freeze, destroy; host_dirs
names the host directories a container sees at /sys/fs/cgroup.

`open_cgroup(path)` picks the backend by what the host mounts at /sys/fs/cgroup."""

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def open_cgroup(path: str, root: str = CGROUP_ROOT):
    """`path` is OCI linux.cgroupsPath, e.g. "/berth/<id>"."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        from berth.runtime.cgroups.v2 import V2Cgroup

        return V2Cgroup(path, root)
    from berth.runtime.cgroups.v1 import V1Cgroup

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
        from berth.runtime.cgroups.v1 import hierarchies

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
    import _thread

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


def write(directory: str, name: str, value: str) -> None:
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def set_value(directory: str, name: str, value) -> None:
    """write(), with runc's wording when the kernel refuses the value."""
    try:
        write(directory, name, str(value))
    except OSError as err:
        raise write_error(directory, name, value, err) from None


def write_error(directory: str, name: str, value, err: OSError):
    from berth.errors import BerthError

    path = os.path.join(directory, name)
    return BerthError(f'failed to write "{value}": write {path}: {(err.strerror or str(err)).lower()}')


def read(directory: str, name: str) -> str | None:
    """A cgroup file's content without the trailing newline; None if it does not exist."""
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read().rstrip("\n")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as err:
        if err.errno == 19:  # ENODEV: the cgroup was removed while we read it
            return None
        raise


def read_int(directory: str, name: str, default: int = 0) -> int:
    value = read(directory, name)
    if not value or value == "max":
        return default
    return int(value.split()[0])


def read_keyed(directory: str, name: str) -> dict:
    """"key value" lines (memory.stat, cpu.stat, memory.events) as a dict of ints."""
    found = {}
    for line in (read(directory, name) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            found[key] = int(value)
        except ValueError:
            pass
    return found


class CgroupStats:
    """Usage numbers of one cgroup, the fields docker's stats need. `memory_limit` is None
    when there is no limit; block I/O is summed over devices."""

    __slots__ = ("cpu_usage", "percpu_usage", "memory_usage", "memory_limit", "memory_max_usage", "memory_stats",
                 "pids_current", "pids_limit", "blkio_read", "blkio_write")

    def __init__(self):
        self.cpu_usage = 0  # nanoseconds of CPU time, all tasks
        self.percpu_usage = []
        self.memory_usage = 0  # bytes charged, page cache included
        self.memory_limit = None
        self.memory_max_usage = 0
        self.memory_stats = {}  # memory.stat as docker shows it (v1: with total_* keys)
        self.pids_current = 0
        self.pids_limit = None
        self.blkio_read = 0
        self.blkio_write = 0

    def memory_usage_no_cache(self) -> int:
        """docker's MEM USAGE: usage minus inactive page cache (v1 total_inactive_file,
        v2 inactive_file), like cadvisor and containerd's CRI."""
        for key in ("total_inactive_file", "inactive_file"):
            inactive = self.memory_stats.get(key)
            if inactive is not None and inactive < self.memory_usage:
                return self.memory_usage - inactive
        return self.memory_usage


def remove_dir(directory: str) -> None:
    """rmdir a cgroup, retrying briefly: the kernel may still be releasing exited tasks."""
    for attempt in range(50):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != 16 or attempt == 49:  # EBUSY
                raise
            import time

            time.sleep(0.002)
