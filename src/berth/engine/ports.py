"""Ports and links as a front door takes them: docker's -p/--expose and --link parsing
(berth.network owns the one parser of each), and the `port` listing of a container."""

from berth.network.links import parse_links
from berth.network.ports import parse_expose, parse_publish
from berth.network.ports import port_lines as lines

__all__ = ["parse_expose", "parse_links", "parse_publish", "port_lines"]


def port_lines(record: dict, private: str | None = None, container: str = "") -> list[str]:
    """Every binding as `80/tcp -> 0.0.0.0:8080`, or only the host addresses of `private`
    (PORT[/PROTO], tcp unless given); NotFound when that port is not published. `container`:
    the name the user gave, for the error."""
    ports = (record.get("NetworkSettings") or {}).get("Ports") or {}
    return lines(ports, private, container)
