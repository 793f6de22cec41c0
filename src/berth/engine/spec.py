"""Turn a container's Docker-shaped record (Config + HostConfig) into an OCI runtime spec,
with docker's defaults for mounts, masked paths, devices and capabilities."""

import os
import stat

from berth.errors import BerthError
from berth.runtime.caps import CAPS, DEFAULT_CAPS, last_cap
from berth.runtime.cgroups import cgroup_path

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


def default_mounts(shm_size: int, ipc: str = "private", shm_source: str | None = None,
                   privileged: bool = False) -> list[dict]:
    """docker's mounts for every container; /dev/shm follows the IPC mode (none: no /dev/shm;
    host, shareable and container:<x>: a bind of the host-side directory)."""
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        # the container's own cgroups; writable with --privileged (moby drops the "ro")
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ([] if privileged else ["ro"]) + ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if shm_source:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": shm_source,
                       "options": ["rbind", "nosuid", "noexec", "nodev"]})
    elif ipc != "none":
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]})
    return mounts


INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init")


def init_binary(configured: str = "") -> str:
    """daemon.json's "init-path", else a static tini from Debian's tini package (docker ships
    the same as docker-init)."""
    if configured:
        if not os.path.isfile(configured):
            raise BerthError(f"init-path {configured} of the engine settings: no such file")
        return configured
    for path in INIT_BINARIES:
        if os.path.exists(path):
            return path

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


class StartInputs:
    """What a start knows beyond the record: the pids whose network / IPC / PID namespaces a
    container:<x> mode joins, the host directory holding a shareable /dev/shm, and the --link
    variables, daemon.json's init-path for --init. (Seccomp goes to the runtime as a compiled
    filter: Engine.seccomp_program.)"""

    __slots__ = ("net_pid", "ipc_pid", "pid_pid", "shm_source", "link_env", "init_path")

    def __init__(self, net_pid=None, ipc_pid=None, shm_source=None, link_env=(), pid_pid=None, init_path=""):
        self.net_pid = net_pid
        self.ipc_pid = ipc_pid
        self.pid_pid = pid_pid
        self.shm_source = shm_source
        self.link_env = link_env
        self.init_path = init_path


def build(record: dict, user, container_dir: str, console_size: tuple[int, int] | None = None,
          inputs: StartInputs | None = None) -> dict:
    """The OCI spec for `record` (a container's config.json). `user` is its resolved ExecUser."""
    starting = inputs is not None  # exec passes none: it joins the running container's namespaces
    inputs = inputs or StartInputs()
    config = record["Config"]
    host = record["HostConfig"]
    privileged = bool(host.get("Privileged"))
    caps = capabilities(host)
    process = {
        "terminal": bool(config.get("Tty")),
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": [record["Path"]] + list(record["Args"]),
        "env": process_env(config, config["Hostname"], user.home, inputs.link_env),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privileges(host),
        "oomScoreAdj": host.get("OomScoreAdj") or 0,  # as docker: always, so none is inherited from berth
    }
    if console_size:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    mounts = default_mounts(host.get("ShmSize") or 67108864, ipc_mode(host), inputs.shm_source, privileged)
    for key, path in (("ResolvConfPath", "/etc/resolv.conf"), ("HostnamePath", "/etc/hostname"),
                      ("HostsPath", "/etc/hosts")):
        mounts.append({"destination": path, "type": "bind", "source": record[key], "options": ["rbind", "rprivate"]})
    if host.get("Init"):  # docker's --init: tini as pid 1 reaps zombies and forwards signals
        mounts.append({"destination": "/sbin/docker-init", "type": "bind", "source": init_binary(inputs.init_path),
                       "options": ["rbind", "ro", "rprivate"]})
        process["args"] = ["/sbin/docker-init", "--"] + process["args"]
    if record.get("Mounts") or host.get("Tmpfs"):  # -v, --mount, --tmpfs, image VOLUMEs
        from berth.engine.mounts import with_user_mounts  # lazy: only containers with mounts

        mounts = with_user_mounts(record, mounts)
    namespaces = own_namespaces(host, inputs.pid_pid)
    network = host.get("NetworkMode") or "none"
    if network.startswith("container:"):
        namespaces.append({"type": "network", "path": f"/proc/{inputs.net_pid}/ns/net"})
    elif network != "host":
        namespaces.append({"type": "network"})
    ipc = ipc_mode(host)
    if ipc.startswith("container:"):
        namespaces.append({"type": "ipc", "path": f"/proc/{inputs.ipc_pid}/ns/ipc"})
    elif ipc != "host":
        namespaces.append({"type": "ipc"})
    linux = {
        "cgroupsPath": cgroup_path(record["Id"], host.get("CgroupParent")),
        "namespaces": namespaces,
        "resources": {"devices": [{"allow": True, "access": "rwm"}] if privileged else list(DEFAULT_DEVICE_RULES)},
        "maskedPaths": [] if privileged else list(host.get("MaskedPaths") or MASKED_PATHS),
        "readonlyPaths": [] if privileged else list(host.get("ReadonlyPaths") or READONLY_PATHS),
    }
    if privileged:
        linux["devices"] = host_devices()
    if host.get("Sysctls"):
        linux["sysctl"] = dict(host["Sysctls"])
        if starting:  # checked at create on the modes; now on the namespaces joined, as runc does
            from berth.runtime.validate import check_spec  # lazy: only --sysctl

            check_spec({"linux": linux})
    _propagation(mounts, linux)
    spec = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": container_dir + "/merged", "readonly": bool(host.get("ReadonlyRootfs"))},
        "hostname": config["Hostname"],
        **({"domainname": config["Domainname"]} if config.get("Domainname") else {}),
        **({"annotations": dict(host["Annotations"])} if host.get("Annotations") else {}),
        "mounts": mounts,
        "linux": linux,
    }
    if any(host.get(field) for field in RESOURCE_FIELDS) or host.get("MemorySwappiness") is not None:
        from berth.engine.resources import apply_to_spec  # limits, --device, --ulimit

        apply_to_spec(spec, host)
    return spec


