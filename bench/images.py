"""Images from containers, side by side with podman and docker (when installed):
commit of a container that wrote 100 MB in 1,000 files, commit of one that touched 10,000
small files, diff of the latter, and save/load of the 100 MB image. berth's commit is also
compared with plain `tar` of the same upper dir (budget: within 1.5x, and faster than podman).

Usage: /opt/berth/venv/bin/python bench/images.py [--runs 3]"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, summary  # noqa: E402

BIG = "for i in $(seq 1000); do head -c 100000 /dev/urandom > /data$i; done"
SMALL = "mkdir /many; for i in $(seq 10000); do echo $i > /many/f$i; done"


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


class Engine:
    def __init__(self, name: str, prefix: list[str], image: str):
        self.name, self.prefix, self.image = name, prefix, image
        self.containers, self.images = [], []

    def cmd(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def prepare(self, label: str, script: str) -> str:
        name = f"bench-img-{label}-{os.getpid()}-{len(self.containers)}"
        run(self.cmd("run", "--name", name, self.image, "sh", "-c", script))
        self.containers.append(name)
        return name

    def commit(self, container: str) -> float:
        tag = f"bench-img-{os.getpid()}-{len(self.images)}:latest"
        self.images.append(tag)
        return timed(self.cmd("commit", container, tag))

    def cleanup(self) -> None:
        if self.containers:
            subprocess.run(self.cmd("rm", "-f", *self.containers), capture_output=True)
        for tag in self.images:
            subprocess.run(self.cmd("rmi", "-f", tag), capture_output=True)
        self.containers, self.images = [], []


def tar_of_upper(berth_root, container: str) -> float:
    upper = run(berth_root.cmd("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", container)).strip()
    with tempfile.TemporaryDirectory() as tmp:
        return timed(["tar", "-C", upper, "-cf", os.path.join(tmp, "upper.tar"), "."])


def has_command(engine: Engine, command: str) -> bool:
    return subprocess.run(engine.cmd(command, "--help"), capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with BerthRoot() as root:
        engines = [Engine("berth", root.cmd(), "busybox")]
        if peer_available("podman"):
            engines.append(Engine("podman", ["podman"], "busybox:latest"))
        if peer_available("docker"):
            engines.append(Engine("docker", ["docker"], "busybox"))
        tar_big, tar_small = [], []
        try:
            for engine in engines:
                r = results.setdefault(engine.name, {})
                for _ in range(args.runs):
                    big = engine.prepare("big", BIG)
                    small = engine.prepare("small", SMALL)
                    r.setdefault("commit 100MB/1000 files", []).append(engine.commit(big))
                    r.setdefault("commit 10000 small files", []).append(engine.commit(small))
                    r.setdefault("diff 10000 small files", []).append(timed(engine.cmd("diff", small)))
                    if engine.name == "berth":
                        tar_big.append(tar_of_upper(root, big))
                        tar_small.append(tar_of_upper(root, small))
                    if has_command(engine, "save"):
                        with tempfile.TemporaryDirectory() as tmp:
                            archive = os.path.join(tmp, "img.tar")
                            tag = engine.images[-2]
                            r.setdefault("save 100MB image", []).append(
                                timed(engine.cmd("save", "-o", archive, tag)))
                            subprocess.run(engine.cmd("rmi", "-f", tag), capture_output=True)
                            r.setdefault("load 100MB image", []).append(timed(engine.cmd("load", "-i", archive)))
                    engine.cleanup()
        finally:
            for engine in engines:
                engine.cleanup()
    results.setdefault("tar", {})["commit 100MB/1000 files"] = tar_big
    results["tar"]["commit 10000 small files"] = tar_small
    operations = sorted({op for r in results.values() for op in r})
    print(f"\n{'operation':<28}" + "".join(f"{name:>12}" for name in results) + "   berth/peer ratios")
    for op in operations:
        medians = {name: summary(r[op])[0] for name, r in results.items() if r.get(op)}
        cells = "".join(f"{medians[n] * 1000:>10.0f}ms" if n in medians else f"{'-':>12}" for n in results)
        ratios = "  ".join(f"/{n} {medians['berth'] / medians[n]:.2f}" for n in medians if n != "berth"
                           and "berth" in medians)
        print(f"{op:<28}{cells}   {ratios}")
    print("budget: commit <= 1.5x tar of the same upper dir, and faster than podman")
    for op in ("commit 100MB/1000 files", "commit 10000 small files"):
        if not results.get("berth", {}).get(op) or not results["tar"].get(op):
            continue
        berth = summary(results["berth"][op])[0]
        verdicts = [f"berth/tar {berth / summary(results['tar'][op])[0]:.2f} (<= 1.5)"]
        if results.get("podman", {}).get(op):
            verdicts.append(f"berth/podman {berth / summary(results['podman'][op])[0]:.2f} (< 1)")
        within = berth <= 1.5 * summary(results["tar"][op])[0] and all(
            berth < summary(results[peer][op])[0] for peer in ("podman",) if results.get(peer, {}).get(op))
        print(f"{op}: {', '.join(verdicts)}: {'within' if within else 'OVER'} budget")


if __name__ == "__main__":
    if not shutil.which("tar"):
        sys.exit("tar is needed")
    main()
