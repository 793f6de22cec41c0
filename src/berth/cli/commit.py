"""Images from containers: diff, commit, history, export."""

import os
import sys
import time

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, parse_or_help
from berth.cli.images import PLATFORM, check_platform
from berth.engine.commit import commit, diff, export
from berth.errors import BerthError, InvalidArgument
from berth.fs import OutputFile

DIFF = Command("diff", "berth diff CONTAINER", "Inspect changes to files or directories on a container's filesystem",
               min_args=1, max_args=1)
COMMIT = Command("commit", "berth commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                 "Create a new image from a container's changes",
                 [Flag("author", "a", STRING, "", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
                  Flag("change", "c", LIST, (), "Apply Dockerfile instruction to the created image"),
                  Flag("message", "m", STRING, "", "Commit message"),
                  Flag("pause", "p", BOOL, True, "Pause container during commit")], min_args=1, max_args=2)
HISTORY = Command("history", "berth history [OPTIONS] IMAGE", "Show the history of an image",
                  [Flag("human", "H", BOOL, True, "Print sizes and dates in human readable format"),
                   Flag("no-trunc", None, BOOL, False, "Don't truncate output"),
                   Flag("quiet", "q", BOOL, False, "Only show image IDs"),
                   Flag("format", None, STRING, None, "Format output using a custom template"), PLATFORM],
                  min_args=1, max_args=1)
EXPORT = Command("export", "berth export [OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
                 [Flag("output", "o", STRING, None, "Write to a file, instead of STDOUT")], min_args=1, max_args=1)

HISTORY_HEADER = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                  "Size": "SIZE", "Comment": "COMMENT"}
DEFAULT_HISTORY_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def _output_file(path: str) -> OutputFile:
    try:
        return OutputFile(path)
    except OSError as err:
        raise BerthError("failed to export container: unable to create temporary file: "
                         f"{err.strerror.lower()}") from None


def cmd_diff(engine, argv) -> int:
    opts, args = parse_or_help(DIFF, argv)
    if opts.help:
        return 0
    sys.stdout.write("".join(f"{kind} {path}\n" for kind, path in diff(engine.get(args[0]))))
    return 0


def cmd_commit(engine, argv) -> int:
    from berth.engine.images import tag_name  # lazy, as below: only commit and history read image names

    opts, args = parse_or_help(COMMIT, argv)
    if opts.help:
        return 0

    record = engine.get(args[0])
    name = tag_name(args[1]) if len(args) > 1 else None
    print(commit(engine, record, name, opts.author, opts.message, opts.change, opts.pause))
    return 0


def cmd_history(engine, argv) -> int:
    from berth.cli.contexts import Row  # lazy: only history
    from berth.cli.output import render_rows  # lazy: only history
    from berth.engine.images import history  # lazy: only history
    from berth.units import human_duration, human_size, rfc3339_seconds  # lazy: only history

    opts, args = parse_or_help(HISTORY, argv)
    if opts.help:
        return 0
    check_platform(opts.platform)
    rows = []
    now = time.time()
    for entry in history(engine, args[0]):
        created_by = entry.created_by
        created_at = rfc3339_seconds(entry.created)  # docker: whole seconds in the local zone
        if not opts.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append(Row("*image.historyContext", {
            "ID": entry.id if opts.no_trunc or entry.id == "<missing>" else entry.id[7:19],
            "CreatedSince": (human_duration(now - entry.created) + " ago") if opts.human else created_at,
            "CreatedAt": created_at, "CreatedBy": created_by,
            "Size": human_size(entry.size) if opts.human else str(entry.size),
            "Comment": entry.comment,
        }))
    if opts.quiet:
        sys.stdout.write("".join(row.ID + "\n" for row in rows))
        return 0
    render_rows(opts.format, DEFAULT_HISTORY_FORMAT, rows, HISTORY_HEADER)
    return 0


def cmd_export(engine, argv) -> int:
    opts, args = parse_or_help(EXPORT, argv)
    if opts.help:
        return 0
    record = engine.get(args[0])
    if opts.output is None and os.isatty(1):
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if opts.output:
        from berth.cli.progress import for_terminal  # lazy: only export to a terminal

        bar = for_terminal(sys.stderr)
        progress = (lambda done, total: bar(record["Id"][:12], "Exporting", done, total)) if bar else None
        try:
            with _output_file(opts.output) as fd:
                export(record, fd, progress)
        finally:
            if bar:
                bar.close()
    else:
        sys.stdout.flush()
        export(record, 1)
    return 0
