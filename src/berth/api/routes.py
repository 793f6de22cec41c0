"""The route table: each endpoint module lists its ROUTES as (method, pattern, handler), with
`{name}` for one path segment and `{name:path}` for the rest of the path (image names hold
slashes). Unknown paths are docker's 404, a known path with another method its 405."""

import re

from berth.api.http import ApiError

# endpoint modules, in the order their routes are tried
MODULES = ("berth.api.system", "berth.api.containers", "berth.api.streams", "berth.api.execs",
           "berth.api.images", "berth.api.build", "berth.api.volumes", "berth.api.networks", "berth.api.disk")

_TABLE: list[tuple[str, re.Pattern, object]] | None = None


def _compile(pattern: str) -> re.Pattern:
    regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(f"^{regex}/?$")


def table() -> list:
    global _TABLE
    if _TABLE is None:
        import importlib

        rows = []
        for name in MODULES:
            module = importlib.import_module(name)
            rows += [(method, _compile(pattern), handler) for method, pattern, handler in module.ROUTES]
        _TABLE = rows
    return _TABLE


def preload() -> None:
    table()


def resolve(req):
    """The handler for req (its captures put in req.params), or docker's 404/405."""
    allowed = False
    for method, regex, handler in table():
        m = regex.match(req.path)
        if m is None:
            continue
        if method == req.method or (method == "GET" and req.method == "HEAD"):
            req.params = m.groupdict()
            return handler
        allowed = True
    if allowed:
        raise ApiError(405, f"method {req.method} is not allowed on {req.path}")
    raise ApiError(404, "page not found")
