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


def _refuse(verb: str, options) -> None:
    criu = options.criu if os.sep in options.criu else shutil.which(options.criu)
    where = f"CRIU is at {criu}, but " if criu and os.path.exists(criu) else "CRIU is not installed, and "
    raise NotImplementedYet(f"{verb} is not supported: {where}berth-runtime does not drive it yet")


def cmd_checkpoint(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _refuse("checkpoint", options)
    return 1


def cmd_restore(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _refuse("restore", options)
    return 1
