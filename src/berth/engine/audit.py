"""`berth audit`: where a container stands on the isolation ladder of Docker in Action (ch. 5-6),
each weakening named with the flag that caused it and the stronger setting that would still
work (policies to check reports against: engine.audit_policy).

`audit()` is pure (a container record, the image's config and the other containers' records
in; a report out); `audit_containers()` is the use case that reads them."""

import os

from berth import fastjson as json
from berth.errors import InvalidArgument, NotFound
from berth.runtime.caps import DEFAULT_CAPS

WEAKER, DEFAULT, STRONGER = "weaker", "default", "stronger"

# The book's network archetypes, by NetworkMode (any other mode names a user network: bridged).
NETWORK_RUNGS = {"none": "closed", "bridge": "bridged", "default": "bridged", "host": "open"}

# What an added capability lets a process do, for the ones that matter most (others: their name).
CAP_RISKS = {
    "CAP_SYS_ADMIN": "mount, namespaces, most of root's powers: the usual way out of a container",
    "CAP_NET_ADMIN": "configure interfaces, routes and firewall rules of its network namespace",
    "CAP_SYS_PTRACE": "trace and inject code into processes it can see",
    "CAP_SYS_MODULE": "load kernel modules: the host's kernel is its",
    "CAP_SYS_RAWIO": "raw I/O ports and /dev/mem",
    "CAP_DAC_READ_SEARCH": "read any file it can reach, and open host files by handle (the shocker escape)",
    "CAP_SYS_TIME": "set the host's clock",
    "CAP_SYS_BOOT": "reboot the host",
    "CAP_SYS_NICE": "raise priorities and pin CPUs beyond its share",
    "CAP_SYS_RESOURCE": "override resource limits",
    "CAP_NET_BROADCAST": "broadcast and listen to multicast",
    "CAP_MAC_ADMIN": "change the MAC (AppArmor, SELinux) policy",
    "CAP_MAC_OVERRIDE": "ignore the MAC (AppArmor, SELinux) policy",
    "CAP_BPF": "load BPF programs",
    "CAP_PERFMON": "use perf events on the host's kernel",
    "CAP_SYSLOG": "read the kernel's log and addresses",
    "CAP_LINUX_IMMUTABLE": "change immutable and append-only file flags",
    "CAP_IPC_LOCK": "lock memory",
    "CAP_AUDIT_CONTROL": "change the kernel's audit rules",
    "CAP_WAKE_ALARM": "wake the host from suspend",
    "CAP_BLOCK_SUSPEND": "keep the host from suspending",
    "CAP_CHECKPOINT_RESTORE": "checkpoint and restore processes",
}

# Host paths whose bind mount hands the container the host, and what each holds.
SENSITIVE_PATHS = {
    "/": "the host's whole filesystem",
    "/etc": "the host's configuration (users, passwords, services)",
    "/proc": "the host's /proc (every host process, kernel settings)",
    "/sys": "the host's /sys (kernel and device settings)",
    "/dev": "every host device node",
    "/boot": "the host's kernel and boot loader",
    "/root": "root's home on the host",
    "/home": "the users' home directories",
    "/usr": "the host's programs",
    "/lib": "the host's libraries",
    "/bin": "the host's programs",
    "/sbin": "the host's programs",
    "/run": "the host's runtime state and sockets (container engines' among them)",
    "/var/run": "the host's runtime state and sockets (container engines' among them)",
    "/var/lib/docker": "dockerd's state: every docker container's filesystem",
    "/var/lib/berth": "berth's state: every berth container's filesystem",
    "/var/lib/containers": "podman's state: every podman container's filesystem",
    "/var/log": "the host's logs",
}
# An engine's API socket is root on the host: whoever talks to it runs privileged containers.
ENGINE_SOCKETS = ("docker.sock", "berth.sock", "containerd.sock", "podman.sock", "crio.sock", "dockershim.sock")


def check(area: str, setting: str, status: str, flag: str = "", why: str = "", stronger: str = "") -> dict:
    """One row of a report: an area's setting, how it compares with docker's default, the flag
    that caused it ("no --x" when the weakening is a flag left out), why it matters and the
    stronger setting that would still work (when it can be inferred)."""
    return {"Area": area, "Setting": setting, "Status": status, "Flag": flag, "Why": why, "Stronger": stronger}


