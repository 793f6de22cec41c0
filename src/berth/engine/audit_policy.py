"""Audit policies: a JSON file of rules (README's "Isolation audit" lists its keys) that
berth.engine.audit's reports are checked against, each violation naming the flag that caused it."""

from berth import fastjson as json
from berth.engine.audit import DEFAULT, STRONGER, WEAKER, short_cap, under
from berth.errors import InvalidArgument
from berth.runtime.caps import CAPS, DEFAULT_CAPS

IPC_WORDS = ("none", "private", "shareable", "shared", "host")
PID_WORDS = ("private", "shared", "host")
UTS_WORDS = ("private", "host")
SECCOMP_WORDS = ("default", "custom", "unconfined")

# key -> (kind, words a list may hold or None for any); README's "Isolation audit" documents each.
POLICY_KEYS = {
    "allowed-networks": ("list", None),
    "allowed-ipc": ("list", IPC_WORDS),
    "allowed-pid": ("list", PID_WORDS),
    "allowed-uts": ("list", UTS_WORDS),
    "allowed-seccomp": ("list", SECCOMP_WORDS),
    "max-cap-add": ("int", None),
    "allowed-cap-add": ("list", None),
    "required-cap-drop": ("list", None),
    "forbid-privileged": ("bool", None),
    "require-non-root": ("bool", None),
    "require-no-new-privileges": ("bool", None),
    "forbid-devices": ("bool", None),
    "allowed-devices": ("list", None),
    "require-memory-limit": ("bool", None),
    "require-cpu-limit": ("bool", None),
    "require-pids-limit": ("bool", None),
    "require-read-only": ("bool", None),
    "forbid-host-mounts": ("bool", None),
    "forbid-sensitive-host-mounts": ("bool", None),
    "allowed-host-mounts": ("list", None),
    "max-weakenings": ("int", None),
}


class Policy:
    """What a policy file allows: each key of POLICY_KEYS that it sets (an absent key allows all)."""

    __slots__ = ("rules", "source")

    def __init__(self, rules: dict, source: str = "policy"):
        self.source = source
        self.rules = {}
        if not isinstance(rules, dict):
            raise InvalidArgument(f"{source}: a policy is a JSON object, not {_json_kind(rules)}")
        for key, value in rules.items():
            if key not in POLICY_KEYS:
                raise InvalidArgument(f"{source}: unknown policy key {json.dumps(key)} (known: "
                                      f"{', '.join(POLICY_KEYS)})")
            kind, words = POLICY_KEYS[key]
            if kind == "bool" and not isinstance(value, bool):
                raise InvalidArgument(f"{source}: {key} must be true or false, not {_json_kind(value)}")
            if kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidArgument(f"{source}: {key} must be a number >= 0, not {json.dumps(value)}")
            if kind == "list":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidArgument(f"{source}: {key} must be a list of strings, not {_json_kind(value)}")
                wrong = [v for v in value if words is not None and v not in words]
                if wrong:
                    raise InvalidArgument(f"{source}: {key}: {json.dumps(wrong[0])} is none of "
                                          f"{', '.join(words)}")
                if key in ("allowed-cap-add", "required-cap-drop"):
                    value = [_cap_name(v, source, key) for v in value]
            self.rules[key] = value

    @classmethod
    def strictest(cls) -> "Policy":
        """--strict without --policy: no weakening at all."""
        return cls({"max-weakenings": 0}, "--strict")

    def violations(self, report: dict) -> list[str]:
        """Each way the report is weaker than this policy: the flag that caused it and the rule."""
        found = []
        for key, value in self.rules.items():
            for flag, message in RULES[key](report, value):
                found.append(f"{flag}: {message} ({key} in {self.source})")
        return found


def _json_kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _cap_name(name: str, source: str, key: str) -> str:
    upper = name.upper()
    if upper == "ALL":
        return upper
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAPS:
        raise InvalidArgument(f"{source}: {key}: unknown capability {json.dumps(name)}")
    return short_cap(full)


def _flags(report: dict, area: str, statuses=(WEAKER,)) -> list[str]:
    return [row["Flag"] for row in report["Checks"] if row["Area"] == area and row["Status"] in statuses]


def _first_flag(report: dict, area: str, fallback: str) -> str:
    flags = [f for f in _flags(report, area, (WEAKER, DEFAULT, STRONGER)) if f]
    return flags[0] if flags else fallback


def _rule_networks(report: dict, allowed: list) -> list:
    ladder = report["Ladder"]
    mode = ladder["NetworkMode"]
    names = {mode, "bridge" if mode == "default" else mode, ladder["Network"]}
    if mode.startswith("container:"):
        names.add("container")
    if names & set(allowed):
        return []
    flag = _first_flag(report, "network", f"--network {mode}")
    return [(flag, f"network {mode} ({ladder['Network']}) is not allowed: {', '.join(allowed) or 'none allowed'}")]


def _rule_words(area: str, field: str):
    def rule(report: dict, allowed: list) -> list:
        value = report["Ladder"][field]
        if value in allowed:
            return []
        return [(_first_flag(report, area, f"--{area}"), f"{area} {value} is not allowed: {', '.join(allowed)}")]
    return rule


