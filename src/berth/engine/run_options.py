"""The engine's word on docker run/create's ergonomics flags: --platform, --pull, --runtime,
--isolation, --gpus, --volume-driver, --use-api-socket, and the per-network settings (--ip,
--ip6, --mac-address, --network-alias, --link-local-ip) on the networks berth has. Each
either becomes Config/HostConfig fields or fails with docker's error (or, for what berth
cannot do yet, one naming the flag and why). Loaded only when one of them is given."""

import os

from berth.errors import InvalidArgument, NotFound, NotImplementedYet

PULL_POLICIES = ("always", "missing", "never")
# containerd's platforms package: the OS and architecture names it knows, and its aliases
KNOWN_OS = ("aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl",
            "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos")
ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                "i386": "386", "i686": "386"}
KNOWN_ARCH = ("386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mips64",
              "mips64le", "mips64p32", "mips64p32le", "mipsle", "ppc", "ppc64", "ppc64le", "riscv", "riscv64",
              "s390", "s390x", "sparc", "sparc64", "wasm")
DEFAULT_RUNTIME = "berth"  # the in-process runtime (berth.runtime), as `berth info` names it


def check_pull(policy: str) -> None:
    """--pull: always, missing (the default) or never."""
    if policy not in PULL_POLICIES:
        raise InvalidArgument(f"invalid pull option: '{policy}': must be one of \"always\", \"missing\" or \"never\"")


def content_trust() -> None:
    """--disable-content-trust=false: docker would verify the tag's signature with a notary."""
    raise NotImplementedYet("--disable-content-trust=false: image signature verification (content trust) is not "
                            "supported")


def host_platform() -> str:
    machine = os.uname().machine
    return "linux/" + ARCH_ALIASES.get(machine, machine)


def parse_platform(value: str) -> tuple[str, str | None]:
    """containerd's parse of os[/arch[/variant]] (case-insensitive, its aliases): (os, arch or None)."""
    parts = value.lower().split("/")
    os_name = parts[0]
    arch = ARCH_ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else None
    if len(parts) == 1 and ARCH_ALIASES.get(os_name, os_name) in KNOWN_ARCH:  # "amd64" alone: the host's OS
        return "linux", ARCH_ALIASES.get(os_name, os_name)
    if len(parts) > 3 or os_name not in KNOWN_OS or (arch is not None and arch not in KNOWN_ARCH):
        raise InvalidArgument(f'error parsing specified platform: "{value}": unknown operating system or '
                              "architecture: invalid argument")
    return os_name, arch


def is_host_platform(value: str) -> tuple[bool, str]:
    """(whether `value` names this host's platform, its normalized spelling)."""
    os_name, arch = parse_platform(value)
    spelled = os_name + ("/" + arch if arch else "")
    return os_name == "linux" and arch in (None, host_platform().partition("/")[2]), spelled


def check_platform(value: str, image: str) -> None:
    """run/create --platform: the host's works; another is docker 28's refusal of an image
    that is here for another platform than the one asked for."""
    host_one, wanted = is_host_platform(value)
    if not host_one:
        host = host_platform()
        raise InvalidArgument(f"image with reference {image} was found but its platform ({host}) does not match "
                              f"the specified platform ({wanted}): berth runs {host} containers only")


def check_image_platform(value: str) -> None:
    """--platform of the image commands (import, save, load, history, rmi, image inspect):
    berth's store holds the host's platform only, so only that one can be meant."""
    host_one, wanted = is_host_platform(value)
    if not host_one:
        raise NotImplementedYet(f"--platform {wanted}: berth stores {host_platform()} images only (no "
                                "multi-platform images yet)")


def check_runtime(name: str, settings) -> str:
    """--runtime: the in-process runtime by its name, or one of daemon.json's "runtimes"
    (berth.engine.oci_runtime runs the container under it)."""
    if name not in ("", DEFAULT_RUNTIME, *settings.runtimes):
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    return name or DEFAULT_RUNTIME


def check_isolation(value: str) -> str:
    if value.lower() not in ("", "default"):
        raise InvalidArgument(f'Invalid isolation: "{value}" - linux only supports \'default\'')
    return value


def check_gpus(value: str) -> None:
    raise NotImplementedYet(f'--gpus {value}: could not select device driver "" with capabilities: [[gpu]]: GPU '
                            "devices are not supported on this host")


def check_volume_driver(name: str) -> str:
    if name not in ("", "local"):
        raise NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')
    return name


def use_api_socket() -> None:
    raise NotImplementedYet("--use-api-socket: berth serves no Docker API socket yet")


def check_mac_address(value: str) -> str:
    """Go's net.ParseMAC for the 6-byte forms docker accepts (aa:bb:.., aa-bb-..)."""
    parts = value.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise InvalidArgument(f"{value} is not a valid mac address")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"{value} is not a valid mac address: a multicast address cannot be a container's")
    return ":".join(parts).lower()


def check_endpoint(ip: str | None, ip6: str | None, aliases: list[str], link_local: list[str],
                   network: str | None = None) -> None:
    """--ip/--ip6/--network-alias/--link-local-ip: well-formed, and --ip and aliases only on a
    user-defined network (`network` not one of docker's predefined ones nor container:<x>)."""
    import ipaddress  # lazy: only these flags

    for value, version, flag in ((ip, 4, "IPv4"), (ip6, 6, "IPv6")):
        if value:
            try:
                parsed = ipaddress.ip_address(value)
            except ValueError:
                parsed = None
            if parsed is None or parsed.version != version:
                raise InvalidArgument(f"invalid {flag} address: {value}")
    for value in link_local:
        try:
            parsed = ipaddress.ip_address(value)
        except ValueError:
            parsed = None
        if parsed is None or not parsed.is_link_local:
            raise InvalidArgument(f"invalid link local IP address: {value}")
    user_network = bool(network) and network not in ("bridge", "host", "none", "default") and \
        not network.startswith("container:")
    if aliases and not user_network:
        raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
    if (ip or ip6) and not user_network:
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    if ip6:
        raise NotImplementedYet("--ip6: berth's user-defined networks are IPv4 only")


def endpoint_settings(ip: str | None, aliases: list[str], link_local: list[str]) -> dict | None:
    """NetworkingConfig's EndpointSettings for the container's network from the run flags."""
    ipam = {**({"IPv4Address": ip} if ip else {}), **({"LinkLocalIPs": list(link_local)} if link_local else {})}
    endpoint = {**({"IPAMConfig": ipam} if ipam else {}), **({"Aliases": list(aliases)} if aliases else {})}
    return endpoint or None
