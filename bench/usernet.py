"""`run --rm --network NAME busybox true` on a user-defined network against the default bridge,
timed in turns in the same run (median, p90). The dns helper adds the name lookup latency and
the resolver's RSS with 50 containers on 5 networks.

Usage: python bench/usernet.py [--runs 30]   (the venv's python, not a pyenv shim)"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, free_subnet, print_table, time_interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
