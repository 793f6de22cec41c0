"""Capability names, docker's default set, and applying the OCI process.capabilities sets.

Every kernel call goes through `kernel` (runtime.syscalls, or a test's recording stand-in)."""

from berth.runtime import syscalls

CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBER = {name: i for i, name in enumerate(CAPS)}

# moby's oci/caps.DefaultCapabilities (docker 20.10+).
DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def last_cap(kernel=syscalls) -> int:
    """The highest capability this kernel knows, asked of the kernel (PR_CAPBSET_READ fails
    past it): after pivot_root, /proc/sys/kernel/cap_last_cap is whatever the rootfs says."""
    number = len(CAPS) - 1
    while _known(number + 1, kernel):
        number += 1
    while number > 0 and not _known(number, kernel):
        number -= 1
    return number


def _known(number: int, kernel) -> bool:
    try:
        kernel.prctl(syscalls.PR_CAPBSET_READ, number)
        return True
    except OSError:
        return False


def mask(names) -> int:
    """64-bit mask of capability names; names this table lacks are ignored like runc's warning."""
    bits = 0
    for name in names or ():
        number = CAP_NUMBER.get(name)
        if number is not None:
            bits |= 1 << number
    return bits


def drop_bounding(keep: int, kernel=syscalls) -> None:
    for number in range(last_cap(kernel) + 1):
        if not keep & (1 << number):
            kernel.prctl(syscalls.PR_CAPBSET_DROP, number)


def held(kernel=syscalls) -> int:
    """The permitted set of this process: nothing outside it can be granted (a host or an
    outer container may have dropped some, e.g. CAP_SYS_RESOURCE)."""
    return kernel.capget()[1]


def apply(capabilities: dict, available: int, kernel=syscalls) -> None:
    """Set effective, permitted, inheritable and ambient sets, limited to `available` (what
    we held before the user switch); bounding is dropped earlier, while CAP_SETPCAP is held."""
    kernel.capset(
        mask(capabilities.get("effective")) & available,
        mask(capabilities.get("permitted")) & available,
        mask(capabilities.get("inheritable")) & available,
    )
    ambient = capabilities.get("ambient")
    if ambient:
        for name in ambient:
            if name in CAP_NUMBER and available & (1 << CAP_NUMBER[name]):
                kernel.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, CAP_NUMBER[name])
