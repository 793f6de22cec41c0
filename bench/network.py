"""Bridge networking side by side with podman and docker (when installed, each on its default
bridge): `run --rm busybox true` on the bridge (berth also with `--network none`, for
reference), TCP throughput from the host into a container through a published port
(127.0.0.1:HOSTPORT) versus to the container's IP, and what `-p` adds to `run -d`.

berth runs in a throwaway root with its own bridge (bbench<hex>, a free 10.2xx.y.0/24 given in
its own daemon.json), removed at the end with its nftables tables. Traffic goes only to
127.0.0.1 and to container IPs on bridges the engines made on this machine.

Budgets: berth's run median <= 50 ms and <= 1/3 of podman's and docker's; published port
throughput >= 90 % of the direct one.

Usage: /usr/bin/python3 bench/network.py [--berth /opt/berth-devbin/berth] [--quick]
       [--runs 21] [--mb 512] [--reps 7] [--publish-runs 11]
(not the pyenv python3 shim: it adds ~70 ms to every process it starts)"""

import argparse
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, host_routes, peer_available, print_table, summary  # noqa: E402

SINK_PORT = 5000
CHUNK = 1 << 20  # 1 MB = 2**20 bytes throughout (what dd's bs=1M counts)
# One dd per connection, reading until the client's EOF, then replying with its record counts
# ("N+0 records in" proves every byte arrived). busybox nc has no -k: -ll with -e keeps listening.
SINK = ["nc", "-ll", "-p", str(SINK_PORT), "-e", "sh", "-c", "exec dd of=/dev/null bs=1M iflag=fullblock 2>&1"]


class BenchError(Exception):
    pass


def run(cmd: list[str], timeout: float = 120) -> str:
    """stdout of `cmd`; a failure raises BenchError carrying the command and its stderr."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    run(cmd)
    return time.perf_counter() - start


def time_runs(cmd: list[str], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        run(cmd)
    return [timed(cmd) for _ in range(runs)]


# -- host facts ------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port nobody listens on (below the ephemeral range, so no client takes it meanwhile)."""
    for _ in range(1000):
        port = random.randint(20000, 29999)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise BenchError("no free TCP port in 20000-29999")


def bridge_of(ip: str) -> str | None:
    """The bridge device whose connected route holds `ip`, or None (then it is not ours to use)."""
    address = ipaddress.ip_address(ip)
    best = None
    for interface, network in host_routes():
        if address in network and (best is None or network.prefixlen > best[1].prefixlen):
            best = (interface, network)
    if best is None or not os.path.isdir(f"/sys/class/net/{best[0]}/bridge"):
        return None
    return best[0]


