"""Container addresses on a bridge: docker's default address pools, a subnet that overlaps
no route of the host, and leases that are files created atomically, so concurrent
`berth run`s can never hand out the same address.

Pool does its arithmetic on integers: `import ipaddress` costs ~5 ms, a tenth of `run`."""

import _socket
import fcntl
import os

from berth.fs import make_dirs, pid_alive


def __getattr__(name: str):
    if name == "DEFAULT_POOLS":
        return default_pools()
    raise AttributeError(name)


def default_pools() -> list:
    """docker's default-address-pools: 172.17.0.0/16 .. 172.31.0.0/16, then 192.168.0.0/20 slices."""
    import ipaddress  # lazy: only choosing a subnet for a new bridge

    return [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] + [
        ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]


def host_routes(path: str = "/proc/net/route") -> list:
    """IPv4 networks the host already routes (the default route excluded)."""
    import ipaddress  # lazy: only choosing a subnet for a new bridge

    networks = []
    with open(path) as f:
        next(f)
        for line in f:
            fields = line.split()
            destination = int(fields[1], 16).to_bytes(4, "little")
            mask = int(fields[7], 16).to_bytes(4, "little")
            if mask == b"\0\0\0\0":
                continue
            networks.append(ipaddress.ip_network(f"{ipaddress.ip_address(destination)}/"
                                                 f"{ipaddress.ip_address(mask)}", strict=False))
    return networks


def choose_subnet(routes: list, pools=None):
    """The first default pool that overlaps none of `routes`, like docker picks a bridge's."""
    for pool in pools or default_pools():
        if not any(pool.overlaps(route) for route in routes):
            return pool
    raise OSError("no default address pool is free: set the bridge's subnet (bip) explicitly")


def _number(address: str) -> int:
    return int.from_bytes(_socket.inet_pton(_socket.AF_INET, address), "big")


def parse_cidr(text: str) -> tuple[str, int, str]:
    """"a.b.c.d/len" -> (address, prefix length, network "n.n.n.n/len"); ValueError if not
    exactly that (no IPv6, no short forms, a prefix is required)."""
    address, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit() or not 0 <= int(prefix) <= 32:
        raise ValueError(f"invalid CIDR address: {text}")
    try:
        network, length = _network(text)
    except OSError:
        raise ValueError(f"invalid CIDR address: {text}") from None
    return address, length, f"{_dotted(network)}/{length}"


def network_contains(outer: str, inner: str) -> bool:
    """Is network `inner` ("a.b.c.d/len") inside network `outer`?"""
    outer_base, outer_len = _network(outer)
    inner_base, inner_len = _network(inner)
    return inner_len >= outer_len and _network(f"{_dotted(inner_base)}/{outer_len}")[0] == outer_base


def _dotted(number: int) -> str:
    return _socket.inet_ntoa(number.to_bytes(4, "big"))


def _network(cidr: str) -> tuple[int, int]:
    """(first address, prefix length) of an IPv4 CIDR, host bits cleared."""
    address, _, prefix = cidr.partition("/")
    length = int(prefix) if prefix else 32
    mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    return _number(address) & mask, length


