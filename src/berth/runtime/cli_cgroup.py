"""runc's verbs on a container's cgroup: pause/resume (the freezer), update (linux.resources of
a live container, from --resources or flags) and events (usage as runc's stats JSON, OOMs)."""

import sys
import time

from berth import fastjson as json
from berth.errors import Conflict, InvalidArgument, NotImplementedYet
from berth.runtime.cli_lifecycle import Container

# update's flags -> (OCI linux.resources section, key, how the value reads)
UPDATE_FLAGS = {
    "blkio-weight": ("blockIO", "weight", int),
    "cpu-period": ("cpu", "period", int), "cpu-quota": ("cpu", "quota", int), "cpu-share": ("cpu", "shares", int),
    "cpu-rt-period": ("cpu", "realtimePeriod", int), "cpu-rt-runtime": ("cpu", "realtimeRuntime", int),
    "cpuset-cpus": ("cpu", "cpus", str), "cpuset-mems": ("cpu", "mems", str),
    "memory": ("memory", "limit", "bytes"), "memory-reservation": ("memory", "reservation", "bytes"),
    "memory-swap": ("memory", "swap", "bytes"), "kernel-memory": ("memory", "kernel", "bytes"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "bytes"), "pids-limit": ("pids", "limit", int),
}


def cmd_pause(options, flags: dict, container_id: str, rest: list[str]) -> int:
    container = Container.load(options.root, container_id)
    container.require("running", "created", action="pause")
    container.cgroup().freeze()
    if not container.cgroup().frozen():
        raise Conflict("cannot pause: the container's cgroup has no freezer")
    return 0


def cmd_resume(options, flags: dict, container_id: str, rest: list[str]) -> int:
    container = Container.load(options.root, container_id)
    if container.status() != "paused":
        raise Conflict("container not paused")
    container.cgroup().thaw()
    return 0


def resources_of(flags: dict) -> dict:
    """linux.resources from --resources F ("-": stdin), or from the flags."""
    source = flags.get("resources")
    if source is not None:
        try:
            raw = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
            resources = json.loads(raw)
        except ValueError as err:
            raise InvalidArgument(f"--resources: invalid JSON: {err}") from None
        if not isinstance(resources, dict):
            raise InvalidArgument("--resources: invalid JSON: not an object")
        return resources
    if flags.get("l3-cache-schema") or flags.get("mem-bw-schema"):
        raise NotImplementedYet("Intel RDT is not supported by berth-runtime")
    resources: dict = {}
    for flag, (section, key, kind) in UPDATE_FLAGS.items():
        if flag not in flags:
            continue
        value = flags[flag]
        if kind == "bytes":
            value = -1 if value == "-1" else _bytes(value, flag)
        elif kind is int:
            value = int(value)
        resources.setdefault(section, {})[key] = value
    return resources


def _bytes(raw: str, flag: str) -> int:
    from berth.units import ram_in_bytes

    try:
        return ram_in_bytes(raw)
    except Exception:
        raise InvalidArgument(f'invalid value "{raw}" for flag --{flag}') from None


def cmd_update(options, flags: dict, container_id: str, rest: list[str]) -> int:
    container = Container.load(options.root, container_id)
    if container.status() == "stopped":
        raise Conflict("container not running")
    resources = resources_of(flags)
    if resources:
        container.cgroup().update(resources)
    return 0


def stats_event(container: Container) -> dict:
    """runc's events --stats: {"type": "stats", "id", "data": libcontainer's Stats}."""
    cgroup = container.cgroup()
    stats = cgroup.stats()
    raw = stats.memory_stats
    memory = {"usage": {"limit": stats.memory_limit if stats.memory_limit is not None else 9223372036854771712,
                        "usage": stats.memory_usage, "max": stats.memory_max_usage, "failcnt": 0},
              "raw": raw}
    cache = raw.get("cache", raw.get("file"))
    if cache is not None:
        memory["cache"] = cache
    data = {"cpu": {"usage": {"percpu": stats.percpu_usage, "total": stats.cpu_usage}, "throttling": {}},
            "memory": memory, "pids": {"current": stats.pids_current, "limit": stats.pids_limit or 0},
            "blkio": cgroup.blkio_stats(), "hugetlb": cgroup.hugetlb_stats(), "intel_rdt": {},
            "network_interfaces": None}
    return {"type": "stats", "id": container.id, "data": data}


def cmd_events(options, flags: dict, container_id: str, rest: list[str]) -> int:
    container = Container.load(options.root, container_id)
    if container.status() == "stopped":
        raise Conflict("container not running")
    if flags.get("stats"):
        print(json.dumps(stats_event(container)))
        return 0
    interval = _interval(flags.get("interval", "5s"))
    oom_seen = container.cgroup().oom_killed()
    while container.status() != "stopped":
        if not oom_seen and container.cgroup().oom_killed():
            oom_seen = True
            print(json.dumps({"type": "oom", "id": container.id}), flush=True)
        print(json.dumps(stats_event(container)), flush=True)
        time.sleep(interval)
    return 0


def _interval(raw: str) -> float:
    """Go's time.ParseDuration for the common forms: "500ms", "5s", "1m"."""
    for suffix, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        number = raw.removesuffix(suffix)
        if number != raw:
            try:
                value = float(number) * scale
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise InvalidArgument(f"invalid interval: {raw!r}")
