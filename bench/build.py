"""`build` of a 6-step Dockerfile: cold (--no-cache), fully cached, and with the source of its last
COPY changed; berth side by side with docker's classic builder, docker's BuildKit (the one built
into Debian's docker 20.10 client: the docker 28 CLI here has no buildx plugin) and podman build,
taking turns build by build. Budget: a fully cached rebuild <= 1/3 of docker's time.

Usage: python bench/build.py [--runs 5] [--files 400]   (the venv's python, not a pyenv shim)
RUN steps have no network. Every image a peer built here is removed afterwards."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, peer_available, print_table  # noqa: E402

DOCKERFILE = """FROM busybox
ENV APP=/app
WORKDIR /app
COPY deps.txt ./
RUN sort deps.txt > installed && echo ready >> installed
COPY src/ ./src/
"""
DOCKER_28 = "/usr/local/bin/docker"
DOCKER_20 = "/usr/bin/docker"  # has BuildKit built in
TAG = "berth-bench-build:latest"
_ID = re.compile(r"\b(?:sha256:)?([0-9a-f]{12,64})\b")


def make_context(files: int) -> str:
    """A context of `files` small sources (4 KiB each) in src/ and a dependency list."""
    directory = tempfile.mkdtemp(prefix="berth-bench-build-")
    with open(os.path.join(directory, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    with open(os.path.join(directory, "deps.txt"), "w") as f:
        f.write("".join(f"package-{n}\n" for n in range(200, 0, -1)))
    src = os.path.join(directory, "src")
    for n in range(files):
        sub = os.path.join(src, f"module{n % 10}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"file{n}.txt"), "wb") as f:
            f.write(os.urandom(2048).hex().encode())
    return directory


def change_last_copy(context: str) -> None:
    with open(os.path.join(context, "src", "module0", "file0.txt"), "wb") as f:
        f.write(os.urandom(2048).hex().encode())


class Engine:
    """One builder: its command line and the image IDs its builds printed (to remove afterwards)."""

    def __init__(self, name: str, build: list[str], env: dict | None = None, images: list[str] | None = None):
        self.name = name
        self.build = build
        self.env = env
        self.images = images  # the command listing every image ID, for the cleanup
        self.before = set(self._all_images()) if images else set()
        self.seen: set[str] = set()

    def _all_images(self) -> list[str]:
        out = subprocess.run(self.images, capture_output=True, text=True, check=True).stdout
        return [line.strip().removeprefix("sha256:") for line in out.split()]

    def time(self, context: str, *flags: str) -> float:
        start = time.perf_counter()
        done = subprocess.run([*self.build, *flags, context], capture_output=True, text=True, env=self.env)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{self.name}: build failed:\n{done.stdout}\n{done.stderr}")
        self.seen.update(_ID.findall(done.stdout + done.stderr))
        return elapsed

    def cleanup(self, remove: list[str]) -> None:
        if not self.images:
            return
        made = [i for i in self._all_images() if i not in self.before and any(i.startswith(s) for s in self.seen)]
        for image in made:  # a child before its parent: the list is newest first
            subprocess.run([*remove, image], capture_output=True)


def engines(berth: BerthRoot) -> list[tuple[Engine, list[str]]]:
    found = [(Engine("berth", berth.cmd("build", "--network", "none", "-t", TAG)), [])]
    if peer_available("docker"):
        classic = dict(os.environ, DOCKER_BUILDKIT="0")
        found.append((Engine("docker", [DOCKER_28, "build", "--network", "none", "-t", TAG], classic,
                             [DOCKER_28, "images", "-aq", "--no-trunc"]), [DOCKER_28, "rmi", "-f"]))
        buildkit = dict(os.environ, DOCKER_BUILDKIT="1")
        probe = subprocess.run([DOCKER_20, "build", "--help"], capture_output=True, text=True, env=buildkit)
        if probe.returncode == 0:
            found.append((Engine("docker-bk", [DOCKER_20, "build", "--network", "none", "-t", TAG], buildkit,
                                 [DOCKER_28, "images", "-aq", "--no-trunc"]), [DOCKER_28, "rmi", "-f"]))
    if peer_available("podman"):
        found.append((Engine("podman", ["podman", "build", "--network", "none", "-t", TAG]), ["podman", "rmi", "-f"]))
        found[-1][0].images = ["podman", "images", "-aq", "--no-trunc"]
        found[-1][0].before = set(found[-1][0]._all_images())
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=400, help="sources the last COPY copies")
    args = parser.parse_args()
    context = make_context(args.files)
    samples: dict[str, dict[str, list[float]]] = {"cold": {}, "cached": {}, "changed": {}}
    with BerthRoot() as berth:
        builders = engines(berth)
        try:
            for engine, _ in builders:  # warm-up: each engine's cache holds this context once
                engine.time(context)
            for _ in range(args.runs):
                for engine, _ in builders:
                    samples["cold"].setdefault(engine.name, []).append(engine.time(context, "--no-cache"))
                for engine, _ in builders:
                    samples["cached"].setdefault(engine.name, []).append(engine.time(context))
                change_last_copy(context)
                for engine, _ in builders:
                    samples["changed"].setdefault(engine.name, []).append(engine.time(context))
        finally:
            for engine, remove in builders:
                engine.cleanup(remove)
            shutil.rmtree(context, ignore_errors=True)
    files = f"{args.files} files of 4 KiB in the last COPY"
    print_table(f"build --no-cache (cold), 6 steps, {files}", list(samples["cold"].items()))
    print_table(f"build, every step cached, {files}", list(samples["cached"].items()), ratio_budget=1 / 3)
    print_table(f"build, the last COPY's source changed, {files}", list(samples["changed"].items()))


if __name__ == "__main__":
    main()
