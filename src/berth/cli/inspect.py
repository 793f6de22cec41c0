"""`berth inspect`: containers, images, volumes and networks in the JSON shape `docker inspect` prints."""

import sys

from berth.cli.flags import STRING, Command, Flag, help_text, parse
from berth.cli.output import print_found
from berth.engine.inspect import KINDS, inspect
from berth.errors import BerthError, NotFound

INSPECT = Command("inspect", "berth inspect [OPTIONS] NAME|ID [NAME|ID...]",
                  "Return low-level information on containers or images",
                  [Flag("format", "f", STRING, None, "Format output using a custom template"),
                   Flag("type", None, STRING, None, "Return JSON for specified type"),
                   Flag("size", "s", "bool", False, "Display total file sizes if the type is container")],
                  min_args=1)
IMAGE_INSPECT = Command("image inspect", "berth image inspect [OPTIONS] IMAGE [IMAGE...]",
                        "Display detailed information on one or more images",
                        INSPECT.flags[:-1] + [Flag("platform", None, STRING, None,
                                                   "Inspect this platform's variant (the host's)")],
                        min_args=1)


def _inspect(engine, argv, kind: str | None, command: Command = INSPECT) -> int:
    opts, args = parse(command, argv)
    if opts.help:
        sys.stdout.write(help_text(command))
        return 0
    if command is IMAGE_INSPECT and opts.platform:
        from berth.cli.images import check_platform  # lazy: only image inspect --platform

        check_platform(opts.platform)
    kind = opts.type or kind
    if kind in ("config", "node", "plugin", "secret", "service", "task"):
        raise BerthError(f"--type {kind}: berth has no swarm or plugins, so no {kind} objects")
    if kind is not None and kind not in KINDS:
        raise BerthError(f'unknown type: "{kind}": must be one of "config", "container", "image", "network", '
                         '"node", "plugin", "secret", "service", "task", "volume"')  # docker 28's words
    found, kinds, failed = [], [], 0
    for ref in args:
        try:
            found_kind, record = inspect(engine, ref, kind, opts.size)
        except NotFound as err:
            print(f"Error: {err}", file=sys.stderr)
            failed = 1
            continue
        found.append(record)
        kinds.append(found_kind)

    print_found(found, opts.format, kinds)
    return failed


def cmd_inspect(engine, argv) -> int:
    return _inspect(engine, argv, None)


def cmd_image_inspect(engine, argv) -> int:
    return _inspect(engine, argv, "image", IMAGE_INSPECT)


def cmd_container_inspect(engine, argv) -> int:
    return _inspect(engine, argv, "container")
