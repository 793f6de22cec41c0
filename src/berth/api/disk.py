"""GET /system/df: what images, containers, volumes (and the build cache berth has not) take
on disk, in docker's DiskUsage shape, from the engine's `system df` data."""

import time

from berth.api.http import Response
from berth.api.images import summary_json
from berth.engine.container_list import ContainerSummary
from berth.engine.images import list_images
from berth.engine.system import image_usage, volume_usage
from berth.engine.volumes import VolumeStore
from berth.errors import InvalidArgument
from berth.units import parse_rfc3339

TYPES = ("container", "image", "volume", "build-cache")


def disk_usage(req) -> Response:
    kinds = req.args("type") or TYPES
    for kind in kinds:
        if kind not in TYPES:
            raise InvalidArgument(f"unknown object type: {kind}")
    engine = req.engine
    records = engine.containers()
    usage = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None, "BuildCache": None}
    if "image" in kinds:
        usage["LayersSize"] = image_usage(engine, records).size
        usage["Images"] = [summary_json(req, s, shared=True) for s in list_images(engine, count_containers=True)]
    if "container" in kinds:
        now = time.time()
        records.sort(key=lambda r: r["Created"], reverse=True)
        usage["Containers"] = [container_json(r, ContainerSummary(r, now), sizes=True) for r in records]
    if "volume" in kinds:
        usage["Volumes"] = _volumes(engine)
    if "build-cache" in kinds:
        usage["BuildCache"] = []
    if req.older_than("1.42"):
        usage["BuilderSize"] = 0
    return Response(usage)


def _volumes(engine) -> list[dict]:
    """Each volume as inspect shows it, with docker's UsageData: its bytes, how many containers use it."""
    used = {name: (links, size) for name, links, size in volume_usage(engine)}
    found = []
    for volume in sorted(VolumeStore(engine.paths).volumes(), key=lambda v: v["Name"]):
        links, size = used.get(volume["Name"], (0, 0))
        found.append({**volume, "UsageData": {"RefCount": links, "Size": size}})
    return found


def container_json(record: dict, summary: ContainerSummary, sizes: bool = False) -> dict:
    """docker's ContainerSummary (GET /containers/json's items); SizeRw/SizeRootFs when `sizes`."""
    shaped = {
        "Id": summary.id, "Names": ["/" + summary.name], "Image": summary.image, "ImageID": summary.image_id,
        "Command": summary.command, "Created": int(parse_rfc3339(summary.created)),
        "Ports": _ports(record), "Labels": summary.labels, "State": summary.state, "Status": summary.status,
        "HostConfig": {"NetworkMode": summary.network_mode},
        "NetworkSettings": {"Networks": (record.get("NetworkSettings") or {}).get("Networks") or {}},
        "Mounts": record.get("Mounts") or [],
    }
    if sizes:
        shaped["SizeRw"], shaped["SizeRootFs"] = summary.sizes()
    return shaped


def _ports(record: dict) -> list[dict]:
    """docker's Port list: each published binding, and each exposed port without one."""
    ports = []
    for key, bindings in sorted(((record.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        port, _, proto = key.partition("/")
        if not bindings:
            ports.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            continue
        ports += [{"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                   "Type": proto or "tcp"} for b in bindings]
    return ports


ROUTES = [
    ("GET", "/system/df", disk_usage),
]
