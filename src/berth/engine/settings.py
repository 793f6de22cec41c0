"""Engine-wide settings: /etc/berth/daemon.json with Docker's daemon.json key names,
overridden by berth's global flags (`berth --bip 192.168.0.1/24 run ...`).

Read lazily: only commands that need the bridge or default DNS pay for it."""

import os

from berth import fastjson as json
from berth.engine.networks import validate_dns
from berth.errors import InvalidArgument, UsageError

DEFAULT_CONFIG_FILE = "/etc/berth/daemon.json"
DEFAULT_BRIDGE = "berth0"
DEFAULT_MTU = 1500

# key -> (kind, default). "default-bridge" is berth's own: the name of the bridge berth
# creates and owns (docker's is fixed to docker0); "bridge" is docker's -b, a bridge the
# user made, which berth uses but never creates, changes or deletes.
KEYS = {
    "bridge": ("str", ""),
    "default-bridge": ("str", DEFAULT_BRIDGE),
    "bip": ("str", ""),
    "fixed-cidr": ("str", ""),
    "mtu": ("int", DEFAULT_MTU),
    "icc": ("bool", True),
    "ip-forward": ("bool", True),
    "iptables": ("bool", True),
    "userland-proxy": ("bool", True),  # docker's: off, nothing is published on IPv6 (network.proxy)
    "dns": ("list", []),
    "dns-search": ("list", []),
    "dns-opts": ("list", []),
    "log-driver": ("str", "json-file"),  # containers' default LogConfig (engine.logconfig)
    "log-opts": ("dict", {}),
    "default-cgroupns-mode": ("str", ""),  # "" is docker's default: private on cgroup v2, host on v1
    "cgroup-parent": ("str", ""),  # containers' parent cgroup when they name none (--cgroup-parent)
    "cpu-rt-period": ("int", 0),  # the real-time budget given to the parents of a real-time container
    "cpu-rt-runtime": ("int", 0),
    "default-runtime": ("str", "berth"),
    "runtimes": ("runtimes", {}),  # name -> {"path": ..., "runtimeArgs": [...]}, as dockerd's
    "init-path": ("str", ""),  # the init binary of --init (default: tini, found on the host)
    "insecure-registries": ("list", []),  # host[:port] or CIDR: plain http (and unverified https) allowed
    "registry-mirrors": ("list", []),  # mirrors of Docker Hub, tried in order before it
}
# global flag -> key (the same names as dockerd's flags)
FLAGS = {"--bip": "bip", "--fixed-cidr": "fixed-cidr", "--mtu": "mtu", "-b": "bridge", "--bridge": "bridge",
         "--icc": "icc", "--ip-forward": "ip-forward", "--iptables": "iptables", "--dns": "dns",
         "--dns-search": "dns-search", "--dns-opt": "dns-opts", "--default-bridge": "default-bridge"}
BOOL_FLAGS = {"--icc", "--ip-forward", "--iptables"}


class Settings:
    """The effective engine settings; attribute names are the keys with `-` -> `_`."""

    __slots__ = ("bridge", "default_bridge", "bip", "fixed_cidr", "mtu", "icc", "ip_forward", "iptables",
                 "userland_proxy", "dns", "dns_search", "dns_opts", "log_driver", "log_opts", "default_cgroupns_mode",
                 "cgroup_parent",
                 "cpu_rt_period", "cpu_rt_runtime", "default_runtime", "runtimes", "init_path", "insecure_registries",
                 "registry_mirrors", "config_file")

    def __init__(self, values: dict, config_file: str = ""):
        self.config_file = config_file
        for key, (_, default) in KEYS.items():
            setattr(self, key.replace("-", "_"), values.get(key, default))

    @property
    def bridged(self) -> bool:
        """False with `bridge: none`: docker's way to turn bridged networking off."""
        return self.bridge != "none"

    @property
    def bridge_name(self) -> str:
        return self.bridge or self.default_bridge

    @property
    def user_bridge(self) -> bool:
        return bool(self.bridge) and self.bridge != "none"


def flag_value(name: str, value: str, values: dict) -> None:
    """Apply one global flag (repeatable for the list keys) to `values`."""
    key = FLAGS[name]
    kind = KEYS[key][0]
    if kind == "list":
        values.setdefault(key, []).append(value)
    else:
        values[key] = _convert(key, kind, value, f'invalid argument "{value}" for "{name}" flag')


