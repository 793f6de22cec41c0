"""Turn a container's Docker-shaped record (Config + HostConfig) into an OCI runtime spec,
with docker's defaults for mounts, masked paths, devices and capabilities."""

from berth.runtime.caps import DEFAULT_CAPS

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# moby's default device cgroup rules: deny all, allow mknod of any, and the standard nodes.
DEFAULT_DEVICE_RULES = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)


def default_mounts(shm_size: int) -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init")


def init_binary() -> str:
    """A static tini from Debian's tini package (docker ships the same as docker-init)."""
    import os

    for path in INIT_BINARIES:
        if os.path.exists(path):
            return path
    from berth.errors import BerthError

    raise BerthError("--init needs tini: install Debian's tini package (scripts/install does)")


def process_env(config: dict, hostname: str, home: str, link_env=()) -> list[str]:
    """docker's container environment: PATH default, HOSTNAME, TERM with -t, the legacy link
    variables, HOME from passwd, then Config.Env (the image's merged with the user's) overriding."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if config.get("Tty"):
        env["TERM"] = "xterm"
    for item in list(link_env) + list(config.get("Env") or ()):
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("HOME", home)
    return [f"{k}={v}" for k, v in env.items()]


def build(record: dict, user, container_dir: str, console_size: tuple[int, int] | None = None,
          joined_pid: int | None = None, link_env=()) -> dict:
    """The OCI spec for `record` (a container's config.json). `user` is its resolved ExecUser;
    `joined_pid` is the pid of the container whose network a container:<x> one shares;
    `link_env` the --link variables, computed when it starts."""
    config = record["Config"]
    host = record["HostConfig"]
    caps = list(DEFAULT_CAPS)
    process = {
        "terminal": bool(config.get("Tty")),
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": [record["Path"]] + list(record["Args"]),
        "env": process_env(config, config["Hostname"], user.home, link_env),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": False,
    }
    if console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    mounts = default_mounts(host.get("ShmSize") or 67108864)
    for key, path in (("ResolvConfPath", "/etc/resolv.conf"), ("HostnamePath", "/etc/hostname"),
                      ("HostsPath", "/etc/hosts")):
        mounts.append({"destination": path, "type": "bind", "source": record[key], "options": ["rbind", "rprivate"]})
    if host.get("Init"):  # docker's --init: tini as pid 1 reaps zombies and forwards signals
        mounts.append({"destination": "/sbin/docker-init", "type": "bind", "source": init_binary(),
                       "options": ["rbind", "ro", "rprivate"]})
        process["args"] = ["/sbin/docker-init", "--"] + process["args"]
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    network = host.get("NetworkMode") or "none"
    if network.startswith("container:"):
        namespaces.append({"type": "network", "path": f"/proc/{joined_pid}/ns/net"})
    elif network != "host":
        namespaces.append({"type": "network"})
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": container_dir + "/merged", "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": config["Hostname"],
        "mounts": mounts,
        "linux": {
            "cgroupsPath": "/berth/" + record["Id"],
            "namespaces": namespaces,
            "resources": {"devices": list(DEFAULT_DEVICE_RULES)},
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
