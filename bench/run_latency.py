"""`run --rm busybox true`: berth side by side with podman and docker (when installed).

Usage: python bench/run_latency.py [--runs 30] [--baseline BIN]   (the venv's python, not a pyenv shim)
--baseline: another berth (a launcher of the checkout before a change), timed in turns with
this one in the same run, for before/after figures. Also prints what the events journal adds
to a run: the events one `run --rm` wrote, appended again the way berth appends them."""

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time

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
        per_run = events_per_run(berth.root)
    if peer_available("podman"):
        rows.append(("podman", time_command(["podman", "run", "--rm", "busybox:latest", "true"], args.runs)))
    if peer_available("docker"):
        rows.append(("docker", time_command(["docker", "run", "--rm", "busybox", "true"], args.runs)))
    print_table("run --rm busybox true", rows, budget_ms=50, ratio_budget=1 / 3)
    print(f"events: {per_run:g} per run --rm, {events_cost_ms(per_run, args.runs):.3f} ms per run to append them "
          "(budget 1 ms)")


def events_per_run(root: str) -> float:
    """Events in the journal per container that ran (warm-up runs included)."""
    actors = []
    for path in glob.glob(os.path.join(root, "events", "*")):
        with open(path, "rb") as f:
            actors += [json.loads(line)["Actor"]["ID"] for line in f if b'"Type":"container"' in line]
    return len(actors) / max(len(set(actors)), 1)


def events_cost_ms(per_run: float, runs: int) -> float:
    """Median time to append one run's events to a journal, through berth's own emitter."""
    from berth.engine import events  # the installed berth this python runs

    attributes = {"image": "busybox", "name": "bench"}
    times = []
    with tempfile.TemporaryDirectory() as root:
        for i in range(runs):
            start = time.perf_counter()
            for _n in range(round(per_run)):
                events.emit(root, "container", "start", f"{i:064x}", attributes)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    main()
