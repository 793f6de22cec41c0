"""Image archive commands: save, load."""

import os
import sys

from berth.cli.flags import BOOL, STRING, Command, Flag, parse_or_help
from berth.cli.images import PLATFORM, check_platform
from berth.cli.progress import for_terminal
from berth.engine import images
from berth.errors import BerthError
from berth.fs import OutputFile

SAVE = Command("save", "berth save [OPTIONS] IMAGE [IMAGE...]",
               "Save one or more images to a tar archive (streamed to STDOUT by default)",
               [Flag("output", "o", STRING, None, "Write to a file, instead of STDOUT"),
                Flag("format", None, STRING, "docker-archive",
                     'Archive format: "docker-archive" (also an OCI layout) or "oci-archive"'), PLATFORM],
               min_args=1)
LOAD = Command("load", "berth load [OPTIONS]", "Load an image from a tar archive or STDIN",
               [Flag("input", "i", STRING, None, "Read from tar archive file, instead of STDIN"),
                Flag("quiet", "q", BOOL, False, "Suppress the load output"), PLATFORM],
               max_args=0)


def cmd_save(engine, argv) -> int:
    opts, args = parse_or_help(SAVE, argv)
    if opts.help:
        return 0
    check_platform(opts.platform)
    images.check_save_format(opts.format)
    if not opts.output and sys.stdout.isatty():
        raise BerthError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    progress = for_terminal(sys.stderr)
    try:
        archive = images.save(engine, args, opts.format)  # a missing image fails before any output
        if not opts.output:
            archive.write(sys.stdout.buffer, progress)
            sys.stdout.buffer.flush()
            return 0
        _save_to_file(archive, opts.output, progress)
    finally:
        if progress:
            progress.close()
    return 0


def _save_to_file(archive, output: str, progress) -> None:
    """Like docker's CLI: write a temp file beside `output`, rename it into place when complete."""
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise BerthError(f'failed to save image: invalid output path: directory "{directory}" does not exist')
    try:
        output_file = OutputFile(output)
    except OSError as err:
        raise BerthError(f"failed to save image: unable to create temporary file: {err.strerror.lower()}") from None
    with output_file as fd, open(fd, "wb", closefd=False) as out:
        archive.write(out, progress)


def cmd_load(engine, argv) -> int:
    opts, _ = parse_or_help(LOAD, argv)
    if opts.help:
        return 0
    check_platform(opts.platform)
    if not opts.input and sys.stdin.isatty():
        raise BerthError("requested load from stdin, but stdin is empty")
    try:
        stream = open(opts.input, "rb") if opts.input else sys.stdin.buffer
    except OSError as err:
        raise BerthError(f"open {opts.input}: {err.strerror.lower()}") from None
    # docker draws progress only when its stdout is a terminal (it goes quiet otherwise)
    progress = for_terminal(sys.stdout, opts.quiet)
    try:
        with stream:
            loaded = images.load(engine, stream, progress)
    finally:
        if progress:
            progress.close()
    for image in loaded:
        for name, previous in image.replaced:
            print(f"The image {name} already exists, renaming the old one with ID {previous} to empty string")
        for name in image.names:
            print(f"Loaded image: {name}")
        if not image.names:
            print(f"Loaded image ID: {image.id}")
    return 0
