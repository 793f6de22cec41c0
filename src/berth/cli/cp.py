"""`berth cp`: copy files/folders between a container and the local filesystem."""

import sys

from berth.cli.flags import BOOL, Command, Flag, help_text, parse
from berth.engine.copy import CopyRequest, LocalError, copy
from berth.errors import BerthError

CP = Command(
    "cp",
    "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    "Copy files/folders between a container and the local filesystem\n\n"
    "Use '-' as the source to read a tar archive from stdin\n"
    "and extract it to a directory destination in a container.\n"
    "Use '-' as the destination to stream a tar archive of a\n"
    "container source to stdout.",
    [Flag("archive", "a", BOOL, False, "Archive mode (copy all uid/gid information)"),
     Flag("follow-link", "L", BOOL, False, "Always follow symbol link in SRC_PATH"),
     Flag("quiet", "q", BOOL, False, "Suppress progress output during copy. Progress output is automatically "
                                     "suppressed if no terminal is attached")],
    min_args=2, max_args=2)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """(container, path) as docker splits a cp argument: an absolute path, a path without
    ":" or one starting with "." (`./file:name.txt`) is local, and then container is ""."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def cmd_cp(engine, argv: list[str]) -> int:
    opts, args = parse(CP, argv)
    if opts.help:
        sys.stdout.write(help_text(CP))
        return 0
    source, destination = args
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(destination)
    try:
        if not source:
            raise LocalError("source can not be empty")
        if not destination:
            raise LocalError("destination can not be empty")
        if src_container and dst_container:
            raise LocalError("copying between containers is not supported")
        if not src_container and not dst_container:
            raise LocalError("must specify at least one container source")
        if dst_container:
            req = CopyRequest(dst_container, dst_path, src_path, to_container=True,
                              follow_link=opts.follow_link, archive=opts.archive)
        else:
            req = CopyRequest(src_container, src_path, dst_path, to_container=False,
                              follow_link=opts.follow_link, archive=opts.archive)
        result = copy(engine, req)
    except LocalError as err:
        print(err, file=sys.stderr)
        return 1
    except BerthError as err:
        print(f"Error response from daemon: {err}", file=sys.stderr)
        return 1
    # docker reports only to a terminal unless -q was given either way
    quiet = opts.quiet if opts.given("quiet") else not sys.stdout.isatty()
    if result is not None and not quiet:
        print(summary(result), file=sys.stderr)
    return 0


def summary(result) -> str:
    from berth.units import human_size  # lazy: only the summary on stderr

    if result.size != result.transferred:
        return (f"Successfully copied {human_size(result.size)} (transferred {human_size(result.transferred)}) "
                f"to {result.dest}")
    return f"Successfully copied {human_size(result.size)} to {result.dest}"
