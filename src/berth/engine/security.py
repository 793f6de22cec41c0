"""docker's security options: `--security-opt` (the CLI's and the daemon's checks), capability
names and sets (`--cap-add/--cap-drop/--privileged`), docker's seccomp profile turned into a
container's OCI linux.seccomp section, and the warning when an LSM option cannot be applied.

Sources followed: docker/cli opts.go (parseSecurityOpts, parseSystemPaths), moby
daemon/daemon_unix.go (parseSecurityOpt), daemon/seccomp_linux.go (WithSeccomp), oci/caps
(NormalizeLegacyCapabilities, TweakCapabilities), moby/profiles seccomp (setupSeccomp)."""

import os

from berth import fastjson as json  # `import json` costs ~8 ms on the run path
from berth.errors import InvalidArgument
from berth.runtime.caps import CAPS, DEFAULT_CAPS, held

SECCOMP_UNCONFINED = "unconfined"
SECCOMP_DEFAULT = "builtin"
APPARMOR_UNCONFINED = "unconfined"
APPARMOR_DEFAULT = "docker-default"
ALL_CAPABILITIES = "ALL"

DEFAULT_PROFILE = os.path.join(os.path.dirname(__file__), "seccomp_default.json")

# GOARCH-style names moby's profiles use in includes/excludes.arches, by uname machine
NATIVE_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i386": "x86", "i686": "x86", "armv7l": "arm",
               "armv6l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64",
               "mips64": "mips64", "loongarch64": "loongarch64"}
# ... and the libseccomp architecture of each (moby's nativeToSeccomp); loongarch64 is absent
# there too, so such a host gets no archMap entry, as with docker.
SECCOMP_ARCH = {"x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
                "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32",
                "mipsel64": "SCMP_ARCH_MIPSEL64", "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
                "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC", "ppc64": "SCMP_ARCH_PPC64",
                "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64", "s390": "SCMP_ARCH_S390",
                "s390x": "SCMP_ARCH_S390X"}


def go_quote(text: str) -> str:
    from berth.strconv import quote  # lazy: only refusals need it, and run imports this module

    return quote(text)


# --- --security-opt ----------------------------------------------------------------------------


class SecurityOptions:
    """What a container's HostConfig.SecurityOpt asks for (moby's container.SecurityOptions)."""

    __slots__ = ("seccomp_profile", "apparmor_profile", "label_opts", "no_new_privileges", "writable_cgroups",
                 "given")

    def __init__(self):
        self.seccomp_profile = ""  # "", "builtin", "unconfined" or a profile's JSON text
        self.apparmor_profile = ""
        self.label_opts: list[str] = []
        self.no_new_privileges = False
        self.writable_cgroups: bool | None = None
        self.given: dict[str, list[str]] = {}  # "apparmor"/"label" -> the confining options as typed


def parse_security_opts(values) -> dict:
    """`docker run --security-opt` values -> the HostConfig fields docker sets: `SecurityOpt`
    (a profile file given with seccomp=<path> is read now and stored as its compact JSON,
    like docker), and empty `MaskedPaths`/`ReadonlyPaths` for systempaths=unconfined.
    Applies the CLI's checks, then the daemon's, with their messages."""
    security_opt = []
    host: dict = {}
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise InvalidArgument(f"invalid --security-opt: {go_quote(opt)}")
        if key == "seccomp" and value not in (SECCOMP_DEFAULT, SECCOMP_UNCONFINED):
            opt = "seccomp=" + read_seccomp_profile(value)
        if opt == "systempaths=unconfined":
            host["MaskedPaths"] = []
            host["ReadonlyPaths"] = []
            continue
        security_opt.append(opt)
    security_options(security_opt)
    host["SecurityOpt"] = security_opt
    return host