class Context:
    """What an audit knows besides the container: the image's config and the other containers
    (to name the ones a mode joins by name, and to tell whether a shareable IPC is joined)."""

    __slots__ = ("image_config", "names", "ipc_joiners", "uid")

    def __init__(self, image_config: dict | None = None, others: list[dict] = (), uid: int | None = None):
        self.image_config = image_config or {}
        self.uid = uid  # the effective uid its process runs as, when it runs (the kernel's word, not a name's)
        self.names = {r["Id"]: r["Name"].lstrip("/") for r in others}
        self.ipc_joiners: dict[str, list[str]] = {}
        for r in others:
            mode = (r.get("HostConfig") or {}).get("IpcMode") or ""
            if mode.startswith("container:"):
                self.ipc_joiners.setdefault(mode.partition(":")[2], []).append(r["Name"].lstrip("/"))

    def name(self, container_id: str) -> str:
        return self.names.get(container_id) or container_id[:12]


# --- the areas of the ladder ---------------------------------------------------------------------


def _network(record: dict, ctx: Context) -> tuple[str, list[dict]]:
    mode = record["HostConfig"].get("NetworkMode") or "default"
    if mode.startswith("container:"):
        other = ctx.name(mode.partition(":")[2])
        return "joined", [check("network", f"joined ({other})", WEAKER, f"--network container:{other}",
                                f"shares {other}'s network stack: its interfaces, ports and localhost",
                                f"--network NAME (a user network {other} is on too), reaching {other} by name")]
    rung = NETWORK_RUNGS.get(mode, "bridged")
    if rung == "closed":
        return rung, [check("network", "closed", STRONGER, "--network none")]
    if rung == "open":
        return rung, [check("network", "open (host)", WEAKER, "--network host",
                            "the host's network stack: every host interface and port, services bound to the "
                            "host's localhost", _publish_instead(record))]
    networks = sorted((record.get("NetworkSettings") or {}).get("Networks") or {}) or [mode]
    flag = "" if mode in ("bridge", "default") else f"--network {mode}"
    return rung, [check("network", f"bridged ({', '.join(networks)})", DEFAULT, flag)] + _ports(record)


def _ports(record: dict) -> list[dict]:
    """A bridged container's published ports: docker's default (every host address) is noted
    with the narrower -p that would still serve the host's own clients."""
    host = record["HostConfig"]
    rows = []
    for port, bindings in sorted((host.get("PortBindings") or {}).items()):
        number, _, proto = port.partition("/")
        suffix = f"/{proto}" if proto and proto != "tcp" else ""
        for binding in bindings or [{}]:
            host_ip, host_port = binding.get("HostIp") or "", binding.get("HostPort") or ""
            flag = f"-p {host_ip}:{host_port}:{number}{suffix}" if host_ip else \
                f"-p {host_port}:{number}{suffix}" if host_port else f"-p {number}{suffix}"
            if host_ip in ("", "0.0.0.0", "::"):
                rows.append(check("ports", f"{host_ip or '0.0.0.0'}:{host_port or '*'}->{port}", DEFAULT, flag,
                                  "reachable on every address of the host",
                                  f"-p 127.0.0.1:{host_port}:{number}{suffix}, when only the host connects to it"))
            else:
                rows.append(check("ports", f"{host_ip}:{host_port or '*'}->{port}", DEFAULT, flag))
    if host.get("PublishAllPorts"):
        rows.append(check("ports", "all exposed, on random host ports", DEFAULT, "-P",
                          "every port it exposes is reachable on every address of the host",
                          "-p for only the ports its clients use"))
    return rows or [check("ports", "none", DEFAULT)]