def load(config_file: str | None, overrides: dict) -> Settings:
    """daemon.json (missing is fine; malformed is an error) with `overrides` on top, validated."""
    path = config_file or os.environ.get("BERTH_CONFIG") or DEFAULT_CONFIG_FILE
    values = {}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if config_file:
            raise InvalidArgument(f"unable to configure the berth engine with file {path}: "
                                  "open: no such file or directory") from None
        data = b""
    if data.strip():
        try:
            values = json.loads_object(data)
        except ValueError as err:
            raise InvalidArgument(f"unable to configure the berth engine with file {path}: {err}") from None
    checked = {}
    for key, value in values.items():
        if key not in KEYS:
            continue  # docker's other keys (storage-driver...) are not ours to judge
        kind = KEYS[key][0]
        checked[key] = _convert(key, kind, value, f"invalid value for {key} in {path}")
    for key, value in overrides.items():
        if KEYS[key][0] == "list":
            checked[key] = list(value)  # flags replace the file's list, like dockerd's
        else:
            checked[key] = value
    settings = Settings(checked, path)
    validate(settings)
    return settings


def _convert(key: str, kind: str, value, context: str):
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            from berth.strconv import parse_bool  # lazy: daemon.json rarely spells a boolean as a string

            try:
                return parse_bool(value)
            except ValueError:
                pass
        raise InvalidArgument(f"{context}: parse error: {value!r} is not a boolean")
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"{context}: {value!r} is not an integer") from None
    if kind == "dict":  # docker's map[string]string
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidArgument(f"{context}: expected an object of strings")
        return value
    if kind == "list":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{context}: expected a list of strings")
        return value
    if kind == "runtimes":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise InvalidArgument(f"{context}: expected an object of runtimes, each {{\"path\": ...}}")
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"{context}: expected a string")
    return value


def validate(settings: Settings) -> None:
    """dockerd's checks on the bridge settings, with its wording where it has one."""
    from berth.network.ipam import network_contains, parse_cidr  # lazy: only bridge settings; `start` loads none

    if settings.user_bridge and settings.bip:
        raise InvalidArgument("You specified -b & --bip, mutually exclusive options. Please specify only one")
    if not settings.iptables and not settings.icc:
        raise InvalidArgument("You specified --iptables=false with --icc=false. ICC=false uses iptables to function. "
                              "Please set --icc or --iptables to true")
    name = settings.bridge_name
    if not name or len(name) > 15 or "/" in name or any(c.isspace() for c in name):
        raise InvalidArgument(f"invalid bridge name {name!r}: at most 15 characters, no '/' or spaces")
    if not 68 <= settings.mtu <= 65535:
        raise InvalidArgument(f"invalid mtu {settings.mtu}: must be between 68 and 65535")
    bip_network = None
    if settings.bip:
        try:
            address, length, bip_network = parse_cidr(settings.bip)
        except ValueError:
            raise UsageError(f'invalid argument "{settings.bip}" for "--bip" flag: invalid CIDR address: '
                                  f"{settings.bip}") from None
        if length < 31 and parse_cidr(f"{address}/32")[0] in (bip_network.partition("/")[0], _broadcast(bip_network)):
            raise InvalidArgument(f"invalid bip {settings.bip}: the bridge needs a host address of its subnet")
    if settings.fixed_cidr:
        try:
            parse_cidr(settings.fixed_cidr if "/" in settings.fixed_cidr else settings.fixed_cidr + "/32")
        except ValueError:
            raise UsageError(f'invalid argument "{settings.fixed_cidr}" for "--fixed-cidr" flag: invalid CIDR '
                                  f"address: {settings.fixed_cidr}") from None
        if bip_network is not None and not network_contains(bip_network, settings.fixed_cidr):
            raise InvalidArgument(f"fixed-cidr {settings.fixed_cidr} is not inside the bridge subnet {bip_network} "
                                  f"(bip {settings.bip})")

    validate_dns(settings.dns)
    if settings.default_cgroupns_mode not in ("", "host", "private"):
        raise InvalidArgument(f"default cgroup namespace mode ({settings.default_cgroupns_mode}) is invalid. "
                              'Must be either "host" or "private"')
    if settings.default_runtime not in ("berth", *settings.runtimes):
        raise InvalidArgument(f"default-runtime {settings.default_runtime} (in {settings.config_file}) is not one of "
                              "its runtimes, nor berth's own")


def _broadcast(network: str) -> str:
    from berth.network.ipam import _dotted, _network  # lazy: only bridge settings; `start` loads none

    base, length = _network(network)
    return _dotted(base + (1 << (32 - length)) - 1)