def security_options(security_opt) -> SecurityOptions:
    """moby's parseSecurityOpt over a stored HostConfig.SecurityOpt."""
    options = SecurityOptions()
    for opt in security_opt or ():
        if opt == "no-new-privileges":
            options.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            options.writable_cgroups = True
            continue
        if opt == "disable":
            options.label_opts.append("disable")
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:  # the colon forms docker deprecated in 1.13 but still accepts
            key, _, value = opt.partition(":")
        else:
            raise InvalidArgument(f"invalid --security-opt 1: {go_quote(opt)}")
        if key == "label":
            options.label_opts.append(value)
            if value != "disable":
                options.given.setdefault("label", []).append(opt)
        elif key == "apparmor":
            options.apparmor_profile = value
            options.given["apparmor"] = [opt]
        elif key == "seccomp":
            options.seccomp_profile = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            from berth.strconv import parse_bool  # lazy: only these options need it; run imports this module

            try:
                flag = parse_bool(value)
            except ValueError:
                raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}") from None
            if key == "no-new-privileges":
                options.no_new_privileges = flag
            else:
                options.writable_cgroups = flag
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
    if options.label_opts and selinux_enabled():
        _check_labels(options.label_opts)
    return options


def _check_labels(label_opts: list[str]) -> None:
    """go-selinux label.InitLabels' validation (docker runs it only where SELinux is enabled)."""
    if "disable" in label_opts:
        return
    for opt in label_opts:
        key, sep, _ = opt.partition(":")
        if not sep or key not in ("type", "filetype", "user", "role", "level"):
            raise InvalidArgument(f"bad label option {go_quote(opt)}, valid options 'disable' or \n"
                                  "'user, role, level, type, filetype' followed by ':' and a value")


def read_seccomp_profile(path: str) -> str:
    """docker CLI: read the profile file and send its JSON compacted; berth also checks now
    what docker's daemon checks only at start, so a bad profile creates nothing."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except IsADirectoryError:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: read {path}: is a directory") from None
    except OSError as err:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: open {path}: "
                              f"{(err.strerror or str(err)).lower()}") from None
    try:
        text = raw.decode()
        json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"compacting json for seccomp profile ({path}) failed: {err}") from None
    compact = _compact_json(text)
    profile = load_seccomp_profile(compact)
    section = oci_seccomp(profile, list(DEFAULT_CAPS))
    if section is not None:
        from berth.runtime.seccomp_compile import SeccompError, check  # lazy: only a custom profile

        try:
            check(section)
        except SeccompError as err:
            raise InvalidArgument(str(err)) from None
    return compact


def _compact_json(text: str) -> str:
    """encoding/json.Compact: insignificant whitespace removed, nothing else changed."""
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch not in " \t\r\n":
            out.append(ch)
    return "".join(out)


# --- LSMs ---------------------------------------------------------------------------------------


def apparmor_enabled() -> bool:
    """runc's apparmor.IsEnabled."""
    if not os.path.exists("/sys/kernel/security/apparmor"):
        return False
    try:
        with open("/sys/module/apparmor/parameters/enabled", "rb") as f:
            return f.read(1) == b"Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    """go-selinux GetEnabled: selinuxfs mounted and this process has a label other than kernel."""
    if not os.path.exists("/sys/fs/selinux/enforce"):
        return False
    try:
        with open("/proc/self/attr/current", "rb") as f:
            label = f.read().strip(b"\0\n ")
    except OSError:
        return False
    return label not in (b"", b"kernel")


def lsm_warnings(security_opt) -> list[str]:
    """One line per confinement the options ask for that this host cannot apply. docker records
    such options and silently ignores them; berth records them too, but says so."""
    options = security_options(security_opt)
    warnings = []
    apparmor = options.apparmor_profile
    if apparmor and apparmor != APPARMOR_UNCONFINED and not apparmor_enabled():
        warnings.append(f"WARNING: AppArmor is not available on this host: --security-opt "
                        f"{options.given['apparmor'][0]} is recorded but not applied")
    labels = options.given.get("label")
    if labels and not selinux_enabled():
        shown = ", ".join(f"--security-opt {opt}" for opt in labels)
        verb = "is" if len(labels) == 1 else "are"
        warnings.append(f"WARNING: SELinux is not available on this host: {shown} {verb} recorded but not applied")
    if options.seccomp_profile != SECCOMP_UNCONFINED:
        from berth.runtime import seccomp  # lazy: not for create

        if not seccomp.supported():  # docker's daemon log line, here where the user sees it
            warnings.append("WARNING: seccomp is not enabled in your kernel, running container without "
                            "default profile")
    return warnings


def apparmor_profile(security_opt, privileged: bool = False) -> str:
    """The container's AppArmorProfile as docker records it (saveAppArmorConfig): "" on a host
    without AppArmor, else the one asked for, or unconfined/docker-default."""
    if not apparmor_enabled():
        return ""
    profile = security_options(security_opt).apparmor_profile
    return profile or (APPARMOR_UNCONFINED if privileged else APPARMOR_DEFAULT)


# --- capabilities -------------------------------------------------------------------------------


def _normalize(names) -> list[str]:
    """The docker client: upper-cased, CAP_ prefixed (except ALL), duplicates removed, sorted."""
    normalized = set()
    for name in names or ():
        name = name.upper()
        if name != ALL_CAPABILITIES and not name.startswith("CAP_"):
            name = "CAP_" + name
        normalized.add(name)
    return sorted(normalized)


def _available() -> set[str]:
    """Capabilities this process holds: on a kernel (or in a parent container) without some,
    docker refuses them rather than starting a container that silently lacks them."""
    bits = held()
    return {name for number, name in enumerate(CAPS) if bits & (1 << number)}


def _validate(names: list[str]) -> list[str]:
    """moby's NormalizeLegacyCapabilities checks."""
    available = None
    for name in names:
        if name == ALL_CAPABILITIES:
            continue
        if name not in CAPS:
            raise InvalidArgument(f"unknown capability: {go_quote(name)}")
        if available is None:
            available = _available()
        if name not in available:
            raise InvalidArgument("capability not supported by your kernel or not available in the current "
                                  f"environment: {go_quote(name)}")
    return names