def _publish_instead(record: dict) -> str:
    """The -p flags that would serve what --network host serves: the ports the container asked
    to publish (discarded in host mode) and the ones its image or --expose declare."""
    ports = {}
    for port, bindings in sorted((record["HostConfig"].get("PortBindings") or {}).items()):
        for binding in bindings or [{}]:
            host_ip, host_port = binding.get("HostIp") or "", binding.get("HostPort") or ""
            ports.setdefault(port, []).append(f"{host_ip}:{host_port or port.split('/')[0]}".lstrip(":"))
    for port in sorted(record["Config"].get("ExposedPorts") or {}):
        ports.setdefault(port, [port.split("/")[0]])
    if not ports:
        return "the default bridge (leave out --network host), with -p for each port it serves"
    flags = []
    for port, hosts in sorted(ports.items(), key=lambda item: (len(item[0].partition("/")[0]), item[0])):
        number, _, proto = port.partition("/")
        for host in hosts:
            flags.append(f"-p {host}:{number}" + (f"/{proto}" if proto and proto != "tcp" else ""))
    return " ".join(flags)


def _ipc(record: dict, ctx: Context) -> tuple[str, list[dict]]:
    mode = record["HostConfig"].get("IpcMode") or "private"
    if mode == "private":
        return "private", [check("ipc", "private", DEFAULT)]
    if mode == "none":
        return "none", [check("ipc", "none", STRONGER, "--ipc none")]
    if mode == "shareable":
        joiners = ctx.ipc_joiners.get(record["Id"]) or []
        why = "other containers may join its System V IPC and /dev/shm (--ipc container:<it>)"
        if joiners:
            return "shareable", [check("ipc", "shareable", WEAKER, "--ipc shareable",
                                       f"{why}; joined by {', '.join(sorted(joiners))}")]
        return "shareable", [check("ipc", "shareable", WEAKER, "--ipc shareable", f"{why}; none does now",
                                   "--ipc private (the default), when no container is to join it")]
    if mode.startswith("container:"):
        other = ctx.name(mode.partition(":")[2])
        return "shared", [check("ipc", f"shared ({other})", WEAKER, f"--ipc container:{other}",
                                f"shares System V IPC objects and /dev/shm with {other}")]
    return "host", [check("ipc", "host", WEAKER, "--ipc host",
                          "the host's System V IPC objects and /dev/shm",
                          "--ipc shareable on one container and --ipc container:<it> on the other, when it "
                          "shares memory only with a container")]


def _pid(record: dict, ctx: Context) -> tuple[str, list[dict]]:
    mode = record["HostConfig"].get("PidMode") or ""
    if mode == "host":
        return "host", [check("pid", "host", WEAKER, "--pid host",
                              "sees every host process and, as its capabilities allow, signals and traces them",
                              "--pid container:<x>, when it needs to see one container's processes")]
    if mode.startswith("container:"):
        other = ctx.name(mode.partition(":")[2])
        return "shared", [check("pid", f"shared ({other})", WEAKER, f"--pid container:{other}",
                                f"sees and can signal {other}'s processes")]
    return "private", [check("pid", "private", DEFAULT)]


def _uts(record: dict) -> tuple[str, list[dict]]:
    if record["HostConfig"].get("UTSMode") == "host":
        return "host", [check("uts", "host", WEAKER, "--uts host",
                              "the host's hostname and domain name (changeable with CAP_SYS_ADMIN)",
                              "--hostname NAME, when it only needs a name")]
    return "private", [check("uts", "private", DEFAULT)]


def is_root(user: str) -> bool:
    """Is Config.User root? ("" is root, as "0", "root", "0:0" and "root:wheel"; a name that maps
    to uid 0 in the container's own /etc/passwd is not read: that file is the container's.)"""
    name = user.partition(":")[0]
    return name in ("", "0", "root")


