"""Resource limits in docker's terms: the run/create/update flags (memory, CPU, real-time CPU,
cpuset, pids, block I/O, devices, ulimits, OOM score) -> HostConfig fields, checked as docker's
CLI and daemon check them (cli/command/container/opts.go, daemon/daemon_unix.go
verifyPlatformContainerResources);
and HostConfig -> the OCI spec's linux.resources, linux.devices and process.rlimits.

Pure functions over HostConfig dicts, reading only host facts (cgroup features, device
nodes); `update_container` is the engine side of `berth update`. Cheap to import."""

import os
import posixpath
import stat
import sys

from berth.engine.state import container_cgroup, is_running
from berth.errors import BerthError, Conflict, InvalidArgument, UsageError
from berth.runtime.cgroups import features as host_features

MIN_MEMORY = 6 * 1024 * 1024  # docker's linuxMinMemory: "to supply a reasonable functional container"
DEFAULT_CPU_PERIOD = 100000  # microseconds: docker's period for --cpus

# go-units' ulimit names and the RLIMIT_ each one sets ("as" is not accepted, as in docker).
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
                "rtprio", "rttime", "sigpending", "stack")

# run/create flags handled here (opts attribute names), so a caller can tell whether any was given.
FLAG_DESTS = ("memory", "memory_swap", "memory_reservation", "memory_swappiness", "oom_kill_disable", "cpu_shares",
              "cpus", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit", "device",
              "device_cgroup_rule", "ulimit", "blkio_weight", "blkio_weight_device", "device_read_bps",
              "device_write_bps", "device_read_iops", "device_write_iops", "cpu_rt_period", "cpu_rt_runtime",
              "kernel_memory", "oom_score_adj")

# --device-read-bps... flags -> (HostConfig field, parses a size, host feature, what docker's
# "discarded" warning calls the kernel's support and the limit)
THROTTLES = (
    ("device_read_bps", "BlkioDeviceReadBps", True, "blkio_read_bps", "BPS Block I/O read limit", "BPS read limit"),
    ("device_write_bps", "BlkioDeviceWriteBps", True, "blkio_write_bps", "BPS Block I/O write limit",
     "BPS write limit"),
    ("device_read_iops", "BlkioDeviceReadIOps", False, "blkio_read_iops", "IOPS Block read limit", "IOPS read limit"),
    ("device_write_iops", "BlkioDeviceWriteIOps", False, "blkio_write_iops", "IOPS Block write limit",
     "IOPS write limit"),
)
# HostConfig throttle field -> OCI linux.resources.blockIO key
OCI_THROTTLES = {"BlkioDeviceReadBps": "throttleReadBpsDevice", "BlkioDeviceWriteBps": "throttleWriteBpsDevice",
                 "BlkioDeviceReadIOps": "throttleReadIOPSDevice", "BlkioDeviceWriteIOps": "throttleWriteIOPSDevice"}


