"""Published ports in docker's terms: parsing -p/--expose/-P (go-connections' nat package as
the docker CLI vendors it), host ports reserved per container as exclusive files, and the
`port`/`ps` renderings (docker CLI's port.go and DisplayablePorts)."""

import _socket
import errno
import fcntl
import os

from berth.errors import BerthError, InvalidArgument, NotFound
from berth.fs import make_dirs

PROTOS = ("tcp", "udp", "sctp")
# docker's portallocator falls back to this when the kernel's ephemeral range is unreadable
DEFAULT_EPHEMERAL_RANGE = (49153, 65535)
EPHEMERAL_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"


class _ParseError(ValueError):
    pass


# --- Go's strconv and net, as far as the nat package leans on them ------------------------

def _parse_uint16(s: str) -> int:
    """strconv.ParseUint(s, 10, 16), with its error text."""
    n = 0
    for c in s:
        if not "0" <= c <= "9":
            n = -1
            break
        n = n * 10 + ord(c) - 48
        if n > 65535:
            raise _ParseError(f"strconv.ParseUint: parsing {_quote(s)}: value out of range")
    if not s or n < 0:
        raise _ParseError(f"strconv.ParseUint: parsing {_quote(s)}: invalid syntax")
    return n


def _quote(s: str) -> str:
    from berth.strconv import quote  # lazy: only refusals need it, and run imports this module

    return quote(s)


def _parse_port_range(ports: str) -> tuple[int, int]:
    """nat.ParsePortRange: "80" or "8000-9000" (a third "-part" is ignored, as there)."""
    if ports == "":
        raise _ParseError("empty string specified for ports")
    if "-" not in ports:
        port = _parse_uint16(ports)
        return port, port
    parts = ports.split("-")
    start, end = _parse_uint16(parts[0]), _parse_uint16(parts[1])
    if end < start:
        raise _ParseError(f"invalid range specified for port: {ports}")
    return start, end


def _split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: "80/udp" -> ("udp", "80"); no proto means tcp; no port means ("", "")."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _port_int(port: str) -> int:
    """nat.Port.Int(): the number of "80/tcp", 0 when it is not one."""
    number = _split_proto_port(port)[1]
    try:
        return _parse_uint16(number) if number else 0
    except _ParseError:
        return 0


def _is_ipv4(s: str) -> bool:
    """net.ParseIP for dotted quads: four decimal fields <= 255, no leading zeros."""
    fields = s.split(".")
    if len(fields) != 4:
        return False
    for field in fields:
        if not (0 < len(field) <= 3 and field.isascii() and field.isdigit()) or int(field) > 255:
            return False
        if len(field) > 1 and field[0] == "0":
            return False
    return True


def _is_ip(s: str) -> bool:
    """net.ParseIP(s) != nil (no zones, unlike Python's ipaddress)."""
    if ":" not in s:
        return _is_ipv4(s)
    if "%" in s:
        return False
    import ipaddress  # lazy: only IPv6 addresses

    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def _unbracket(ip: str) -> str:
    """net.SplitHostPort(ip + ":")'s host, as ParsePortSpec strips "[v6]"; Go's errors verbatim."""
    hostport = ip + ":"
    last_colon = len(hostport) - 1
    end = hostport.find("]")
    why = ""
    if end < 0:
        why = "missing ']' in address"
    elif end + 1 != last_colon:
        why = "too many colons in address" if hostport[end + 1] == ":" else "missing port in address"
    elif "[" in hostport[1:]:
        why = "unexpected '[' in address"
    elif "]" in hostport[end + 1:]:
        why = "unexpected ']' in address"
    if why:
        raise _ParseError(f"invalid IP address {ip}: address {hostport}: {why}")
    return hostport[1:end]


