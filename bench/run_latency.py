"""`run --rm busybox true`: berth side by side with podman and docker (when installed).

Usage: python bench/run_latency.py [--runs 30]   (use the venv's python, not a pyenv shim)"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, print_table, time_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    rows = []
    with BerthRoot() as berth:
        rows.append(("berth", time_command(berth.cmd("run", "--rm", "busybox", "true"), args.runs)))
    if peer_available("podman"):
        rows.append(("podman", time_command(["podman", "run", "--rm", "busybox:latest", "true"], args.runs)))
    if peer_available("docker"):
        rows.append(("docker", time_command(["docker", "run", "--rm", "busybox", "true"], args.runs)))
    print_table("run --rm busybox true", rows, budget_ms=50, ratio_budget=1 / 3)


if __name__ == "__main__":
    main()
