"""`run --rm --network NAME busybox true` on a user-defined network against the default bridge,
timed in turns in the same run (median, p90); then the embedded DNS resolver with 50 containers
on 5 networks: name lookup latency from a container's network namespace (UDP to 127.0.0.11:53,
one query at a time: median, p99) and the resolver process's RSS and PSS. Only names of the
bench's own containers are looked up.

Usage: python bench/usernet.py [--runs 30] [--queries 2000] [--skip-run]
       (the venv's python, not a pyenv shim)"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, free_subnet, print_table, time_interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--skip-run", action="store_true", help="only the resolver's part")
    args = parser.parse_args()
    with BerthRoot() as berth:
        resolver_figures(berth, args.queries)
    if args.skip_run:
        return
    with BerthRoot() as berth:
        network = "bench-net"
        bridge = "bbn" + os.urandom(4).hex()
        subprocess.run(berth.cmd("network", "create", "--subnet", str(free_subnet()), "-o",
                                 f"com.docker.network.bridge.name={bridge}", network), check=True,
                       stdout=subprocess.DEVNULL)
        try:
            timed = time_interleaved({"bridge": berth.cmd("run", "--rm", "busybox", "true"),
                                      "usernet": berth.cmd("run", "--rm", "--network", network, "busybox", "true")},
                                     args.runs)
        finally:
            subprocess.run(berth.cmd("network", "rm", network), check=False, stdout=subprocess.DEVNULL)
    # print_table's ratios are to the row named berth: the default bridge is the reference
    print_table("run --rm busybox true: default bridge (berth) vs a user-defined network",
                [("berth", timed["bridge"]), ("usernet", timed["usernet"])], budget_ms=50)


NETWORKS = 5
PER_NETWORK = 10


def resolver_figures(berth: BerthRoot, queries: int) -> None:
    networks = [f"dns-bench-{n}" for n in range(NETWORKS)]
    try:
        for network in networks:
            subprocess.run(berth.cmd("network", "create", "--subnet", str(free_subnet()), "-o",
                                     f"com.docker.network.bridge.name=bbd{os.urandom(4).hex()}", network),
                           check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        for n, network in enumerate(networks):
            for c in range(PER_NETWORK):
                subprocess.run(berth.cmd("run", "-d", "--name", f"n{n}c{c}", "--network", network,
                                         "--network-alias", f"alias-{n}-{c}", "busybox", "sleep", "3600"),
                               check=True, stdout=subprocess.DEVNULL)
        print(f"{NETWORKS * PER_NETWORK} containers on {NETWORKS} networks started in "
              f"{time.perf_counter() - started:.1f} s")
        with open(os.path.join(berth.base, "run", "dns", "resolver.json")) as f:
            resolver = json.load(f)[0]
        asker = _pid(berth, "n0c0")
        names = [f"n0c{c}" for c in range(1, PER_NETWORK)] + [f"alias-0-{c}" for c in range(1, PER_NETWORK)]
        latencies = _lookups(asker, names, queries)
        rss, pss = _memory(resolver)
        print_table(f"name lookup from a container's namespace ({queries} queries, one at a time)",
                    [("berth", latencies)])
        latencies.sort()
        print(f"lookup latency: median {latencies[len(latencies) // 2] * 1e3:.3f} ms, "
              f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.3f} ms")
        print(f"resolver (pid {resolver}) serving {NETWORKS * PER_NETWORK} containers: RSS {rss / 1024:.1f} MB, "
              f"PSS {pss / 1024:.1f} MB")
    finally:
        ids = subprocess.run(berth.cmd("ps", "-aq"), capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(berth.cmd("rm", "-f", *ids), stdout=subprocess.DEVNULL, check=False)
        for network in networks:
            subprocess.run(berth.cmd("network", "rm", network), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)


def _pid(berth: BerthRoot, name: str) -> int:
    return int(subprocess.run(berth.cmd("inspect", "--format", "{{.State.Pid}}", name), check=True,
                              capture_output=True, text=True).stdout)


def _lookups(pid: int, names: list[str], queries: int) -> list[float]:
    """Seconds per A query and its answer, from a thread in the namespace of `pid`."""
    from dnslib import DNSRecord

    from berth.runtime import syscalls as sc

    packets = [DNSRecord.question(name, "A").pack() for name in names]
    result = []

    def ask():
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        sc.setns(fd, sc.CLONE_NEWNET)  # this thread only; it ends with the bench's queries
        os.close(fd)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.connect(("127.0.0.11", 53))
            for i in range(queries + 100):
                packet = packets[i % len(packets)]
                start = time.perf_counter()
                sock.send(packet)
                reply = sock.recv(4096)
                elapsed = time.perf_counter() - start
                if DNSRecord.parse(reply).header.a != 1:
                    raise SystemExit(f"no answer for {names[i % len(names)]}")
                if i >= 100:  # the first ones warm up
                    result.append(elapsed)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join()
    if len(result) != queries:
        raise SystemExit("the lookups failed")
    return result


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of process `pid` in kB."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in f if line.split(":")[0] in ("Rss", "Pss")}
    return fields["Rss"], fields["Pss"]


if __name__ == "__main__":
    main()