def join_host_port(host: str, port: str) -> str:
    """net.JoinHostPort: brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- -p / --expose / -P --------------------------------------------------------------------

def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _parse_port_spec(raw: str) -> list[tuple[str, dict]]:
    """nat.ParsePortSpec: one -p value -> [(container port, PortBinding)], checks in its order."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = _split_proto_port(container_port)
    if ip and ip[0] == "[":
        ip = _unbracket(ip)
    if ip and not _is_ip(ip):
        raise _ParseError(f"invalid IP address: {ip}")
    if container_port == "":
        raise _ParseError(f"no port specified: {raw}<empty>")
    try:
        start, end = _parse_port_range(container_port)
    except _ParseError:
        raise _ParseError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = _parse_port_range(host_port)
        except _ParseError:
            raise _ParseError(f"invalid hostPort: {host_port}") from None
        # A host range with one container port is the range to allocate into; otherwise sizes must match.
        if end - start != host_end - host_start and end != start:
            raise _ParseError(f"invalid ranges specified for container and host Ports: {container_port} and "
                              f"{host_port}")
    if proto.lower() not in PROTOS:
        raise _ParseError(f"invalid proto: {proto}")
    proto = proto.lower()
    mappings = []
    for i in range(end - start + 1):
        binding_port = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            binding_port += f"-{host_end}"
        mappings.append((f"{start + i}/{proto}", {"HostIp": ip, "HostPort": binding_port}))
    return mappings


