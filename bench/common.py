"""Shared helpers for benchmarks: timing commands, peers (podman, docker), printing ratios."""

import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def berth_binary() -> str:
    return os.environ.get("BERTH_BIN") or shutil.which("berth") or "/usr/local/bin/berth"


def time_command(cmd: list[str], runs: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of `runs` executions (after `warmup` untimed ones); fails loudly."""
    for _ in range(warmup):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return samples


def time_interleaved(cmds: dict[str, list[str]], runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """Like time_command for several commands, taking turns run by run: a change of the
    machine's load during the bench then weighs on each alike (for before/after figures)."""
    for cmd in cmds.values():
        for _ in range(warmup):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = {name: [] for name in cmds}
    for _ in range(runs):
        for name, cmd in cmds.items():
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples[name].append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return statistics.median(ordered), p90


def peer_available(engine: str) -> bool:
    if not shutil.which(engine):
        return False
    probe = subprocess.run([engine, "image", "inspect", "busybox:latest"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
    return probe.returncode == 0


class BerthRoot:
    """A throwaway --root/--run-root holding busybox:latest, with engine settings of its own
    (a bridge bbench<hex> and a free 10.2xx.y.0/24 in its own daemon.json, so a bench never
    touches berth0), removed on exit with the containers, the bridge and its nftables tables.
    `binary`: another berth (e.g. a checkout before a change) instead of BERTH_BIN."""

    def __init__(self, binary: str | None = None):
        self.binary = binary or berth_binary()

    def __enter__(self):
        self.base = tempfile.mkdtemp(prefix="berth-bench-")
        self.root = os.path.join(self.base, "root")
        self.args = ["--root", self.root, "--run-root", os.path.join(self.base, "run")]
        try:
            self._configure()
            tar = subprocess.run([os.path.join(REPO, "scripts", "make-busybox-rootfs")], check=True,
                                 stdout=subprocess.PIPE).stdout
            subprocess.run([self.binary, *self.args, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest"],
                           input=tar, check=True, stdout=subprocess.DEVNULL)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, *self.args, *args]

    def _configure(self) -> None:
        self.bridge_name = f"bbench{random.getrandbits(16):04x}"
        while os.path.exists(f"/sys/class/net/{self.bridge_name}"):
            self.bridge_name = f"bbench{random.getrandbits(16):04x}"
        self.subnet = free_subnet()
        config = os.path.join(self.base, "daemon.json")
        with open(config, "w") as f:
            f.write(f'{{"default-bridge": "{self.bridge_name}", "bip": "{next(self.subnet.hosts())}/24"}}\n')
        self.args += ["--config-file", config]
        if os.path.join(REPO, "src") not in sys.path:
            sys.path.insert(0, os.path.join(REPO, "src"))
        from berth.network.nft import table_name

        self.table = table_name(self.root)

    def __exit__(self, *exc):
        containers = os.path.join(self.root, "containers")
        for name in os.listdir(containers) if os.path.isdir(containers) else []:
            subprocess.run(self.cmd("rm", "-f", name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            from berth.network import bridge

            made = bridge.load(self.root)
            if made is not None:
                bridge.remove(self.root, made)
        except Exception as e:  # fall back to the names below
            print(f"warning: berth could not remove bridge {self.bridge_name}: {e}", file=sys.stderr)
        shutil.rmtree(self.base, ignore_errors=True)
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Whatever is still there is a leak: say so, then remove it. Every name is this root's alone."""
        if os.path.exists(f"/sys/class/net/{self.bridge_name}"):
            print(f"warning: bridge {self.bridge_name} was left behind; deleting it", file=sys.stderr)
            subprocess.run(["ip", "link", "delete", self.bridge_name], stderr=subprocess.DEVNULL)
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.split("\n")
        for family in ("ip", "bridge"):
            if f"table {family} {self.table}" in tables:
                print(f"warning: nft table {family} {self.table} was left behind; deleting it", file=sys.stderr)
                subprocess.run(["nft", "delete", "table", family, self.table], stderr=subprocess.DEVNULL)
        for chain in ("DOCKER-USER", "FORWARD"):
            rules = subprocess.run(["iptables", "-S", chain], capture_output=True, text=True).stdout.splitlines()
            for rule in rules:
                if f"berth:{self.table}" in rule:
                    print(f"warning: iptables rule left behind, deleting it: {rule}", file=sys.stderr)
                    subprocess.run(["iptables", "-D", *shlex.split(rule)[1:]], stderr=subprocess.DEVNULL)


def host_routes() -> list:
    """Every non-default IPv4 route's destination network."""
    import ipaddress
    import socket

    routes = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            fields = line.split()
            dest = socket.inet_ntoa(int(fields[1], 16).to_bytes(4, "little"))
            mask = socket.inet_ntoa(int(fields[7], 16).to_bytes(4, "little"))
            network = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
            if network.prefixlen:
                routes.append((fields[0], network))
    return routes


def free_subnet():
    """A 10.200-254.y.0/24 that overlaps no route on this host (nor podman's or docker's pools)."""
    import ipaddress

    taken = [network for _, network in host_routes()]
    for _ in range(1000):
        candidate = ipaddress.ip_network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(network) for network in taken):
            return candidate
    raise RuntimeError("no free /24 in 10.200.0.0-10.254.255.0")


def print_table(title: str, rows: list[tuple[str, list[float]]], budget_ms: float | None = None,
                ratio_budget: float | None = None) -> dict:
    """rows: (engine, samples). Prints median/p90 in ms and each engine's ratio to berth;
    `ratio_budget` is the largest berth/peer ratio the budget allows, if it sets one."""
    print(f"\n{title}")
    print(f"{'engine':<10}{'runs':>6}{'median ms':>12}{'p90 ms':>10}{'x berth':>10}")
    medians = {}
    for engine, samples in rows:
        median, p90 = summary(samples)
        medians[engine] = median
        print(f"{engine:<10}{len(samples):>6}{median * 1000:>12.1f}{p90 * 1000:>10.1f}", end="")
        print(f"{median / medians['berth']:>10.2f}" if "berth" in medians else "")
    if budget_ms is not None and "berth" in medians:
        verdict = "within" if medians["berth"] * 1000 <= budget_ms else "OVER"
        print(f"berth median {medians['berth'] * 1000:.1f} ms: {verdict} the {budget_ms:.0f} ms budget")
    for engine, median in medians.items():
        if engine != "berth" and "berth" in medians:
            # the same berth before a change is compared, not held to the peers' budget
            budget = f" (budget <= {ratio_budget:.3f})" if ratio_budget and engine != "before" else ""
            print(f"berth / {engine} = {medians['berth'] / median:.3f}{budget}")
    return medians
