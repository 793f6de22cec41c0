"""Volume endpoints: list, create, inspect, remove, prune, over the engine's local volumes as
`berth volume` uses them."""

from berth.api.http import Response, no_content
from berth.engine.volumes import LIST_FILTERS, PRUNE_FILTERS, VolumeStore, create_volume, list_volumes, parse_filters
from berth.engine.volumes import prune as prune_volumes
from berth.errors import InvalidArgument, NotImplementedYet


def list_all(req) -> Response:
    filters = parse_filters(req.filter_args(), LIST_FILTERS)
    return Response({"Volumes": list_volumes(req.engine, filters), "Warnings": []})


def _strings(body: dict, key: str) -> dict | None:
    """A map of strings from the body (Labels, DriverOpts); None when absent or empty."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"invalid {key}: expected an object of strings")
    return value or None


def create(req) -> Response:
    body = req.json_object()
    if body.get("ClusterVolumeSpec"):
        raise NotImplementedYet("cluster volumes (Swarm CSI) are not supported: berth has no swarm")
    name = body.get("Name") or None
    if name is not None and not isinstance(name, str):
        raise InvalidArgument("invalid Name: expected a string")
    name = create_volume(req.engine, name, labels=_strings(body, "Labels"), options=_strings(body, "DriverOpts"),
                         driver=body.get("Driver") or "local")
    return Response(VolumeStore(req.engine.paths).get(name), status=201)


def inspect(req) -> Response:
    return Response(VolumeStore(req.engine.paths).get(req.params["name"]))


def remove(req) -> Response:
    VolumeStore(req.engine.paths).remove(req.params["name"], force=req.flag("force"))
    return no_content()


def prune(req) -> Response:
    """From API 1.42 on, only anonymous volumes unless the all=true filter says otherwise (dockerd)."""
    filters = parse_filters(req.filter_args(), PRUNE_FILTERS)
    deleted, reclaimed = prune_volumes(VolumeStore(req.engine.paths), req.older_than("1.42"), filters)
    return Response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


ROUTES = [
    ("GET", "/volumes", list_all),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