def _standard_notation(value: str) -> str:
    """The CLI's long form `published=8080,target=80,protocol=udp` as `8080:80/udp`."""
    if "=" not in value:
        return value
    params = {"protocol": "tcp"}
    for param in value.split(","):
        key, found, val = param.partition("=")
        if not found or not key:
            raise InvalidArgument(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = val
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_publish(values: list[str]) -> tuple[dict, dict]:
    """`-p` values -> (Config.ExposedPorts, HostConfig.PortBindings), keys sorted as docker prints them."""
    specs = [_standard_notation(value) for value in values]
    exposed, bindings = {}, {}
    for spec in specs:
        try:
            mappings = _parse_port_spec(spec)
        except _ParseError as err:
            raise InvalidArgument(str(err)) from None
        for port, binding in mappings:
            exposed[port] = {}
            bindings.setdefault(port, []).append(binding)
    return dict(sorted(exposed.items())), dict(sorted(bindings.items()))


def parse_expose(values: list[str]) -> dict:
    """`--expose 80`, `--expose 7000-7010/udp` -> Config.ExposedPorts additions (the CLI keeps the
    proto's case and does not check it, as docker's does)."""
    exposed = {}
    for value in values:
        if ":" in value:
            raise InvalidArgument(f"invalid port format for --expose: {value}")
        proto, port = _split_proto_port(value)
        try:
            start, end = _parse_port_range(port)
        except _ParseError as err:
            raise InvalidArgument(f"invalid range format for --expose: {value}, error: {err}") from None
        for number in range(start, end + 1):
            exposed[f"{number}/{proto}"] = {}
    return dict(sorted(exposed.items()))


def publish_all(exposed: dict, bindings: dict) -> dict:
    """`-P`: PortBindings plus an any-address, any-port binding for each exposed port without one."""
    published = {port: list(wanted) for port, wanted in bindings.items() if wanted is not None}
    for port in exposed:
        if not published.get(port):
            published[port] = [{"HostIp": "", "HostPort": ""}]
    return published


# --- host port reservations ----------------------------------------------------------------

def ephemeral_range(path: str = EPHEMERAL_RANGE_PATH) -> tuple[int, int]:
    """The kernel's ephemeral port range, where docker picks a host port nobody asked for."""
    try:
        with open(path) as f:
            start, end = (int(field) for field in f.read().split())
        return start, end
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE


def normalize_host_ip(host_ip: str) -> str:
    """"" means every IPv4 address (docker shows it as 0.0.0.0); IPv6 in its canonical form."""
    if not host_ip:
        return "0.0.0.0"
    if ":" in host_ip:
        import ipaddress  # lazy: only IPv6 addresses

        try:
            address = ipaddress.IPv6Address(host_ip.strip("[]"))
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
        return str(address.ipv4_mapped or address)
    if not _is_ipv4(host_ip):
        raise InvalidArgument(f"invalid IP address: {host_ip}")
    return host_ip


def _overlaps(ip: str, other: str) -> bool:
    """Two bindings of one proto+port collide: same address, or a wildcard of the same family."""
    if ip == other:
        return True
    if (":" in ip) != (":" in other):
        return False
    return ip in ("0.0.0.0", "::") or other in ("0.0.0.0", "::")


def _host_can_bind(proto: str, host_ip: str, port: int) -> bool:
    """Whether the host would let the port be bound now (a foreign listener says no). Bound like
    docker binds it (SO_REUSEADDR, v6-only), then closed at once; sctp is not probed."""
    if proto == "sctp":
        return True
    v6 = ":" in host_ip
    sock = _socket.socket(_socket.AF_INET6 if v6 else _socket.AF_INET,
                          (_socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM) | _socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if v6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return False
        reason = err.strerror or str(err)
        raise BerthError(f"failed to bind host port {join_host_port(host_ip, str(port))}/{proto}: "
                         f"{reason[:1].lower()}{reason[1:]}") from None
    finally:
        sock.close()
    return True


class Reservations:
    """Host ports handed out to containers, under `directory`: one file per (proto, host IP, port)
    named `<proto>-<port>-<ip>`, created exclusively and holding the container ID. Every change
    happens under an flock of the directory, so checking for an overlapping wildcard and creating
    the file is one step; the kernel drops the lock of a holder that dies."""

    def __init__(self, directory: str, port_range: tuple[int, int] | None = None):
        self.directory = directory
        self.port_range = port_range  # None: the kernel's ephemeral range, read when needed

    def reserve(self, container_id: str, proto: str, host_ip: str, port_spec: str, twin: str = "") -> int:
        """A host port for `container_id`: `port_spec` "" (or "0") picks one from the ephemeral range,
        "8080" wants that one, "8000-8010" the next free one in the range (docker's allocator walks
        a range sequentially, resuming after the port it handed out last). `twin`: a second address
        that gets the same port (the [::] docker binds next to 0.0.0.0). The host is asked whether
        it uses an IPv6 address only when a port is picked from a range: for a port asked by
        number, the IPv6 proxy's own bind tells, in docker's words."""
        if proto not in PROTOS:
            raise InvalidArgument(f"unknown protocol: {proto}")
        addresses = [normalize_host_ip(host_ip)] + ([normalize_host_ip(twin)] if twin else [])
        start, end = self.wanted(port_spec)
        make_dirs(self.directory)
        with _Lock(self.directory, exclusive=True):
            held = self._held(proto)
            if start == end:
                probed = [ip for ip in addresses if ":" not in ip]
                taken = self._take(held, container_id, proto, probed, addresses, start)
                if taken:
                    raise BerthError(f"Bind for {taken}:{start} failed: port is already allocated")
                return start
            cursor = self._cursor_path(proto, start, end)
            port = self._read_cursor(cursor, start, end)
            for _ in range(end - start + 1):
                port = start if port >= end else port + 1
                if not self._take(held, container_id, proto, addresses, addresses, port):
                    self._write_cursor(cursor, port)
                    return port
        raise BerthError("all ports are allocated")

    def release(self, container_id: str) -> list[tuple[str, str, int]]:
        """Free every port `container_id` holds (and only those); safe to repeat."""
        released = []
        try:
            lock = _Lock(self.directory, exclusive=True)
        except FileNotFoundError:
            return released
        with lock:
            try:
                os.unlink(os.path.join(self.directory, ".new"))  # under the lock: a killed reserver's
            except FileNotFoundError:
                pass
            for key, holder in self._scan().items():
                if holder == container_id:
                    try:
                        os.unlink(os.path.join(self.directory, _file_name(*key)))
                    except FileNotFoundError:
                        continue
                    released.append(key)
        return released

    def holders(self, proto: str, host_ip: str, port: int) -> set[str]:
        """The containers whose reservations overlap (proto, host_ip, port)."""
        host_ip = normalize_host_ip(host_ip)
        return {holder for (p, ip, number), holder in self.reserved().items()
                if p == proto and number == port and _overlaps(host_ip, ip)}

    def reserved(self) -> dict:
        """{(proto, host_ip, port): container ID} of every reservation."""
        try:
            lock = _Lock(self.directory, exclusive=False)
        except FileNotFoundError:
            return {}
        with lock:
            return self._scan()

    def wanted(self, port_spec: str) -> tuple[int, int]:
        """docker's reading of a binding's HostPort: (port, port), or the range to pick from."""
        try:
            start, end = _parse_port_range(_split_proto_port(port_spec)[1]) if port_spec else (0, 0)
        except _ParseError as err:
            raise InvalidArgument(f"Error parsing HostPort value({port_spec}):{err}") from None
        if start == 0 and end == 0:
            return self.port_range or ephemeral_range()
        if start == 0:
            raise InvalidArgument(f"invalid port range: {start}-{end}")
        return start, end

    def _take(self, held: dict, container_id: str, proto: str, probed: list[str], addresses: list[str],
              port: int) -> str:
        """Reserve the port on every one of `addresses` unless a reservation overlaps one of them or
        the host is using one of `probed`: "" when done, else the address that is taken."""
        for ip in addresses:
            if any(_overlaps(ip, other) for other in held.get(port, ())):
                return ip
        for ip in probed:
            if not _host_can_bind(proto, ip, port):
                return ip
        for ip in addresses:
            self._write_reservation(container_id, proto, ip, port)
        return ""

    def _write_reservation(self, container_id: str, proto: str, host_ip: str, port: int) -> None:
        # The file appears with its holder written (a link, exclusive like O_EXCL): a berth killed
        # here leaves at most a stray dot-file, never a reservation nobody can release.
        new = os.path.join(self.directory, ".new")  # one name: under the lock, a killed writer's is reused
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, container_id.encode())
        finally:
            os.close(fd)
        try:
            os.link(new, os.path.join(self.directory, _file_name(proto, host_ip, port)))
        finally:
            os.unlink(new)

    def _held(self, proto: str) -> dict:
        """{port: [host IPs]} reserved for `proto`."""
        held = {}
        prefix = proto + "-"
        for name in os.listdir(self.directory):
            if name.startswith(prefix):
                port, _, ip = name[len(prefix):].partition("-")
                held.setdefault(int(port), []).append(ip)
        return held

    def _scan(self) -> dict:
        found = {}
        for name in os.listdir(self.directory):
            if name.startswith("."):
                continue
            proto, port, ip = name.split("-", 2)
            try:
                with open(os.path.join(self.directory, name)) as f:
                    found[(proto, ip, int(port))] = f.read()
            except FileNotFoundError:
                continue
        return found

    def _cursor_path(self, proto: str, start: int, end: int) -> str:
        return os.path.join(self.directory, f".last-{proto}-{start}-{end}")

    @staticmethod
    def _read_cursor(path: str, start: int, end: int) -> int:
        """The port handed out last from this range; a new range starts at its beginning."""
        try:
            with open(path) as f:
                last = int(f.read())
        except (OSError, ValueError):
            return end
        return last if start <= last <= end else end

    @staticmethod
    def _write_cursor(path: str, port: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, str(port).encode())
        finally:
            os.close(fd)


def _file_name(proto: str, host_ip: str, port: int) -> str:
    return f"{proto}-{port}-{host_ip}"


class _Lock:
    """flock of a directory, held for a `with` block."""

    def __init__(self, directory: str, exclusive: bool):
        self.fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.exclusive = exclusive

    def __enter__(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing the only descriptor drops the lock


# --- `berth port` and `berth ps` -----------------------------------------------------------

def _natural_key(s: str) -> list:
    """A sort key equal to fvbommel/sortorder.NaturalLess, the order of `docker port` lines:
    digit runs compare as numbers (fewer leading zeros first) and sort before other bytes."""
    data = s.encode()
    key, i = [], 0
    while i < len(data):
        if 48 <= data[i] <= 57:
            j = i
            while j < len(data) and data[j] == 48:
                j += 1
            k = j
            while k < len(data) and 48 <= data[k] <= 57:
                k += 1
            key.append((0, k - j, data[j:k], j - i))
            i = k
        else:
            key.append((1, data[i]))
            i += 1
    return key


def port_lines(ports: dict, private: str | None = None, container: str = "") -> list[str]:
    """`docker port CONTAINER [PRIVATE_PORT[/PROTO]]` from NetworkSettings.Ports: every binding as
    `80/tcp -> 0.0.0.0:8080`, or only the host addresses of PRIVATE_PORT (tcp unless given)."""
    out = []
    if private is not None and private != "":
        number, _, proto = private.partition("/")
        try:
            _parse_uint16(number)
        except _ParseError as err:
            raise InvalidArgument(f"invalid port ({number}): {err}") from None
        frontends = ports.get(f"{number}/{proto or 'tcp'}")
        if not frontends:
            # docker's text starts with "Error: ", which berth's CLI prints before every message
            raise NotFound(f"No public port '{private}' published for {container}")
        out = [join_host_port(f.get("HostIp", ""), f.get("HostPort", "")) for f in frontends]
    else:
        for port, frontends in ports.items():
            for f in frontends or ():
                out.append(f"{port} -> {join_host_port(f.get('HostIp', ''), f.get('HostPort', ''))}")
    return sorted(out, key=_natural_key)


def summary_ports(ports: dict) -> list[dict]:
    """NetworkSettings.Ports as the API's container list has them (`Ports` of GET /containers/json):
    one entry per binding, a bare entry per unpublished port; IP and PublicPort omitted when empty."""
    summary = []
    for port, bindings in ports.items():
        proto, number = _split_proto_port(port)
        try:
            private = _parse_uint16(number) if number else 0
        except _ParseError:
            continue
        if not bindings:
            summary.append({"PrivatePort": private, "Type": proto})
            continue
        for binding in bindings:
            host_port = binding.get("HostPort") or ""
            try:
                public = _parse_uint16(host_port) if host_port else 0
            except _ParseError:
                continue
            entry = {"IP": binding.get("HostIp") or "", "PrivatePort": private, "PublicPort": public, "Type": proto}
            if not entry["IP"]:
                del entry["IP"]
            if not public:
                del entry["PublicPort"]
            summary.append(entry)
    return summary


def displayable_ports(summary: list[dict]) -> str:
    """docker's DisplayablePorts: the `ps` PORTS cell from API port entries. Ports published on
    the same number (or not at all) collapse into ranges per address and proto; the others are
    listed one by one after them, as `0.0.0.0:8080->80/tcp`."""
    entries = sorted(summary, key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0),
                                             p.get("Type", "")))
    groups = {}  # key -> [first, last]; a dict keeps the order in which keys first appeared
    result, host_mappings = [], []
    for entry in entries:
        current, kind, ip = entry.get("PrivatePort", 0), entry.get("Type", ""), entry.get("IP", "")
        key = kind
        if ip:
            public = entry.get("PublicPort", 0)
            if public != current:
                host_mappings.append(f"{join_host_port(ip, str(public))}->{current}/{kind}")
                continue
            key = f"{ip}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(_form_group(key, *group))
            groups[key] = [current, current]
    result += [_form_group(key, first, last) for key, (first, last) in groups.items()]
    return ", ".join(result + host_mappings)


def _form_group(key: str, first: int, last: int) -> str:
    parts = key.split("/")
    ip, kind = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{join_host_port(ip, group)}->{group}"
    return f"{group}/{kind}"


def ps_ports(ports: dict) -> str:
    """The PORTS column of `berth ps` for a container's NetworkSettings.Ports."""
    return displayable_ports(summary_ports(ports))
