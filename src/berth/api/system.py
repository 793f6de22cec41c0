"""System endpoints: /_ping, /version, /info and the /events stream."""

import time

from berth.api.http import Response, Stream, json_lines
from berth.engine import events, system
from berth.errors import InvalidArgument
from berth.gotime import get_timestamp, parse_unix_timestamp

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache", "Builder-Version": "1"}


def ping(req) -> Response:
    return Response(b"OK", content_type="text/plain; charset=utf-8", headers=NO_CACHE)


def version(req) -> Response:
    server = system.version()["Server"]
    for component in server["Components"]:  # the API's Details are strings
        component["Details"] = {k: str(v).lower() if isinstance(v, bool) else str(v)
                                for k, v in component["Details"].items()}
    server.update({"GitCommit": "", "GoVersion": "", "BuildTime": ""})
    return Response(server)


def info(req) -> Response:
    return Response(system.info(req.engine))


def _bound(req, name: str, now_ns: int) -> int | None:
    value = req.arg(name)
    if not value:
        return None
    try:
        seconds, nanos = parse_unix_timestamp(get_timestamp(value, now_ns))
    except ValueError as err:
        raise InvalidArgument(str(err)) from None
    return seconds * 1_000_000_000 + nanos


def stream_events(req) -> Stream:
    now_ns = time.time_ns()
    since_ns, until_ns = _bound(req, "since", now_ns), _bound(req, "until", now_ns)
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise InvalidArgument(f"`since` time ({req.arg('since')}) cannot be after `until` time ({req.arg('until')})")
    filters = {key.lower(): values for key, values in req.filters().items()}
    return Stream(json_lines(events.watch(req.engine, since_ns, until_ns, filters)))


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", stream_events),
]
