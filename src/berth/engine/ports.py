"""`port`: a container's published ports, as docker's CLI lists them."""

from berth.network.ports import port_lines as lines


def port_lines(record: dict, private: str | None = None, container: str = "") -> list[str]:
    """Every binding as `80/tcp -> 0.0.0.0:8080`, or only the host addresses of `private`
    (PORT[/PROTO], tcp unless given); NotFound when that port is not published. `container`:
    the name the user gave, for the error."""
    ports = (record.get("NetworkSettings") or {}).get("Ports") or {}
    return lines(ports, private, container)
