"""Container addresses on a bridge: docker's default address pools, a subnet that overlaps
no route of the host, and leases that are files created with O_EXCL, so concurrent
`berth run`s can never hand out the same address (issue 5's IPAM; not wired in yet)."""

import ipaddress
import os

# docker's default-address-pools: 172.17.0.0/16 .. 172.31.0.0/16, then 192.168.0.0/20 slices.
DEFAULT_POOLS = [ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)] + [
    ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)]


def host_routes(path: str = "/proc/net/route") -> list:
    """IPv4 networks the host already routes (the default route excluded)."""
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


def choose_subnet(routes: list, pools=DEFAULT_POOLS):
    """The first default pool that overlaps none of `routes`, like docker picks a bridge's."""
    for pool in pools:
        if not any(pool.overlaps(route) for route in routes):
            return pool
    raise OSError("no default address pool is free: set the bridge's subnet (bip) explicitly")


class Pool:
    """Leases under `directory`: one file per address, holding the container ID."""

    def __init__(self, directory: str, subnet: str, gateway: str | None = None, fixed_cidr: str | None = None):
        self.directory = directory
        self.subnet = ipaddress.ip_network(subnet, strict=False)
        self.gateway = ipaddress.ip_address(gateway) if gateway else next(self.subnet.hosts())
        self.range = ipaddress.ip_network(fixed_cidr, strict=False) if fixed_cidr else self.subnet
        if not self.range.subnet_of(self.subnet):
            raise ValueError(f"fixed-cidr {self.range} is not inside the bridge subnet {self.subnet}")

    def allocate(self, container_id: str) -> str:
        os.makedirs(self.directory, exist_ok=True)
        reserved = {self.gateway, self.subnet.network_address, self.subnet.broadcast_address}
        for address in self.range.hosts():
            if address in reserved:
                continue
            try:
                fd = os.open(os.path.join(self.directory, str(address)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            os.write(fd, container_id.encode())
            os.close(fd)
            return str(address)
        raise OSError(f"no available IPv4 address in {self.range}")

    def release(self, address: str, container_id: str) -> None:
        """Free `address` if `container_id` holds it (a lease is only ever freed by its holder)."""
        path = os.path.join(self.directory, address)
        try:
            with open(path) as f:
                if f.read() != container_id:
                    return
            os.unlink(path)
        except FileNotFoundError:
            pass

    def leases(self) -> dict:
        """address -> container ID"""
        found = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return found
        for name in names:
            try:
                with open(os.path.join(self.directory, name)) as f:
                    found[name] = f.read()
            except FileNotFoundError:
                continue
        return found
