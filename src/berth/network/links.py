"""docker's legacy links on the default bridge: `--link name[:alias]` (cli opts.ParseLink), the
environment a linked container gets (daemon/links/links.go) and its /etc/hosts line."""

from berth.errors import UsageError
from berth.strconv import quote


def _parse_link(value: str) -> tuple[str, str]:
    """opts.ParseLink: "name" or "name:alias"; "/name:/parent/alias" as HostConfig.Links stores it."""
    if value == "":
        raise ValueError("empty string specified for links")
    parts = value.split(":", 2)
    if len(parts) > 2:
        raise ValueError(f"bad format for links: {value}")
    if len(parts) == 1:
        return value, value
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rpartition("/")[2]
    return parts[0], parts[1]


def parse_links(values: list[str]) -> list[tuple[str, str]]:
    """`--link` values -> [(container name, alias)], the alias being the name when not given."""
    links = []
    for value in values:
        try:
            links.append(_parse_link(value))
        except ValueError as err:
            raise UsageError(f'invalid argument {quote(value)} for "--link" flag: {err}') from None
    return links


def _proto_port(port: str) -> tuple[str, str, int]:
    """nat.Port's Proto(), Port() and Int() of "80/tcp" (tcp when no proto; Int 0 when not a number)."""
    parts = port.split("/")
    if not port or not parts[0]:
        return "", "", 0
    proto = parts[1] if len(parts) > 1 and parts[1] else "tcp"
    number = parts[0]
    value = int(number) if number.isascii() and number.isdigit() and int(number) <= 65535 else 0
    return proto, number, value


def _tcp_first(port: str) -> tuple:
    """links.go's withTCPPriority: tcp before any other proto, other protos by name, then by number."""
    proto, _, number = _proto_port(port)
    proto = proto.lower()
    return proto != "tcp", proto, number


def link_env(parent_name: str, alias: str, target_ip: str, target_exposed, target_env: list[str]) -> list[str]:
    """The variables docker sets in a container for its link to another, in docker's order:
    <ALIAS>_PORT, per exposed port <ALIAS>_PORT_<N>_<PROTO>[_ADDR|_PORT|_PROTO], _START/_END
    pairs for runs of consecutive ports, <ALIAS>_NAME=/<parent>/<alias>, then the target's own
    environment as <ALIAS>_ENV_<K> (without HOME and PATH). `target_exposed` is the target's
    Config.ExposedPorts (a dict or its keys)."""
    name = "/" + "/".join(part for part in f"{parent_name}/{alias}".split("/") if part)
    prefix = name.rpartition("/")[2].upper().replace("-", "_")
    ports = sorted(target_exposed, key=_tcp_first)

    env = []
    start = end = None  # the run of consecutive ports being collected
    for i, port in enumerate(ports):
        proto, number, value = _proto_port(port)
        if i == 0:
            start = end = port
            env.append(f"{prefix}_PORT={proto}://{target_ip}:{number}")
        var = f"{prefix}_PORT_{number}_{proto.upper()}"
        env += [f"{var}={proto}://{target_ip}:{number}", f"{var}_ADDR={target_ip}", f"{var}_PORT={number}",
                f"{var}_PROTO={proto}"]

        start_proto, start_number, _ = _proto_port(start)
        if value == _proto_port(end)[2] + 1 and proto.lower() == start_proto.lower():
            end = port
            if i < len(ports) - 1:
                continue
        if end != start:
            end_proto, end_number, _ = _proto_port(end)
            var = f"{prefix}_PORT_{start_number}_{start_proto.upper()}"
            env += [f"{var}_START={start_proto}://{target_ip}:{start_number}", f"{var}_PORT_START={start_number}",
                    f"{var}_END={end_proto}://{target_ip}:{end_number}", f"{var}_PORT_END={end_number}"]
        start = end = port

    env.append(f"{prefix}_NAME={name}")
    for variable in target_env or ():
        key, found, value = variable.partition("=")
        if not found or key in ("HOME", "PATH"):  # set by docker build, not the target's own
            continue
        env.append(f"{prefix}_ENV_{key}={value}")
    return env


def hosts_line(alias: str, target_hostname: str, target_name: str, ip: str) -> str:
    """The /etc/hosts line (no newline) naming a linked container: its alias, its hostname, and its
    name unless that is the alias."""
    target_name = target_name[1:] if target_name.startswith("/") else target_name
    names = f"{alias} {target_hostname}"
    if alias != target_name:
        names += f" {target_name}"
    return f"{ip}\t{names}"
