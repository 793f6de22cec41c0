"""Pull and push through a loopback registry (Debian's docker-registry on 127.0.0.1), berth side
by side with podman and docker: a 100 MB image of 5 data layers (20 MB of random bytes each) on
busybox. Cold pull (the image's data layers absent), warm pull (the image present: the manifest
check only), and push into an empty registry. Budget: cold pull within 1.2x of the fastest peer.

Usage: /opt/berth/venv/bin/python bench/registry.py [--runs 3]"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, summary  # noqa: E402


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    run(cmd)
    return time.perf_counter() - start


class Registry:
    def __init__(self, base: str):
        self.base = base
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.config = os.path.join(base, "config.yml")
        with open(self.config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {base}/storage\n"
                    f"  delete:\n    enabled: true\nhttp:\n  addr: {self.host}\n")
        self.process = None

    def start(self, empty: bool = False) -> None:
        if empty:
            shutil.rmtree(os.path.join(self.base, "storage"), ignore_errors=True)
        self.process = subprocess.Popen(["docker-registry", "serve", self.config], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None


def build(b: BerthRoot, name: str) -> None:
    """busybox + 5 layers of 20 MB random bytes, committed one by one."""
    image = "busybox"
    for i in range(5):
        container = f"bench-layer-{os.getpid()}-{i}"
        run(b.cmd("run", "--network", "none", "--name", container, image, "sh", "-c",
                  f"head -c 20000000 /dev/urandom > /data{i}"))
        run(b.cmd("commit", container, f"{name}-{i}"))
        run(b.cmd("rm", container))
        image = f"{name}-{i}"
    run(b.cmd("tag", image, name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="berth-bench-registry-")
    reg = Registry(base)
    reg.start()
    results = {}
    try:
        with BerthRoot() as source:
            name = f"{reg.host}/bench/big:1"
            build(source, name)
            run(source.cmd("push", name))
            tools = {"berth": None}
            if peer_available("podman"):
                tools["podman"] = ["podman"]
            if peer_available("docker"):
                tools["docker"] = ["docker"]
            with BerthRoot() as target:
                commands = {"berth": (target.cmd("pull", name), target.cmd("rmi", name),
                                      lambda: run(target.cmd("image", "prune", "-f")))}
                for tool in ("podman", "docker"):
                    if tool in tools:
                        pull = [tool, "pull", "-q", name] + (["--tls-verify=false"] if tool == "podman" else [])
                        commands[tool] = (pull, [tool, "rmi", "-f", name], None)
                for tool, (pull, rmi, after_rmi) in commands.items():
                    cold, warm = [], []
                    for _ in range(args.runs):
                        subprocess.run(rmi, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        if after_rmi:
                            after_rmi()
                        cold.append(timed(pull))
                        warm.append(timed(pull))
                    subprocess.run(rmi, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    results[tool] = {"cold pull": cold, "warm pull": warm}
            # push of the same image into an empty registry: each tool pushes what berth pushed
            pushes = {"berth": source.cmd("push", name)}
            for tool in ("podman", "docker"):
                if tool in tools:
                    run([tool, "pull", "-q", name] + (["--tls-verify=false"] if tool == "podman" else []))
                    pushes[tool] = [tool, "push", "-q", name] + (["--tls-verify=false"] if tool == "podman" else [])
            for tool, push in pushes.items():
                samples = []
                for _ in range(args.runs):
                    reg.stop()
                    reg.start(empty=True)
                    if tool == "berth":  # berth remembers where its layers are: forget, as a fresh push
                        shutil.rmtree(os.path.join(source.root, "image", "distribution"), ignore_errors=True)
                    samples.append(timed(push))
                results[tool]["push"] = samples
            for tool in ("podman", "docker"):
                if tool in tools:
                    subprocess.run([tool, "rmi", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        reg.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"100 MB, 5-layer image through a loopback registry ({args.runs} runs, median s)")
    print(f"{'':10}{'cold pull':>12}{'warm pull':>12}{'push':>12}")
    for tool, figures in results.items():
        cells = "".join(f"{summary(figures[k])[0]:>12.2f}" for k in ("cold pull", "warm pull", "push"))
        print(f"{tool:10}{cells}")
    fastest = min(summary(f["cold pull"])[0] for t, f in results.items() if t != "berth") if len(results) > 1 else 0
    if fastest:
        ratio = summary(results["berth"]["cold pull"])[0] / fastest
        print(f"berth cold pull / fastest peer: {ratio:.2f}x (budget 1.2x)")


if __name__ == "__main__":
    main()
