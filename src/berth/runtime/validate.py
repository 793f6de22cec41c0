"""Checks runc makes on a bundle's config.json before anything is created
(runc libcontainer/configs/validate/validator.go): which sysctls a container may set.

/proc/sys is only partly namespaced: a sysctl is written in the container's own namespace
of its kind, or refused, so that a container never changes the host's values. The rule lives
here once; the engine applies it to its modes (host, container:<x>) at create, the runtime
to the namespaces of a spec."""

import os

from berth.errors import InvalidArgument

# runc's validSysctlMap: the IPC namespace's sysctls (with fs.mqueue.*)
IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"))

# OCI namespace type -> its name under /proc/<pid>/ns
NS_FILES = {"network": "net", "ipc": "ipc", "uts": "uts", "user": "user"}


def dotted(key: str) -> str:
    """runc's convertSysctlVariableToDotsSeparator: "net/ipv4/ip_forward" -> "net.ipv4.ip_forward"."""
    for i, char in enumerate(key):
        if char == ".":
            return key
        if char == "/":
            return key[:i] + key[i:].translate(_SWAP_SEPARATORS)
    return key


_SWAP_SEPARATORS = str.maketrans("./", "/.")


def _q(text: str) -> str:
    """Go's %q, as runc prints the key."""
    from berth.strconv import quote  # lazy: only refusals need it, and run imports this module

    return quote(text)


def check_sysctls(keys, shares_host) -> None:
    """Refuse a sysctl unless the container has its own namespace of that kind, with runc's
    words. `shares_host(kind)` -> True when the container's "network", "ipc", "uts" or "user"
    namespace is the host's (asked only for the kinds the keys need)."""
    for raw in keys:
        key = dotted(raw)
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if shares_host("ipc"):
                raise InvalidArgument(f"sysctl {_q(key)} is not allowed in the hosts ipc namespace")
            continue
        if key.startswith("net."):
            if shares_host("network"):
                raise InvalidArgument(f"sysctl {_q(key)} not allowed in host network namespace")
            continue
        if key in ("kernel.domainname", "kernel.hostname") and not shares_host("uts"):
            if key == "kernel.domainname":
                continue
            raise InvalidArgument(f'sysctl {_q(key)} is not allowed as it conflicts with the OCI "hostname" field')
        if key.startswith("user."):
            if shares_host("user"):
                raise InvalidArgument(f"setting ucounts without a user namespace not allowed: {key}")
            continue
        raise InvalidArgument(f"sysctl {_q(key)} is not in a separate kernel namespace")


def spec_shares_host(spec: dict):
    """For a spec's linux.namespaces: a `shares_host(kind)` for check_sysctls. A kind is the
    host's when it is absent (the runtime's own is kept) or its path is the runtime's own
    namespace (runc's isHostNetNS, here for every kind)."""
    entries = {ns.get("type"): ns for ns in ((spec.get("linux") or {}).get("namespaces") or ())}

    def shares_host(kind: str) -> bool:
        entry = entries.get(kind)
        if entry is None:
            return True
        path = entry.get("path")
        if not path:
            return False
        ours = f"/proc/self/ns/{NS_FILES[kind]}"
        try:
            mine, theirs = os.stat(ours), os.stat(path)
        except OSError as err:
            raise InvalidArgument(f"invalid {NS_FILES[kind]}ns path: stat {err.filename}: "
                                  f"{(err.strerror or str(err)).lower()}") from None
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)

    return shares_host


def check_spec(spec: dict) -> None:
    """runc's sysctl validation of a spec (nothing to do without linux.sysctl)."""
    sysctls = (spec.get("linux") or {}).get("sysctl")
    if sysctls:
        check_sysctls(sysctls, spec_shares_host(spec))


