"""`container prune` and `system prune`: giving back what nothing uses, and the full sweep of
what killed commands left (DESIGN "State on disk": ordinary commands repair what they touch;
these look at everything)."""

import contextlib
import os

from berth.engine.state import PAUSED, RESTARTING, RUNNING, Container
from berth.errors import BerthError, Conflict, NotFound
from berth.fs import paths_in, remove_tree


def prune_containers(engine, filters: dict | None = None) -> dict:
    """Every stopped container (created, exited, dead) that passes `filters`
    (berth.filters.prune_filters), and the creations, removals and run directories killed
    commands abandoned. docker's ContainersPruneResponse: {"ContainersDeleted": [IDs], "SpaceReclaimed": bytes}."""
    from berth.engine.volumes import tree_size  # lazy: only sizes need it
    from berth.filters import spared_by  # lazy: only prune

    engine.store.reap_abandoned()
    deleted, reclaimed = [], 0
    for record in engine.containers():
        if Container(record).status in (RUNNING, PAUSED, RESTARTING):
            continue
        if filters and spared_by(filters, _created(record), record["Config"].get("Labels")):
            continue
        size = tree_size(record["GraphDriver"]["Data"]["UpperDir"])
        try:
            engine.remove(record)
        except (NotFound, BerthError):
            continue  # started or removed meanwhile
        deleted.append(record["Id"])
        reclaimed += size
    engine.recover_abandoned()
    return {"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed}


def _created(record: dict) -> float:
    from berth.units import parse_rfc3339  # lazy: only until= needs it

    return parse_rfc3339(record["Created"])


def prune_system(engine, all_images: bool = False, volumes: bool = False, filters: dict | None = None) -> dict:
    """`system prune`: stopped containers, then (anonymous) volumes no container uses with
    `volumes`, then dangling images (every unused one with `all_images`), each passing
    `filters` (berth.filters.prune_filters: until applies to containers and images), with the image
    store's full sweep of unreferenced blobs and temp files; then the user-defined networks
    no container refers to (the built-in ones are never pruned)."""
    from berth.engine.images import prune as prune_images  # lazy: the image store, only for system prune

    report = prune_containers(engine, filters)
    report["VolumesDeleted"], volume_space = [], 0
    if volumes:
        from berth.engine.volumes import VolumeStore  # lazy: only with --volumes
        from berth.engine.volumes import prune as prune_volumes  # lazy: only with --volumes

        volume_filters = {k: v for k, v in (filters or {}).items() if k != "until"}  # volumes have no until
        report["VolumesDeleted"], volume_space = prune_volumes(VolumeStore(engine.paths), False, volume_filters)
    images = prune_images(engine, all_images, filters)
    report["ImagesDeleted"] = images["ImagesDeleted"]
    report["NetworksDeleted"] = []
    if os.path.isdir(os.path.join(engine.paths.root, "networks")):
        from berth.engine.usernets import prune as prune_networks  # lazy: only with user-defined networks

        network_filters = [f"{k}={v}" for k, values in (filters or {}).items() if k != "until" for v in values]
        report["NetworksDeleted"] = prune_networks(engine, network_filters)
    report["SpaceReclaimed"] += volume_space + images["SpaceReclaimed"]
    return report


def reset(engine) -> None:
    """`system reset` (podman's): every container (killed) and volume, the bridge device and
    firewall tables berth made for this root, then everything under the root and the run
    root, images included: a clean slate, and what an uninstall needs. Refused while anything
    is still mounted below them (it would be deleted through the mount)."""
    from berth.engine.volumes import VolumeStore  # lazy: only reset
    from berth.network import bridge as bridges  # lazy: only reset
    from berth.runtime.mount import mounts_under  # lazy: only reset

    engine.store.reap_abandoned()
    for record in engine.containers():
        engine.remove(record, force=True, volumes=True)
    volumes = VolumeStore(engine.paths)
    for name in volumes.names():
        volumes.remove(name, force=True)
    current = bridges.load(engine.paths.root)
    if current is not None:
        bridges.remove(engine.paths.root, current)
    if os.path.isdir(os.path.join(engine.paths.root, "networks")):
        from berth.engine.usernets import records, remove  # lazy: only with user-defined networks

        for network in records(engine.paths.root):
            remove(engine, network["Id"])
    directories = (engine.paths.root, engine.paths.run_root)
    for directory in directories:
        mounted = mounts_under(directory)
        if mounted:
            raise Conflict(f"{mounted[0]} is still mounted: unmount it, then reset again")
    for directory in directories:
        for path in paths_in(directory):
            remove_tree(path)
        with contextlib.suppress(OSError):
            os.rmdir(directory)  # unless it is a mount point itself