class Pool:
    """Leases under `directory`: one file per address, holding the container ID and boot ID."""

    def __init__(self, directory: str, subnet: str, gateway: str | None = None, fixed_cidr: str | None = None):
        self.directory = directory
        self.network, self.prefix_len = _network(subnet)
        self.gateway = gateway or _dotted(self.network + 1)
        first, length = _network(fixed_cidr) if fixed_cidr else (self.network, self.prefix_len)
        if fixed_cidr and not network_contains(subnet, fixed_cidr):
            raise ValueError(f"fixed-cidr {fixed_cidr} is not inside the bridge subnet "
                             f"{_dotted(self.network)}/{self.prefix_len}")
        self.range = (first, length)

    def _candidates(self):
        """Host addresses of the range, minus the gateway and the subnet's network/broadcast."""
        broadcast = self.network + (1 << (32 - self.prefix_len)) - 1
        first, length = self.range
        last = first + (1 << (32 - length)) - 1
        reserved = {_number(self.gateway), self.network, broadcast}
        if length < 31:  # a fixed-cidr's own network and broadcast addresses too, like hosts()
            reserved |= {first, last}
        for number in range(first, last + 1):
            if number not in reserved:
                yield _dotted(number)

    def allocate(self, container_id: str) -> str:
        make_dirs(self.directory)
        self._sweep_drafts()
        # A lease appears whole or not at all (written aside, then hard-linked into place,
        # which fails if the address is taken), so nobody ever reads a half-made one. The
        # draft's flock, held while it exists, tells a sweeper whether its writer lives.
        draft = os.path.join(self.directory, f".draft-{os.getpid()}-{os.urandom(4).hex()}")
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{container_id}\n{boot_id()}".encode())
            for address in self._candidates():
                path = os.path.join(self.directory, address)
                if self._take(draft, path) or self._reclaim(path) and self._take(draft, path):
                    return address
        finally:
            os.unlink(draft)
            os.close(fd)
        raise OSError(f"no available IPv4 address in {_dotted(self.range[0])}/{self.range[1]}")

    def claim(self, address: str, container_id: str) -> bool:
        """Take `address` itself (--ip) for `container_id`; False if it is taken (a lease of an
        earlier boot is void and taken back). The gateway, the subnet's own addresses and one
        outside the range are never free."""
        number = _number(address)
        first, length = self.range
        broadcast = self.network + (1 << (32 - self.prefix_len)) - 1
        if not first <= number < first + (1 << (32 - length)) or number in (_number(self.gateway), self.network,
                                                                             broadcast):
            return False
        make_dirs(self.directory)
        draft = os.path.join(self.directory, f".draft-{os.getpid()}-{os.urandom(4).hex()}")
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{container_id}\n{boot_id()}".encode())
            path = os.path.join(self.directory, address)
            return self._take(draft, path) or self._reclaim(path) and self._take(draft, path)
        finally:
            os.unlink(draft)
            os.close(fd)

    @staticmethod
    def _take(draft: str, path: str) -> bool:
        try:
            os.link(draft, path)
            return True
        except FileExistsError:
            return False

    def _reclaim(self, path: str) -> bool:
        """A lease from an earlier boot is void: its bridge and container died with the host.
        Removed by rename, so of two allocators reclaiming it only one succeeds."""
        holder = _read_lease(path)
        if holder is None or holder[1] == boot_id():
            return False
        stale = os.path.join(self.directory, f".stale-{os.getpid()}-{os.path.basename(path)}")
        try:
            os.rename(path, stale)
        except FileNotFoundError:
            return False
        if _read_lease(stale) != holder:  # renamed a fresh lease made meanwhile: put it back
            os.rename(stale, path)
            return False
        os.unlink(stale)
        return True

    def _sweep_drafts(self) -> None:
        """Drafts whose writer was killed (it is gone, and their flock is free): removed."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            pid = name.split("-")[1] if name.startswith(".draft-") else ""
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            path = os.path.join(self.directory, name)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
            except (BlockingIOError, FileNotFoundError):
                pass
            finally:
                os.close(fd)

    def release_all(self, container_id: str) -> None:
        """Free every lease `container_id` holds, found by scanning (a run killed before it
        recorded its address)."""
        self._sweep_drafts()  # and the draft it was killed writing
        for address, holder in self.leases().items():
            if holder == container_id:
                self.release(address, container_id)

    def release(self, address: str, container_id: str) -> None:
        """Free `address` if `container_id` holds it (a lease is only ever freed by its holder);
        drafts of allocations killed midway go too."""
        self._sweep_drafts()
        path = os.path.join(self.directory, address)
        holder = _read_lease(path)
        if holder is not None and holder[0] == container_id:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def leases(self) -> dict:
        """address -> container ID, for the leases of this boot."""
        found = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        this_boot = boot_id()
        for name in names:
            holder = _read_lease(os.path.join(self.directory, name))
            if holder is not None and holder[1] == this_boot and name[0] != ".":
                found[name] = holder[0]
        return found


def _read_lease(path: str) -> tuple[str, str] | None:
    """(container ID, boot ID) of a lease file, or None if there is none."""
    try:
        with open(path) as f:
            container_id, _, boot = f.read().partition("\n")
    except FileNotFoundError:
        return None
    return container_id, boot


_BOOT_ID = None


def boot_id() -> str:
    global _BOOT_ID
    if _BOOT_ID is None:
        with open("/proc/sys/kernel/random/boot_id") as f:
            _BOOT_ID = f.read().strip()
    return _BOOT_ID