def _user(record: dict, ctx: Context) -> tuple[str, bool, list[dict]]:
    user = record["Config"].get("User") or ""
    image_user = ctx.image_config.get("User") or ""
    if not is_root(user) and ctx.uid == 0:  # a name the container's /etc/passwd maps to uid 0
        return user, True, [check("user", f"{user} (uid 0)", WEAKER,
                                  f"--user {user}" if user != image_user else "no --user",
                                  f"runs as root: {user} is uid 0 in the container's /etc/passwd",
                                  "--user UID:GID of a user that is not root")]
    if not is_root(user):
        return user, False, [check("user", user, STRONGER if user != image_user else DEFAULT,
                                   f"--user {user}" if user != image_user else "")]
    why = "runs as root, the host's uid 0 (berth has no user namespace remapping)"
    if user != image_user and not is_root(image_user):
        return "root", True, [check("user", user, WEAKER, f"--user {user}",
                                    f"{why}; its image's USER is {image_user}",
                                    f"leave out --user: the image runs as {image_user}")]
    flag = f"--user {user}" if user and user != image_user else "no --user"
    return "root", True, [check("user", user or "root", WEAKER, flag,
                                why + ("; the image names no USER" if not image_user else ""),
                                "--user UID:GID of a user that is not root")]


def short_cap(cap: str) -> str:
    """CAP_SYS_ADMIN -> SYS_ADMIN, as docker's flags take it."""
    return cap.removeprefix("CAP_")


def _capabilities(record: dict) -> tuple[list[str], list[str], list[dict]]:
    host = record["HostConfig"]
    added = [c if c == "ALL" else "CAP_" + short_cap(c.upper()) for c in host.get("CapAdd") or ()]
    dropped = [c if c == "ALL" else "CAP_" + short_cap(c.upper()) for c in host.get("CapDrop") or ()]
    short_added, short_dropped = [short_cap(c) for c in added], [short_cap(c) for c in dropped]
    if host.get("Privileged"):
        return short_added, short_dropped, [check("capabilities", "all", WEAKER, "--privileged",
                                                  "every capability of the host's root")]
    rows = []
    for cap in added:
        if cap == "ALL":
            rows.append(check("capabilities", "+ALL", WEAKER, "--cap-add ALL", "every capability of the host's root",
                              "--cap-add for only the capabilities it needs"))
        elif cap in DEFAULT_CAPS or "ALL" in added:
            rows.append(check("capabilities", f"+{short_cap(cap)}", DEFAULT, f"--cap-add {short_cap(cap)}",
                              "no effect: docker grants it by default"))
        else:  # an added capability is held even when also dropped (moby's TweakCapabilities)
            rows.append(check("capabilities", f"+{short_cap(cap)}", WEAKER, f"--cap-add {short_cap(cap)}",
                              CAP_RISKS.get(cap, f"{short_cap(cap)}, beyond docker's default set")))
    for cap in dropped:
        if cap == "ALL" or cap in DEFAULT_CAPS and cap not in added:
            rows.append(check("capabilities", f"-{short_cap(cap)}", STRONGER, f"--cap-drop {short_cap(cap)}"))
    if not rows:
        rows.append(check("capabilities", f"docker's default {len(DEFAULT_CAPS)}", DEFAULT))
    return short_added, short_dropped, rows


def _privileged(record: dict) -> list[dict]:
    host = record["HostConfig"]
    if not host.get("Privileged"):
        return [check("privileged", "no", DEFAULT)]
    added = [f"--cap-add {short_cap(c)}" for c in host.get("CapAdd") or () if c != "ALL"]
    devices = [m["Source"] for m in record.get("Mounts") or ()
               if m.get("Type") == "bind" and (m.get("Source") or "").startswith("/dev/")]
    if added or devices:
        stronger = " ".join(added + [f"--device {d}" for d in devices]) + " without --privileged"
    else:
        stronger = "--cap-add and --device for only the capabilities and devices it needs"
    return [check("privileged", "yes", WEAKER, "--privileged",
                  "every capability and host device, no seccomp or AppArmor, /proc and /sys writable: root on "
                  "the host", stronger)]


def _seccomp_setting(record: dict) -> tuple[str, bool, str]:
    """(the seccomp profile as the ladder names it, no-new-privileges?, AppArmor profile) from SecurityOpt."""
    from berth.engine.security import security_options  # lazy: only audit reads SecurityOpt here

    try:
        options = security_options(record["HostConfig"].get("SecurityOpt"))
    except InvalidArgument:  # a record written by something else: take nothing as granted
        return "custom", False, ""
    profile = options.seccomp_profile
    seccomp = "default" if profile in ("", "builtin") else "unconfined" if profile == "unconfined" else "custom"
    return seccomp, options.no_new_privileges, options.apparmor_profile


