"""`berth commit`: a container's upper dir becomes a new layer on top of its image, and
its configuration is carried forward the way moby's commit merges it."""

import os
import time

from berth.engine import events
from berth.engine.containers import is_running
from berth.errors import InvalidArgument
from berth.fs import failed

CARRIED = ("User", "ExposedPorts", "Env", "Cmd", "Entrypoint", "Volumes", "WorkingDir", "Labels", "OnBuild",
           "StopSignal", "Healthcheck", "Shell")


def merge_config(user: dict, container: dict) -> dict:
    """moby daemon/commit.go merge(): what the --change instructions did not set comes from
    the container's config; ports, env, labels and volumes are unions."""
    merged = dict(user)
    if not merged.get("User"):
        merged["User"] = container.get("User", "")
    ports = dict(container.get("ExposedPorts") or {})
    ports.update(merged.get("ExposedPorts") or {})
    merged["ExposedPorts"] = ports or None
    env = list(merged.get("Env") or [])
    keys = {item.partition("=")[0] for item in env}
    env += [item for item in container.get("Env") or [] if item.partition("=")[0] not in keys]
    merged["Env"] = env or None
    labels = dict(container.get("Labels") or {})
    labels.update(merged.get("Labels") or {})
    merged["Labels"] = labels
    if not merged.get("Entrypoint"):
        if not merged.get("Cmd"):
            merged["Cmd"] = container.get("Cmd")
        if merged.get("Entrypoint") is None:
            merged["Entrypoint"] = container.get("Entrypoint")
    if not merged.get("WorkingDir"):
        merged["WorkingDir"] = container.get("WorkingDir", "")
    volumes = dict(container.get("Volumes") or {})
    volumes.update(merged.get("Volumes") or {})
    merged["Volumes"] = volumes or None
    if not merged.get("StopSignal") and container.get("StopSignal"):
        merged["StopSignal"] = container["StopSignal"]
    if not merged.get("Healthcheck") and container.get("Healthcheck"):
        merged["Healthcheck"] = container["Healthcheck"]
    return {k: v for k, v in merged.items() if v not in (None, "", [], {}) or k in ("Cmd", "Entrypoint")}


def _apply_changes(config: dict, changes: list[str]) -> dict:
    from berth.image.instructions import apply_changes  # imports json (~8 ms): only for --change

    try:
        return apply_changes(config, list(changes))
    except ValueError as err:
        raise InvalidArgument(str(err)) from None


def commit(engine, record: dict, name: str | None, author: str = "", message: str = "",
           changes: list[str] = (), pause: bool = True, config: dict | None = None) -> str:
    """Returns the new image's ID. Nothing is added unless everything succeeded. `config`: the
    API's Config overrides (the image config's keys of it), which `changes` then change."""
    from berth.engine.freeze import CommitFreeze, thaw_if_abandoned  # lazy: only commit; `history` loads this
    from berth.image.diff import LayerWriter  # lazy: only commit, diff and export walk layers

    store = engine.images
    store.ensure()
    user_config = {k: v for k, v in (config or {}).items() if k in CARRIED}
    if changes:
        user_config = _apply_changes(user_config, changes)
    base = store.get(record["Image"])
    container_config = {k: record["Config"].get(k) for k in CARRIED if k in record["Config"]}
    config = merge_config(user_config, container_config)
    tar_path = os.path.join(store.staging_dir(), f"commit-{os.getpid()}-{os.urandom(8).hex()}")
    fd = os.open(tar_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)  # read back to hash it
    try:
        # Under its lock the container can neither start nor be restarted: a stopped one's
        # tree stays as it is, a frozen one's too; only one running unfrozen (--pause=false)
        # may change its tree, hostile included, while it is read (the writer's `live` mode).
        # The freeze is owned (engine.freeze): killed here, we leave it to the next command.
        with engine.locked(record["Id"]) as record:
            running = is_running(record)
            if running:  # a commit killed before us may have left it frozen
                thaw_if_abandoned(engine, record, held=True)
            paused = running and record["State"]["Paused"]
            freeze = CommitFreeze(engine, record) if pause and running and not paused else None
            if freeze is not None:
                freeze.__enter__()
            try:
                diff_id = LayerWriter(record["GraphDriver"]["Data"]["UpperDir"], fd,
                                      live=running and not paused and freeze is None).write()
            finally:
                if freeze is not None:
                    freeze.__exit__()
        os.close(fd)
        fd = -1
    except BaseException as err:
        if fd >= 0:
            os.close(fd)
        os.unlink(tar_path)
        if isinstance(err, OSError):  # a full disk: say what could not be written
            failed("write", tar_path, err)
        raise
    try:
        image_id, image_config = _add_image(store, record, base, config, diff_id, tar_path, name, author, message)
    finally:
        if os.path.exists(tar_path):
            os.unlink(tar_path)
    if name:  # docker tags, then reports the commit as a container event
        store.event("tag", image_id, name, image_config)
    events.committed(engine.paths.root, record, image_id, name or "", message)
    return image_id


def _add_image(store, record: dict, base, config: dict, diff_id: str, tar_path: str, name: str | None,
               author: str, message: str) -> tuple[str, dict]:
    """The layer tar becomes its blob (unpacked when an image first needs it), then config,
    manifest and the index entry naming them, all under store.lock: a prune meanwhile would
    take the blob for a leftover. Returns (image ID, its config)."""
    from berth.image.store import LAYER_TYPE  # lazy: only commit writes to the image store
    from berth.units import format_rfc3339_nano  # lazy: only commit; `diff` loads no units

    created = format_rfc3339_nano(time.time())
    image_config = {k: v for k, v in base.config.items() if k not in ("config", "rootfs", "history", "created")}
    command = " ".join([record["Path"]] + list(record["Args"]))
    history = list(base.config.get("history") or [])
    entry = {"created": created, "created_by": command}
    if author:
        entry["author"] = author
        image_config["author"] = author
    if message:
        entry["comment"] = message
    history.append(entry)
    image_config.update(created=created, config=config, history=history,
                        rootfs={"type": "layers", "diff_ids": list(base.diff_ids) + [diff_id]})
    manifest = store.read_manifest(base.manifest_digest)
    with store.writing():
        store.add_layer_blob(diff_id, tar_path)
        layers = list(manifest["layers"]) + [
            {"mediaType": LAYER_TYPE, "digest": diff_id, "size": os.path.getsize(store.blob_path(diff_id))}]
        return store.add_image(image_config, layers, name), image_config


def _layers_top_first(record: dict) -> list[str]:
    data = record["GraphDriver"]["Data"]
    return [data["UpperDir"]] + data["LowerDir"].split(":")


def diff(record: dict) -> list[tuple[str, str]]:
    """`diff`: the container's changes to its image, as docker lists them: [("A"|"C"|"D", path)]."""
    from berth.image.diff import changes  # lazy, as in commit(): the layer walkers only when used

    layers = _layers_top_first(record)
    return changes(layers[0], layers[1:])


def export(record: dict, out_fd: int, progress=None) -> None:
    """`export`: the container's filesystem as one tar written to `out_fd`;
    `progress(done, total)`."""
    from berth.image.diff import export_tar  # lazy: only export, as in commit()

    export_tar(_layers_top_first(record), out_fd, progress)