def normalize_caps(add, drop) -> tuple[list[str], list[str]]:
    """--cap-add/--cap-drop as docker stores them in HostConfig.CapAdd/CapDrop: names in any
    case, with or without CAP_, or ALL; an unknown one fails with docker's message."""
    return _validate(_normalize(add)), _validate(_normalize(drop))


def all_caps() -> list[str]:
    """moby caps.GetAllCapabilities: every capability this environment has."""
    available = _available()
    return [name for name in CAPS if name in available]


def effective_caps(add, drop, privileged: bool = False) -> list[str]:
    """moby caps.TweakCapabilities over docker's defaults: the container's capability set
    (bounding = permitted = effective)."""
    if privileged:
        return all_caps()
    if not add and not drop:
        return list(DEFAULT_CAPS)
    cap_drop = _validate(_normalize(drop))
    cap_add = _validate(_normalize(add))
    if ALL_CAPABILITIES in cap_add:
        return [name for name in all_caps() if name not in cap_drop]
    if ALL_CAPABILITIES in cap_drop:
        return list(cap_add)
    caps = [name for name in DEFAULT_CAPS if name not in cap_drop]
    return list(dict.fromkeys(caps + cap_add))


# --- seccomp ------------------------------------------------------------------------------------


def default_seccomp_profile() -> dict:
    with open(DEFAULT_PROFILE, "rb") as f:
        return json.loads(f.read())


def load_seccomp_profile(text: str) -> dict:
    """moby LoadProfile's decoding step, with its error prefix."""
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"Decoding seccomp profile failed: {err}") from None
    if not isinstance(profile, dict):
        raise InvalidArgument("Decoding seccomp profile failed: json: cannot unmarshal "
                              f"{_json_kind(profile)} into Go value of type seccomp.Seccomp")
    for field, kind in (("defaultAction", str), ("architectures", list), ("archMap", list), ("syscalls", list),
                        ("flags", list)):
        if profile.get(field) is not None and not isinstance(profile[field], kind):
            raise InvalidArgument(f"Decoding seccomp profile failed: json: cannot unmarshal "
                                  f"{_json_kind(profile[field])} into Go struct field Seccomp.{field}")
    for rule in profile.get("syscalls") or ():
        if not isinstance(rule, dict):
            raise InvalidArgument("Decoding seccomp profile failed: json: cannot unmarshal "
                                  f"{_json_kind(rule)} into Go struct field Seccomp.syscalls")
        for which in ("includes", "excludes"):
            kernel = (rule.get(which) or {}).get("minKernel")
            if kernel:
                _parse_min_kernel(kernel)
    return profile


def _json_kind(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(value), "number")


