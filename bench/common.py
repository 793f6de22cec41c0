"""Shared helpers for benchmarks: timing commands, peers (podman, docker), printing ratios."""

import os
import shutil
import statistics
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def berth_binary() -> str:
    return os.environ.get("BERTH_BIN") or shutil.which("berth") or "/usr/local/bin/berth"


def time_command(cmd: list[str], runs: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of `runs` executions (after `warmup` untimed ones); fails loudly."""
    for _ in range(warmup):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return statistics.median(ordered), p90


def peer_available(engine: str) -> bool:
    if not shutil.which(engine):
        return False
    probe = subprocess.run([engine, "image", "inspect", "busybox:latest"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
    return probe.returncode == 0


class BerthRoot:
    """A throwaway --root/--run-root holding busybox:latest, removed on exit."""

    def __enter__(self):
        self.base = tempfile.mkdtemp(prefix="berth-bench-")
        self.args = ["--root", os.path.join(self.base, "root"), "--run-root", os.path.join(self.base, "run")]
        tar = subprocess.run([os.path.join(REPO, "scripts", "make-busybox-rootfs")], check=True,
                             stdout=subprocess.PIPE).stdout
        subprocess.run([berth_binary(), *self.args, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest"],
                       input=tar, check=True, stdout=subprocess.DEVNULL)
        return self

    def cmd(self, *args: str) -> list[str]:
        return [berth_binary(), *self.args, *args]

    def __exit__(self, *exc):
        for name in os.listdir(os.path.join(self.base, "root", "containers")) if os.path.isdir(
                os.path.join(self.base, "root", "containers")) else []:
            subprocess.run(self.cmd("rm", "-f", name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.base, ignore_errors=True)


def print_table(title: str, rows: list[tuple[str, list[float]]], budget_ms: float | None = None,
                ratio_budget: float | None = None) -> dict:
    """rows: (engine, samples). Prints median/p90 in ms and each engine's ratio to berth;
    `ratio_budget` is the largest berth/peer ratio the budget allows, if it sets one."""
    print(f"\n{title}")
    print(f"{'engine':<10}{'runs':>6}{'median ms':>12}{'p90 ms':>10}{'x berth':>10}")
    medians = {}
    for engine, samples in rows:
        median, p90 = summary(samples)
        medians[engine] = median
        print(f"{engine:<10}{len(samples):>6}{median * 1000:>12.1f}{p90 * 1000:>10.1f}", end="")
        print(f"{median / medians['berth']:>10.2f}" if "berth" in medians else "")
    if budget_ms is not None and "berth" in medians:
        verdict = "within" if medians["berth"] * 1000 <= budget_ms else "OVER"
        print(f"berth median {medians['berth'] * 1000:.1f} ms: {verdict} the {budget_ms:.0f} ms budget")
    for engine, median in medians.items():
        if engine != "berth" and "berth" in medians:
            budget = f" (budget <= {ratio_budget:.3f})" if ratio_budget else ""
            print(f"berth / {engine} = {medians['berth'] / median:.3f}{budget}")
    return medians