def _seccomp(record: dict, seccomp: str) -> list[dict]:
    if record["HostConfig"].get("Privileged"):
        return [check("seccomp", "unconfined", WEAKER, "--privileged", "no system call filter")]
    if seccomp == "default":
        return [check("seccomp", "default", DEFAULT)]
    if seccomp == "unconfined":
        return [check("seccomp", "unconfined", WEAKER, "--security-opt seccomp=unconfined",
                      "no system call filter: every syscall the kernel has (keyctl, bpf, unshare, mount...)",
                      "docker's default profile (leave the option out), or a profile allowing only the "
                      "calls it needs")]
    profile = _custom_profile(record)
    action = profile.get("defaultAction") if isinstance(profile, dict) else None
    if action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        return [check("seccomp", "custom", WEAKER, "--security-opt seccomp=PROFILE",
                      f"a custom profile whose default action is {action}: every syscall it does not name "
                      "is allowed", "a profile whose default action refuses (SCMP_ACT_ERRNO)")]
    return [check("seccomp", "custom", DEFAULT, "--security-opt seccomp=PROFILE")]


def _custom_profile(record: dict):
    for opt in record["HostConfig"].get("SecurityOpt") or ():
        if opt.startswith(("seccomp=", "seccomp:")):
            try:
                return json.loads(opt[len("seccomp="):])
            except ValueError:
                return None
    return None


def _mac(record: dict, no_new_privileges: bool, apparmor: str) -> list[dict]:
    rows = []
    if record["HostConfig"].get("Privileged"):
        rows.append(check("apparmor", "unconfined", WEAKER, "--privileged", "no AppArmor profile"))
    elif apparmor == "unconfined":
        rows.append(check("apparmor", "unconfined", WEAKER, "--security-opt apparmor=unconfined",
                          "no AppArmor profile, on a host that has AppArmor",
                          "docker's docker-default profile (leave the option out)"))
    elif apparmor:
        rows.append(check("apparmor", apparmor, DEFAULT, f"--security-opt apparmor={apparmor}"))
    else:
        rows.append(check("apparmor", "default", DEFAULT))
    if no_new_privileges:
        rows.append(check("no-new-privileges", "yes", STRONGER, "--security-opt no-new-privileges"))
    else:
        rows.append(check("no-new-privileges", "no", DEFAULT))
    host = record["HostConfig"]
    if not host.get("Privileged") and host.get("MaskedPaths") == [] and host.get("ReadonlyPaths") == []:
        rows.append(check("system paths", "unmasked", WEAKER, "--security-opt systempaths=unconfined",
                          "the /proc and /sys paths docker masks or makes read-only (kcore, keys, sysrq-trigger, "
                          "/proc/sys...) are there and writable",
                          "docker's masked paths (leave the option out)"))
    return rows


def device_flag(device: dict) -> str:
    """A HostConfig.Devices entry as the --device flag that makes it."""
    host_path = device.get("PathOnHost") or ""
    inside = device.get("PathInContainer") or host_path
    perms = device.get("CgroupPermissions") or "rwm"
    return "--device " + host_path + (f":{inside}" if inside != host_path or perms != "rwm" else "") + \
        (f":{perms}" if perms != "rwm" else "")


def _devices(record: dict) -> tuple[list[str], list[dict]]:
    host = record["HostConfig"]
    if host.get("Privileged"):
        return ["all"], [check("devices", "all", WEAKER, "--privileged", "every host device node")]
    names, rows = [], []
    for device in host.get("Devices") or ():
        flag = device_flag(device)
        names.append(flag.removeprefix("--device "))
        perms = device.get("CgroupPermissions") or "rwm"
        what = ", ".join(w for c, w in (("r", "read"), ("w", "write"), ("m", "mknod")) if c in perms)
        stronger = f"--device {device.get('PathOnHost')}:{device.get('PathInContainer') or device.get('PathOnHost')}" \
                   ":r, when it only reads" if "w" in perms or "m" in perms else ""
        rows.append(check("devices", device.get("PathOnHost") or "", WEAKER, flag,
                          f"the host device {device.get('PathOnHost')} ({what})", stronger))
    for rule in host.get("DeviceCgroupRules") or ():
        names.append(rule)
        rows.append(check("devices", rule, WEAKER, f"--device-cgroup-rule '{rule}'",
                          "lets it use host devices the rule matches, once it has a node for them",
                          "--device for each device it uses"))
    for request in host.get("DeviceRequests") or ():
        names.append("gpus")
        rows.append(check("devices", "gpus", WEAKER, "--gpus", f"the host's GPUs ({request.get('Driver') or 'any'})"))
    if not rows:
        rows.append(check("devices", "none", DEFAULT))
    return names, rows


