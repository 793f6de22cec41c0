"""runc's `features` (runtime-spec features.md JSON: what this runtime and host support, read
from the modules that implement each part) and `checkpoint`/`restore`, which berth-runtime
refuses clearly."""

import os
import shutil

from berth import fastjson as json
from berth.errors import NotImplementedYet
from berth.runtime.cli import SPEC_VERSION


def features() -> dict:
    from berth.runtime import caps, hooks, mount, seccomp_compile
    from berth.runtime.cgroups import unified

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(hooks.KINDS),
        "mountOptions": sorted(set(mount._FLAGS) | set(mount._PROPAGATION)),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": list(caps.CAPS),
            "cgroup": {"v1": not unified(), "v2": unified(), "systemd": os.path.isdir("/run/systemd/system"),
                       "systemdUser": False},
            "seccomp": {"enabled": True, "actions": list(seccomp_compile.ACTIONS),
                        "operators": list(seccomp_compile.OPERATORS), "archs": list(seccomp_compile.ARCHES)},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false",
                        "org.opencontainers.runtime-spec.features.runtime": "berth-runtime"},
    }


def cmd_features(options, flags: dict, container_id: None, rest: list[str]) -> int:
    print(json.dumps(features(), indent=4))
    return 0


def criu_state(criu_flag: str) -> str:
    """Why checkpoint/restore cannot run here: CRIU missing, or present but `criu check` failing
    (its last "Error" line quoted), or present and working (still not driven by berth-runtime)."""
    criu = criu_flag if os.sep in criu_flag else shutil.which(criu_flag)
    if not criu or not os.access(criu, os.X_OK):
        return f"CRIU is not installed ({criu_flag} not found)"
    import subprocess  # lazy: only checkpoint and restore

    try:
        check = subprocess.run([criu, "check"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"CRIU at {criu} cannot be run: {err}"
    if check.returncode != 0:
        errors = [line.strip() for line in (check.stderr + check.stdout).splitlines() if "Error" in line]
        last = errors[-1] if errors else f"exit status {check.returncode}"
        return f"CRIU at {criu} fails `criu check` on this kernel: {last}"
    return f"CRIU at {criu} passes `criu check`, but berth-runtime does not drive it"


def _refuse(verb: str, options) -> None:
    raise NotImplementedYet(f"{verb} is not supported: {criu_state(options.criu)}")


def cmd_checkpoint(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _refuse("checkpoint", options)
    return 1


def cmd_restore(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _refuse("restore", options)
    return 1