def check_bundle(spec: dict) -> None:
    """runc's validation of a bundle's config.json, and what this host cannot do, refused before
    anything is created."""
    if not isinstance(spec, dict):
        raise InvalidArgument("config.json: not a JSON object")
    _check_version(spec.get("ociVersion"))
    process = spec.get("process") or {}
    if not isinstance(process, dict) or not process.get("args"):
        raise InvalidArgument("args must not be empty")
    linux = spec.get("linux") or {}
    _check_namespaces(linux)
    kinds = {ns.get("type") for ns in linux.get("namespaces") or ()}
    if (linux.get("maskedPaths") or linux.get("readonlyPaths")) and "mount" not in kinds:
        raise InvalidArgument("unable to restrict sys entries without a private MNT namespace")
    if spec.get("hostname") and "uts" not in kinds:
        raise InvalidArgument("unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and "uts" not in kinds:
        raise InvalidArgument("unable to set domainname without a private UTS namespace")
    for device in linux.get("devices") or ():
        if device.get("type") not in ("b", "c", "u", "p"):
            raise InvalidArgument(f"device {device.get('path')}: invalid type {device.get('type')!r}")
    _check_security(process, linux)
    _check_process_fields(process, linux)
    for m in spec.get("mounts") or ():
        if (m.get("uidMappings") or m.get("gidMappings")) and "bind" not in (m.get("type"), *(m.get("options") or ())) \
                and "rbind" not in (m.get("options") or ()):
            raise InvalidArgument(f"mount {m.get('destination')}: idmapped mounts are only supported for bind mounts")
    check_spec(spec)


def _check_version(version) -> None:
    """runtime-spec 1.x: a config of another major version means something else."""
    major = str(version or "").partition(".")[0]
    if major != "1":
        raise InvalidArgument(f"unsupported spec version {version!r}: berth-runtime implements runtime-spec 1.x")


_NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def _check_namespaces(linux: dict) -> None:
    seen = set()
    for ns in linux.get("namespaces") or ():
        kind = ns.get("type")
        if kind not in _NAMESPACE_TYPES or kind == "time":
            raise InvalidArgument(f"namespace {kind!r} is not supported")
        if kind in seen:
            raise InvalidArgument(f"malformed spec file: duplicated ns {kind!r}")
        seen.add(kind)
    new_user = any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or ())
    if new_user and not (linux.get("uidMappings") and linux.get("gidMappings")):  # without one: ignored, as runc
        raise InvalidArgument("user namespaces enabled, but no uid or gid mappings found")


def _enabled(path: str, wanted: str) -> bool:
    try:
        with open(path) as f:
            return f.read().strip() == wanted
    except OSError:
        return False


def _check_security(process: dict, linux: dict) -> None:
    """AppArmor and SELinux fields on a host without them: refused, as runc does (it refuses
    an SELinux label, and fails to apply an AppArmor profile)."""
    if process.get("apparmorProfile") and not _enabled("/sys/module/apparmor/parameters/enabled", "Y"):
        raise InvalidArgument(f"apparmor profile {process['apparmorProfile']!r} is specified in config, "
                              "but AppArmor is not enabled on this host")
    if (process.get("selinuxLabel") or linux.get("mountLabel")) and not os.path.exists("/sys/fs/selinux/enforce"):
        raise InvalidArgument("selinux label is specified in config, but selinux is disabled or not supported")


def _check_process_fields(process: dict, linux: dict) -> None:
    from berth.runtime import process as proc  # lazy: its tables; loaded by the runtime anyway

    personality = linux.get("personality")
    if personality and personality.get("domain") not in proc._PERSONALITIES:
        raise InvalidArgument(f"personality domain {personality.get('domain')!r} is not supported (LINUX, LINUX32)")
    if personality and personality.get("flags"):
        raise InvalidArgument("personality flags are not supported")
    priority = process.get("ioPriority")
    if priority and priority.get("class") not in proc._IOPRIO_CLASSES:
        raise InvalidArgument(f"invalid io priority class: {priority.get('class')}")
    scheduler = process.get("scheduler")
    if scheduler:
        if scheduler.get("policy") not in proc._SCHED_POLICIES:
            raise InvalidArgument(f"invalid scheduler policy: {scheduler.get('policy')}")
        for flag in scheduler.get("flags") or ():
            if flag not in proc._SCHED_FLAGS:
                raise InvalidArgument(f"invalid scheduler flag: {flag}")