def cpus(host: dict) -> float:
    """The CPU limit in CPUs (0: none): --cpus, or --cpu-quota over --cpu-period."""
    if host.get("NanoCpus"):
        return host["NanoCpus"] / 1e9
    if (host.get("CpuQuota") or 0) > 0:
        return host["CpuQuota"] / (host.get("CpuPeriod") or 100000)
    return 0.0


def _limits(record: dict) -> tuple[int, float, int, list[dict]]:
    from berth.units import bytes_size  # lazy: only audit prints sizes here

    host = record["HostConfig"]
    rows = []
    memory = host.get("Memory") or 0
    if memory:
        rows.append(check("memory", bytes_size(memory), STRONGER, f"--memory {bytes_size(memory)}"))
        if host.get("MemorySwap") == -1:
            rows.append(check("memory", "unlimited swap", WEAKER, "--memory-swap -1",
                              "swap without limit beyond its memory limit", "--memory-swap SIZE"))
    else:
        rows.append(check("memory", "unlimited", WEAKER, "no --memory",
                          "no memory limit: it can take all the host's memory", "--memory SIZE (e.g. --memory 512m)"))
    if host.get("OomKillDisable"):
        rows.append(check("memory", "OOM killer off", WEAKER, "--oom-kill-disable",
                          "the kernel's OOM killer spares it" + ("" if memory else ": with no memory limit, the "
                                                                  "host's other processes are killed instead"),
                          "leave out --oom-kill-disable" if not memory else ""))
    limit = cpus(host)
    cpuset = host.get("CpusetCpus") or ""
    if limit:
        quota = f"--cpu-quota {host.get('CpuQuota')}" + \
            (f" --cpu-period {host['CpuPeriod']}" if host.get("CpuPeriod") else "")
        rows.append(check("cpu", f"{limit:g} CPUs", STRONGER, f"--cpus {limit:g}" if host.get("NanoCpus") else quota))
    elif cpuset:
        rows.append(check("cpu", f"cpuset {cpuset}", STRONGER, f"--cpuset-cpus {cpuset}"))
    else:
        shares = host.get("CpuShares") or 0
        rows.append(check("cpu", "unlimited", WEAKER, "no --cpus",
                          "no CPU limit: it can take every CPU of the host" +
                          (f" (--cpu-shares {shares} is only a relative weight under contention)" if shares else ""),
                          "--cpus N (e.g. --cpus 1.5)"))
    pids = host.get("PidsLimit") or 0
    if pids > 0:
        rows.append(check("pids", str(pids), STRONGER, f"--pids-limit {pids}"))
    else:
        rows.append(check("pids", "unlimited", WEAKER, "--pids-limit -1" if pids < 0 else "no --pids-limit",
                          "no process limit: a fork bomb in it exhausts the host's processes",
                          "--pids-limit N (e.g. --pids-limit 200)"))
    return memory, limit, max(pids, 0), rows


def _rootfs(record: dict) -> list[dict]:
    if record["HostConfig"].get("ReadonlyRootfs"):
        return [check("rootfs", "read-only", STRONGER, "--read-only")]
    return [check("rootfs", "writable", WEAKER, "no --read-only",
                  "whatever runs in it can change its programs and configuration",
                  "--read-only, with --tmpfs or a volume for each path it writes (e.g. --tmpfs /tmp)")]


