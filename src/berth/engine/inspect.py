"""`inspect`: any object by name or ID (a container, then an image, a volume, a network, as
docker looks them up) in the JSON shape `docker inspect` prints."""

from berth.errors import NotFound

KINDS = ("container", "image", "volume", "network")


def inspect(engine, ref: str, kind: str | None = None, size: bool = False) -> tuple[str, dict]:
    """The object `ref` names, of `kind` if given (one of KINDS), and the kind it is; NotFound
    in docker's words. `size`: a container's with SizeRw and SizeRootFs (docker's --size)."""
    # lazy imports below: inspecting a container (the common case) loads none of them
    if kind in (None, "container"):
        try:
            record = engine.get(ref)
            engine.recover_abandoned()  # a look at it repairs what a killed supervisor left
            return "container", _with_sizes(record) if size else record
        except NotFound:
            if kind == "container":
                raise
    if kind in (None, "image"):
        from berth.engine.images import inspect_image  # lazy: only images

        try:
            return "image", inspect_image(engine, ref)
        except NotFound:
            if kind == "image":
                raise
    if kind in (None, "volume"):
        from berth.engine.volumes import VolumeStore  # lazy: only volumes

        try:
            return "volume", VolumeStore(engine.paths).get(ref)
        except NotFound:
            if kind == "volume":
                raise NotFound(f"get {ref}: no such volume") from None
    if kind in (None, "network"):
        from berth.engine.network_info import inspect_network  # lazy: only networks

        found = inspect_network(engine, ref)
        if found is not None:
            return "network", found
        if kind == "network":
            raise NotFound(f"network {ref} not found")
    raise NotFound(f"No such object: {ref}")


def _with_sizes(record: dict) -> dict:
    """The record with docker's SizeRw and SizeRootFs, where docker puts them (after GraphDriver)."""
    from berth.engine.container_list import ContainerSummary  # lazy: only --size

    size_rw, size_root_fs = ContainerSummary.measure(record["GraphDriver"]["Data"])
    shaped = {}
    for key, value in record.items():
        shaped[key] = value
        if key == "GraphDriver":
            shaped["SizeRw"], shaped["SizeRootFs"] = size_rw, size_root_fs
    return shaped
