"""What health checks cost: N detached containers probed every second (`--health-cmd true
--health-interval 1s`), the CPU time their supervisors and probers use over a window, as a
share of one core, from /proc/<pid>/stat (utime+stime of each process, plus cutime+cstime:
the probe processes they reaped), and the PSS of one prober. Budget: <= 1 % of one core
for 10 containers.

Usage: /opt/berth/venv/bin/python bench/health.py [--containers 10] [--seconds 20]"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot  # noqa: E402
from lifecycle import berth_supervisors, pss_kb, quiet  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(own utime+stime, reaped children's cutime+cstime) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def probers_of(monitors: list[int]) -> list[int]:
    """The berth-health children of the supervisors."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text.rpartition(")")[2].split()[1])
        if comm == "berth-health" and ppid in monitors:
            found.append(int(entry))
    return found


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with BerthRoot() as root:
        names = [f"bench-health-{os.getpid()}-{i}" for i in range(args.containers)]
        try:
            for name in names:
                quiet(root.cmd("run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "1s",
                               "busybox", "sleep", "600"))
            time.sleep(3)  # past the first probes: the probers have imported what they need
            ids = [quiet(root.cmd("inspect", "--format", "{{.Id}}", n)).strip() for n in names]
            monitors = berth_supervisors(os.path.join(root.base, "run"))(ids)
            probers = probers_of(monitors)
            used = measure({"supervisors": monitors, "probers": probers}, args.seconds)
            statuses = quiet(root.cmd("ps", "--format", "{{.Status}}")).split()
            pss = [pss_kb(p) / 1024 for p in probers]
        finally:
            subprocess.run(root.cmd("rm", "-f", *names), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"{args.containers} containers, a probe (`true`) every 1 s each, over {args.seconds:.0f} s:")
    total = 0.0
    for group, (own, children) in used.items():
        total += own + children
        print(f"  {group:<12} own {own:6.2f} s CPU   reaped probe processes {children:6.2f} s CPU")
    print(f"  total: {100 * total / args.seconds:.2f} % of one core "
          f"({1000 * total / (args.seconds * args.containers):.1f} ms CPU per probe)   budget: <= 1 %")
    print(f"  healthy: {statuses.count('(healthy)')} of {args.containers}")
    if pss:
        print(f"  prober PSS: {min(pss):.1f}-{max(pss):.1f} MB each (the lean monitor's is unchanged)")


if __name__ == "__main__":
    main()
