"""`run --rm busybox true`: berth side by side with podman and docker (when installed).

Usage: python bench/run_latency.py [--runs 30] [--baseline BIN]   (the venv's python, not a pyenv shim)
--baseline: another berth (a launcher of the checkout before a change), timed in turns with
this one in the same run, for before/after figures."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, print_table, time_command, time_interleaved  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--baseline", help="another berth binary to time in turns with this one")
    args = parser.parse_args()
    rows = []
    with BerthRoot() as berth:
        if args.baseline:
            with BerthRoot(args.baseline) as before:
                timed = time_interleaved({"berth": berth.cmd("run", "--rm", "busybox", "true"),
                                          "before": before.cmd("run", "--rm", "busybox", "true")}, args.runs)
            rows += [("berth", timed["berth"]), ("before", timed["before"])]
        else:
            rows.append(("berth", time_command(berth.cmd("run", "--rm", "busybox", "true"), args.runs)))
    if peer_available("podman"):
        rows.append(("podman", time_command(["podman", "run", "--rm", "busybox:latest", "true"], args.runs)))
    if peer_available("docker"):
        rows.append(("docker", time_command(["docker", "run", "--rm", "busybox", "true"], args.runs)))
    print_table("run --rm busybox true", rows, budget_ms=50, ratio_budget=1 / 3)


if __name__ == "__main__":
    main()
