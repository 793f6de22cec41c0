"""`berth volume create|ls|inspect|rm|prune` with docker's flags and output."""

import sys

from berth.cli.contexts import FormatContext
from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, parse_or_help
from berth.engine.volumes import (
    LIST_FILTERS,
    PRUNE_FILTERS,
    VolumeStore,
    create_volume,
    list_volumes,
    parse_filters,
    prune,
)
from berth.errors import BerthError, InvalidArgument, NotFound, NotImplementedYet, UsageError

CREATE = Command("volume create", "berth volume create [OPTIONS] [VOLUME]", "Create a volume",
                 [Flag("driver", "d", STRING, "local", "Specify volume driver name"),
                  Flag("name", None, STRING, "", "Specify volume name"),
                  Flag("opt", "o", LIST, (), "Set driver specific options", metavar="map"),
                  Flag("label", None, LIST, (), "Set metadata for a volume"),
                  # docker's cluster (Swarm CSI) volume options: refused (CLUSTER_FLAGS)
                  Flag("availability", None, STRING, "active", 'Cluster Volume availability ("active", "pause", '
                       '"drain")'),
                  Flag("group", None, STRING, "", "Cluster Volume group (cluster volumes)"),
                  Flag("limit-bytes", None, STRING, None, "Minimum size of the Cluster Volume in bytes", "bytes"),
                  Flag("required-bytes", None, STRING, None, "Maximum size of the Cluster Volume in bytes", "bytes"),
                  Flag("scope", None, STRING, "single", 'Cluster Volume access scope ("single", "multi")'),
                  Flag("secret", None, LIST, (), "Cluster Volume secrets", "map"),
                  Flag("sharing", None, STRING, "none", 'Cluster Volume access sharing ("none", "readonly", '
                       '"onewriter", "all")'),
                  Flag("topology-preferred", None, LIST, (), "A topology that the Cluster Volume would be preferred "
                       "in"),
                  Flag("topology-required", None, LIST, (), "A topology that the Cluster Volume must be accessible "
                       "from"),
                  Flag("type", None, STRING, "block", 'Cluster Volume access type ("mount", "block")')],
                 max_args=1)
CLUSTER_FLAGS = ("availability", "group", "limit_bytes", "required_bytes", "scope", "secret", "sharing",
                 "topology_preferred", "topology_required", "type")
LS = Command("volume ls", "berth volume ls [OPTIONS]", "List volumes",
             [Flag("quiet", "q", BOOL, False, "Only display volume names"),
              Flag("cluster", None, BOOL, False, "Display only cluster volumes, and use cluster volume list "
                   "formatting"),
              Flag("format", None, STRING, None, "Format output using a custom template"),
              Flag("filter", "f", LIST, (), 'Provide filter values (e.g. "dangling=true")', metavar="filter")],
             max_args=0)
INSPECT = Command("volume inspect", "berth volume inspect [OPTIONS] VOLUME [VOLUME...]",
                  "Display detailed information on one or more volumes",
                  [Flag("format", "f", STRING, None, "Format output using a custom template")], min_args=1)
RM = Command("volume rm", "berth volume rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes",
             [Flag("force", "f", BOOL, False, "Force the removal of one or more volumes")], min_args=1)
PRUNE = Command("volume prune", "berth volume prune [OPTIONS]", "Remove unused local volumes",
                [Flag("all", "a", BOOL, False, "Remove all unused volumes, not just anonymous ones"),
                 Flag("force", "f", BOOL, False, "Do not prompt for confirmation"),
                 Flag("filter", None, LIST, (), 'Provide filter values (e.g. "label=<label>")', metavar="filter")],
                max_args=0)

HEADER = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
          "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY",
          "Status": "STATUS"}
PRUNE_WARNING = "WARNING! This will remove anonymous local volumes not used by at least one container."
PRUNE_ALL_WARNING = "WARNING! This will remove all local volumes not used by at least one container."


def _store(engine):
    return VolumeStore(engine.paths)


