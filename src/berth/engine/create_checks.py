"""docker's checks of what a create asks for, the same whether it came as run/create flags
(berth.cli.run) or as the Engine API's Config + HostConfig JSON (berth.api.create): which
namespace modes, restart policies, sysctls, shm sizes and log options are valid. Cheap to
import; each front door words the flag or field it names."""

from berth.errors import InvalidArgument

RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
IPC_MODES = ("", "private", "shareable", "host", "none")
# docker's namespaced sysctls: the IPC ones, and net.* in the container's own network namespace
SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
              "kernel.shmmni", "kernel.shm_rmid_forced")


def _joins_container(mode: str) -> bool:
    return mode.startswith("container:") and bool(mode.partition(":")[2])


def valid_ipc_mode(mode: str) -> bool:
    return mode in IPC_MODES or _joins_container(mode)


def valid_pid_mode(mode: str) -> bool:
    return mode in ("", "host") or _joins_container(mode)


def valid_uts_mode(mode: str) -> bool:
    return mode in ("", "host")


def valid_cgroupns_mode(mode: str) -> bool:
    return mode in ("", "host", "private")


def valid_userns_mode(mode: str) -> bool:
    return mode in ("", "host")


def check_restart_policy(policy: dict) -> dict:
    """docker's validateRestartPolicy: a known policy, a retry count only with on-failure and
    never negative. The policy, as stored."""
    name = policy.get("Name") or "no"
    retries = policy.get("MaximumRetryCount") or 0
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                              "'on-failure', or 'unless-stopped'")
    if not isinstance(retries, int) or isinstance(retries, bool):
        raise InvalidArgument("invalid restart policy: maximum retry count must be an integer")
    if retries and name != "on-failure":
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": retries}


def sysctl_allowed(key: str) -> bool:
    """docker's ValidateSysctl: only sysctls namespaced per container can be set."""
    return key in SYSCTL_IPC or key.startswith(("fs.mqueue.", "net.")) or key == "kernel.domainname"


def check_shm_size(size: int) -> int:
    if size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    return size


def check_log_request(driver: str, config: dict) -> None:
    """The driver `none` takes no options (docker's CLI and daemon both refuse them)."""
    if driver == "none" and config:
        raise InvalidArgument("invalid logging opts for driver none")
