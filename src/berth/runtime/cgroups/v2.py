"""cgroup v2: one directory in the unified hierarchy; controllers enabled down the path."""

import os

from berth.runtime.cgroups import remove_dir, write


class V2Cgroup:
    version = 2

    def __init__(self, path: str, root: str):
        self.root = root
        self.path = path.strip("/")
        self.dir = os.path.join(root, self.path)
        self.dirs = {root: self.dir}

    def create(self) -> None:
        parent = self.root
        with open(os.path.join(self.root, "cgroup.controllers")) as f:
            controllers = f.read().split()
        for part in self.path.split("/"):
            # Enable the controllers for children of each ancestor, as runc does.
            wanted = " ".join("+" + c for c in controllers)
            try:
                write(parent, "cgroup.subtree_control", wanted)
            except OSError:
                pass
            parent = os.path.join(parent, part)
            os.makedirs(parent, exist_ok=True)

    def add(self, pid: int) -> None:
        write(self.dir, "cgroup.procs", str(pid))

    def apply(self, resources: dict | None) -> None:
        if not resources:
            return
        memory = resources.get("memory") or {}
        if memory.get("limit"):
            write(self.dir, "memory.max", str(memory["limit"]))
        pids = resources.get("pids") or {}
        if pids.get("limit"):
            write(self.dir, "pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max")
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            # docker/runc conversion of cpu.shares [2, 262144] to cpu.weight [1, 10000]
            weight = 1 + ((cpu["shares"] - 2) * 9999) // 262142
            write(self.dir, "cpu.weight", str(weight))
        # Device rules on v2 need an eBPF program; not enforced by this backend yet.

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.dir, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def oom_killed(self) -> bool:
        try:
            with open(os.path.join(self.dir, "memory.events")) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value) > 0
        except FileNotFoundError:
            pass
        return False

    def freeze(self) -> None:
        self._set_freeze("1")

    def thaw(self) -> None:
        self._set_freeze("0")

    def _set_freeze(self, value: str) -> None:
        try:
            write(self.dir, "cgroup.freeze", value)
        except FileNotFoundError:
            pass  # no freezer here, or the cgroup was removed meanwhile

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        remove_dir(self.dir)
