"""`stats`: each container's CPU %, memory, network and block I/O and pids, sampled every second.

docker's daemon samples a container's cgroup every second and its CLI computes CPU % from two
samples: the container's CPU time over the host's (/proc/stat) times the online CPUs. berth
has no daemon, so the engine takes the samples itself, from the container's cgroup and its
/proc/<pid>/net/dev, and hands out rounds of figures."""

import os
import time

from berth.engine.containers import is_running

INTERVAL = 1.0  # seconds between samples, as docker's stats collector
NANOSECONDS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Sample:
    """One reading of a running container: its cgroup stats, the host CPU time, its network bytes."""

    __slots__ = ("cgroup", "system_cpu", "online_cpus", "net_rx", "net_tx")

    def __init__(self, cgroup, system_cpu: int, online_cpus: int, net_rx: int, net_tx: int):
        self.cgroup = cgroup
        self.system_cpu = system_cpu
        self.online_cpus = online_cpus
        self.net_rx = net_rx
        self.net_tx = net_tx


class ContainerStats:
    """One container in one round: its ID and name, and (while it runs) CPU % since the
    previous round, memory in use (without page cache) and its limit (the host's memory when
    it has none), block and network bytes read and written, and its number of pids.
    `running` is False for a container that has no figures (all zero)."""

    __slots__ = ("id", "name", "running", "cpu_percent", "memory", "memory_limit", "block_read", "block_write",
                 "net_rx", "net_tx", "pids")

    def __init__(self, record: dict, previous: Sample | None, current: Sample | None):
        self.id = record["Id"]
        self.name = record["Name"].lstrip("/")
        self.running = current is not None
        self.cpu_percent = 0.0
        self.memory = self.memory_limit = self.block_read = self.block_write = 0
        self.net_rx = self.net_tx = self.pids = 0
        if current is None:
            return
        stats = current.cgroup
        self.cpu_percent = cpu_percent(previous, current)
        self.memory = stats.memory_usage_no_cache()
        self.memory_limit = min(stats.memory_limit or host_memory(), host_memory())
        self.block_read, self.block_write = stats.blkio_read, stats.blkio_write
        self.net_rx, self.net_tx = current.net_rx, current.net_tx
        self.pids = stats.pids_current


def stats(engine, container_ids: list[str] = (), all_containers: bool = False, stream: bool = True,
          interval: float = INTERVAL):
    """Rounds of figures, one list of ContainerStats per `interval` (one round unless
    `stream`): for the containers `container_ids` (full IDs) while they exist, else for the
    running ones (every one with `all_containers`), oldest first. CPU % needs two samples,
    so the first round comes one interval after the first sample (at once if none runs).
    Ends when every container asked for is gone."""
    previous = None
    while True:
        records = _records(engine, container_ids, all_containers)
        if container_ids and not records:
            return
        current = {r["Id"]: sample(r) for r in records}
        if previous is None and any(current.values()):
            previous = current
            time.sleep(interval)
            continue
        yield [ContainerStats(r, (previous or {}).get(r["Id"]), current[r["Id"]]) for r in records]
        if not stream:
            return
        previous = current
        time.sleep(interval)


def _records(engine, container_ids: list[str], all_containers: bool) -> list[dict]:
    if container_ids:
        found = []
        for container_id in container_ids:
            try:
                found.append(engine.load(container_id))
            except FileNotFoundError:
                continue
        return found
    records = sorted(engine.containers(), key=lambda r: r["Created"])
    return [r for r in records if all_containers or r["State"]["Running"]]


def sample(record: dict) -> Sample | None:
    """The container's counters now; None if it is not running."""
    if not is_running(record):
        return None
    from berth.engine.state import container_cgroup  # lazy: only a running container is sampled

    cgroup = container_cgroup(record)
    if not cgroup.exists():
        return None
    stats = cgroup.stats()
    rx = tx = 0
    if record["HostConfig"].get("NetworkMode") != "host":  # docker shows no network for --net host
        rx, tx = network_bytes(record["State"]["Pid"])
    return Sample(stats, system_cpu_usage(), os.sysconf("SC_NPROCESSORS_ONLN"), rx, tx)


def system_cpu_usage() -> int:
    """The host's CPU time in nanoseconds: the first seven fields of /proc/stat's cpu line
    (user to softirq), as docker's daemon reads it."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return sum(int(x) for x in fields[1:8]) * NANOSECONDS_PER_TICK


def network_bytes(pid: int) -> tuple[int, int]:
    """Bytes received and sent by the container's interfaces (all but lo)."""
    rx = tx = 0
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def cpu_percent(previous: Sample | None, current: Sample) -> float:
    """docker's calculateCPUPercentUnix: container CPU time over host CPU time, times online CPUs."""
    if previous is None:
        return 0.0
    cpu_delta = current.cgroup.cpu_usage - previous.cgroup.cpu_usage
    system_delta = current.system_cpu - previous.system_cpu
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * current.online_cpus * 100.0
    return 0.0


_MEMORY = []


def host_memory() -> int:
    """MemTotal in bytes (docker's machineMemory), read once."""
    if not _MEMORY:
        from berth.engine.system import host_memory as read  # lazy, likewise

        _MEMORY.append(read())
    return _MEMORY[0]