def _parse_min_kernel(version) -> tuple[int, int]:
    """moby KernelVersion.UnmarshalJSON: "<kernel>.<major>"."""
    shown = f'"{version}"' if isinstance(version, str) else str(version)
    parts = version.split(".", 2) if isinstance(version, str) else []
    if len(parts) != 2 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise InvalidArgument(f'Decoding seccomp profile failed: invalid kernel version: {shown}, '
                              'expected "<kernel>.<major>"')
    kernel, major = int(parts[0]), int(parts[1])
    if kernel == 0 and major == 0:
        raise InvalidArgument(f'Decoding seccomp profile failed: invalid kernel version: {shown}, '
                              'expected "<kernel>.<major>": version cannot be 0.0')
    return kernel, major


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """The running kernel's "<kernel>.<major>" (moby parseRelease: "%d.%d")."""
    release = release or os.uname().release
    numbers = []
    for part in release.split(".")[:2]:
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        numbers.append(int(digits))
    if len(numbers) < 2:
        raise InvalidArgument(f'failed to parse kernel version "{release}"')
    return numbers[0], numbers[1]


def oci_seccomp(profile: dict, caps, arch: str | None = None, kernel: tuple[int, int] | None = None) -> dict | None:
    """moby's setupSeccomp: docker's profile format -> the OCI linux.seccomp section for a
    container whose bounding set is `caps`, on `arch` (uname machine; default this host) and
    `kernel` ((kernel, major); default the running one). None: the profile disables seccomp."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise InvalidArgument("both 'architectures' and 'archMap' are specified in the seccomp profile, use "
                              "either 'architectures' or 'archMap'")
    native = NATIVE_ARCH.get(arch or os.uname().machine, arch or os.uname().machine)
    caps = set(caps)
    section: dict = {"defaultAction": profile.get("defaultAction", "")}
    for field in ("defaultErrnoRet", "listenerPath", "listenerMetadata", "flags"):
        if profile.get(field) not in (None, "", []):
            section[field] = profile[field]
    architectures = list(profile.get("architectures") or ())
    seccomp_arch = SECCOMP_ARCH.get(native)
    for entry in profile.get("archMap") or ():
        if seccomp_arch and entry.get("architecture") == seccomp_arch:
            architectures += [entry["architecture"], *(entry.get("subArchitectures") or ())]
            break
    if architectures:
        section["architectures"] = architectures
    syscalls = []
    for call in profile.get("syscalls") or ():
        names = list(call.get("names") or ())
        if call.get("name"):
            if names:
                raise InvalidArgument("both 'name' and 'names' are specified in the seccomp profile, use either "
                                      "'name' or 'names'")
            names = [call["name"]]
        if not _rule_applies(call, native, caps, kernel):
            continue
        rule = {"names": names, "action": call.get("action", "")}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [_oci_arg(arg) for arg in call["args"]]
        syscalls.append(rule)
    if syscalls:
        section["syscalls"] = syscalls
    return section


def _rule_applies(call: dict, native: str, caps: set, kernel) -> bool:
    excludes = call.get("excludes") or {}
    if native in (excludes.get("arches") or ()):
        return False
    if any(cap in caps for cap in excludes.get("caps") or ()):
        return False
    if excludes.get("minKernel") and _kernel_at_least(excludes["minKernel"], kernel):
        return False
    includes = call.get("includes") or {}
    if includes.get("arches") and native not in includes["arches"]:
        return False
    if any(cap not in caps for cap in includes.get("caps") or ()):
        return False
    return not (includes.get("minKernel") and not _kernel_at_least(includes["minKernel"], kernel))


def _kernel_at_least(version: str, kernel) -> bool:
    return (kernel or kernel_version()) >= _parse_min_kernel(version)


def _oci_arg(arg: dict) -> dict:
    oci = {"index": arg.get("index", 0), "value": arg.get("value", 0)}
    if arg.get("valueTwo"):
        oci["valueTwo"] = arg["valueTwo"]
    oci["op"] = arg.get("op", "")
    return oci


def container_seccomp(security_opt, caps, privileged: bool = False) -> dict | None:
    """moby's WithSeccomp: the linux.seccomp section of a container, None when it runs
    unconfined (seccomp=unconfined; --privileged without an explicit profile; a kernel
    without seccomp, where docker warns, unless a custom profile was asked for: that fails)."""
    profile = security_options(security_opt).seccomp_profile
    if profile == SECCOMP_UNCONFINED:
        return None
    if privileged and not profile:  # docker: only an explicit profile confines a privileged container
        return None
    from berth.runtime import seccomp  # lazy: not for create

    if not seccomp.supported():
        if profile not in ("", SECCOMP_DEFAULT):
            raise InvalidArgument("seccomp is not enabled in your kernel, cannot run a custom seccomp profile")
        return None
    if profile in ("", SECCOMP_DEFAULT):
        return oci_seccomp(default_seccomp_profile(), caps)
    return oci_seccomp(load_seccomp_profile(profile), caps)


# --- --lxc-conf ---------------------------------------------------------------------------------

# lxc.* keys people used with docker's LXC driver, and the flag that does the same now
LXC_REPLACEMENTS = {
    "lxc.cgroup.cpuset.cpus": "--cpuset-cpus", "lxc.cgroup.cpuset.mems": "--cpuset-mems",
    "lxc.cgroup.cpu.shares": "--cpu-shares", "lxc.cgroup.memory.limit_in_bytes": "-m/--memory",
    "lxc.cgroup.memory.memsw.limit_in_bytes": "--memory-swap", "lxc.cgroup.devices.allow": "--device",
    "lxc.cap.drop": "--cap-drop", "lxc.cap.keep": "--cap-drop ALL --cap-add",
    "lxc.aa_profile": "--security-opt apparmor=", "lxc.apparmor.profile": "--security-opt apparmor=",
    "lxc.se_context": "--security-opt label=", "lxc.utsname": "--hostname",
    "lxc.mount.entry": "-v/--volume or --mount", "lxc.prlimit": "--ulimit",
}


def lxc_conf_error(values) -> str:
    """One line: the LXC driver is gone (docker removed it in 1.10, with --lxc-conf), and which
    berth flag replaces the setting given (or the common ones)."""
    wanted = []
    for value in values or ():
        key = value.partition("=")[0].strip()
        flag = LXC_REPLACEMENTS.get(key)
        if flag and f"{key} -> {flag}" not in wanted:
            wanted.append(f"{key} -> {flag}")
    hint = ("use " + "; ".join(wanted)) if wanted else (
        "use --cpuset-cpus, --cpu-shares, -m/--memory, --memory-swap, --device, --cap-add/--cap-drop, "
        "--security-opt, --sysctl and --ulimit for what lxc.* settings did")
    return f"--lxc-conf is not supported: berth has no LXC execution driver (docker removed it in 1.10); {hint}"


# HostConfig field of each namespace kind a sysctl may live in (berth makes no user namespace)
_NAMESPACE_MODES = {"network": "NetworkMode", "ipc": "IpcMode", "uts": "UTSMode"}


def check_sysctls(host: dict, load) -> None:
    """runc's sysctl rule at create, on docker's modes: --sysctl only in a namespace of the
    container's own, never the host's (host mode, or container:<x> whose namespace is the
    host's). `load(id)` reads a container's record."""
    from berth.runtime.validate import check_sysctls as check  # lazy: only --sysctl

    check(host["Sysctls"], lambda kind: kind == "user" or _mode_is_host(host, _NAMESPACE_MODES[kind], kind, load))


def _mode_is_host(host: dict, field: str, kind: str, load) -> bool:
    """Whether `field`'s mode puts the container in the host's namespace: resolve container:<x>
    through each donor (a running one is asked directly: is its namespace ours?)."""
    from berth.runtime.validate import NS_FILES  # lazy: only --sysctl

    mode = host.get(field) or ""
    seen = set()
    while mode.startswith("container:") and mode not in seen:
        seen.add(mode)
        try:
            donor = load(mode.partition(":")[2])
        except FileNotFoundError:  # gone: the start-time check of the spec's paths decides
            return False
        pid = donor["State"].get("Pid")
        if donor["State"].get("Running") and pid and _same_namespace(f"/proc/{pid}/ns/{NS_FILES[kind]}"):
            return True
        mode = donor["HostConfig"].get(field) or ""
    return mode == "host"


def _same_namespace(path: str) -> bool:
    try:
        theirs, ours = os.stat(path), os.stat("/proc/self/ns/" + os.path.basename(path))
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)
