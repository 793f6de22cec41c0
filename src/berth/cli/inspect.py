"""`berth inspect`: containers, images, volumes and networks in the JSON shape `docker inspect` prints."""

import sys

from berth.cli.flags import STRING, Command, Flag, help_text, parse
from berth.errors import BerthError, NotFound

INSPECT = Command("inspect", "berth inspect [OPTIONS] NAME|ID [NAME|ID...]",
                  "Return low-level information on containers or images",
                  [Flag("format", "f", STRING, None, "Format output using a custom template"),
                   Flag("type", None, STRING, None, "Return JSON for specified type"),
                   Flag("size", "s", "bool", False, "Display total file sizes if the type is container")],
                  min_args=1)

IMAGE_CONFIG_DEFAULTS = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
    ("Env", None), ("Cmd", None), ("Image", ""), ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None),
    ("OnBuild", None), ("Labels", None),
)


def image_json(image) -> dict:
    from berth.image import reference

    config = image.config
    image_config = config.get("config") or {}
    shaped = {key: image_config.get(key, default) for key, default in IMAGE_CONFIG_DEFAULTS}
    for key, value in image_config.items():
        shaped.setdefault(key, value)
    if shaped["ExposedPorts"] is None:
        del shaped["ExposedPorts"]
    history = config.get("history") or []
    return {
        "Id": image.id,
        "RepoTags": [reference.parse(n).familiar() for n in image.names],
        "RepoDigests": [],
        "Parent": "",
        "Comment": (history[-1].get("comment", "") if history else ""),
        "Created": config.get("created", ""),
        "DockerVersion": "",
        "Author": config.get("author", ""),
        "Config": shaped,
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Size": image.size(),
        "GraphDriver": {"Data": {"LowerDir": ":".join(reversed(image.layer_dirs()))}, "Name": "overlay"},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def _find(engine, ref: str, kind: str | None):
    if kind in (None, "container"):
        try:
            return engine.get(ref)
        except NotFound:
            if kind == "container":
                raise
    if kind in (None, "image"):
        image = engine.images.lookup(ref)
        if image is not None:
            return image_json(image)
        if kind == "image":
            raise NotFound(f"No such image: {ref}")
    if kind in (None, "volume"):
        from berth.engine.volumes import VolumeStore

        try:
            return VolumeStore(engine.paths).get(ref)
        except NotFound:
            if kind == "volume":
                raise NotFound(f"get {ref}: no such volume") from None
    if kind in (None, "network"):
        from berth.cli.network import find_network

        found = find_network(engine, ref)
        if found is not None:
            return found
        if kind == "network":
            raise NotFound(f"network {ref} not found")
    raise NotFound(f"No such object: {ref}")


def _inspect(engine, argv, kind: str | None) -> int:
    opts, args = parse(INSPECT, argv)
    if opts.help:
        sys.stdout.write(help_text(INSPECT))
        return 0
    kind = opts.type or kind
    if kind not in (None, "container", "image", "volume", "network"):
        raise BerthError(f'"{kind}" is not a valid value for --type')
    found, failed = [], 0
    for ref in args:
        try:
            found.append(_find(engine, ref, kind))
        except NotFound as err:
            print(f"Error: {err}", file=sys.stderr)
            failed = 1
    from berth.cli.output import print_found

    print_found(found, opts.format)
    return failed


def cmd_inspect(engine, argv) -> int:
    return _inspect(engine, argv, None)


def cmd_image_inspect(engine, argv) -> int:
    return _inspect(engine, argv, "image")


def cmd_container_inspect(engine, argv) -> int:
    return _inspect(engine, argv, "container")
