"""Network endpoints of the Engine API: list, inspect, create, remove, prune, connect and
disconnect, over the same engine calls as `berth network` (engine.network_info, engine.usernets)."""

from berth.api.http import ApiError, Response
from berth.engine.network_info import inspect_network, list_networks, network_json, user_network_json
from berth.errors import InvalidArgument, NotFound


def list_all(req) -> Response:
    return Response([user_network_json(req.engine, n.record) if n.record else network_json(req.engine, n.name, n.id)
                     for n in list_networks(req.engine, req.filter_args())])


def _network(req) -> dict:
    network = inspect_network(req.engine, req.params["id"])
    if network is None:
        raise NotFound(f"network {req.params['id']} not found")
    return network


def inspect(req) -> Response:
    return Response(_network(req))


def create(req) -> Response:
    from berth.engine.usernets import NetworkRequest  # lazy: only create
    from berth.engine.usernets import create as create_network

    body = req.json_object(required=True)
    name = body.get("Name")
    if not isinstance(name, str):
        raise InvalidArgument("network name must be a string")
    ipam = body.get("IPAM") or {}
    configs = ipam.get("Config") or []
    if not isinstance(ipam, dict) or not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InvalidArgument("invalid JSON: IPAM must be an object with a list of Config objects")
    if any(c.get("AuxiliaryAddresses") for c in configs):
        raise InvalidArgument("auxiliary addresses are not supported by berth's bridge networks")
    subnets = [c["Subnet"] for c in configs if c.get("Subnet")]
    if any(c.get("Gateway") or c.get("IPRange") for c in configs if not c.get("Subnet")):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    request = NetworkRequest(
        name, driver=body.get("Driver") or "bridge", subnets=subnets,
        gateways=[c["Gateway"] for c in configs if c.get("Gateway")],
        ip_ranges=[c["IPRange"] for c in configs if c.get("IPRange")], internal=bool(body.get("Internal")),
        attachable=bool(body.get("Attachable")), options=body.get("Options") or {}, labels=body.get("Labels") or {},
        ipam_driver=ipam.get("Driver") or "default", ipam_options=ipam.get("Options") or None,
        ipv6=bool(body.get("EnableIPv6")))
    record = create_network(req.engine, request)
    return Response({"Id": record["Id"], "Warning": ""}, status=201)


def remove(req) -> Response:
    from berth.engine.usernets import remove as remove_network  # lazy: only rm
    from berth.errors import Conflict  # lazy: only rm

    try:
        remove_network(req.engine, req.params["id"])
    except Conflict as err:
        if "pre-defined" in str(err):
            raise ApiError(403, str(err)) from None
        raise
    return Response(status=204)


def _container(body: dict) -> str:
    container = body.get("Container")
    if not container or not isinstance(container, str):
        raise InvalidArgument("no container specified")
    return container


def connect(req) -> Response:
    from berth.engine.usernets import connect as connect_container  # lazy: only connect

    body = req.json_object(required=True)
    endpoint = body.get("EndpointConfig") or {}
    ipam = endpoint.get("IPAMConfig") or {}
    ip = ipam.get("IPv4Address") or None
    if ip:
        from berth.engine.run_options import check_endpoint  # lazy: only --ip

        check_endpoint(ip, None, [], [], req.params["id"])
    connect_container(req.engine, req.params["id"], _container(body), endpoint.get("Aliases") or [], ip)
    return Response(status=200)


def disconnect(req) -> Response:
    from berth.engine.usernets import disconnect as disconnect_container  # lazy: only disconnect

    body = req.json_object(required=True)
    disconnect_container(req.engine, req.params["id"], _container(body), bool(body.get("Force")))
    return Response(status=200)


def prune(req) -> Response:
    from berth.engine.usernets import prune as prune_networks  # lazy: only prune

    return Response({"NetworksDeleted": prune_networks(req.engine, req.filter_args())})


ROUTES = [
    ("GET", "/networks", list_all),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
