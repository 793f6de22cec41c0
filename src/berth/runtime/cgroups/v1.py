"""cgroup v1: one directory per mounted hierarchy (plus the empty v2 "unified" one on hybrid hosts).

The files written are runc's (libcontainer/cgroups/fs): memory.limit_in_bytes,
memory.memsw.limit_in_bytes, memory.soft_limit_in_bytes, memory.swappiness,
memory.oom_control, cpu.shares, cpu.cfs_period_us, cpu.cfs_quota_us, cpu.rt_period_us,
cpu.rt_runtime_us, cpuset.cpus, cpuset.mems, pids.max, devices.allow/deny, blkio.weight (or
BFQ's blkio.bfq.weight), blkio.weight_device and blkio.throttle.*."""

import os
import time

from berth.errors import BerthError
from berth.runtime.cgroups.files import (
    CgroupStats,
    blkio_v1,
    huge_page_sizes,
    hugetlb_stat,
    read,
    read_int,
    read_keyed,
    remove_dir,
    set_value,
    write,
    write_error,
)

# What memory.limit_in_bytes reads when there is no limit (PAGE_COUNTER_MAX in bytes, rounded).
UNLIMITED = 1 << 62


def hierarchies(root: str) -> dict:
    """controller name -> mount point, read from /proc/self/mountinfo."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            mount_point = pre.split()[4]
            if not mount_point.startswith(root):
                continue
            if fields[0] == "cgroup":
                for opt in fields[2].split(","):
                    if opt in ("rw", "ro") or opt.startswith("release_agent") or opt == "clone_children":
                        continue
                    found[opt] = mount_point
            elif fields[0] == "cgroup2":
                found["unified"] = mount_point
    return found


class V1Cgroup:
    version = 1

    def __init__(self, path: str, root: str):
        self.path = path.strip("/")
        self.mounts = hierarchies(root)
        self.dirs = {}
        for mount_point in self.mounts.values():
            self.dirs.setdefault(mount_point, os.path.join(mount_point, self.path))

    def create(self) -> None:
        for mount_point, directory in self.dirs.items():
            if mount_point == self.mounts.get("cpuset"):
                self._create_cpuset(mount_point, directory)
            else:
                os.makedirs(directory, exist_ok=True)

    def _create_cpuset(self, mount_point: str, directory: str) -> None:
        # A new cpuset starts with empty cpus/mems; copy them down from the nearest parent.
        parts = self.path.split("/")
        parent = mount_point
        for part in parts:
            child = os.path.join(parent, part)
            if not os.path.isdir(child):
                os.makedirs(child, exist_ok=True)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(parent, name)) as f:
                        write(child, name, f.read().strip() or "\n")
            parent = child

    def host_dirs(self) -> dict:
        """The container's directory in each v1 hierarchy, by the hierarchy's name inside
        /sys/fs/cgroup (its mount point's base name: "memory", "cpu,cpuacct", "systemd").
        A hybrid host's cgroup2 is left out, as runc and docker leave it out."""
        unified = self.mounts.get("unified")
        return {os.path.basename(mount_point): directory for mount_point, directory in self.dirs.items()
                if mount_point != unified}

    def directories(self) -> list[str]:
        """Its directory in every hierarchy, the ones a process is moved into."""
        return list(self.dirs.values())

    def split_directories(self, controllers: tuple) -> tuple[list[str], list[str]]:
        """(its directories in the hierarchies of `controllers`, its directories in all others)."""
        chosen = {self.mounts[name] for name in controllers if name in self.mounts}
        return ([self.dirs[m] for m in self.dirs if m in chosen], [self.dirs[m] for m in self.dirs if m not in chosen])

    def freeze_file(self) -> str | None:
        """The file that tells whether it is frozen (THAWED when not); None without a freezer."""
        freezer = self._dir("freezer")
        return os.path.join(freezer, "freezer.state") if freezer else None

    def add(self, pid: int) -> None:
        for directory in self.dirs.values():
            write(directory, "cgroup.procs", str(pid))

    def apply(self, resources: dict | None) -> None:
        """Write OCI linux.resources, in runc's order and with its checks."""
        if not resources:
            return
        if resources.get("unified"):
            raise BerthError("invalid configuration: cannot use unified on cgroup v1")
        cpu = resources.get("cpu") or {}
        cpuset_dir = self._dir("cpuset")
        if cpuset_dir and (cpu.get("cpus") or cpu.get("mems")):
            for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
                if cpu.get(key):
                    set_value(cpuset_dir, name, cpu[key])
        devices_dir = self._dir("devices")
        if devices_dir and resources.get("devices"):
            for rule in resources["devices"]:
                write(devices_dir, "devices.allow" if rule.get("allow") else "devices.deny", _device_rule(rule))
        memory_dir = self._dir("memory")
        if memory_dir and resources.get("memory"):
            _apply_memory(memory_dir, resources["memory"])
        cpu_dir = self._dir("cpu")
        if cpu_dir and cpu:
            _apply_cpu(cpu_dir, cpu)
        pids = resources.get("pids") or {}
        if pids.get("limit") and self._dir("pids"):
            set_value(self._dir("pids"), "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
        if resources.get("blockIO"):
            _apply_blkio(self._dir("blkio"), resources["blockIO"])
        for limit in resources.get("hugepageLimits") or ():
            set_value(self._needed("hugetlb"), f"hugetlb.{limit['pageSize']}.limit_in_bytes", limit["limit"])
        network = resources.get("network") or {}
        if network.get("classID") is not None:
            set_value(self._needed("net_cls"), "net_cls.classid", network["classID"])
        for priority in network.get("priorities") or ():
            set_value(self._needed("net_prio"), "net_prio.ifpriomap", f"{priority['name']} {priority['priority']}")
        for device, limits in (resources.get("rdma") or {}).items():
            set_value(self._needed("rdma"), "rdma.max", rdma_line(device, limits))

    def _needed(self, controller: str) -> str:
        """The directory of a controller a limit needs; runc's words when this host lacks it."""
        directory = self._dir(controller)
        if directory is None:
            name = "net_cls" if controller == "net_prio" else controller
            raise BerthError(f"cannot set {name} limit: container could not join or create cgroup")
        return directory

    def update(self, resources: dict) -> None:
        """Change the limits of a live cgroup (`berth update`): the same writes as apply,
        device rules excepted (docker cannot change those on a running container)."""
        self.apply({key: value for key, value in resources.items() if key != "devices"})

    def stats(self) -> CgroupStats:
        stats = CgroupStats()
        cpuacct = self._dir("cpuacct")
        if cpuacct:
            stats.cpu_usage = read_int(cpuacct, "cpuacct.usage")
            stats.percpu_usage = [int(x) for x in (read(cpuacct, "cpuacct.usage_percpu") or "").split()]
        memory = self._dir("memory")
        if memory:
            stats.memory_usage = read_int(memory, "memory.usage_in_bytes")
            stats.memory_max_usage = read_int(memory, "memory.max_usage_in_bytes")
            limit = read_int(memory, "memory.limit_in_bytes")
            stats.memory_limit = limit if 0 < limit < UNLIMITED else None
            stats.memory_stats = read_keyed(memory, "memory.stat")
        pids = self._dir("pids")
        if pids:
            stats.pids_current = read_int(pids, "pids.current")
            stats.pids_limit = read_int(pids, "pids.max", None)
        blkio = self._dir("blkio")
        if blkio:
            stats.blkio_read, stats.blkio_write = _blkio_bytes(blkio)
        return stats

    def blkio_stats(self) -> dict:
        """runc's events --stats "blkio" (libcontainer's BlkioStats, types.Blkio's JSON)."""
        blkio = self._dir("blkio")
        return blkio_v1(blkio) if blkio else {}

    def hugetlb_stats(self) -> dict:
        """runc's "hugetlb": per page size usage, max usage and failcnt."""
        hugetlb = self._dir("hugetlb")
        if not hugetlb or not os.path.isdir(hugetlb):
            return {}
        return {size: hugetlb_stat(read_int(hugetlb, f"hugetlb.{size}.usage_in_bytes"),
                                   read_int(hugetlb, f"hugetlb.{size}.max_usage_in_bytes"),
                                   read_int(hugetlb, f"hugetlb.{size}.failcnt"))
                for size in huge_page_sizes()}

    def _dir(self, controller: str) -> str | None:
        mount_point = self.mounts.get(controller)
        return self.dirs.get(mount_point) if mount_point else None

    def pids(self) -> list[int]:
        return _procs(self._dir("pids") or self._dir("memory") or next(iter(self.dirs.values())))

    def members(self) -> set[int]:
        """Every process in any of its hierarchies: one may be in some and not (yet) in
        others, as a probe launcher is for the instant it moves itself in or out."""
        return {pid for directory in self.dirs.values() for pid in _procs(directory)}

    def oom_killed(self) -> bool:
        memory = self._dir("memory")
        return bool(memory) and _oom_kills(os.path.join(memory, "memory.oom_control")) > 0

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def frozen(self) -> bool:
        """Whether the freezer holds the cgroup (runc's "paused")."""
        freezer = self._dir("freezer")
        return bool(freezer) and read(freezer, "freezer.state") in ("FROZEN", "FREEZING")

    def _set_freezer(self, wanted: str) -> None:
        freezer = self._dir("freezer")
        if not freezer or not os.path.isdir(freezer):
            return
        try:
            write(freezer, "freezer.state", wanted)
            for _ in range(1000):  # FREEZING -> FROZEN takes a moment
                with open(os.path.join(freezer, "freezer.state")) as f:
                    if f.read().strip() == wanted:
                        return

                time.sleep(0.001)
        except OSError as err:
            if isinstance(err, FileNotFoundError) or err.errno == 19:  # ENODEV: removed meanwhile
                return
            raise

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def destroy(self) -> None:
        for directory in self.dirs.values():
            remove_dir(directory)


def _procs(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    except OSError as err:
        if err.errno == 19:  # ENODEV: the cgroup was removed while we read it
            return []
        raise


def _oom_kills(path: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except FileNotFoundError:
        pass
    return 0


def _device_rule(rule: dict) -> str:
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    major = rule.get("major")
    minor = rule.get("minor")
    major = "*" if major is None or major < 0 else str(major)
    minor = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def rdma_line(device: str, limits: dict) -> str:
    """An rdma.max line: "mlx5_0 hca_handle=3 hca_object=max"."""
    handles = limits.get("hcaHandles")
    objects = limits.get("hcaObjects")
    return (f"{device} hca_handle={'max' if handles is None else handles} "
            f"hca_object={'max' if objects is None else objects}")


def _apply_memory(directory: str, memory: dict) -> None:
    limit = memory.get("limit") or 0
    swap = memory.get("swap") or 0
    if limit == -1 and swap == 0 and os.path.exists(os.path.join(directory, "memory.memsw.limit_in_bytes")):
        swap = -1  # unlimited memory means unlimited swap too, unless swap is given
    if limit and swap:
        # The kernel wants limit <= memsw at every step: when memsw grows past the current
        # limit it goes first, else the limit does.
        current = read_int(directory, "memory.limit_in_bytes")
        if swap == -1 or current < swap:
            _set_swap(directory, swap)
            _set_limit(directory, limit)
        else:
            _set_limit(directory, limit)
            _set_swap(directory, swap)
    elif limit:
        _set_limit(directory, limit)
    elif swap:
        _set_swap(directory, swap)
    if memory.get("reservation"):
        set_value(directory, "memory.soft_limit_in_bytes", memory["reservation"])
    swappiness = memory.get("swappiness")
    if swappiness is not None and 0 <= swappiness <= 100:
        set_value(directory, "memory.swappiness", swappiness)
    elif swappiness is not None and swappiness != -1:
        raise BerthError(f"invalid memory swappiness value: {swappiness} (valid range is 0-100)")
    if memory.get("disableOOMKiller"):
        set_value(directory, "memory.oom_control", 1)
    # kernel and kernelTCP: ignored, as runc 1.1 ignores kernel memory settings


def _set_limit(directory: str, limit: int) -> None:
    try:
        write(directory, "memory.limit_in_bytes", str(limit))
    except OSError as err:
        if err.errno != 16:  # EBUSY: the new limit is below what is in use
            raise write_error(directory, "memory.limit_in_bytes", limit, err) from None

        usage = read_int(directory, "memory.usage_in_bytes")
        peak = read_int(directory, "memory.max_usage_in_bytes")
        raise BerthError(f"unable to set memory limit to {limit} (current usage: {usage}, "
                         f"peak usage: {peak})") from None


def _set_swap(directory: str, swap: int) -> None:
    if os.path.exists(os.path.join(directory, "memory.memsw.limit_in_bytes")):
        set_value(directory, "memory.memsw.limit_in_bytes", swap)


def _apply_blkio(directory: str | None, block_io: dict) -> None:
    """OCI linux.resources.blockIO, runc's way: the weights go to CFQ's files, or BFQ's where
    the kernel has only those; a throttle is one "major:minor rate" line per device."""
    if directory is None:
        raise BerthError("cannot apply block I/O limits: the blkio cgroup is not mounted")
    bfq = not os.path.exists(os.path.join(directory, "blkio.weight"))
    if block_io.get("weight"):
        set_value(directory, "blkio.bfq.weight" if bfq else "blkio.weight", block_io["weight"])
    for device in block_io.get("weightDevice") or ():
        set_value(directory, "blkio.bfq.weight_device" if bfq else "blkio.weight_device",
                  f"{device['major']}:{device['minor']} {device['weight']}")
    for key, name in THROTTLE_FILES:
        for device in block_io.get(key) or ():
            set_value(directory, name, f"{device['major']}:{device['minor']} {device['rate']}")


# OCI blockIO throttle keys -> their v1 files
THROTTLE_FILES = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                  ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                  ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                  ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"))


def _apply_cpu(directory: str, cpu: dict) -> None:
    # real-time first (runc's SetRtSched): a period shorter than the parent's runtime is refused after
    for key, name in (("realtimePeriod", "cpu.rt_period_us"), ("realtimeRuntime", "cpu.rt_runtime_us")):
        if cpu.get(key):
            try:
                write(directory, name, str(cpu[key]))
            except OSError as err:
                hint = " (more than the parent cgroup's real-time budget)" if err.errno == 22 else ""
                raise BerthError(f"{write_error(directory, name, cpu[key], err)}{hint}") from None
    if cpu.get("idle") is not None and os.path.exists(os.path.join(directory, "cpu.idle")):
        set_value(directory, "cpu.idle", cpu["idle"])
    shares = cpu.get("shares")
    if shares:
        set_value(directory, "cpu.shares", shares)
        applied = read_int(directory, "cpu.shares")
        if shares > applied:  # the kernel clamps silently: say so, as runc does
            raise BerthError(f"the maximum allowed cpu-shares is {applied}")
        if shares < applied:
            raise BerthError(f"the minimum allowed cpu-shares is {applied}")
    period = cpu.get("period")
    quota = cpu.get("quota")
    retry_period = False
    if period:
        try:
            write(directory, "cpu.cfs_period_us", str(period))
        except OSError as err:
            # A shorter period can be refused while the old quota is in place: set it after the quota.
            if err.errno != 22 or not quota:
                raise write_error(directory, "cpu.cfs_period_us", period, err) from None
            retry_period = True
    if quota:
        set_value(directory, "cpu.cfs_quota_us", quota)
        if retry_period:
            set_value(directory, "cpu.cfs_period_us", period)
    if cpu.get("burst") is not None:  # after the quota it may not exceed
        set_value(directory, "cpu.cfs_burst_us", cpu["burst"])


def _blkio_bytes(directory: str) -> tuple[int, int]:
    """Bytes read and written, from blkio.throttle.io_service_bytes_recursive ("8:0 Read 4096")."""
    read_bytes = written = 0
    for name in ("blkio.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive"):
        text = read(directory, name)
        if not text:
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) != 3:
                continue
            if fields[1] == "Read":
                read_bytes += int(fields[2])
            elif fields[1] == "Write":
                written += int(fields[2])
        if read_bytes or written:
            break
    return read_bytes, written
