"""What health checks cost, berth beside docker and podman in one run: N detached containers
probed every second (`--health-cmd true --health-interval 1s`), the CPU time the processes
that probe them use over a window, as a share of one core, from /proc/<pid>/stat (utime+stime
of each process, plus cutime+cstime: the probe processes they reaped), and the PSS of every
process each container keeps beside its own. Budget: <= 1 % of one core for 10 containers;
the supervisor's PSS <= 4 MB (DESIGN).

  berth:  each container's supervisor (berth-monitor), which keeps the schedule, and the probe
          launcher it forks (berth-probe, the probes' parent); a berth from before the probing
          moved into the supervisor (--before) had a prober (berth-health) between them.
  docker: dockerd and containerd (all their work is the probes while nothing else runs) and
          each container's containerd-shim (which reaps the runc of every probe).
  podman: runs probes from systemd timers, which this host lacks: `podman healthcheck run`
          (what the timer runs each interval) timed N times, its CPU per probe scaled to N
          containers probed every second; PSS: each container's conmon.

Usage: /opt/berth/venv/bin/python bench/health.py [--containers 10] [--seconds 20] [--no-peers] [--before BERTH]"""

import argparse
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available  # noqa: E402
from lifecycle import berth_supervisors, pids_by_cmdline, pss_kb, quiet  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> tuple[str, list[str]]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.index("(") + 1:text.rindex(")")], text.rpartition(")")[2].split()


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(own utime+stime, reaped children's cutime+cstime) of a live process."""
    fields = stat_fields(pid)[1]
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def children_named(parents: list[int], name: str) -> list[int]:
    """The processes called `name` whose parent is one of `parents`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm, fields = stat_fields(int(entry))
        except OSError:
            continue
        if comm == name and int(fields[1]) in parents:
            found.append(int(entry))
    return found


def schedstat_ns(pid: int) -> int:
    """The CPU time a live process has used, in ns (/proc/<pid>/schedstat: exact, where
    /proc/<pid>/stat counts 10 ms ticks)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def cgroup_cpu_ns(container_id: str) -> int:
    """The CPU time of everything that ran in a berth container's cgroup, in ns."""
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/berth/{container_id}/cpuacct.usage", 1),
                        (f"/sys/fs/cgroup/berth/{container_id}/cpu.stat", 1000)):
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            continue
        return int(text.split()[1] if text.startswith("usage_usec") else text) * scale
    raise FileNotFoundError(f"no cgroup of container {container_id}")


def measure_exact(groups: dict, ids: list[str], seconds: float) -> dict:
    """As measure, for berth: each group's own CPU from schedstat, and the probe processes'
    from the containers' cgroups (where they run and are charged; their own process sleeps).
    A launcher that lives in its container's cgroup (cgroup v1: all but pids and memory) is
    taken out of that; one that joins it only to spawn counts twice then: an upper bound."""
    before = {name: [schedstat_ns(p) for p in pids] for name, pids in groups.items()}
    cgroups = [cgroup_cpu_ns(i) for i in ids]
    time.sleep(seconds)
    used = {name: ((sum(schedstat_ns(p) for p in pids) - sum(before[name])) / 1e9, 0.0)
            for name, pids in groups.items()}
    inside = sum(schedstat_ns(p) - b for p, b in zip(groups.get("launchers", []), before.get("launchers", []),
                                                       strict=True) if in_container_cpu_cgroup(p, ids))
    used["probe processes"] = (0.0, (sum(cgroup_cpu_ns(i) for i in ids) - sum(cgroups) - inside) / 1e9)
    return used