def _rule_max_cap_add(report: dict, limit: int) -> list:
    added = [row for row in report["Checks"] if row["Area"] == "capabilities" and row["Status"] == WEAKER]
    count = sum(len(CAPS) - len(DEFAULT_CAPS) if row["Setting"] in ("all", "+ALL") else 1 for row in added)
    if count <= limit:
        return []
    return [(", ".join(row["Flag"] for row in added), f"{count} capabilities added beyond docker's default, "
             f"{limit} allowed")]


def _rule_allowed_cap_add(report: dict, allowed: list) -> list:
    return [(row["Flag"], f"capability {row['Setting'].lstrip('+')} is not allowed: "
             f"{', '.join(allowed) or 'none allowed'}")
            for row in report["Checks"]
            if row["Area"] == "capabilities" and row["Status"] == WEAKER and row["Setting"].lstrip("+") not in allowed]


def _rule_cap_drop(report: dict, required: list) -> list:
    dropped = set(report["Ladder"]["CapDrop"])
    missing = [c for c in required if c not in dropped and "ALL" not in dropped]
    return [(f"no --cap-drop {c}", f"--cap-drop {c} is required") for c in missing]


def _rule_flag(area: str, message: str, setting: str | None = None):
    def rule(report: dict, on: bool) -> list:
        if not on:
            return []
        return [(row["Flag"], message) for row in report["Checks"]
                if row["Area"] == area and row["Status"] == WEAKER and (setting is None or row["Setting"] == setting)]
    return rule


def _rule_no_new_privileges(report: dict, on: bool) -> list:
    if on and not report["Ladder"]["NoNewPrivileges"]:
        return [("no --security-opt no-new-privileges", "no-new-privileges is required")]
    return []


def _rule_allowed_devices(report: dict, allowed: list) -> list:
    return [(row["Flag"], f"device {row['Setting']} is not allowed: {', '.join(allowed) or 'none allowed'}")
            for row in report["Checks"]
            if row["Area"] == "devices" and row["Status"] == WEAKER and row["Setting"] not in allowed]


def _host_mount_rows(report: dict) -> list[dict]:
    return [row for row in report["Checks"] if row["Area"] == "mounts" and row["Setting"].startswith("bind ")]


def _rule_sensitive_mounts(report: dict, on: bool) -> list:
    if not on:
        return []
    return [(row["Flag"], f"a sensitive host path: {row['Why']}") for row in _host_mount_rows(report)
            if not row["Why"].startswith("the host path ")]


def _rule_allowed_host_mounts(report: dict, allowed: list) -> list:
    found = []
    for row, spec in zip(_host_mount_rows(report), report["Ladder"]["HostMounts"], strict=False):
        source = spec.split(":")[0]
        if not any(under(source, prefix) for prefix in allowed):
            found.append((row["Flag"], f"host path {source} is not allowed: {', '.join(allowed) or 'none allowed'}"))
    return found


def _rule_max_weakenings(report: dict, limit: int) -> list:
    if len(report["Weakenings"]) <= limit:
        return []
    return [(w["Flag"], f"a weakening ({w['Area']}): {limit} allowed") for w in report["Weakenings"]]


RULES = {
    "allowed-networks": _rule_networks,
    "allowed-ipc": _rule_words("ipc", "IPC"),
    "allowed-pid": _rule_words("pid", "PID"),
    "allowed-uts": _rule_words("uts", "UTS"),
    "allowed-seccomp": _rule_words("seccomp", "Seccomp"),
    "max-cap-add": _rule_max_cap_add,
    "allowed-cap-add": _rule_allowed_cap_add,
    "required-cap-drop": _rule_cap_drop,
    "forbid-privileged": _rule_flag("privileged", "privileged containers are forbidden"),
    "require-non-root": _rule_flag("user", "running as root is forbidden"),
    "require-no-new-privileges": _rule_no_new_privileges,
    "forbid-devices": _rule_flag("devices", "host devices are forbidden"),
    "allowed-devices": _rule_allowed_devices,
    "require-memory-limit": _rule_flag("memory", "a memory limit is required", "unlimited"),
    "require-cpu-limit": _rule_flag("cpu", "a CPU limit is required", "unlimited"),
    "require-pids-limit": _rule_flag("pids", "a process limit is required", "unlimited"),
    "require-read-only": _rule_flag("rootfs", "a read-only root filesystem is required"),
    "forbid-host-mounts": lambda report, on: [(row["Flag"], "host mounts are forbidden")
                                              for row in _host_mount_rows(report)] if on else [],
    "forbid-sensitive-host-mounts": _rule_sensitive_mounts,
    "allowed-host-mounts": _rule_allowed_host_mounts,
    "max-weakenings": _rule_max_weakenings,
}


def load_policy(path: str) -> Policy:
    """A policy file (JSON), checked whole before any container is audited."""
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20)
    except IsADirectoryError:
        raise InvalidArgument(f"policy file {path}: is a directory") from None
    except OSError as err:
        raise InvalidArgument(f"policy file {path}: {err.strerror.lower() if err.strerror else err}") from None
    import json as std_json  # lazy: its errors say where a hand-written file is wrong (fastjson's do not)

    try:
        rules = std_json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"policy file {path}: not valid JSON: {err}") from None
    return Policy(rules, f"policy file {path}")
