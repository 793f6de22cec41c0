"""`berth top CONTAINER [ps OPTIONS]`: the container's processes (berth.engine.top) in docker's
columns."""

import sys

from berth.cli.flags import Command, help_text, parse
from berth.engine.top import parse_ps_output, top  # noqa: F401 - parse_ps_output: tests/integration/test_top.py
from berth.errors import BerthError

TOP = Command("top", "berth top CONTAINER [ps OPTIONS]", "Display the running processes of a container",
              interspersed=False, min_args=1)


def cmd_top(engine, argv: list[str]) -> int:
    opts, args = parse(TOP, argv)
    if opts.help:
        sys.stdout.write(help_text(TOP))
        return 0
    record = engine.get(args[0])
    try:
        # docker sends the options as one string, and its daemon splits it on single spaces.
        titles, processes = top(record, " ".join(args[1:]) or "-ef")
    except BerthError as err:
        print(f"Error response from daemon: {err}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(tabulate([titles] + processes))
    sys.stdout.buffer.flush()
    return 0


def tabulate(rows: list[list[bytes]]) -> bytes:
    """docker top's tabwriter (minwidth 20, padding 3): every column but the last padded to
    the widest cell plus 3, and to at least 20."""
    columns = max(len(row) for row in rows)
    widths = [20] * columns
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], _width(cell) + 3)
    out = []
    for row in rows:
        cells = [cell + b" " * (widths[i] - _width(cell)) for i, cell in enumerate(row[:-1])]
        out.append(b"".join(cells) + (row[-1] if row else b"") + b"\n")
    return b"".join(out)


def _width(cell: bytes) -> int:
    return len(cell.decode("utf-8", "surrogateescape"))
