"""cgroup v1: one directory per mounted hierarchy (plus the empty v2 "unified" one on hybrid hosts)."""

import os

from berth.runtime.cgroups import remove_dir, write


def _hierarchies(root: str) -> dict:
    """controller name -> mount point, read from /proc/self/mountinfo."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            mount_point = pre.split()[4]
            if not mount_point.startswith(root):
                continue
            if fields[0] == "cgroup":
                for opt in fields[2].split(","):
                    if opt in ("rw", "ro") or opt.startswith("release_agent") or opt == "clone_children":
                        continue
                    found[opt] = mount_point
            elif fields[0] == "cgroup2":
                found["unified"] = mount_point
    return found


class V1Cgroup:
    version = 1

    def __init__(self, path: str, root: str):
        self.path = path.strip("/")
        self.mounts = _hierarchies(root)
        self.dirs = {}
        for mount_point in self.mounts.values():
            self.dirs.setdefault(mount_point, os.path.join(mount_point, self.path))

    def create(self) -> None:
        for mount_point, directory in self.dirs.items():
            if mount_point == self.mounts.get("cpuset"):
                self._create_cpuset(mount_point, directory)
            else:
                os.makedirs(directory, exist_ok=True)

    def _create_cpuset(self, mount_point: str, directory: str) -> None:
        # A new cpuset starts with empty cpus/mems; copy them down from the nearest parent.
        parts = self.path.split("/")
        parent = mount_point
        for part in parts:
            child = os.path.join(parent, part)
            if not os.path.isdir(child):
                os.makedirs(child, exist_ok=True)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(parent, name)) as f:
                        write(child, name, f.read().strip() or "\n")
            parent = child

    def add(self, pid: int) -> None:
        for directory in self.dirs.values():
            write(directory, "cgroup.procs", str(pid))

    def apply(self, resources: dict | None) -> None:
        if not resources:
            return
        devices_dir = self._dir("devices")
        if devices_dir and resources.get("devices"):
            for rule in resources["devices"]:
                write(devices_dir, "devices.allow" if rule.get("allow") else "devices.deny", _device_rule(rule))
        memory = resources.get("memory") or {}
        memory_dir = self._dir("memory")
        if memory_dir:
            if memory.get("limit"):
                write(memory_dir, "memory.limit_in_bytes", str(memory["limit"]))
        pids = resources.get("pids") or {}
        if pids.get("limit") and self._dir("pids"):
            write(self._dir("pids"), "pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max")
        cpu = resources.get("cpu") or {}
        if cpu.get("shares") and self._dir("cpu"):
            write(self._dir("cpu"), "cpu.shares", str(cpu["shares"]))

    def _dir(self, controller: str) -> str | None:
        mount_point = self.mounts.get(controller)
        return self.dirs.get(mount_point) if mount_point else None

    def pids(self) -> list[int]:
        directory = self._dir("pids") or self._dir("memory") or next(iter(self.dirs.values()))
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            return []
        except OSError as err:
            if err.errno == 19:  # ENODEV: the cgroup was removed while we read it
                return []
            raise

    def oom_killed(self) -> bool:
        memory = self._dir("memory")
        return bool(memory) and _oom_kills(os.path.join(memory, "memory.oom_control")) > 0

    def freeze(self) -> None:
        self._set_freezer("FROZEN")

    def thaw(self) -> None:
        self._set_freezer("THAWED")

    def _set_freezer(self, wanted: str) -> None:
        freezer = self._dir("freezer")
        if not freezer or not os.path.isdir(freezer):
            return
        try:
            write(freezer, "freezer.state", wanted)
            for _ in range(1000):  # FREEZING -> FROZEN takes a moment
                with open(os.path.join(freezer, "freezer.state")) as f:
                    if f.read().strip() == wanted:
                        return
                import time

                time.sleep(0.001)
        except OSError as err:
            if isinstance(err, FileNotFoundError) or err.errno == 19:  # ENODEV: removed meanwhile
                return
            raise

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def destroy(self) -> None:
        for directory in self.dirs.values():
            remove_dir(directory)


def _oom_kills(path: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except FileNotFoundError:
        pass
    return 0


def _device_rule(rule: dict) -> str:
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    major = rule.get("major")
    minor = rule.get("minor")
    major = "*" if major is None or major < 0 else str(major)
    minor = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"
