"""The IPv6 side of published ports (berth.network.proxy) against the IPv4 side (kernel DNAT),
loopback only: TCP throughput host -> container (upload) and container -> host (download)
through [::1]:PORT versus 127.0.0.1:PORT and the container's IP, and what the proxy process
costs in memory (PSS, once its supervisor has gone lean) for a container with 1 and with 10
published ports. docker (dockerd with its default userland proxy, when it runs) is measured
alike for reference: there both loopback paths go through docker-proxy, one process per port
and family.

berth runs in a throwaway root with its own bridge (bench/common.BerthRoot). Traffic goes only
to 127.0.0.1, ::1 and container IPs on bridges the engines made on this machine.

Usage: /usr/bin/python3 bench/ipv6_proxy.py [--berth /work/wt/X.bin/berth] [--mb 256] [--reps 5]"""

import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, summary  # noqa: E402
from lifecycle import pss_kb  # noqa: E402
from network import (  # noqa: E402
    CHUNK,
    SINK,
    SINK_PORT,
    BenchError,
    Engine,
    bridge_of,
    free_port,
    peers,
    run,
    send,
    wait_until,
)

SOURCE_PORT = 5001
# One dd per connection writing `mb` MB of zeros, then closing: the client counts what arrives.
SOURCE = ["nc", "-ll", "-p", str(SOURCE_PORT), "-e", "sh", "-c", "exec dd if=/dev/zero bs=1M count=$MB 2>/dev/null"]


def free_dual_port() -> int:
    """A port free on 0.0.0.0 and on [::] (its twin)."""
    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET6) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(("::", port))
            except OSError:
                continue
        return port
    raise BenchError("no port free on both IPv4 and IPv6")


def receive(address: tuple[str, int], megabytes: int) -> float:
    """Seconds from connect until the source's `megabytes` have all arrived and it closed."""
    start = time.perf_counter()
    got = 0
    with socket.create_connection(address, timeout=30) as conn:
        while chunk := conn.recv(CHUNK):
            got += len(chunk)
    elapsed = time.perf_counter() - start
    if got != megabytes * CHUNK:
        raise BenchError(f"source at {address[0]}:{address[1]} sent {got} bytes, not {megabytes} MB")
    return elapsed


def throughput(engine: Engine, megabytes: int, reps: int, payload: memoryview) -> dict:
    """Median MB/s per (direction, path), and the median of each rep's IPv6/IPv4 ratio."""
    up_port, down_port = free_dual_port(), free_dual_port()
    name = engine.new_name("flow")
    script = f"{' '.join(_quoted(SINK))} & MB={megabytes} exec {' '.join(_quoted(SOURCE))}"
    try:
        run(engine.cmd("run", "-d", "--name", name, "-p", f"{up_port}:{SINK_PORT}", "-p",
                       f"{down_port}:{SOURCE_PORT}", engine.image, "sh", "-c", script))
        ip = run(engine.cmd("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)).strip()
        if not ip or bridge_of(ip) is None:
            raise BenchError(f"container IP {ip!r} is not on a local bridge: not sending to it")
        paths = {"direct": ip, "IPv4": "127.0.0.1", "IPv6": "::1"}
        ports = {"up": (SINK_PORT, up_port), "down": (SOURCE_PORT, down_port)}
        moves = {"up": lambda a: send(a, megabytes, payload), "down": lambda a: receive(a, megabytes)}
        for path, host in paths.items():
            for direction, (inner, outer) in ports.items():
                address = (host, inner if path == "direct" else outer)
                wait_until(lambda a=address, d=direction: moves[d](a), f"{engine.name} {direction} {path} not ready")
        samples = {(d, p): [] for d in ports for p in paths}
        for rep in range(reps):
            order = list(paths) if rep % 2 == 0 else list(reversed(paths))
            for direction, (inner, outer) in ports.items():
                for path in order:
                    address = (paths[path], inner if path == "direct" else outer)
                    samples[(direction, path)].append(megabytes / moves[direction](address))
        result = {key: summary(values)[0] for key, values in samples.items()}
        for direction in ports:
            pairs = zip(samples[(direction, "IPv4")], samples[(direction, "IPv6")], strict=True)
            result[(direction, "ratio")] = summary([v6 / v4 for v4, v6 in pairs])[0]
        return result
    finally:
        engine.remove(name)


def _quoted(argv: list[str]) -> list[str]:
    return [f"'{a}'" if " " in a or "$" in a else a for a in argv]


def processes_named(comm: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == comm:
                    found.append(int(pid))
        except OSError:
            continue
    return found


def proxy_memory(engine: Engine, comm: str, ports: int) -> tuple[int, int]:
    """(processes, total PSS KiB) of the `comm` processes a container with `ports` published
    ports adds, measured 2 s after it started (a berth supervisor has gone lean by then)."""
    before = set(processes_named(comm))
    name = engine.new_name("mem")
    flags = [arg for i in range(ports) for arg in ("-p", f"{free_dual_port()}:{80 + i}")]
    try:
        run(engine.cmd("run", "-d", "--name", name, *flags, engine.image, "sleep", "600"))
        time.sleep(2)
        added = set(processes_named(comm)) - before
        return len(added), sum(pss_kb(pid) for pid in added)
    finally:
        engine.remove(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--berth", help="berth launcher (default: $BERTH_BIN, else berth on PATH)")
    parser.add_argument("--mb", type=int, default=256, help="MB per connection (default 256)")
    parser.add_argument("--reps", type=int, default=5, help="connections per path and direction (default 5)")
    parser.add_argument("--no-peers", action="store_true", help="berth only")
    args = parser.parse_args()
    if args.berth:
        os.environ["BERTH_BIN"] = args.berth
    notes, failures, flows, memory = [], [], [], []
    payload = memoryview(bytes(CHUNK))
    with BerthRoot() as root:
        engines = [Engine("berth", root.cmd(), "busybox", bridge=root.bridge_name)]
        if not args.no_peers:
            engines += [e for e in peers(notes) if e.name == "docker"]
        try:
            for engine in engines:
                comm = "berth-proxy" if engine.name == "berth" else "docker-proxy"
                try:
                    flows.append((engine.name, throughput(engine, args.mb, args.reps, payload)))
                    memory.append((engine.name, comm, [proxy_memory(engine, comm, n) for n in (1, 10)]))
                except (BenchError, OSError, subprocess.TimeoutExpired) as e:
                    failures.append(f"{engine.name}: {e}")
        finally:
            for engine in engines:
                engine.cleanup()

    print(f"\nTCP throughput, {args.mb} MB per connection, median MB/s of {args.reps} (MB = 2^20 bytes); "
          "IPv6/IPv4: median of each rep's pair")
    print(f"{'engine':<8}{'direction':<20}{'direct':>9}{'127.0.0.1':>11}{'[::1]':>9}{'IPv6/IPv4':>11}")
    for name, r in flows:
        for direction, label in (("up", "host -> container"), ("down", "container -> host")):
            print(f"{name:<8}{label:<20}{r[(direction, 'direct')]:>9.0f}{r[(direction, 'IPv4')]:>11.0f}"
                  f"{r[(direction, 'IPv6')]:>9.0f}{r[(direction, 'ratio')]:>11.1%}")
    print("\nproxy memory per container (PSS, 2 s after start)")
    for name, comm, rows in memory:
        for ports, (count, kib) in zip((1, 10), rows, strict=True):
            print(f"{name:<8}{ports:>3} published port(s): {count} {comm} process(es), {kib / 1024:.1f} MiB PSS")
    for line in notes:
        print(f"note: {line}")
    for line in failures:
        print(f"FAILED: {line}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
