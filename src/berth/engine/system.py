"""System use cases: what the engine is (version), what it holds (info) and how much disk that
takes (`system df`), as data for a front door to lay out."""

import os

from berth import API_VERSION, __version__
from berth.engine.containers import is_running


def _arch() -> str:
    from berth.image.importer import platform as image_platform  # lazy: only version

    return image_platform()[1]


def version() -> dict:
    """docker's version shapes: {"Client": ..., "Server": ...}."""
    import platform  # lazy: it loads re, which `system df` and `info` do not need

    py = platform.python_version()
    arch = _arch()
    engine = {"Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "PythonVersion": py,
              "Os": "linux", "Arch": arch, "KernelVersion": os.uname().release, "Experimental": False}
    return {
        "Client": {"Platform": {"Name": "berth"}, "Version": __version__, "ApiVersion": API_VERSION,
                   "PythonVersion": py, "Os": "linux", "Arch": arch, "Context": "default"},
        "Server": {"Platform": {"Name": "berth Engine"}, "Version": __version__, "ApiVersion": API_VERSION,
                   "MinAPIVersion": "1.24", "Os": "linux", "Arch": arch, "KernelVersion": os.uname().release,
                   "Components": [{"Name": "Engine", "Version": __version__, "Details": engine},
                                  {"Name": "berth-runtime", "Version": __version__, "Details": {}}]},
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def host_memory() -> int:
    """MemTotal in bytes."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def info(engine) -> dict:
    """docker's `info` (the API's SystemInfo) for this engine's roots."""
    from berth.runtime.cgroups import CGROUP_ROOT  # lazy: only info

    records = engine.containers()
    running = sum(1 for r in records if r["State"]["Running"])
    paused = sum(1 for r in records if r["State"]["Paused"])
    cgroup_version = "2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else "1"
    return {
        "ID": "", "Containers": len(records), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(records) - running - paused, "Images": len(engine.images.images()),
        "Driver": "overlay", "DriverStatus": [["Backing Filesystem", _backing_fs(engine.paths.root)]],
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version,
        "KernelVersion": os.uname().release, "OperatingSystem": _os_name(), "OSType": "linux",
        "Architecture": os.uname().machine, "NCPU": os.cpu_count(), "MemTotal": host_memory(),
        "Name": os.uname().nodename, "ServerVersion": __version__, "DefaultRuntime": engine.settings.default_runtime,
        "Runtimes": {"berth": {"path": "berth-runtime"}, **engine.settings.runtimes},
        "DockerRootDir": engine.paths.root, "RunRootDir": engine.paths.run_root, "SecurityOptions": [],
        "Debug": False, "Experimental": False,
    }


def _backing_fs(path: str) -> str:
    best, fstype = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mount_point = fields[1]
            inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, fields[2]
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype, fstype)


class Usage:
    """One line of `system df`: a kind of object ("Images", "Containers", "Local Volumes",
    "Build Cache"), how many there are, how many are in use, their bytes and the bytes that
    removing the unused ones would give back."""

    __slots__ = ("type", "total_count", "active", "size", "reclaimable")

    def __init__(self, kind: str, total_count: int, active: int, size: int, reclaimable: int):
        self.type = kind
        self.total_count = total_count
        self.active = active
        self.size = size
        self.reclaimable = reclaimable


def volume_usage(engine) -> list[tuple[str, int, int]]:
    """`system df -v`'s volumes: (name, how many containers use it, bytes), by name."""
    from berth.engine.volumes import VolumeStore, tree_size  # lazy: only df walks volumes

    store = VolumeStore(engine.paths)
    volumes = store.volumes()
    references = store.references() if volumes else {}
    return sorted((v["Name"], len(references.get(v["Name"], ())), tree_size(v["Mountpoint"])) for v in volumes)


def image_usage(engine, records: list[dict]) -> Usage:
    """`system df`'s images (by layer: a layer shared by two images counts once), those the
    container `records` use being active; its size is the API's LayersSize."""
    from berth.image.store import chain_ids  # lazy: only df walks the store

    store = engine.images
    used = {record["Image"] for record in records}
    images = store.images()
    layer_size = {}
    active_layers = set()
    for image in images:
        for chain in chain_ids(image.diff_ids):
            layer_size[chain] = store.layer_size(chain)
            if image.id in used:
                active_layers.add(chain)
    # what killed commands left (blobs, layers and temp files nothing references) is the image
    # store's too, and `image prune` gives it back: counted in both
    leftovers = store.collect_leftovers(dry_run=True)
    total = sum(layer_size.values()) + leftovers
    reclaimable = sum(size for chain, size in layer_size.items() if chain not in active_layers) + leftovers
    return Usage("Images", len(images), sum(1 for i in images if i.id in used), total, reclaimable)


def disk_usage(engine) -> list[Usage]:
    """`system df`: images (image_usage), containers' writable layers, volumes, and the build
    cache berth does not have."""
    from berth.engine.volumes import VolumeStore, tree_size  # lazy: only df walks volumes

    records = engine.containers()
    containers = [(tree_size(r["GraphDriver"]["Data"]["UpperDir"]), is_running(r)) for r in records]
    volume_store = VolumeStore(engine.paths)
    volumes = volume_store.volumes()
    references = volume_store.references() if volumes else {}
    # a volume is active while a container refers to it
    volume_sizes = [(tree_size(v["Mountpoint"]), bool(references.get(v["Name"]))) for v in volumes]
    return [
        image_usage(engine, records),
        Usage("Containers", len(records), sum(1 for _, running in containers if running),
              sum(size for size, _ in containers), sum(size for size, running in containers if not running)),
        Usage("Local Volumes", len(volumes), sum(1 for _, active in volume_sizes if active),
              sum(size for size, _ in volume_sizes), sum(size for size, active in volume_sizes if not active)),
        Usage("Build Cache", 0, 0, 0, 0),
    ]
