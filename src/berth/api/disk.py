"""GET /system/df: what images, containers, volumes (and the build cache berth has not) take
on disk, in docker's DiskUsage shape, from the engine's `system df` data."""

import time

from berth.api.containers import summary_json
from berth.api.http import Response
from berth.api.images import summary_json as image_json
from berth.engine.container_list import ContainerSummary
from berth.engine.images import list_images
from berth.engine.system import image_usage, volume_usage
from berth.engine.volumes import VolumeStore
from berth.errors import InvalidArgument

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
        usage["Images"] = [image_json(req, s, shared=True) for s in list_images(engine, count_containers=True)]
    if "container" in kinds:
        now = time.time()
        records.sort(key=lambda r: r["Created"], reverse=True)
        usage["Containers"] = [summary_json(ContainerSummary(r, now), size=True) for r in records]
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


ROUTES = [
    ("GET", "/system/df", disk_usage),
]