# HostConfig fields that berth.engine.resources turns into linux.resources, linux.devices, rlimits
RESOURCE_FIELDS = ("Memory", "MemoryReservation", "MemorySwap", "OomKillDisable", "CpuShares", "NanoCpus",
                   "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit", "Devices", "DeviceCgroupRules",
                   "Ulimits", "CpuRealtimePeriod", "CpuRealtimeRuntime", "BlkioWeight", "BlkioWeightDevice",
                   "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")


def own_namespaces(host: dict, pid_pid: int | None) -> list[dict]:
    """The PID, UTS, mount and cgroup namespaces of docker's modes: none of its own for
    "host" (the host's is kept), another container's by path for --pid container:<x>; a cgroup
    namespace only for CgroupnsMode private (docker's default on cgroup v2, not on v1)."""
    namespaces = [{"type": "mount"}]
    pid = host.get("PidMode") or ""
    if pid.startswith("container:"):
        namespaces.append({"type": "pid", "path": f"/proc/{pid_pid}/ns/pid"})
    elif pid != "host":
        namespaces.append({"type": "pid"})
    if host.get("UTSMode") != "host":
        namespaces.append({"type": "uts"})
    if host.get("CgroupnsMode", "private") == "private":
        namespaces.append({"type": "cgroup"})
    return namespaces


def no_new_privileges(host: dict) -> bool:
    if not host.get("SecurityOpt"):
        return False
    from berth.engine.security import security_options  # lazy: only --security-opt

    return security_options(host["SecurityOpt"]).no_new_privileges


def ipc_mode(host: dict) -> str:
    return host.get("IpcMode") or "private"


def capabilities(host: dict) -> list[str]:
    """docker's default capabilities with --cap-add/--cap-drop applied; all with --privileged."""
    if host.get("Privileged"):
        return list(CAPS[:last_cap() + 1])
    if not host.get("CapAdd") and not host.get("CapDrop"):
        return list(DEFAULT_CAPS)
    from berth.engine.security import effective_caps  # lazy: only --cap-add/--cap-drop

    return effective_caps(host.get("CapAdd") or [], host.get("CapDrop") or [], False)


def host_devices() -> list[dict]:
    """Every device node of the host's /dev, for --privileged (like docker's HostDevices)."""
    devices = []
    for directory, subdirs, files in os.walk("/dev"):
        subdirs[:] = [d for d in subdirs if os.path.join(directory, d) not in ("/dev/pts", "/dev/shm", "/dev/mqueue")]
        for name in files:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                devices.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                                "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                                "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return devices


def _propagation(mounts: list[dict], linux: dict) -> None:
    """moby's WithMounts: a shared bind needs a shared source mount (else docker's error) and
    makes the container's root shared; a slave one needs a shared or slave source."""
    for m in mounts:
        options = m.get("options") or ()
        wanted = {"shared", "rshared"} & set(options) or {"slave", "rslave"} & set(options)
        if m.get("type") != "bind" or not wanted:
            continue
        from berth.runtime.mount import mount_point_of, propagation_of  # lazy: only shared or slave binds

        tags = propagation_of(m["source"])
        shared = bool({"shared", "rshared"} & set(options))
        if shared and "shared" not in tags or not shared and not tags & {"shared", "master"}:
            kind = "shared" if shared else "shared or slave"
            raise BerthError(f"path {m['source']} is mounted on {mount_point_of(m['source'])} but it is not a "
                             f"{kind} mount")
        if shared:
            linux["rootfsPropagation"] = "shared"
        elif linux.get("rootfsPropagation") != "shared":
            linux["rootfsPropagation"] = "rslave"
