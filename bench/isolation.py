"""What isolation costs `run --rm busybox true`: docker's default confinement (its seccomp
profile) against `--security-opt seccomp=unconfined`, and resource limits plus dropped
capabilities (`-m 256m --cpu-shares 512 --cap-drop all`) against the default, for berth
side by side with podman and docker (when installed, with busybox:latest).

Every variant runs with `--network none` (the network is bench/network.py's subject), and
the variants take turns run by run, so a slow minute of the host weighs on all alike.

Budget: the default seccomp profile and the limits each add <= 5 ms to berth's median.

Usage: /usr/bin/python3 bench/isolation.py [--berth /opt/berth-devbin/berth] [--runs 30]
       [--peer-runs 11]
(not the pyenv python3 shim: it adds ~70 ms to every process it starts)"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, print_table, summary  # noqa: E402

VARIANTS = (
    ("default", []),
    ("unconfined", ["--security-opt", "seccomp=unconfined"]),
    ("limits", ["-m", "256m", "--cpu-shares", "512", "--cap-drop", "all"]),
)
BUDGET_MS = 5.0


def run_args(flags: list[str]) -> list[str]:
    return ["run", "--rm", "--network", "none", *flags, "busybox", "true"]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(commands: dict, runs: int, warmup: int = 2) -> dict:
    """{name: samples}: each command run `runs` times, all commands taking turns."""
    for _ in range(warmup):
        for cmd in commands.values():
            timed(cmd)
    samples = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            samples[name].append(timed(cmd))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--berth", help="berth binary (default: $BERTH_BIN, berth on PATH)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--peer-runs", type=int, default=11)
    args = parser.parse_args()
    if args.berth:
        os.environ["BERTH_BIN"] = args.berth
    results = {}  # (engine, variant) -> samples
    with BerthRoot() as berth:
        commands = {variant: berth.cmd(*run_args(flags)) for variant, flags in VARIANTS}
        for variant, samples in measure(commands, args.runs).items():
            results[("berth", variant)] = samples
    for peer, image in (("podman", "busybox:latest"), ("docker", "busybox")):
        if not peer_available(peer):
            continue
        commands = {variant: [peer, *run_args(flags)[:-2], image, "true"] for variant, flags in VARIANTS}
        for variant, samples in measure(commands, args.peer_runs, warmup=1).items():
            results[(peer, variant)] = samples
    engines = [e for e in ("berth", "podman", "docker") if (e, "default") in results]
    for variant, flags in VARIANTS:
        title = f"run --rm --network none {' '.join(flags) + ' ' if flags else ''}busybox true"
        print_table(f"{variant}: {title}", [(e, results[(e, variant)]) for e in engines])
    print("\nwhat each adds to an engine's own median (ms)")
    print(f"{'engine':<10}{'seccomp profile':>18}{'limits+cap-drop':>18}")
    for engine in engines:
        median = {variant: summary(results[(engine, variant)])[0] * 1000 for variant, _ in VARIANTS}
        print(f"{engine:<10}{median['default'] - median['unconfined']:>18.1f}"
              f"{median['limits'] - median['default']:>18.1f}")
    median = {variant: summary(results[("berth", variant)])[0] * 1000 for variant, _ in VARIANTS}
    for what, added in (("default seccomp profile", median["default"] - median["unconfined"]),
                        ("limits + cap-drop", median["limits"] - median["default"])):
        verdict = "within" if added <= BUDGET_MS else "OVER"
        print(f"berth: the {what} adds {added:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    main()