def _pairs(values: list[str]) -> dict:
    """docker's ConvertKVStringsToMap: "k=v" -> k: v, "k" -> k: ""."""
    result = {}
    for item in values:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def cmd_volume_create(engine, argv) -> int:
    opts, args = parse_or_help(CREATE, argv)
    if opts.help:
        return 0
    for dest in CLUSTER_FLAGS:
        if opts.given(dest):
            raise NotImplementedYet(f"--{dest.replace('_', '-')}: cluster volumes (Swarm CSI) are not supported: "
                                    "berth has no swarm")
    name = opts.name
    if args:
        if name:
            raise InvalidArgument("conflicting options: cannot specify a volume-name through both --name and as a "
                                  "positional arg")
        name = args[0]
    for label in opts.label:
        if not label.partition("=")[0].strip():
            raise UsageError(f'invalid argument "{label}" for "--label" flag: invalid label \'{label}\': '
                                  "empty name")
    for option in opts.opt:
        if "=" not in option:
            raise UsageError(f'invalid argument "{option}" for "-o, --opt" flag: invalid key value pair '
                                  f'format: "{option}"')

    # none given: null in inspect, as docker's daemon stores them
    print(create_volume(engine, name or None, labels=_pairs(opts.label) or None, options=_pairs(opts.opt) or None,
                        driver=opts.driver))
    return 0


def _rows(engine, filters: dict) -> list:
    return sorted((_Row(info) for info in list_volumes(engine, filters)), key=lambda row: _natural(row.Name))


class _Row(FormatContext):
    """One volume for --format: docker's volumeContext fields, and `{{.Label "key"}}`."""

    FIELDS = ("Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name", "Scope", "Size", "Status")
    go_type = "*formatter.volumeContext"

    def __init__(self, info: dict):
        self._labels = info.get("Labels") or {}
        self.Name = info["Name"]
        self.Driver = info["Driver"]
        self.Scope = info["Scope"]
        self.Mountpoint = info["Mountpoint"]
        self.Labels = ",".join(sorted(f"{k}={v}" for k, v in self._labels.items()))
        self.Links = self.Size = self.Group = self.Availability = self.Status = "N/A"

    def Label(self, name: str) -> str:  # noqa: N802 - the template's name
        return self._labels.get(name, "")


def _natural(name: str) -> list:
    """docker sorts volume names in natural order: "vol2" before "vol10"."""
    parts, digits = [], ""
    text = ""
    for ch in name:
        if ch.isdigit():
            if text:
                parts.append((1, text, 0))
                text = ""
            digits += ch
        else:
            if digits:
                parts.append((0, "", int(digits)))
                digits = ""
            text += ch
    if digits:
        parts.append((0, "", int(digits)))
    if text:
        parts.append((1, text, 0))
    return parts


def cmd_volume_ls(engine, argv) -> int:
    opts, _ = parse_or_help(LS, argv)
    if opts.help:
        return 0
    if opts.cluster:
        raise NotImplementedYet("--cluster: cluster volumes (Swarm CSI) are not supported: berth has no swarm")
    rows = _rows(engine, parse_filters(opts.filter, LIST_FILTERS))
    if opts.quiet and not opts.format:
        sys.stdout.write("".join(row.Name + "\n" for row in rows))
        return 0
    from berth.cli.output import render_rows  # lazy: not for create, rm or prune

    render_rows(opts.format, "table {{.Driver}}\t{{.Name}}", rows, HEADER)
    return 0


def cmd_volume_inspect(engine, argv) -> int:
    from berth.cli.output import print_found  # lazy: not for create, rm or prune

    opts, args = parse_or_help(INSPECT, argv)
    if opts.help:
        return 0
    store = _store(engine)
    found, failed = [], 0
    for name in args:
        try:
            found.append(store.get(name))
        except NotFound as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    print_found(found, opts.format, ["volume"] * len(found))
    return failed


def cmd_volume_rm(engine, argv) -> int:
    opts, args = parse_or_help(RM, argv)
    if opts.help:
        return 0
    store = _store(engine)
    failed = 0
    for name in args:
        try:
            store.remove(name, force=opts.force)
            print(name)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = 1
    return failed


def cmd_volume_prune(engine, argv) -> int:
    from berth.units import human_size  # lazy: only prune

    opts, _ = parse_or_help(PRUNE, argv)
    if opts.help:
        return 0
    filters = parse_filters(opts.filter, PRUNE_FILTERS)
    if opts.all and "all" in filters:
        raise InvalidArgument("conflicting options: cannot specify both --all and --filter all=1")
    if not opts.force:
        from berth.cli.prune import _confirm  # lazy: only prune asks

        if not _confirm(PRUNE_ALL_WARNING if opts.all else PRUNE_WARNING):
            return 0
    deleted, reclaimed = prune(_store(engine), opts.all, filters)
    if deleted:
        sys.stdout.write("Deleted Volumes:\n" + "".join(name + "\n" for name in deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed, 4)}\n")
    return 0
