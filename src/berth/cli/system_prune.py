"""`container prune` and `system prune`, in docker's words, and podman's `system reset`."""

import sys

from berth.cli.flags import BOOL, LIST, Command, Flag, help_text, parse
from berth.errors import InvalidArgument

CONTAINER_PRUNE = Command("container prune", "berth container prune [OPTIONS]", "Remove all stopped containers",
                          [Flag("force", "f", BOOL, False, "Do not prompt for confirmation"),
                           Flag("filter", None, LIST, (), 'Provide filter values (e.g. "until=<timestamp>")')],
                          max_args=0)
SYSTEM_PRUNE = Command("system prune", "berth system prune [OPTIONS]", "Remove unused data",
                       [Flag("all", "a", BOOL, False, "Remove all unused images not just dangling ones"),
                        Flag("filter", None, LIST, (), 'Provide filter values (e.g. "label=<key>=<value>")'),
                        Flag("force", "f", BOOL, False, "Do not prompt for confirmation"),
                        Flag("volumes", None, BOOL, False, "Prune anonymous volumes")], max_args=0)
SYSTEM_RESET = Command("system reset", "berth system reset [OPTIONS]",
                       "Remove all containers, images, volumes and berth's bridge and firewall rules",
                       [Flag("force", "f", BOOL, False, "Do not prompt for confirmation")], max_args=0)


def _confirm(question: str) -> bool:
    sys.stdout.write(f"{question}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _opts(command: Command, argv: list[str]):
    opts, _ = parse(command, argv)
    if opts.help:
        sys.stdout.write(help_text(command))
        return None
    from berth.filters import prune_filters  # lazy: not needed for --help

    opts.filter = prune_filters(opts.filter)  # bad ones fail before the question
    return opts


def _section(title: str, lines: list[str]) -> None:
    if lines:
        sys.stdout.write(f"{title}:\n" + "".join(line + "\n" for line in lines) + "\n")


def cmd_container_prune(engine, argv) -> int:
    from berth.engine.prune import prune_containers  # lazy: not needed for --help
    from berth.units import human_size  # lazy: not needed for --help

    opts = _opts(CONTAINER_PRUNE, argv)
    if opts is None or not opts.force and not _confirm("WARNING! This will remove all stopped containers."):
        return 0
    report = prune_containers(engine, opts.filter)
    _section("Deleted Containers", report["ContainersDeleted"])
    sys.stdout.write(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}\n")
    return 0


def cmd_system_prune(engine, argv) -> int:
    from berth.engine.prune import prune_system  # lazy: not needed for --help
    from berth.units import human_size  # lazy: not needed for --help

    opts = _opts(SYSTEM_PRUNE, argv)
    if opts is None:
        return 0
    if opts.volumes and "until" in opts.filter:
        raise InvalidArgument('The "until" filter is not supported with "--volumes"')  # docker's CLI
    if not opts.force:
        items = ["all stopped containers", "all networks not used by at least one container"]
        if opts.volumes:
            items.append("all anonymous volumes not used by at least one container")
        items.append("all images without at least one container associated to them" if opts.all
                     else "all dangling images")
        items.append("unused build cache")
        if not _confirm("WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)):
            return 0
    report = prune_system(engine, opts.all, opts.volumes, opts.filter)
    _section("Deleted Containers", report["ContainersDeleted"])
    _section("Deleted Networks", report.get("NetworksDeleted") or [])
    _section("Deleted Volumes", report["VolumesDeleted"])
    _section("Deleted Images", [f"{action.lower()}: {what}" for item in report["ImagesDeleted"]
                                for action, what in item.items()])
    sys.stdout.write(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}\n")
    return 0


def cmd_system_reset(engine, argv) -> int:
    from berth.engine.prune import reset  # lazy: not needed for --help

    opts, _ = parse(SYSTEM_RESET, argv)
    if opts.help:
        sys.stdout.write(help_text(SYSTEM_RESET))
        return 0
    if not opts.force:
        items = ["all containers", "all images", "all volumes",
                 "the bridge and firewall rules berth made for this root",
                 f'the root directory: "{engine.paths.root}"', f'the run-root directory: "{engine.paths.run_root}"']
        if not _confirm("WARNING! This will remove:\n" + "".join(f"        - {item}\n" for item in items)):
            return 0
    reset(engine)
    return 0