def in_container_cpu_cgroup(pid: int, ids: list[str]) -> bool:
    """The process lives in one of the containers' cpuacct (v1) or only (v2) cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if ("cpuacct" in controllers.split(",") or not controllers) and any(i in path for i in ids):
                return True
    return False


def measure(groups: dict, seconds: float) -> dict:
    """{group: (own, reaped children's) CPU seconds} its processes used over `seconds`."""
    before = {name: [cpu_ticks(p) for p in pids] for name, pids in groups.items()}
    time.sleep(seconds)
    used = {}
    for name, pids in groups.items():
        after = [cpu_ticks(p) for p in pids]
        used[name] = (sum(a[0] - b[0] for a, b in zip(after, before[name], strict=True)) / TICKS,
                      sum(a[1] - b[1] for a, b in zip(after, before[name], strict=True)) / TICKS)
    return used


def report(engine: str, count: int, seconds: float, used: dict, pss: dict, healthy: int) -> None:
    print(f"{engine}: {count} containers, a probe (`true`) every 1 s each, over {seconds:.0f} s:")
    total = machinery = 0.0
    for group, (own, children) in used.items():
        total += own + children
        machinery += own
        print(f"  {group:<16} own {own:6.3f} s CPU   reaped probe processes {children:6.3f} s CPU")
    print(f"  total: {100 * total / seconds:.2f} % of one core "
          f"({1000 * total / (seconds * count):.2f} ms CPU per probe)   budget: <= 1 %")
    if "probe processes" in used:  # berth's: what its processes reaped are the probe commands alone
        print(f"  of which the probing itself (all but the probe commands): {100 * machinery / seconds:.2f} % "
              f"({1000 * machinery / (seconds * count):.2f} ms per probe)")
    print(f"  healthy: {healthy} of {count}")
    for group, values in pss.items():
        if values:
            print(f"  PSS {group:<12} {min(values):.2f}-{max(values):.2f} MB each")
    if len(pss) > 1 and all(pss.values()):
        per = [sum(v) for v in zip(*pss.values(), strict=False)]
        print(f"  PSS per container (all of the above): {min(per):.2f}-{max(per):.2f} MB")


def bench_names(count: int) -> list[str]:
    return [f"bench-health-{os.getpid()}-{i}" for i in range(count)]


def run_probed(prefix: list[str], names: list[str]) -> None:
    """Detached busybox containers called `names`, probed with `true` every second."""
    for name in names:
        quiet([*prefix, "run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "1s",
               "busybox", "sleep", "600"])


def bench_berth(count: int, seconds: float, binary: str | None = None, label: str = "berth") -> None:
    with BerthRoot(binary) as root:
        names = bench_names(count)
        try:
            run_probed(root.cmd(), names)
            time.sleep(3)  # past the first probes: the probers have imported what they need
            ids = [quiet(root.cmd("inspect", "--format", "{{.Id}}", n)).strip() for n in names]
            monitors = berth_supervisors(os.path.join(root.base, "run"))(ids)
            probers = children_named(monitors, "berth-health")
            launchers = children_named(monitors + probers, "berth-probe")
            groups = {"supervisors": monitors, "probers": probers, "launchers": launchers}
            used = measure_exact({name: pids for name, pids in groups.items() if pids}, ids, seconds)
            statuses = quiet(root.cmd("ps", "--format", "{{.Status}}")).split()
            pss = {name.rstrip("s"): [pss_kb(p) / 1024 for p in pids] for name, pids in groups.items() if pids}
        finally:
            subprocess.run(root.cmd("rm", "-f", *names), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report(label, count, seconds, used, pss, statuses.count("(healthy)"))


def bench_docker(count: int, seconds: float) -> None:
    names = bench_names(count)
    try:
        run_probed(["docker"], names)
        time.sleep(3)
        ids = [quiet(["docker", "inspect", "--format", "{{.Id}}", n]).strip() for n in names]
        shims = pids_by_cmdline("containerd-shim")(ids)
        daemons = [int(p) for p in quiet(["pgrep", "-x", "dockerd|containerd"]).split()]
        used = measure({"dockerd+containerd": daemons, "shims": shims}, seconds)
        healthy = quiet(["docker", "ps", "--format", "{{.Status}}", "--filter", f"name=bench-health-{os.getpid()}"])
        report("docker", count, seconds, used, {"shim": [pss_kb(p) / 1024 for p in shims]},
               healthy.count("(healthy)"))
    finally:
        subprocess.run(["docker", "rm", "-f", *names], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_podman(count: int, seconds: float) -> None:
    names = bench_names(count)
    try:
        run_probed(["podman"], names)
        ids = [quiet(["podman", "inspect", "--format", "{{.Id}}", n]).strip() for n in names]
        runs = max(count, int(seconds))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for i in range(runs):
            quiet(["podman", "healthcheck", "run", names[i % count]])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        per_probe = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / runs
        conmons = pids_by_cmdline("conmon")(ids)
        print(f"podman: `podman healthcheck run` (its systemd timer's command; no systemd here) x{runs}:")
        print(f"  {1000 * per_probe:.1f} ms CPU per probe: {100 * per_probe * count:.2f} % of one core "
              f"for {count} containers probed every 1 s")
        conmon_pss = [pss_kb(p) / 1024 for p in conmons]
        if conmon_pss:
            print(f"  PSS conmon       {min(conmon_pss):.2f}-{max(conmon_pss):.2f} MB each")
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *names], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--no-peers", action="store_true", help="berth only")
    parser.add_argument("--before", metavar="BERTH", help="another berth (a checkout before a change) measured first")
    args = parser.parse_args()
    if args.before:
        bench_berth(args.containers, args.seconds, args.before, f"berth before ({args.before})")
    bench_berth(args.containers, args.seconds)
    if args.no_peers:
        return
    for name, bench in (("docker", bench_docker), ("podman", bench_podman)):
        if peer_available(name):
            bench(args.containers, args.seconds)
        else:
            print(f"{name}: not available (no busybox:latest or no daemon)")


if __name__ == "__main__":
    main()