# -- flags -> HostConfig ---------------------------------------------------------------------
def host_config_from(opts, warnings: list[str] | None = None) -> dict:
    """HostConfig fields for the resource flags given to run/create (`opts` attributes are the
    flag names with - -> _), validated like docker's daemon. Its warnings (docker's Warnings,
    which its CLI prints as "WARNING: ...") are appended to `warnings`; a caller that passes
    no list still gets them on stderr."""
    host = _memory_fields(opts)
    swappiness = getattr(opts, "memory_swappiness", None)
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise InvalidArgument(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")
        host["MemorySwappiness"] = swappiness
    if getattr(opts, "oom_kill_disable", False):
        host["OomKillDisable"] = True
    for dest, field in (("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota")):
        if getattr(opts, dest, None):
            host[field] = getattr(opts, dest)
    value = getattr(opts, "cpus", None)
    if value:
        host["NanoCpus"] = parse_cpus(value)
    for dest, field in (("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        if getattr(opts, dest, None):
            host[field] = getattr(opts, dest)
    pids = getattr(opts, "pids_limit", None)
    if pids and pids > 0:  # 0 and negative mean "unlimited": docker stores no limit
        host["PidsLimit"] = pids
    if getattr(opts, "device", None):
        host["Devices"] = [parse_device(item) for item in opts.device]
        for mapping in host["Devices"]:
            device_nodes(mapping)  # the host node must exist now: nothing is created for a typo
    if getattr(opts, "device_cgroup_rule", None):
        host["DeviceCgroupRules"] = [parse_device_cgroup_rule(rule) for rule in opts.device_cgroup_rule]
    if getattr(opts, "ulimit", None):
        host["Ulimits"] = parse_ulimits(opts.ulimit)
    host.update(_blkio_fields(opts))
    host.update(_realtime_fields(opts))
    if getattr(opts, "kernel_memory", None):
        host["KernelMemory"] = parse_memory(opts.kernel_memory, "--kernel-memory")
    if getattr(opts, "oom_score_adj", None):
        host["OomScoreAdj"] = opts.oom_score_adj
    return checked_host_config(host, warnings)


def checked_host_config(host: dict, warnings: list[str] | None = None) -> dict:
    """The resource fields of a create (from flags, or the API's HostConfig) checked as docker's
    daemon checks them, with its default swap; its warnings appended to `warnings` (printed
    when the caller passes no list)."""
    if host:
        found = validate(host)
        if warnings is not None:
            warnings.extend(found)
        else:  # until every caller takes them (cli/run.py): printed here, as before
            for warning in found:
                print(f"WARNING: {warning}", file=sys.stderr)
        if host.get("Memory", 0) > 0 and not host.get("MemorySwap"):
            host["MemorySwap"] = 2 * host["Memory"]  # docker's default: as much swap as memory
    return host


def _memory_fields(opts) -> dict:
    """-m, --memory-reservation and --memory-swap, as run and update share them."""
    fields = {}
    for dest, field, spelled in (("memory", "Memory", "-m, --memory"),
                                 ("memory_reservation", "MemoryReservation", "--memory-reservation"),
                                 ("memory_swap", "MemorySwap", "--memory-swap")):
        value = getattr(opts, dest, None)
        if value:
            fields[field] = parse_swap(value, spelled) if field == "MemorySwap" else parse_memory(value, spelled)
    return fields


def _blkio_fields(opts) -> dict:
    """--blkio-weight, --blkio-weight-device and the four throttles (docker's opts types)."""
    fields = {}
    if getattr(opts, "blkio_weight", None):
        fields["BlkioWeight"] = parse_uint(opts.blkio_weight, "--blkio-weight", 16)
    if getattr(opts, "blkio_weight_device", None):
        fields["BlkioWeightDevice"] = [parse_weight_device(v) for v in opts.blkio_weight_device]
    for dest, field, sized, *_ in THROTTLES:
        if getattr(opts, dest, None):
            fields[field] = [parse_throttle(v, "--" + dest.replace("_", "-"), sized) for v in getattr(opts, dest)]
    return fields


def _realtime_fields(opts) -> dict:
    return {field: getattr(opts, dest) for dest, field in (("cpu_rt_period", "CpuRealtimePeriod"),
                                                           ("cpu_rt_runtime", "CpuRealtimeRuntime"))
            if getattr(opts, dest, None)}


def parse_uint(value: str, spelled: str, bits: int) -> int:
    """pflag's uintN: strconv.ParseUint's refusals in its words."""
    if not _digits(value):
        raise flag_error(value, spelled, f'strconv.ParseUint: parsing "{value}": invalid syntax')
    if int(value) >= 1 << bits:
        raise flag_error(value, spelled, f'strconv.ParseUint: parsing "{value}": value out of range')
    return int(value)


def _device_and_value(value: str, spelled: str) -> tuple[str, str]:
    """DEVICE:VALUE as docker's CLI splits it: a path under /dev/, checked for nothing else yet."""
    path, colon, rest = value.partition(":")
    if not colon or not path:
        raise flag_error(value, spelled, f"bad format: {value}")
    if not path.startswith("/dev/"):
        raise flag_error(value, spelled, f"bad format for device path: {value}")
    return path, rest


def parse_weight_device(value: str) -> dict:
    """--blkio-weight-device /dev/sda:500 (docker's ValidateWeightDevice)."""
    path, weight = _device_and_value(value, "--blkio-weight-device")
    if not _digits(weight) or int(weight) >= 1 << 16 or 0 < int(weight) < 10 or int(weight) > 1000:
        raise flag_error(value, "--blkio-weight-device", f"invalid weight for device: {value}")
    return {"Path": path, "Weight": int(weight)}


def parse_throttle(value: str, spelled: str, sized: bool) -> dict:
    """--device-read-bps /dev/sda:1mb (a size) or --device-read-iops /dev/sda:100 (a count),
    docker's ValidateThrottleBpsDevice / ValidateThrottleIOpsDevice."""
    path, rate = _device_and_value(value, spelled)
    if sized:
        from berth.units import ram_in_bytes  # lazy: only --device-read-bps/--device-write-bps

        try:
            number = ram_in_bytes(rate)
        except ValueError:
            number = -1
        if number < 0:
            raise flag_error(value, spelled, f"invalid rate for device: {value}. The correct format is "
                                             "<device-path>:<number>[<unit>]. Number must be a positive integer. "
                                             "Unit is optional and can be kb, mb, or gb")
    else:
        if not _digits(rate) or int(rate) >= 1 << 64:
            raise flag_error(value, spelled, f"invalid rate for device: {value}. The correct format is "
                                             "<device-path>:<number>. Number must be a positive integer")
        number = int(rate)
    return {"Path": path, "Rate": number}


def flag_error(value: str, spelled: str, message: str) -> InvalidArgument:
    """pflag's wording for a value its type refuses."""
    return UsageError(f'invalid argument "{value}" for "{spelled}" flag: {message}')


def parse_memory(value: str, spelled: str) -> int:
    """docker's MemBytes: go-units RAMInBytes ("512", "64m", "1.5g", "1GiB"; binary units)."""
    from berth.units import ram_in_bytes  # lazy: only memory flags; `update --cpu-shares` loads no units

    try:
        return ram_in_bytes(value)
    except ValueError as err:
        raise flag_error(value, spelled, str(err)) from None


def parse_swap(value: str, spelled: str) -> int:
    """docker's MemSwapBytes: a size, or -1 for unlimited swap."""
    return -1 if value == "-1" else parse_memory(value, spelled)


def parse_cpus(value: str) -> int:
    """docker's NanoCPUs: a rational number ("1.5", "3/2", "2e-1") of CPUs, in billionths."""
    try:
        numerator, denominator = _rational(value)
    except ValueError:
        raise flag_error(value, "--cpus", f"failed to parse {value} as a rational number") from None
    nano, remainder = divmod(numerator * 1_000_000_000, denominator)
    if remainder:
        raise flag_error(value, "--cpus", "value is too precise")
    return nano


def _rational(text: str) -> tuple[int, int]:
    """big.Rat.SetString's forms: "a/b", or a decimal with an optional exponent."""
    if "/" in text:
        top, _, bottom = text.partition("/")
        if not _digits(top.removeprefix("-").removeprefix("+")) or not _digits(bottom) or int(bottom) == 0:
            raise ValueError(text)
        return int(top), int(bottom)
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text[:1] in "+-" and text else text
    mantissa, e, exponent = body.lower().partition("e")
    whole, _, fraction = mantissa.partition(".")
    if not (whole or fraction) or (whole and not _digits(whole)) or (fraction and not _digits(fraction)):
        raise ValueError(text)
    shift = -len(fraction)
    if e:
        if not _digits(exponent.removeprefix("-").removeprefix("+")):
            raise ValueError(text)
        shift += int(exponent)
    numerator = sign * int(whole + fraction)
    return (numerator * 10 ** shift, 1) if shift >= 0 else (numerator, 10 ** -shift)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_device(value: str) -> dict:
    """--device HOST[:CONTAINER][:PERMS] -> a HostConfig.Devices entry (docker's
    validateLinuxPath, then parseLinuxDevice)."""
    if value.count(":") > 2 or not value.split(":", 1)[0]:
        raise InvalidArgument(f"bad format for path: {value}")
    parts = value.split(":")
    if len(parts) == 1:
        container_path = parts[0]
        parts = [posixpath.normpath(container_path)]
    elif len(parts) == 2:
        if _device_mode(parts[1]):
            container_path = parts[0]
            parts = [posixpath.normpath(parts[0]), parts[1]]
        else:
            container_path = parts[1]
            parts = [parts[0], posixpath.normpath(parts[1])]
    else:
        container_path = parts[1]
        if not _device_mode(parts[2]):
            raise InvalidArgument(f"bad mode specified: {parts[2]}")
    if not container_path.startswith("/"):
        raise InvalidArgument(f"{container_path} is not an absolute path")
    source, target, permissions = parts[0], parts[0], "rwm"
    if len(parts) == 3:
        target, permissions = parts[1], parts[2]
    elif len(parts) == 2:
        if _device_mode(parts[1]):
            permissions = parts[1]
        else:
            target = parts[1]
    return {"PathOnHost": source, "PathInContainer": target, "CgroupPermissions": permissions}


def _device_mode(mode: str) -> bool:
    """r, w and m, each at most once."""
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def parse_device_cgroup_rule(value: str) -> str:
    """--device-cgroup-rule 'c 1:3 rwm' (docker's regexp: ^[acb] ([0-9]+|\\*):([0-9]+|\\*) [rwm]{1,3}$)."""
    fields = value.split(" ")
    ok = (len(fields) == 3 and fields[0] in ("a", "b", "c") and fields[1].count(":") == 1
          and all(n == "*" or _digits(n) for n in fields[1].split(":")) and 1 <= len(fields[2]) <= 3
          and set(fields[2]) <= set("rwm"))
    if not ok:
        raise flag_error(value, "--device-cgroup-rule", f"invalid device cgroup format '{value}'")
    return value


def parse_ulimits(values) -> list[dict]:
    """--ulimit name=soft[:hard] (go-units ParseUlimit) -> HostConfig.Ulimits, sorted by name;
    a later flag for the same name wins."""
    found = {}
    for value in values:
        name, eq, limits = value.partition("=")
        if not eq:
            raise flag_error(value, "--ulimit", f"invalid ulimit argument: {value}")
        if name not in ULIMIT_NAMES:
            raise flag_error(value, "--ulimit", f"invalid ulimit type: {name}")
        numbers = limits.split(":")
        if len(numbers) > 2:
            raise flag_error(value, "--ulimit", f"too many limit value arguments - {limits}, can only have up to "
                                                "two, `soft[:hard]`")
        parsed = []
        for number in reversed(numbers):  # Go parses hard first
            try:
                parsed.insert(0, _parse_int64(number))
            except ValueError:
                raise flag_error(value, "--ulimit", f'strconv.ParseInt: parsing "{number}": invalid syntax') from None
        soft = parsed[0]
        hard = parsed[1] if len(parsed) == 2 else soft
        if hard != -1:
            if soft == -1:
                raise flag_error(value, "--ulimit", "ulimit soft limit must be less than or equal to hard limit: "
                                                    f"soft: -1 (unlimited), hard: {hard}")
            if soft > hard:
                raise flag_error(value, "--ulimit", "ulimit soft limit must be less than or equal to hard limit: "
                                                    f"{soft} > {hard}")
        found[name] = {"Name": name, "Hard": hard, "Soft": soft}
    return [found[name] for name in sorted(found)]


def _parse_int64(text: str) -> int:
    body = text[1:] if text[:1] in ("+", "-") else text
    if not _digits(body):
        raise ValueError(text)
    number = int(text)
    if not -(1 << 63) <= number < (1 << 63):
        raise ValueError(text)
    return number


# -- the daemon's checks ----------------------------------------------------------------------
def validate(host: dict, update: bool = False, features=None) -> list[str]:
    """docker's verifyPlatformContainerResources on the resource fields of `host` (a whole
    HostConfig, or an update's fields). Raises InvalidArgument with docker's message;
    returns docker's warnings and drops what the host cannot enforce, as docker does."""
    if features is None:
        features = host_features()
    warnings = []
    memory = host.get("Memory") or 0
    swap = host.get("MemorySwap") or 0
    reservation = host.get("MemoryReservation") or 0
    if memory != 0 and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and not features.memory:
        warnings.append("Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
                        "Limitation discarded.")
        host["Memory"], host["MemorySwap"], memory, swap = 0, -1, 0, -1
    if memory > 0 and swap != -1 and not features.swap_limit:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
                        "Memory limited without swap.")
        host["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        if not features.swappiness:
            warnings.append("Your kernel does not support memory swappiness capabilities or the cgroup is not "
                            "mounted. Memory swappiness discarded.")
            host["MemorySwappiness"] = None
        elif not 0 <= swappiness <= 100:
            raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if reservation > 0 and reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    if host.get("OomKillDisable") and not features.oom_kill_disable:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        host["OomKillDisable"] = False
    if host.get("OomKillDisable") and memory == 0:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result in "
                        "the system running out of resources.")
    if (host.get("KernelMemory") or 0) > 0:  # cgroup v1's kmem limit: deprecated, never applied
        if host["KernelMemory"] < MIN_MEMORY:
            raise InvalidArgument("Minimum kernel memory limit allowed is 6MB")
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed in a future release.")
    nano = host.get("NanoCpus") or 0
    period = host.get("CpuPeriod") or 0
    quota = host.get("CpuQuota") or 0
    if nano > 0 and period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    cpus = len(os.sched_getaffinity(0))
    if nano < 0 or nano > cpus * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available")
    if period != 0 and not 1000 <= period <= 1000000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for field, kind, what, available in (("CpusetCpus", "cpus", "CPUs", features.cpus),
                                         ("CpusetMems", "mems", "memory nodes", features.mems)):
        requested = host.get(field) or ""
        if not requested:
            continue
        try:
            wanted = parse_cpuset(requested, max(8192, max(parse_cpuset(available), default=0)))
        except ValueError as err:
            raise InvalidArgument(f"Invalid value {requested} for cpuset {kind}: {err}") from None
        if not wanted <= parse_cpuset(available):
            raise InvalidArgument(f"Requested {what} are not available - requested {requested}, available: "
                                  f"{available}")
    _validate_realtime(host, features)
    warnings.extend(_validate_blkio(host, features))
    oom_score_adj = host.get("OomScoreAdj") or 0
    if not -1000 <= oom_score_adj <= 1000:
        raise InvalidArgument(f"Invalid value {oom_score_adj}, range for oom score adj is [-1000, 1000]")
    return warnings


def _validate_realtime(host: dict, features) -> None:
    """docker's validateResources: real-time group scheduling must be in the kernel (v1's
    cpu.rt_runtime_us; v2 has none), and the runtime fit in the period."""
    period = host.get("CpuRealtimePeriod") or 0
    runtime = host.get("CpuRealtimeRuntime") or 0
    if (period or runtime) and not features.cpu_realtime:
        raise InvalidArgument("Your kernel does not support CPU real-time scheduler")
    if period and runtime and runtime > period:
        raise InvalidArgument("cpu real-time runtime cannot be higher than cpu real-time period")


def _validate_blkio(host: dict, features) -> list[str]:
    """docker's blkio checks: what the kernel cannot enforce is discarded with a warning; the
    rest is checked (weight range, the devices exist now: nothing is made for a typo)."""
    warnings = []
    if host.get("BlkioWeight") and not features.blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        host["BlkioWeight"] = 0
    if host.get("BlkioWeight") and not 10 <= host["BlkioWeight"] <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    if host.get("BlkioWeightDevice") and not features.blkio_weight_device:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
                        "Weight-device discarded.")
        host["BlkioWeightDevice"] = []
    for _dest, field, _sized, feature, support, limit in THROTTLES:
        if host.get(field) and not getattr(features, feature):
            warnings.append(f"Your kernel does not support {support} or the cgroup is not mounted. Block I/O {limit} "
                            "discarded.")
            host[field] = []
    for field in ("BlkioWeightDevice", *OCI_THROTTLES):
        for entry in host.get(field) or ():
            block_device(entry["Path"])
    return warnings


def block_device(path: str) -> tuple[int, int]:
    """(major, minor) of a device a blkio setting names (moby's getBlkioThrottleDevices)."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise InvalidArgument(f"stat {path}: {(err.strerror or str(err)).lower()}") from None
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def parse_cpuset(value: str, maximum: int = 0) -> set[int]:
    """A cpuset list, "0-2,4" (docker's parsers.ParseUintListMaximum)."""
    if not value:
        return set()
    found = set()
    for part in value.split(","):
        low, dash, high = part.partition("-")
        if not _digits(low) or (dash and not _digits(high)):
            raise ValueError(f"invalid format: {value}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"invalid format: {value}")
        if maximum and last > maximum:
            raise ValueError(f"value of out range, maximum is {maximum}")
        found.update(range(first, last + 1))
    return found


# -- HostConfig -> OCI ------------------------------------------------------------------------
def wanted(host: dict) -> bool:
    """True if `host` asks for any limit, device or ulimit (else the spec needs nothing from here)."""
    return bool(host.get("Memory") or host.get("MemoryReservation") or host.get("MemorySwap")
                or host.get("MemorySwappiness") is not None or host.get("OomKillDisable") or host.get("CpuShares")
                or host.get("NanoCpus") or host.get("CpuPeriod") or host.get("CpuQuota") or host.get("CpusetCpus")
                or host.get("CpusetMems") or host.get("PidsLimit") is not None or host.get("Devices")
                or host.get("DeviceCgroupRules") or host.get("Ulimits") or host.get("BlkioWeight")
                or host.get("CpuRealtimePeriod") or host.get("CpuRealtimeRuntime")
                or any(host.get(field) for field in ("BlkioWeightDevice", *OCI_THROTTLES)))


def oci_resources(host: dict) -> dict:
    """linux.resources for `host`'s limits (moby's WithResources and getMemoryResources,
    getCPUResources, getPidsLimit). Its "devices" holds only the rules of --device and
    --device-cgroup-rule: the caller puts docker's default rules before them."""
    resources = {}
    memory = {}
    if host.get("Memory", 0) > 0:
        memory["limit"] = host["Memory"]
    if host.get("MemoryReservation", 0) > 0:
        memory["reservation"] = host["MemoryReservation"]
    if (host.get("MemorySwap") or 0) > 0:
        memory["swap"] = host["MemorySwap"]
    if host.get("MemorySwappiness") is not None and host["MemorySwappiness"] >= 0:
        memory["swappiness"] = host["MemorySwappiness"]
    if host.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        resources["memory"] = memory
    cpu = {}
    shares = host.get("CpuShares") or 0
    if shares < 0:
        raise InvalidArgument("shares: invalid argument")
    if shares:
        cpu["shares"] = shares
    for field, key in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if host.get(field):
            cpu[key] = host[field]
    if host.get("NanoCpus", 0) > 0:
        cpu["period"] = DEFAULT_CPU_PERIOD
        cpu["quota"] = host["NanoCpus"] * DEFAULT_CPU_PERIOD // 1_000_000_000
    if host.get("CpuPeriod"):
        cpu["period"] = host["CpuPeriod"]
    if host.get("CpuQuota"):
        cpu["quota"] = host["CpuQuota"]
    for field, key in (("CpuRealtimePeriod", "realtimePeriod"), ("CpuRealtimeRuntime", "realtimeRuntime")):
        if host.get(field):
            cpu[key] = host[field]
    if cpu:
        resources["cpu"] = cpu
    if host.get("PidsLimit") is not None:
        resources["pids"] = {"limit": host["PidsLimit"] if host["PidsLimit"] > 0 else -1}
    block_io = oci_block_io(host)
    if block_io:
        resources["blockIO"] = block_io
    if not host.get("Privileged"):
        rules = []
        for mapping in host.get("Devices") or ():
            rules.extend(device_nodes(mapping)[1])
        rules.extend(_cgroup_rule(rule) for rule in host.get("DeviceCgroupRules") or ())
        if rules:
            resources["devices"] = rules
    return resources


def oci_block_io(host: dict) -> dict:
    """linux.resources.blockIO (moby's getBlkioWeightDevices, getBlkioThrottleDevices): each
    device by the major:minor its path has now."""
    block_io = {}
    if host.get("BlkioWeight"):
        block_io["weight"] = host["BlkioWeight"]
    for entry in host.get("BlkioWeightDevice") or ():
        major, minor = block_device(entry["Path"])
        block_io.setdefault("weightDevice", []).append({"major": major, "minor": minor, "weight": entry["Weight"]})
    for field, key in OCI_THROTTLES.items():
        for entry in host.get(field) or ():
            major, minor = block_device(entry["Path"])
            block_io.setdefault(key, []).append({"major": major, "minor": minor, "rate": entry["Rate"]})
    return block_io


def oci_devices(host: dict) -> list[dict]:
    """linux.devices for --device (moby's WithDevices): the nodes to create in the container.
    A privileged container has every host device already; only renamed ones are added."""
    devices = []
    for mapping in host.get("Devices") or ():
        if host.get("Privileged") and mapping["PathOnHost"] == mapping["PathInContainer"]:
            continue
        devices.extend(device_nodes(mapping)[0])
    return devices


def rlimits(host: dict) -> list[dict]:
    """process.rlimits for --ulimit; -1 (unlimited) is RLIM_INFINITY as an OCI uint64."""
    return [{"type": "RLIMIT_" + u["Name"].upper(), "hard": u["Hard"] & 0xFFFFFFFFFFFFFFFF,
             "soft": u["Soft"] & 0xFFFFFFFFFFFFFFFF} for u in host.get("Ulimits") or ()]


def apply_to_spec(spec: dict, host: dict) -> None:
    """Put `host`'s limits, devices and ulimits into an OCI spec built with docker's defaults
    (spec.build): device rules after the default ones, device nodes after the host's."""
    linux = spec["linux"]
    extra = oci_resources(host)
    resources = linux.setdefault("resources", {})
    resources["devices"] = list(resources.get("devices") or ()) + extra.pop("devices", [])
    resources.update(extra)
    devices = oci_devices(host)
    if devices:
        linux["devices"] = list(linux.get("devices") or ()) + devices
    limits = rlimits(host)
    if limits:
        spec["process"]["rlimits"] = limits


def device_nodes(mapping: dict) -> tuple[list[dict], list[dict]]:
    """moby's DevicesFromPath: the device node(s) of a --device mapping (a node, or every node
    under a directory) as (linux.devices entries, their cgroup allow rules)."""
    source = mapping["PathOnHost"]
    target = mapping["PathInContainer"]
    access = mapping.get("CgroupPermissions") or "rwm"
    resolved = os.path.realpath(source) if os.path.islink(source) else source
    try:
        node = _device_node(resolved, target)
    except FileNotFoundError as err:
        raise InvalidArgument(f'error gathering device information while adding custom device "{source}": '
                              f"{err.strerror.lower()}") from None
    if node is not None:
        return [node], _allow([node], access)
    nodes = []
    if os.path.isdir(resolved):
        for directory, _subdirs, files in os.walk(resolved):
            for name in sorted(files):
                path = os.path.join(directory, name)
                try:
                    child = _device_node(path, target + path[len(resolved):])
                except OSError:
                    continue
                if child is not None:
                    nodes.append(child)
    if not nodes:
        raise InvalidArgument(f'error gathering device information while adding custom device "{source}": '
                              "not a device node")
    return nodes, _allow(nodes, access)


def _device_node(path: str, target: str) -> dict | None:
    st = os.lstat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return {"path": target, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def _allow(nodes: list[dict], access: str) -> list[dict]:
    """The cgroup rules that let the container use `nodes` (fifos need none)."""
    return [{"allow": True, "type": n["type"], "major": n["major"], "minor": n["minor"], "access": access}
            for n in nodes if n["type"] in ("b", "c")]


def _cgroup_rule(rule: str) -> dict:
    kind, numbers, access = rule.split(" ")
    major, _, minor = numbers.partition(":")
    return {"allow": True, "type": kind, "major": -1 if major == "*" else int(major),
            "minor": -1 if minor == "*" else int(minor), "access": access}


# -- berth update -----------------------------------------------------------------------------
def update_fields(opts) -> dict:
    """The HostConfig changes asked by `berth update` flags (docker's updateOptions): only
    non-zero values change anything, as in docker."""
    changes = _memory_fields(opts)
    for dest, field in (("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"),
                        ("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        if getattr(opts, dest, None):
            changes[field] = getattr(opts, dest)
    value = getattr(opts, "cpus", None)
    if value:
        changes["NanoCpus"] = parse_cpus(value)
    pids = getattr(opts, "pids_limit", None)
    if pids:
        changes["PidsLimit"] = pids if pids > 0 else 0  # docker: any value <= 0 lifts the limit
    if getattr(opts, "blkio_weight", None):
        changes["BlkioWeight"] = parse_uint(opts.blkio_weight, "--blkio-weight", 16)
    changes.update(_realtime_fields(opts))
    return changes


def merge_update(host: dict, changes: dict, restart: dict | None = None) -> None:
    """docker's Container.UpdateContainer: apply `changes` to the record's HostConfig, with
    its conflict checks (messages as docker's). `restart` is a new RestartPolicy."""
    if changes.get("NanoCpus", 0) > 0 and host.get("CpuPeriod", 0) > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if changes.get("NanoCpus", 0) > 0 and host.get("CpuQuota", 0) > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if changes.get("CpuPeriod", 0) > 0 and host.get("NanoCpus", 0) > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if changes.get("CpuQuota", 0) > 0 and host.get("NanoCpus", 0) > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    if changes.get("Memory") and changes["Memory"] > (host.get("MemorySwap") or 0) and not changes.get("MemorySwap"):
        raise Conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap "
                       "at the same time")
    for field, value in changes.items():
        host[field] = value
    if restart is not None and restart.get("Name"):
        if host.get("AutoRemove") and restart["Name"] != "no":
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        host["RestartPolicy"] = dict(restart)


def live_resources(changes: dict) -> dict:
    """moby's toContainerdResources: what to write to a running container's cgroup for an
    update (only the changed limits; pids "unlimited" is -1)."""
    resources = oci_resources({k: v for k, v in changes.items() if k != "PidsLimit"})
    if "PidsLimit" in changes:
        resources["pids"] = {"limit": changes["PidsLimit"] if changes["PidsLimit"] > 0 else -1}
    return resources


def update_container(engine, ref: str, changes: dict, restart: dict | None = None) -> list[str]:
    """`berth update` for one container: check the changes like docker's daemon, record them
    in its HostConfig under its lock and, if it runs, write them to its cgroup (the record is
    left unchanged if the kernel refuses). Returns docker's warnings."""
    warnings = validate(changes, update=True)
    record = engine.get(ref)
    container_id = record["Id"]
    with engine.locked(container_id) as record:
        host = record["HostConfig"]
        try:
            merge_update(host, changes, restart)
        except Conflict as err:
            raise Conflict(f"Cannot update container {container_id}: {err}") from None
        if is_running(record) and not record["State"].get("Restarting"):
            try:
                container_cgroup(record).update(live_resources(changes))
            except (BerthError, OSError) as err:
                raise BerthError(f"Cannot update container {container_id}: {err}") from None
        engine.store.write(record)
    return warnings