def under(path: str, prefix: str) -> bool:
    """Is `path` the host path `prefix` or under it?"""
    path, prefix = os.path.normpath(path), os.path.normpath(prefix)
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _sensitivity(source: str) -> str:
    """What a host path holds that makes its bind mount dangerous ("" when nothing known)."""
    path = os.path.normpath(source) if source else ""
    path = "/" + path.lstrip("/") if path else path
    if path in SENSITIVE_PATHS:
        return SENSITIVE_PATHS[path]
    if os.path.basename(path) in ENGINE_SOCKETS:
        return "a container engine's API socket: whoever talks to it is root on the host"
    inside = sorted(p for p in SENSITIVE_PATHS if p != "/" and p.startswith(path.rstrip("/") + "/"))
    if inside:
        return "a host directory holding " + ", ".join(inside)
    return ""


def mount_flag(record: dict, mount: dict) -> str:
    """The flag that made a mount: its -v as typed, its --mount, or the --volumes-from it came by."""
    host = record["HostConfig"]
    source, target = mount.get("Source") or "", mount.get("Destination") or ""
    for bind in host.get("Binds") or ():
        parts = bind.split(":")
        if len(parts) >= 2 and parts[1] == target and (parts[0] == source or mount.get("Type") == "volume"):
            return f"-v {bind}"
    for spec in host.get("Mounts") or ():
        if spec.get("Target") == target:
            return f"--mount type={spec.get('Type') or 'volume'}" + \
                (f",source={spec['Source']}" if spec.get("Source") else "") + f",target={target}" + \
                (",readonly" if spec.get("ReadOnly") else "")
    if host.get("VolumesFrom"):
        return "--volumes-from " + ",".join(host["VolumesFrom"])
    if mount.get("Type") == "bind":
        return f"--mount type=bind,source={source},target={target}" + ("" if mount.get("RW", True) else ",readonly")
    return f"-v {target}"


def _mounts(record: dict) -> tuple[list[str], list[dict]]:
    host_mounts, rows = [], []
    for mount in record.get("Mounts") or ():
        kind = mount.get("Type") or ""
        source, target = mount.get("Source") or "", mount.get("Destination") or ""
        writable = mount.get("RW", True)
        flag = mount_flag(record, mount)
        if kind != "bind":
            name = mount.get("Name") or source
            setting = f"{kind} {name + ':' if kind == 'volume' and name else ''}{target}"
            rows.append(check("mounts", setting, DEFAULT, flag))
            continue
        host_mounts.append(f"{source}:{target}" + ("" if writable else ":ro"))
        mode = "writable" if writable else "read-only"
        holds = _sensitivity(source)
        why = f"{holds} ({mode})" if holds else f"the host path {source} ({mode})"
        if not holds and under(source, "/dev"):  # a device node bound in: --device says so, with its cgroup rule
            why = f"the host device node {source} ({mode})"
            stronger = f"--device {source}" + (f":{target}" if target != source else "")
        elif os.path.normpath(source) == "/" or holds.startswith("a container engine"):
            stronger = "" if holds.startswith("a container engine") else \
                "-v for only the host paths it needs, with :ro"
        elif writable:
            stronger = f"-v {source}:{target}:ro, when it only reads" + \
                ("" if holds else f"; a named volume (-v NAME:{target}) when it shares nothing with the host")
        else:
            stronger = "" if holds else f"a named volume (-v NAME:{target}) when it shares nothing with the host"
        rows.append(check("mounts", f"bind {source}:{target}" + ("" if writable else " (ro)"), WEAKER, flag,
                          why, stronger))
    for target in sorted(record["HostConfig"].get("Tmpfs") or {}):
        if not any(r["Setting"].endswith(f" {target}") for r in rows):
            rows.append(check("mounts", f"tmpfs {target}", DEFAULT, f"--tmpfs {target}"))
    if not rows:
        rows.append(check("mounts", "none", DEFAULT))
    return host_mounts, rows


# --- the report ----------------------------------------------------------------------------------


