"""`image prune` and `system df`: what the image store holds, and giving space back."""

import sys

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.errors import InvalidArgument

PRUNE = Command("image prune", "berth image prune [OPTIONS]", "Remove unused images",
                [Flag("all", "a", BOOL, False, "Remove all unused images, not just dangling ones"),
                 Flag("force", "f", BOOL, False, "Do not prompt for confirmation"),
                 Flag("filter", None, LIST, (), "Provide filter values")], max_args=0)
DF = Command("system df", "berth system df [OPTIONS]", "Show berth disk usage",
             [Flag("verbose", "v", BOOL, False, "Show detailed information on space usage"),
              Flag("format", None, STRING, None, "Format output using a custom template")], max_args=0)


def _confirm(question: str) -> bool:
    sys.stdout.write(f"{question}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_image_prune(engine, argv) -> int:
    from berth.units import human_size

    opts, _ = parse(PRUNE, argv)
    if opts.help:
        sys.stdout.write(help_text(PRUNE))
        return 0
    if opts.filter:
        raise InvalidArgument("image prune --filter is not supported yet")
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts.all else "WARNING! This will remove all dangling images.")
    if not opts.force and not _confirm(warning):
        return 0
    store = engine.images
    used = {record["Image"] for record in engine.containers()}
    deleted, reclaimed = [], 0
    for image in store.images():
        if image.id in used or (image.names and not opts.all):
            continue
        size = image.size()
        for name in list(image.names):
            store.untag(name)
            from berth.image import reference

            deleted.append(f"untagged: {reference.parse(name).familiar()}")
        layers = store.delete(store.get(image.id))
        deleted.append(f"deleted: {image.id}")
        deleted.extend(f"deleted: {chain}" for chain in layers)
        reclaimed += size if layers else 0
    reclaimed += store.collect_leftovers()
    if deleted:
        sys.stdout.write("Deleted Images:\n" + "".join(line + "\n" for line in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


def df_rows(engine) -> list[dict]:
    from berth.cli.containers import _tree_size
    from berth.engine.containers import is_running
    from berth.image.store import chain_ids
    from berth.units import human_size

    store = engine.images
    records = engine.containers()
    used = {record["Image"] for record in records}
    images = store.images()
    layer_size = {}
    active_layers = set()
    for image in images:
        for chain in chain_ids(image.diff_ids):
            layer_size[chain] = store.layer_size(chain)
            if image.id in used:
                active_layers.add(chain)
    total = sum(layer_size.values())
    reclaimable = sum(size for chain, size in layer_size.items() if chain not in active_layers)
    container_sizes = [(_tree_size(r["GraphDriver"]["Data"]["UpperDir"]), is_running(r)) for r in records]
    container_total = sum(size for size, _ in container_sizes)
    container_reclaim = sum(size for size, running in container_sizes if not running)

    def percent(part: int, whole: int) -> str:
        return f"{human_size(part)} ({part * 100 // whole if whole else 0}%)"

    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(sum(1 for i in images if i.id in used)),
         "Size": human_size(total), "Reclaimable": percent(reclaimable, total)},
        {"Type": "Containers", "TotalCount": str(len(records)),
         "Active": str(sum(1 for _, running in container_sizes if running)),
         "Size": human_size(container_total), "Reclaimable": percent(container_reclaim, container_total)},
        _volumes_row(engine, _tree_size, percent),
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]


def _volumes_row(engine, tree_size, percent) -> dict:
    """docker's "Local Volumes": a volume is active while a container refers to it."""
    from berth.engine.volumes import VolumeStore

    store = VolumeStore(engine.paths)
    volumes = store.volumes()
    if not volumes:
        return {"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}
    references = store.references()
    sizes = [(tree_size(v["Mountpoint"]), bool(references.get(v["Name"]))) for v in volumes]
    total = sum(size for size, _ in sizes)
    from berth.units import human_size

    return {"Type": "Local Volumes", "TotalCount": str(len(volumes)), "Active": str(sum(1 for _, a in sizes if a)),
            "Size": human_size(total), "Reclaimable": percent(sum(size for size, a in sizes if not a), total)}


def cmd_system_df(engine, argv) -> int:
    from berth.cli.output import render_rows

    opts, _ = parse(DF, argv)
    if opts.help:
        sys.stdout.write(help_text(DF))
        return 0
    header = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
    if not opts.verbose:
        render_rows(opts.format, "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                    df_rows(engine), header)
        return 0
    from berth.cli.images import IMAGE_HEADER, image_rows

    class _All:  # every image, as `images -a` lists them
        all, no_trunc, filter = True, False, ()

    rows = image_rows(engine, _All, None)
    used = {}
    for record in engine.containers():
        used[record["Image"][7:19]] = used.get(record["Image"][7:19], 0) + 1
    for row in rows:
        row["Containers"] = str(used.get(row["ID"], 0))
    sys.stdout.write("Images space usage:\n\n")
    render_rows(None, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
                      "\t{{.UniqueSize}}\t{{.Containers}}", rows, IMAGE_HEADER)
    return 0