def host_listeners(port: int) -> list[str]:
    """Names of the processes holding a listening TCP socket on `port` in the host's network
    namespace: a userland proxy shows up here, kernel NAT does not."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
        except FileNotFoundError:
            continue
    owners = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                with open(f"/proc/{pid}/comm") as f:
                    owners.add(f.read().strip())
        except OSError:
            continue
    return sorted(owners)


# -- engines ---------------------------------------------------------------------------------

class Engine:
    """One engine's command prefix, image name, and the containers the bench made with it."""

    def __init__(self, name: str, prefix: list[str], image: str, rm_flags: tuple[str, ...] = ("-f",),
                 bridge: str | None = None):
        self.name, self.prefix, self.image, self.rm_flags = name, prefix, image, rm_flags
        self.bridge = bridge  # the one bridge its containers must be on, when known
        self.made: list[str] = []
        self.serial = 0

    def cmd(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def new_name(self, label: str) -> str:
        self.serial += 1
        name = f"bench-net-{os.getpid()}-{label}-{self.serial}"
        self.made.append(name)
        return name

    def remove(self, *names: str) -> None:
        if names:
            subprocess.run(self.cmd("rm", *self.rm_flags, *names), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120)
            self.made = [n for n in self.made if n not in names]

    def cleanup(self) -> None:
        for i in range(0, len(self.made), 50):
            self.remove(*self.made[i:i + 50])
        self.made = []


def peers(notes: list[str]) -> list[Engine]:
    found = []
    for name, image, rm_flags in (("podman", "busybox:latest", ("-f", "-t", "0")), ("docker", "busybox", ("-f",))):
        if not shutil.which(name):
            notes.append(f"{name}: not installed, skipped")
        elif name == "docker" and subprocess.run(["timeout", "10", "docker", "info"], stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL).returncode != 0:
            notes.append("docker: no daemon answers, skipped (scripts/test-peers shows how to start dockerd)")
        elif not peer_available(name):
            notes.append(f"{name}: no busybox:latest image, skipped (see ../shared/tools/peers-setup.sh)")
        else:
            found.append(Engine(name, [name], image, rm_flags))
    return found


# -- 1. run --rm on the bridge ---------------------------------------------------------------

def run_latency(engines: list[Engine], runs: int, failures: list[str]) -> tuple[list, list[float] | None]:
    """Samples per engine; berth's bridge runs interleaved with its --network none ones, so
    that drift in the machine's load does not show up as the bridge's cost."""
    rows, none_samples = [], None
    for engine in engines:
        bridged = engine.cmd("run", "--rm", engine.image, "true")
        try:
            if engine.name != "berth":
                rows.append((engine.name, time_runs(bridged, runs)))
                continue
            unnetworked = engine.cmd("run", "--rm", "--network", "none", engine.image, "true")
            for _ in range(2):  # warm-up
                run(bridged), run(unnetworked)
            samples = {"bridge": [], "none": []}
            for i in range(runs):
                for variant in ("bridge", "none") if i % 2 == 0 else ("none", "bridge"):
                    samples[variant].append(timed(bridged if variant == "bridge" else unnetworked))
            rows.append((engine.name, samples["bridge"]))
            none_samples = samples["none"]
        except (BenchError, subprocess.TimeoutExpired) as e:
            failures.append(f"{engine.name} run --rm: {e}")
    return rows, none_samples


# -- 2. throughput ---------------------------------------------------------------------------

def send(address: tuple[str, int], megabytes: int, payload: memoryview) -> float:
    """Seconds from connect until the sink has read all `megabytes` and replied."""
    start = time.perf_counter()
    with socket.create_connection(address, timeout=30) as conn:
        for _ in range(megabytes):
            conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
    elapsed = time.perf_counter() - start
    if f"{megabytes}+0 records in".encode() not in reply:
        raise BenchError(f"sink at {address[0]}:{address[1]} did not get {megabytes} MB: {reply!r}")
    return elapsed


def wait_ready(address: tuple[str, int], payload: memoryview, deadline: float = 15) -> None:
    wait_until(lambda: send(address, 1, payload), f"no sink answering at {address[0]}:{address[1]}", deadline)


def wait_until(check, what: str, deadline: float = 15) -> None:
    """Call check() until it raises neither OSError nor BenchError; BenchError("<what> after N s")."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            check()
            return
        except (OSError, BenchError):
            if time.monotonic() > give_up:
                raise BenchError(f"{what} after {deadline:.0f} s") from None
            time.sleep(0.05)


def throughput(engine: Engine, megabytes: int, reps: int, payload: memoryview) -> dict:
    """Median MB/s direct to the container IP and through 127.0.0.1:published port."""
    port = free_port()
    name = engine.new_name("sink")
    try:
        run(engine.cmd("run", "-d", "--name", name, "-p", f"{port}:{SINK_PORT}", engine.image, *SINK))
        ip = run(engine.cmd("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)).strip()
        on = bridge_of(ip) if ip else None
        if on is None or (engine.bridge and on != engine.bridge):
            raise BenchError(f"container IP {ip!r} is not on {engine.bridge or 'a local bridge'}: not sending to it")
        paths = {"direct": (ip, SINK_PORT), "published": ("127.0.0.1", port)}
        for address in paths.values():
            wait_ready(address, payload)
        listeners = host_listeners(port)
        for address in paths.values():
            send(address, min(megabytes, 64), payload)  # warm-up
        samples = {path: [] for path in paths}
        for rep in range(reps):
            order = ("direct", "published") if rep % 2 == 0 else ("published", "direct")
            for path in order:
                samples[path].append(megabytes / send(paths[path], megabytes, payload))
        # Each rep's two transfers run back to back, so their ratio cancels drift in the machine's
        # load (the VM's neighbours); the median of those ratios is the figure the budget reads.
        ratios = [published / direct for direct, published in zip(samples["direct"], samples["published"], strict=True)]
        return {"ip": ip, "bridge": on, "port": port, "listeners": listeners, "ratio": summary(ratios)[0],
                **{path: summary(values)[0] for path, values in samples.items()},
                "spread": {path: (min(values), max(values)) for path, values in samples.items()}}
    finally:
        engine.remove(name)


def print_throughput(results: list[tuple[str, dict]], megabytes: int, reps: int) -> None:
    print(f"\nTCP throughput host -> container, {megabytes} MB per connection, median of {reps} (MB = 2^20 bytes;"
          " published/direct: median of each rep's back-to-back pair)")
    print(f"{'engine':<10}{'direct MB/s':>13}{'published MB/s':>16}{'published/direct':>18}   container (bridge), "
          "listener on the host port")
    for engine, r in results:
        print(f"{engine:<10}{r['direct']:>13.0f}{r['published']:>16.0f}{r['ratio']:>17.1%}"
              f"   {r['ip']} ({r['bridge']}), -p {r['port']}:{SINK_PORT}, {', '.join(r['listeners']) or 'none'}")
    for engine, r in results:
        spread = ", ".join(f"{path} {low:.0f}-{high:.0f}" for path, (low, high) in r["spread"].items())
        print(f"  {engine} range MB/s: {spread}")
    for engine, r in results:
        if engine == "berth":
            ratio = r["ratio"]
            print(f"berth published/direct {ratio:.1%}: {'within' if ratio >= 0.9 else 'UNDER'} the >= 90 % budget")


# -- 3. what -p adds to run -d ---------------------------------------------------------------

def publish_cost(engine: Engine, runs: int) -> dict:
    """run -d sleep 60, without and with -p HOSTPORT:80, interleaved; each removed (untimed)."""
    samples = {"plain": [], "published": []}
    for i in range(runs + 1):  # the first round is the warm-up
        for variant in ("plain", "published") if i % 2 == 0 else ("published", "plain"):
            name = engine.new_name("pub")
            flags = ["-p", f"{free_port()}:80"] if variant == "published" else []
            try:
                elapsed = timed(engine.cmd("run", "-d", "--name", name, *flags, engine.image, "sleep", "60"))
            finally:
                engine.remove(name)
            if i:
                samples[variant].append(elapsed)
    return samples


def print_publish(results: list[tuple[str, dict]]) -> None:
    print("\nrun -d busybox sleep 60, without and with -p HOSTPORT:80 (each removed after, untimed)")
    print(f"{'engine':<10}{'runs':>6}{'run -d ms':>12}{'run -d -p ms':>15}{'-p adds ms':>12}{'x berth (-p)':>14}")
    berth = None
    for engine, s in results:
        plain, published = summary(s["plain"])[0], summary(s["published"])[0]
        berth = published if engine == "berth" else berth
        ratio = f"{published / berth:>14.2f}" if berth else ""
        print(f"{engine:<10}{len(s['published']):>6}{plain * 1000:>12.1f}{published * 1000:>15.1f}"
              f"{(published - plain) * 1000:>12.1f}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--berth", help="berth launcher to time (default: $BERTH_BIN, else berth on PATH)")
    parser.add_argument("--quick", action="store_true", help="fewer runs and less data (~1/3 of the time)")
    parser.add_argument("--runs", type=int, help="timed `run --rm` runs per engine (default 21, quick 7)")
    parser.add_argument("--mb", type=int, help="MB sent per connection (default 512, quick 128)")
    parser.add_argument("--reps", type=int, help="connections per path (default 7, quick 3)")
    parser.add_argument("--publish-runs", type=int, help="timed run -d per variant (default 11, quick 3)")
    parser.add_argument("--skip", action="append", default=[], choices=("run", "throughput", "publish"),
                        help="leave out a part (repeatable)")
    args = parser.parse_args()
    quick = args.quick
    runs = args.runs or (7 if quick else 21)
    megabytes = args.mb or (128 if quick else 512)
    reps = args.reps or (3 if quick else 7)
    publish_runs = args.publish_runs or (3 if quick else 11)
    if args.berth:
        os.environ["BERTH_BIN"] = args.berth
    # SIGTERM unwinds like Ctrl-C, so the containers, the bridge and its tables still go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    notes: list[str] = []
    failures: list[str] = []
    started = time.perf_counter()
    engines: list[Engine] = []
    latency_rows, none_samples, flows, publishes = [], None, [], []
    with BerthRoot() as root:
        berth = Engine("berth", root.cmd(), "busybox", bridge=root.bridge_name)
        engines = [berth, *peers(notes)]
        print(f"berth: {root.cmd()[0]}, bridge {root.bridge_name} {root.subnet}, nft tables {root.table}; "
              f"peers: {', '.join(e.name for e in engines[1:]) or 'none'}", flush=True)
        try:
            if "run" not in args.skip:
                latency_rows, none_samples = run_latency(engines, runs, failures)
            if "throughput" not in args.skip:
                payload = memoryview(bytes(CHUNK))
                for engine in engines:
                    try:
                        flows.append((engine.name, throughput(engine, megabytes, reps, payload)))
                    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
                        failures.append(f"{engine.name} throughput: {e}")
            if "publish" not in args.skip:
                for engine in engines:
                    try:
                        publishes.append((engine.name, publish_cost(engine, publish_runs)))
                    except (BenchError, subprocess.TimeoutExpired) as e:
                        failures.append(f"{engine.name} run -d -p: {e}")
        finally:
            for engine in engines:
                engine.cleanup()

    if latency_rows:
        print_table(f"run --rm busybox true, default bridge network, {runs} runs after 2 warm-up", latency_rows,
                    budget_ms=50, ratio_budget=1 / 3)
        if none_samples and latency_rows[0][0] == "berth":
            median, p90 = summary(none_samples)
            bridged = summary(latency_rows[0][1])[0]
            print(f"berth --network none: median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms "
                  f"(the bridge adds {(bridged - median) * 1000:.1f} ms)")
    if flows:
        print_throughput(flows, megabytes, reps)
    if publishes:
        print_publish(publishes)
    for line in notes + failures:
        print(f"note: {line}" if line in notes else f"FAILED: {line}")
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
