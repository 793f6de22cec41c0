"""Network endpoints over the predefined networks (bridge, host, none): list, inspect, prune
(nothing to prune); user-defined networks (create, connect, disconnect, remove) do not exist yet."""

from berth.api.http import ApiError, Response
from berth.engine.network_info import inspect_network, list_networks, network_json
from berth.engine.networks import BUILTIN
from berth.errors import Conflict, NotFound, NotImplementedYet

NO_USER_NETWORKS = ("user-defined networks are not supported yet: berth has only the predefined networks bridge, "
                    "host and none")


def list_all(req) -> Response:
    return Response([network_json(req.engine, n.name, n.id) for n in list_networks(req.engine, req.filter_args())])


def _network(req) -> dict:
    network = inspect_network(req.engine, req.params["id"])
    if network is None:
        raise NotFound(f"network {req.params['id']} not found")
    return network


def inspect(req) -> Response:
    return Response(_network(req))


def create(req) -> Response:
    name = req.json_object().get("Name")
    if name in BUILTIN:
        raise Conflict(f"network with name {name} already exists")
    raise NotImplementedYet(f"cannot create network {name}: {NO_USER_NETWORKS}")


def remove(req) -> Response:
    network = _network(req)
    raise ApiError(403, f"{network['Name']} is a pre-defined network and cannot be removed")


def connect(req) -> Response:
    network = _network(req)
    raise NotImplementedYet(f"cannot connect a container to network {network['Name']}: a container joins its "
                            f"network when it is created ({NO_USER_NETWORKS})")


def disconnect(req) -> Response:
    network = _network(req)
    raise NotImplementedYet(f"cannot disconnect a container from network {network['Name']}: {NO_USER_NETWORKS}")


def prune(req) -> Response:
    """The predefined networks are never pruned; the filters are still checked as docker does."""
    from berth.filters import prune_filters  # lazy: only prune

    prune_filters(req.filter_args())
    return Response({"NetworksDeleted": []})


ROUTES = [
    ("GET", "/networks", list_all),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
