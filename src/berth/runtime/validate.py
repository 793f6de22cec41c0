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
    """runc's sysctl validation of a bundle's config.json (nothing to do without linux.sysctl)."""
    sysctls = (spec.get("linux") or {}).get("sysctl")
    if sysctls:
        check_sysctls(sysctls, spec_shares_host(spec))