def audit(record: dict, ctx: Context | None = None) -> dict:
    """A container's report (the documented JSON shape of `berth audit --format json`): its
    place on each rung (Ladder), every area checked (Checks) and its weakenings, one per flag
    that caused one (Weakenings). Violations stays empty until a policy is applied."""
    ctx = ctx or Context()
    network, network_rows = _network(record, ctx)
    ipc, ipc_rows = _ipc(record, ctx)
    pid, pid_rows = _pid(record, ctx)
    uts, uts_rows = _uts(record)
    user, root, user_rows = _user(record, ctx)
    added, dropped, cap_rows = _capabilities(record)
    seccomp, no_new_privileges, apparmor = _seccomp_setting(record)
    privileged = bool(record["HostConfig"].get("Privileged"))
    devices, device_rows = _devices(record)
    memory, cpu_limit, pids, limit_rows = _limits(record)
    host_mounts, mount_rows = _mounts(record)
    # --privileged before the areas it weakens: its row holds the stronger setting
    checks = (network_rows + ipc_rows + pid_rows + uts_rows + user_rows + _privileged(record) + cap_rows +
              _seccomp(record, seccomp) + _mac(record, no_new_privileges, apparmor) + device_rows + limit_rows +
              _rootfs(record) + mount_rows)
    weakenings, seen = [], set()
    for row in checks:
        if row["Status"] == WEAKER and row["Flag"] not in seen:
            seen.add(row["Flag"])
            weakenings.append({"Flag": row["Flag"], "Area": row["Area"], "Why": row["Why"],
                               "Stronger": row["Stronger"]})
    return {
        "Id": record["Id"],
        "Name": record["Name"].lstrip("/"),
        "Image": record["Config"].get("Image") or record.get("Image") or "",
        "Ladder": {
            "Network": network, "NetworkMode": record["HostConfig"].get("NetworkMode") or "default",
            "IPC": ipc, "PID": pid, "UTS": uts,
            "User": user, "Root": root, "Uid": ctx.uid, "Userns": record["HostConfig"].get("UsernsMode") or "host",
            "Privileged": privileged, "CapAdd": added, "CapDrop": dropped,
            "Seccomp": "unconfined" if privileged else seccomp,
            "AppArmor": "unconfined" if privileged else apparmor or "default",
            "NoNewPrivileges": no_new_privileges, "Devices": devices,
            "Memory": memory, "Cpus": cpu_limit, "PidsLimit": pids,
            "ReadonlyRootfs": bool(record["HostConfig"].get("ReadonlyRootfs")), "HostMounts": host_mounts,
        },
        "Checks": checks,
        "Weakenings": weakenings,
        "Violations": [],
    }


# --- the use case ---------------------------------------------------------------------------------


def running_uid(record: dict) -> int | None:
    """The effective uid of a running container's process, from the kernel (None when it does
    not run): a user name is only what the container's own /etc/passwd says it is."""
    state = record.get("State") or {}
    pid = state.get("Pid") or 0
    if not state.get("Running") or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:  # the Name: line, which the process sets, is escaped by the kernel
                if line.startswith("Uid:"):
                    return int(line.split()[2])
    except (OSError, ValueError, IndexError):  # ended meanwhile
        return None
    return None


def audit_containers(engine, refs: list[str], policy=None) -> tuple[list[dict], list[str]]:
    """Reports of the named containers (every container when none is named, by name), each
    checked against `policy` (an engine.audit_policy.Policy) when there is one; and the errors
    of the names no container has."""
    everyone = engine.containers()
    missing = []
    if refs:
        records = []
        for ref in refs:
            try:
                records.append(engine.get(ref))
            except NotFound as err:
                missing.append(str(err))
    else:
        records = sorted(everyone, key=lambda r: r["Name"])
    image_configs: dict[str, dict] = {}
    reports = []
    for record in records:
        image_id = record.get("Image") or ""
        if image_id not in image_configs:
            image = engine.images.lookup(image_id) if image_id else None  # removed since: no config
            image_configs[image_id] = (image.config.get("config") or {}) if image is not None else {}
        report = audit(record, Context(image_configs[image_id], everyone, running_uid(record)))
        if policy is not None:
            report["Violations"] = policy.violations(report)
        reports.append(report)
    return reports, missing
