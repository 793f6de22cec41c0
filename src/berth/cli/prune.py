"""`image prune` and `system df`: what the image store holds, and giving space back."""

import sys
import time

from berth.cli.contexts import Row
from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse
from berth.units import human_size

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
    from berth.engine.images import prune  # lazy: only image prune

    opts, _ = parse(PRUNE, argv)
    if opts.help:
        sys.stdout.write(help_text(PRUNE))
        return 0
    from berth.filters import PRUNE_FILTERS, prune_filters  # lazy: only image prune

    filters = prune_filters(opts.filter, PRUNE_FILTERS + ("dangling",))
    warning = ("WARNING! This will remove all images without at least one container associated to them."
               if opts.all else "WARNING! This will remove all dangling images.")
    if not opts.force and not _confirm(warning):
        return 0
    report = prune(engine, opts.all, filters)
    deleted = [f"{action.lower()}: {what}" for item in report["ImagesDeleted"] for action, what in item.items()]
    if deleted:
        sys.stdout.write("Deleted Images:\n" + "".join(line + "\n" for line in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}\n")
    return 0


DF_CONTEXTS = {"Images": "*formatter.diskUsageImagesContext", "Containers": "*formatter.diskUsageContainersContext",
               "Local Volumes": "*formatter.diskUsageVolumesContext",
               "Build Cache": "*formatter.diskUsageBuilderContext"}


def df_rows(usage: list) -> list:
    """docker's diskUsage contexts: sizes as go-units HumanSize (4 digits); the reclaimable
    share in percent when there is a size to share (never for the build cache)."""
    rows = []
    for line in usage:
        reclaimable = human_size(line.reclaimable, 4)
        if line.size > 0 and line.type != "Build Cache":
            reclaimable += f" ({line.reclaimable * 100 // line.size}%)"
        rows.append(Row(DF_CONTEXTS.get(line.type, "*formatter.diskUsageContext"), {
            "Type": line.type, "TotalCount": str(line.total_count), "Active": str(line.active),
            "Size": human_size(line.size, 4), "Reclaimable": reclaimable}))
    return rows


def cmd_system_df(engine, argv) -> int:
    from berth.cli.output import render_rows  # lazy: only df

    opts, _ = parse(DF, argv)
    if opts.help:
        sys.stdout.write(help_text(DF))
        return 0
    header = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
    if not opts.verbose:
        from berth.engine.system import disk_usage  # lazy: only df

        render_rows(opts.format, "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                    df_rows(disk_usage(engine)), header)
        return 0
    from berth.cli.images import IMAGE_HEADER, image_rows  # lazy: only df -v
    from berth.engine.images import list_images  # lazy: only df -v

    rows = image_rows(list_images(engine, count_containers=True), shared=True)  # every image, as `images -a` lists them
    sys.stdout.write("Images space usage:\n\n")
    render_rows(None, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
                      "\t{{.UniqueSize}}\t{{.Containers}}", rows, IMAGE_HEADER)
    _verbose_df_rest(engine)
    return 0


def _verbose_df_rest(engine) -> None:
    """`system df -v` after the images, as docker prints it: containers (their writable
    layers), volumes (how many containers use each) and the build cache berth does not have."""
    from berth.cli.containers import PS_HEADER, ContainerRow  # lazy: only df -v
    from berth.cli.output import render_rows  # lazy: only df
    from berth.engine.container_list import list_containers  # lazy: only df -v
    from berth.engine.system import volume_usage  # lazy: only df -v

    class WritableLayerRow(ContainerRow):
        def Size(self) -> str:  # noqa: N802 - docker's df counts the writable layer alone
            return human_size(self._c.sizes()[0])

    now = time.time()
    rows = [WritableLayerRow(c, True, True, now) for c in list_containers(engine, all_containers=True)]
    sys.stdout.write("\nContainers space usage:\n\n")
    render_rows(None, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}"
                      "\t{{.Status}}\t{{.Names}}", rows, PS_HEADER)
    volumes = [Row("*formatter.volumeContext", {"Name": name, "Links": str(links), "Size": human_size(size, 4)})
               for name, links, size in volume_usage(engine)]
    sys.stdout.write("\nLocal Volumes space usage:\n\n")
    render_rows(None, "table {{.Name}}\t{{.Links}}\t{{.Size}}", volumes,
                {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"})
    sys.stdout.write("\nBuild cache usage: 0B\n\n")
    render_rows(None, "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}"
                      "\t{{.UsageCount}}\t{{.Shared}}", [],
                {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE", "CreatedSince": "CREATED",
                 "LastUsedSince": "LAST USED", "UsageCount": "USAGE", "Shared": "SHARED"})
