"""cgroup v2: one directory in the unified hierarchy; controllers enabled down the path.

The files and conversions are runc's (libcontainer/cgroups/fs2): memory.max, memory.low,
memory.swap.max (= memory+swap - memory), cpu.weight (from cpu.shares), cpu.max
("quota period"), cpuset.cpus, cpuset.mems, pids.max, io.max and io.weight (or BFQ's
io.bfq.weight). Device rules become an eBPF
program (devicefilter.py). v2 has no swappiness and no OOM-killer switch: those two are
not applied here (the engine warns, as docker does)."""

import math
import os

from berth.errors import BerthError
from berth.runtime.cgroups.files import (
    CgroupStats,
    blkio_v2,
    huge_page_sizes,
    hugetlb_stat,
    read,
    read_int,
    read_keyed,
    remove_dir,
    set_value,
    write,
)


class V2Cgroup:
    version = 2

    def __init__(self, path: str, root: str):
        self.root = root
        self.path = path.strip("/")
        self.dir = os.path.join(root, self.path)
        self.dirs = {root: self.dir}

    def create(self) -> None:
        parent = self.root
        with open(os.path.join(self.root, "cgroup.controllers")) as f:
            controllers = f.read().split()
        for part in self.path.split("/"):
            # Enable the controllers for children of each ancestor, as runc does.
            wanted = " ".join("+" + c for c in controllers)
            try:
                write(parent, "cgroup.subtree_control", wanted)
            except OSError:
                pass
            parent = os.path.join(parent, part)
            os.makedirs(parent, exist_ok=True)

    def host_dirs(self) -> dict:
        """The container's directory; the key "" says it is the whole hierarchy (no
        per-controller subdirectories as in v1)."""
        return {"": self.dir}

    def directories(self) -> list[str]:
        """Its directory, the one a process is moved into."""
        return [self.dir]

    def split_directories(self, controllers: tuple) -> tuple[list[str], list[str]]:
        """As V1Cgroup's: every controller is in its one directory."""
        return [self.dir], []

    def freeze_file(self) -> str | None:
        """The file that tells whether it is frozen (0 when not)."""
        return os.path.join(self.dir, "cgroup.freeze")

    def add(self, pid: int) -> None:
        write(self.dir, "cgroup.procs", str(pid))

    def apply(self, resources: dict | None) -> None:
        if not resources:
            return
        cpu = resources.get("cpu") or {}
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                set_value(self.dir, name, cpu[key])
        if resources.get("memory"):
            self._apply_memory(resources["memory"])
        if cpu:
            self._apply_cpu(cpu)
        pids = resources.get("pids") or {}
        if pids.get("limit"):
            set_value(self.dir, "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
        if resources.get("blockIO"):
            self._apply_io(resources["blockIO"])
        if resources.get("devices"):
            from berth.runtime.cgroups.devicefilter import attach  # lazy: only --device rules load BPF

            attach(self.dir, resources["devices"])
        for limit in resources.get("hugepageLimits") or ():
            set_value(self.dir, f"hugetlb.{limit['pageSize']}.max", limit["limit"])
        if resources.get("rdma"):
            from berth.runtime.cgroups.v1 import rdma_line  # lazy: one line format for both

            for device, limits in resources["rdma"].items():
                set_value(self.dir, "rdma.max", rdma_line(device, limits))
        for name, value in (resources.get("unified") or {}).items():
            # runc's checks: a plain file name of this cgroup, of a controller (or cgroup.*)
            if "/" in name or name.startswith(".") or "." not in name:
                raise BerthError(f"unified resource {name!r} is not a cgroup file name")
            set_value(self.dir, name, value)

    def update(self, resources: dict) -> None:
        """Change the limits of a live cgroup (`berth update`); device rules are not changed."""
        self.apply({key: value for key, value in resources.items() if key != "devices"})

    def _apply_memory(self, memory: dict) -> None:
        limit = memory.get("limit") or 0
        swap = swap_max(memory.get("swap") or 0, limit)
        if swap is not None:
            try:
                write(self.dir, "memory.swap.max", swap)
            except FileNotFoundError:
                if swap not in ("max", "0"):  # no swap accounting: only "no limit" and "none" are harmless
                    set_value(self.dir, "memory.swap.max", swap)
        if limit:
            set_value(self.dir, "memory.max", _limit_text(limit))
        if memory.get("reservation"):
            set_value(self.dir, "memory.low", _limit_text(memory["reservation"]))

    def _apply_cpu(self, cpu: dict) -> None:
        if cpu.get("shares"):
            set_value(self.dir, "cpu.weight", cpu_weight(cpu["shares"]))
        if cpu.get("quota") or cpu.get("period"):
            set_value(self.dir, "cpu.max", cpu_max(cpu.get("quota") or 0, cpu.get("period") or 0))
        if cpu.get("burst") is not None:
            set_value(self.dir, "cpu.max.burst", cpu["burst"])
        if cpu.get("idle") is not None:
            set_value(self.dir, "cpu.idle", cpu["idle"])

    def _apply_io(self, block_io: dict) -> None:
        """runc's setIo: BFQ's weight where the kernel has it, else io.weight converted from
        blkio's 10..1000; per-device weights only with BFQ; each throttle one io.max line."""
        bfq = os.path.exists(os.path.join(self.dir, "io.bfq.weight"))
        if block_io.get("weight"):
            if bfq:
                set_value(self.dir, "io.bfq.weight", block_io["weight"])
            else:
                set_value(self.dir, "io.weight", io_weight(block_io["weight"]))
        for device in block_io.get("weightDevice") or ():
            if bfq:
                set_value(self.dir, "io.bfq.weight", f"{device['major']}:{device['minor']} {device['weight']}")
        for key, limit in IO_MAX_KEYS:
            for device in block_io.get(key) or ():
                set_value(self.dir, "io.max", f"{device['major']}:{device['minor']} {limit}={device['rate']}")

    def stats(self) -> CgroupStats:
        stats = CgroupStats()
        stats.cpu_usage = read_keyed(self.dir, "cpu.stat").get("usage_usec", 0) * 1000
        stats.memory_usage = read_int(self.dir, "memory.current")
        stats.memory_max_usage = read_int(self.dir, "memory.peak")
        limit = read(self.dir, "memory.max")
        stats.memory_limit = int(limit) if limit and limit != "max" else None
        stats.memory_stats = read_keyed(self.dir, "memory.stat")
        stats.pids_current = read_int(self.dir, "pids.current")
        stats.pids_limit = read_int(self.dir, "pids.max", None)
        for line in (read(self.dir, "io.stat") or "").splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    stats.blkio_read += int(value)
                elif key == "wbytes":
                    stats.blkio_write += int(value)
        return stats

    def blkio_stats(self) -> dict:
        """runc's events --stats "blkio", from io.stat."""
        return blkio_v2(self.dir)

    def hugetlb_stats(self) -> dict:
        """runc's "hugetlb": per page size current usage and the failures ("max" in
        hugetlb.<size>.events); v2 keeps no max usage."""
        if not os.path.exists(os.path.join(self.dir, "hugetlb." + (huge_page_sizes() or ["-"])[0] + ".current")):
            return {}
        return {size: hugetlb_stat(read_int(self.dir, f"hugetlb.{size}.current"), 0,
                                   read_keyed(self.dir, f"hugetlb.{size}.events").get("max", 0))
                for size in huge_page_sizes()}

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.dir, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def members(self) -> set[int]:
        return set(self.pids())

    def oom_killed(self) -> bool:
        return read_keyed(self.dir, "memory.events").get("oom_kill", 0) > 0

    def freeze(self) -> None:
        self._set_freeze("1")

    def thaw(self) -> None:
        self._set_freeze("0")

    def frozen(self) -> bool:
        """Whether cgroup.freeze holds the cgroup (runc's "paused")."""
        return read(self.dir, "cgroup.freeze") == "1"

    def _set_freeze(self, value: str) -> None:
        try:
            write(self.dir, "cgroup.freeze", value)
        except FileNotFoundError:
            pass  # no freezer here, or the cgroup was removed meanwhile

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        remove_dir(self.dir)


# OCI blockIO throttle keys -> their io.max keys
IO_MAX_KEYS = (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
               ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops"))


def io_weight(blkio_weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000] (runc's ConvertBlkIOToIOWeightValue)."""
    return 1 + (blkio_weight - 10) * 9999 // 990


def cpu_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], runc's current conversion: a quadratic
    in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so docker's default
    1024 shares is v2's default weight 100."""
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    return math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0))


def swap_max(memory_swap: int, memory: int) -> str | None:
    """OCI memory.swap (memory + swap, v1's memsw) -> v2 memory.swap.max (swap alone);
    None: leave the file alone."""
    if memory == -1 and memory_swap == 0:
        return "max"  # unlimited memory means unlimited swap too, unless swap is given
    if memory_swap == 0:
        return None
    if memory_swap == -1:
        return "max"
    if memory == -1:
        return str(memory_swap)

    if memory == 0:
        raise BerthError("unable to set swap limit without memory limit")
    if memory < 0:
        raise BerthError(f"invalid memory value: {memory}")
    if memory_swap < memory:
        raise BerthError("memory+swap limit should be >= memory limit")
    return str(memory_swap - memory)


def cpu_max(quota: int, period: int) -> str:
    """cpu.max: "<quota|max> [period]"."""
    text = str(quota) if quota > 0 else "max"
    return f"{text} {period}" if period else text


def _limit_text(value: int) -> str:
    return "max" if value == -1 else str(value)
