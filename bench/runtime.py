"""berth-runtime against runc (and crun where installed) on the same bundle, in one run, taking
turns: create+start+wait+delete of /bin/true (what a shim does, each verb a process of its own)
and `run` of /bin/true (the same in one process). Medians, p90 and the ratio to berth-runtime;
Then `ctr run --rm` of busybox `true` end to end through a private containerd with each
(--ctr-runs, 0 to skip). DESIGN's budget: faster than runc.

Usage: /opt/berth/venv/bin/python3 bench/runtime.py [--runs 30] [--ctr-runs 10] [--berth-runtime PATH]"""

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "integration")]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, print_table, summary  # noqa: E402
from test_runtime_cli import base_config  # noqa: E402  (the tests' OCI config: docker's defaults)


def make_bundle(base: str) -> str:
    bundle = os.path.join(base, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs)
    tar = subprocess.run([os.path.join(REPO, "scripts", "make-busybox-rootfs")], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", rootfs], input=tar.stdout, check=True)
    config = base_config("bench", "true")
    del config["linux"]["cgroupsPath"]  # each runtime's own default, per container id
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    return bundle


def cycle(binary: str, root: str, bundle: str) -> float:
    """create, start, wait for the process to end (its pidfd), delete: seconds."""
    container_id = "b" + uuid.uuid4().hex[:10]
    pid_file = os.path.join(root, container_id + ".pid")
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    begin = time.perf_counter()
    subprocess.run([binary, "--root", root, "create", "-b", bundle, "--pid-file", pid_file, container_id],
                   check=True, **quiet)
    with open(pid_file) as f:
        pidfd = os.pidfd_open(int(f.read()))
    subprocess.run([binary, "--root", root, "start", container_id], check=True, **quiet)
    select.select([pidfd], [], [], 30)
    os.close(pidfd)
    subprocess.run([binary, "--root", root, "delete", container_id], check=True, **quiet)
    elapsed = time.perf_counter() - begin
    os.unlink(pid_file)
    return elapsed


def run_once(binary: str, root: str, bundle: str) -> float:
    begin = time.perf_counter()
    subprocess.run([binary, "--root", root, "run", "-b", bundle, "b" + uuid.uuid4().hex[:10]], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - begin


def ctr_end_to_end(runtimes: dict, runs: int, base: str) -> dict:
    """`ctr run --rm` with each runtime as the runc shim's binary, taking turns (the tests'
    private containerd, busybox saved by berth)."""
    from test_runtime_peers import Containerd

    image = os.path.join(base, "busybox-image.tar")
    with BerthRoot() as root:
        subprocess.run(root.cmd("save", "-o", image, "busybox:latest"), check=True)
    containerd = Containerd(image)
    samples = {name: [] for name in runtimes}
    try:
        for i in range(runs + 1):
            for name, binary in runtimes.items():
                begin = time.perf_counter()
                done = containerd.ctr(*containerd.run_args(binary, "--rm"), containerd.image, f"b{name}{i}", "true")
                if done.returncode != 0:
                    raise SystemExit(f"ctr run with {name}: {done.stderr}")
                if i:  # the first round warms up
                    samples[name].append(time.perf_counter() - begin)
    finally:
        containerd.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--ctr-runs", type=int, default=10)
    parser.add_argument("--berth-runtime", default=os.environ.get("BERTH_RUNTIME_BIN") or
                        shutil.which("berth-runtime") or "berth-runtime")
    args = parser.parse_args()
    runtimes = {"berth": args.berth_runtime, "runc": shutil.which("runc")}
    if shutil.which("crun"):
        runtimes["crun"] = shutil.which("crun")
    runtimes = {name: path for name, path in runtimes.items() if path}
    base = tempfile.mkdtemp(prefix="berth-bench-runtime-")
    try:
        bundle = make_bundle(base)
        roots = {name: os.path.join(base, "root-" + name) for name in runtimes}
        for name, binary in runtimes.items():  # warm up: page cache, seccomp cache
            cycle(binary, roots[name], bundle)
            run_once(binary, roots[name], bundle)
        samples = {kind: {name: [] for name in runtimes} for kind in ("cycle", "run")}
        for _ in range(args.runs):
            for name, binary in runtimes.items():
                samples["cycle"][name].append(cycle(binary, roots[name], bundle))
                samples["run"][name].append(run_once(binary, roots[name], bundle))
        if args.ctr_runs:
            samples["ctr"] = ctr_end_to_end(runtimes, args.ctr_runs, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_table("create + start + wait + delete of /bin/true (4 processes of the runtime)",
                list(samples["cycle"].items()))
    print_table("run of /bin/true (one process of the runtime)", list(samples["run"].items()))
    if "ctr" in samples:
        print_table("ctr run --rm busybox true, end to end (private containerd)", list(samples["ctr"].items()))
    for kind in ("cycle", "run"):
        ours, theirs = summary(samples[kind]["berth"])[0], summary(samples[kind]["runc"])[0]
        verdict = "within" if ours < theirs else "OVER"
        print(f"{kind}: berth-runtime {ours * 1000:.1f} ms vs runc {theirs * 1000:.1f} ms "
              f"(ratio {ours / theirs:.2f}): {verdict} the budget (faster than runc)")


if __name__ == "__main__":
    main()
