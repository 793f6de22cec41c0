"""The Engine API (`berth system service`) side by side with dockerd's, in one run: the docker CLI's
`run --rm busybox true` through each socket, docker-py's containers.run, GET /containers/json
with 100 containers, one-shot stats, and the service's idle RSS against dockerd's.

Usage: /opt/berth/venv/bin/python3 bench/api.py [--runs 20] [--containers 100]
(re-executes itself with that interpreter otherwise: docker-py lives in the venv, and a pyenv
shim would add its own ~70 ms to every timed python start)."""

import argparse
import os
import socket
import subprocess
import sys
import time

VENV_PYTHON = "/opt/berth/venv/bin/python3"
if os.path.realpath(sys.executable) != os.path.realpath(VENV_PYTHON) and os.path.exists(VENV_PYTHON):
    os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BerthRoot, print_table, time_interleaved  # noqa: E402

DOCKERD_SOCK = "/var/run/docker.sock"
LIST_BUDGET_MS, STATS_BUDGET_MS, RSS_BUDGET_MB = 30, 100, 30


class Service:
    """`berth system service` of a bench root on a private socket, stopped (by its PID) on exit."""

    def __init__(self, root: BerthRoot):
        self.sock = os.path.join(root.base, "api.sock")
        self.process = subprocess.Popen(root.cmd("system", "service", "--time", "0", f"unix://{self.sock}"),
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("berth system service did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def get(sock_path: str, path: str) -> tuple[int, bytes]:
    """One GET on a connection of its own, as the docker CLI makes one per command."""
    import http.client

    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(sock_path)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def time_get(sock_path: str, path: str, runs: int) -> list[float]:
    get(sock_path, path)  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        status, body = get(sock_path, path)
        samples.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body[:200]!r}")
    return samples


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def dockerd_pid() -> int | None:
    try:
        with open("/var/run/docker.pid") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def docker_cli(sock_path: str, *args: str) -> list[str]:
    return ["env", f"DOCKER_HOST=unix://{sock_path}", "docker", *args]


def docker_py_run(sock_path: str, runs: int) -> list[float]:
    import docker  # lazy: only this part needs docker-py

    client = docker.DockerClient(base_url=f"unix://{sock_path}", version="1.41")
    client.containers.run("busybox", ["true"], remove=True)  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        client.containers.run("busybox", ["true"], remove=True)
        samples.append(time.perf_counter() - start)
    client.close()
    return samples


def one_shot_stats(sock_path: str, start_cmd: list[str], rm_cmd: list[str], runs: int) -> list[float]:
    container_id = subprocess.run(start_cmd, check=True, capture_output=True, text=True).stdout.strip()
    try:
        return time_get(sock_path, f"/v1.41/containers/{container_id}/stats?stream=false&one-shot=true", runs)
    finally:
        subprocess.run([*rm_cmd, container_id], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--containers", type=int, default=100)
    args = parser.parse_args()
    with_dockerd = os.path.exists(DOCKERD_SOCK) and subprocess.run(
        ["docker", "-H", f"unix://{DOCKERD_SOCK}", "image", "inspect", "busybox"], capture_output=True).returncode == 0
    if not with_dockerd:
        print("dockerd (with busybox) does not answer on /var/run/docker.sock: berth alone (scripts/test-peers "
              "starts it)")
    with BerthRoot() as root:
        service = Service(root)
        try:
            time.sleep(1)
            idle_rss = rss_mb(service.process.pid)
            bench(root, service, args, with_dockerd)
            get(service.sock, "/_ping")
            after_rss = rss_mb(service.process.pid)
        finally:
            service.stop()
    print("\nservice idle RSS")
    print(f"berth system service {idle_rss:.1f} MB at start, {after_rss:.1f} MB after the bench "
          f"({'within' if idle_rss <= RSS_BUDGET_MB else 'OVER'} the {RSS_BUDGET_MB} MB budget)")
    pid = dockerd_pid() if with_dockerd else None
    if pid:
        print(f"dockerd {rss_mb(pid):.1f} MB; berth / dockerd = {idle_rss / rss_mb(pid):.3f}")


def bench(root: BerthRoot, service: Service, args, with_dockerd: bool) -> None:
    """Each part on its own: one that fails says why, and the others are still timed."""
    for title, part in (("docker CLI: run --rm busybox true, through berth's socket and dockerd's", cli_run),
                        ("docker-py: containers.run('busybox', ['true'], remove=True)", py_run),
                        ("GET /containers/{id}/stats?stream=false&one-shot=true (a running container)", stats),
                        (f"GET /containers/json?all=1 with {args.containers} containers (a connection each)", listing)):
        try:
            part(title, root, service, args, with_dockerd)
        except Exception as err:  # noqa: BLE001 - a bench reports a failed part and goes on
            print(f"\n{title}\nFAILED: {type(err).__name__}: {err}")


def cli_run(title: str, root: BerthRoot, service: Service, args, with_dockerd: bool) -> None:
    cmds = {"berth": docker_cli(service.sock, "run", "--rm", "busybox", "true")}
    if with_dockerd:
        cmds["docker"] = docker_cli(DOCKERD_SOCK, "run", "--rm", "busybox", "true")
    print_table(title, list(time_interleaved(cmds, args.runs).items()), ratio_budget=1 / 3)


def py_run(title: str, root: BerthRoot, service: Service, args, with_dockerd: bool) -> None:
    rows = [("berth", docker_py_run(service.sock, args.runs))]
    if with_dockerd:
        rows.append(("docker", docker_py_run(DOCKERD_SOCK, args.runs)))
    print_table(title, rows)


def stats(title: str, root: BerthRoot, service: Service, args, with_dockerd: bool) -> None:
    rows = [("berth", one_shot_stats(service.sock, root.cmd("run", "-d", "busybox", "sleep", "1d"),
                                     root.cmd("rm", "-f"), args.runs))]
    if with_dockerd:
        rows.append(("docker", one_shot_stats(DOCKERD_SOCK, ["docker", "run", "-d", "busybox", "sleep", "1d"],
                                              ["docker", "rm", "-f"], args.runs)))
    print_table(title, rows, budget_ms=STATS_BUDGET_MS)


def listing(title: str, root: BerthRoot, service: Service, args, with_dockerd: bool) -> None:
    for _ in range(args.containers):
        subprocess.run(root.cmd("create", "busybox", "true"), check=True, stdout=subprocess.DEVNULL)
    print_table(title, [("berth", time_get(service.sock, "/v1.41/containers/json?all=1", args.runs))],
                budget_ms=LIST_BUDGET_MS)


if __name__ == "__main__":
    main()
