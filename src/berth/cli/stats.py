"""`berth stats [OPTIONS] [CONTAINER...]`: each container's CPU %, memory, network and block
I/O and pids, in docker's columns, refreshed in place every second (or once with --no-stream).

docker's daemon samples a container's cgroup every second and its CLI computes CPU % from two
samples: the container's CPU time over the host's (/proc/stat) times the online CPUs. berth
has no daemon, so this command takes the samples itself, from the container's cgroup and its
/proc/<pid>/net/dev."""

import os
import sys
import time

from berth.cli.flags import BOOL, STRING, Command, Flag, parse_or_help
from berth.errors import BerthError

STATS = Command("stats", "berth stats [OPTIONS] [CONTAINER...]",
                "Display a live stream of container(s) resource usage statistics",
                [Flag("all", "a", BOOL, False, "Show all containers (default shows just running)"),
                 Flag("format", None, STRING, None, "Format output using a custom template"),
                 Flag("no-stream", None, BOOL, False, "Disable streaming stats and only pull the first result"),
                 Flag("no-trunc", None, BOOL, False, "Do not truncate output")])

DEFAULT_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
                  "\t{{.PIDs}}")
HEADER = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
          "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
          "PIDs": "PIDS"}
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


def cmd_stats(engine, argv: list[str]) -> int:
    opts, args = parse_or_help(STATS, argv)
    if opts.help:
        return 0
    named = []
    for ref in args:  # docker checks the names it is given before printing anything
        try:
            named.append(engine.get(ref)["Id"])
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            return 1
    fmt = opts.format or DEFAULT_FORMAT
    trunc = not opts.no_trunc
    if opts.no_stream:
        records = _records(engine, named, args, opts.all)
        if not records:
            return 0  # docker prints nothing, not even the header
        before = {r["Id"]: sample(r) for r in records}
        if any(before.values()):
            time.sleep(INTERVAL)
        rows = [_row(r, given, before[r["Id"]], sample(r), trunc) for r, given in _with_given(records, named, args)]
        _write(_render(fmt, rows))
        return 0
    return _stream(engine, named, args, opts.all, fmt, trunc)


def _stream(engine, named: list[str], given: list[str], all_: bool, fmt: str, trunc: bool) -> int:
    terminal = sys.stdout.isatty()
    previous = None
    cleared = False
    while True:
        records = _records(engine, named, given, all_)
        if named and not records:  # every container we were asked about is gone
            if terminal:
                _write("\033[H\033[J")
            return 0
        current = {r["Id"]: sample(r) for r in records}
        if previous is None and any(current.values()):  # CPU % needs a first sample to compare with
            previous = current
            time.sleep(INTERVAL)
            continue
        rows = [_row(r, name, (previous or {}).get(r["Id"]), current[r["Id"]], trunc)
                for r, name in _with_given(records, named, given)]
        text = _render(fmt, rows)
        if terminal:  # redraw in place, as docker does: home, each line cleared to its end, rest cleared
            text = "\033[H" + "".join(line + "\033[K\n" for line in text.split("\n")[:-1]) + "\033[J"
            if not cleared:
                text, cleared = "\033[2J" + text, True
        _write(text)
        previous = current
        time.sleep(INTERVAL)


def _records(engine, named: list[str], given: list[str], all_: bool) -> list[dict]:
    """The containers to show: those named (while they exist), else the running ones (all with -a)."""
    if named:
        found = []
        for container_id in named:
            try:
                found.append(engine.load(container_id))
            except FileNotFoundError:
                continue
        return found
    records = sorted(engine.containers(), key=lambda r: r["Created"])
    return [r for r in records if all_ or r["State"]["Running"]]


def _with_given(records: list[dict], named: list[str], given: list[str]):
    """(record, the name or ID the user gave for it, else its short ID): docker's .Container."""
    by_id = dict(zip(named, given, strict=True))
    return [(r, by_id.get(r["Id"], r["Id"][:12])) for r in records]


def sample(record: dict) -> Sample | None:
    """The container's counters now; None if it is not running."""
    from berth.engine.containers import is_running

    if not is_running(record):
        return None
    from berth.runtime.cgroups import open_cgroup

    cgroup = open_cgroup("/berth/" + record["Id"])
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


def _row(record: dict, given: str, previous: Sample | None, current: Sample | None, trunc: bool) -> dict:
    from berth.units import bytes_size, human_size

    name = record["Name"].lstrip("/") or "--"
    row = {"BlockIO": "0B / 0B", "CPUPerc": "0.00%", "Container": given,
           "ID": record["Id"][:12] if trunc else record["Id"], "MemPerc": "0.00%", "MemUsage": "0B / 0B",
           "Name": name, "NetIO": "0B / 0B", "PIDs": "0"}
    if current is None:
        return row
    stats = current.cgroup
    memory = stats.memory_usage_no_cache()
    limit = min(stats.memory_limit or _host_memory(), _host_memory())  # docker: no limit shows the host's memory
    row.update(
        BlockIO=f"{human_size(stats.blkio_read)} / {human_size(stats.blkio_write)}",
        CPUPerc=f"{cpu_percent(previous, current):.2f}%",
        MemPerc=f"{memory / limit * 100.0 if limit else 0.0:.2f}%",
        MemUsage=f"{bytes_size(memory)} / {bytes_size(limit)}",
        NetIO=f"{human_size(current.net_rx)} / {human_size(current.net_tx)}",
        PIDs=str(stats.pids_current),
    )
    return row


_MEMORY = []


def _host_memory() -> int:
    """MemTotal in bytes (docker's machineMemory)."""
    if not _MEMORY:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    _MEMORY.append(int(line.split()[1]) * 1024)
                    break
    return _MEMORY[0]


def _render(fmt: str, rows: list[dict]) -> str:
    from berth.gotemplate import TemplateError, render_table

    try:
        return render_table(fmt, rows, HEADER)
    except TemplateError as err:
        raise BerthError(f"template parsing error: {err}" if "executing" not in str(err) else str(err)) from None


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
