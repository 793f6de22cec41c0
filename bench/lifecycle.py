"""Lifecycle costs side by side with podman and docker (when installed):
`ps -a` and `images` with 100 containers present, `run -d` latency, `stop` latency of a
container that handles SIGTERM, and the supervisor's PSS per detached container.

Usage: /opt/berth/venv/bin/python bench/lifecycle.py [--runs 20] [--containers 100] [--detached 10]"""

import argparse
import glob
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, print_table, summary, time_command  # noqa: E402

TRAP_TERM = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.05; done"]


def quiet(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


class Engine:
    """One engine's command prefix and how to find its per-container supervisors."""

    def __init__(self, name: str, prefix: list[str], image: str):
        self.name = name
        self.prefix = prefix
        self.image = image
        self.made: list[str] = []

    def cmd(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def create_many(self, count: int) -> None:
        for i in range(count):
            name = f"bench-lc-{os.getpid()}-{i}"
            quiet(self.cmd("create", "--name", name, self.image, "true"))
            self.made.append(name)

    def run_detached_latency(self, runs: int) -> list[float]:
        samples = []
        for i in range(runs):
            name = f"bench-rd-{os.getpid()}-{i}"
            start = time.perf_counter()
            quiet(self.cmd("run", "-d", "--name", name, self.image, *TRAP_TERM))
            samples.append(time.perf_counter() - start)
            self.made.append(name)
        return samples

    def stop_latency(self, runs: int) -> list[float]:
        samples = []
        for i in range(runs):
            name = f"bench-st-{os.getpid()}-{i}"
            quiet(self.cmd("run", "-d", "--name", name, self.image, *TRAP_TERM))
            self.made.append(name)
            time.sleep(0.2)  # let the shell install its trap
            start = time.perf_counter()
            quiet(self.cmd("stop", name))
            samples.append(time.perf_counter() - start)
        return samples

    def supervisor_pss(self, count: int, supervisor_pids) -> list[float]:
        names = []
        for i in range(count):
            name = f"bench-pss-{os.getpid()}-{i}"
            quiet(self.cmd("run", "-d", "--name", name, self.image, "sleep", "300"))
            names.append(name)
            self.made.append(name)
        time.sleep(0.5)
        ids = [quiet(self.cmd("inspect", "--format", "{{.Id}}", n)).strip() for n in names]
        return [pss_kb(pid) / 1024 for pid in supervisor_pids(ids)]

    def cleanup(self) -> None:
        for i in range(0, len(self.made), 50):
            subprocess.run(self.cmd("rm", "-f", *self.made[i:i + 50]), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.made = []


def berth_supervisors(run_root: str):
    def find(ids):
        from_state = []
        for container_id in ids:
            path = os.path.join(run_root, "containers", container_id, "state.json")
            with open(path) as f:
                import json

                from_state.append(json.load(f)["monitor"][0])
        return from_state
    return find


def pids_by_cmdline(word: str):
    def find(ids):
        found = []
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(cmdline, "rb") as f:
                    text = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if word in text and any(i in text for i in ids):
                found.append(int(cmdline.split("/")[2]))
        return found
    return find


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--detached", type=int, default=10)
    args = parser.parse_args()
    with BerthRoot() as root:
        engines = [Engine("berth", root.cmd(), "busybox")]
        supervisors = {"berth": berth_supervisors(os.path.join(root.base, "run"))}
        if peer_available("podman"):
            engines.append(Engine("podman", ["podman"], "busybox:latest"))
            supervisors["podman"] = pids_by_cmdline("conmon")
        if peer_available("docker"):
            engines.append(Engine("docker", ["docker"], "busybox"))
            supervisors["docker"] = pids_by_cmdline("containerd-shim")
        results = {key: [] for key in ("ps", "images", "run -d", "stop", "pss")}
        try:
            for engine in engines:
                engine.create_many(args.containers)
                results["ps"].append((engine.name, time_command(engine.cmd("ps", "-a"), args.runs)))
                results["images"].append((engine.name, time_command(engine.cmd("images"), args.runs)))
                engine.cleanup()
                results["run -d"].append((engine.name, engine.run_detached_latency(args.runs)))
                engine.cleanup()
                results["stop"].append((engine.name, engine.stop_latency(min(args.runs, 10))))
                engine.cleanup()
                results["pss"].append((engine.name, engine.supervisor_pss(args.detached, supervisors[engine.name])))
                engine.cleanup()
        finally:
            for engine in engines:
                engine.cleanup()
    print_table(f"ps -a with {args.containers} containers", results["ps"], budget_ms=30)
    print_table(f"images with {args.containers} containers", results["images"], budget_ms=30)
    print_table("run -d busybox (trap TERM loop)", results["run -d"])
    print_table("stop of a container that handles SIGTERM", results["stop"])
    print(f"\nsupervisor PSS per detached container ({args.detached} running)")
    for name, values in results["pss"]:
        if values:
            median, _ = summary(values)
            print(f"{name:<10} {len(values):>3} supervisors  median {median:.2f} MB  total {sum(values):.1f} MB")
        else:
            print(f"{name:<10} no supervisor processes found")
    print("budget: berth <= 4 MB per container")


if __name__ == "__main__":
    main()
