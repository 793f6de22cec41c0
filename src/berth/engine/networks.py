"""Network modes a container can have (docker's --network archetypes) and its DNS files'
inputs. Bridged networking (docker's default) is not here yet: until it is, a container
without --network gets "none", its own network namespace with only loopback."""

import os

from berth.errors import InvalidArgument

BUILTIN = ("none", "host")  # "bridge" joins these when the bridge driver lands
DRIVERS = {"none": "null", "host": "host", "bridge": "bridge"}


def parse_ip(value: str):
    import ipaddress

    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def validate_dns(servers: list[str]) -> list[str]:
    for server in servers:
        if parse_ip(server) is None:
            raise InvalidArgument(f'invalid argument "{server}" for "--dns" flag: {server} is not an ip address')
    return list(servers)


def parse_extra_hosts(values: list[str]) -> list[tuple[str, str]]:
    """docker's --add-host name:ip (IPv6 allowed, also in brackets; `name=ip` too)."""
    hosts = []
    for value in values:
        sep = "=" if "=" in value else ":"
        name, found, address = value.partition(sep)
        if not found or not name or not address:
            raise InvalidArgument(f'invalid argument "{value}" for "--add-host" flag: bad format for add-host: '
                                  f'"{value}"')
        address = address.strip("[]")
        if address == "host-gateway":
            raise InvalidArgument("host-gateway needs the bridge network, which berth does not provide yet")
        if parse_ip(address) is None:
            raise InvalidArgument(f'invalid argument "{value}" for "--add-host" flag: invalid IP address in '
                                  f'add-host: "{address}"')
        hosts.append((name, address))
    return hosts


def network_ids(root: str) -> dict:
    """Stable IDs for the built-in networks, made once per berth root."""
    from berth.fs import read_json, write_json

    path = os.path.join(root, "networks.json")
    try:
        return read_json(path)
    except FileNotFoundError:
        ids = {name: os.urandom(32).hex() for name in BUILTIN}
        os.makedirs(root, exist_ok=True)
        write_json(path, ids)
        return ids


def endpoint(network_id: str) -> dict:
    """NetworkSettings.Networks[<name>] of a container without an address on it."""
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
            "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
