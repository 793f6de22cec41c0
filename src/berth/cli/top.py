"""`berth top CONTAINER [ps OPTIONS]`: what docker's daemon does: run the host's `ps` with
the given options, keep the lines whose PID is one of the container's (the pids in its
cgroup), and print them in docker's columns."""

import subprocess
import sys

from berth.cli.flags import Command, help_text, parse
from berth.errors import BerthError

TOP = Command("top", "berth top CONTAINER [ps OPTIONS]", "Display the running processes of a container",
              interspersed=False, min_args=1)


def cmd_top(engine, argv: list[str]) -> int:
    opts, args = parse(TOP, argv)
    if opts.help:
        sys.stdout.write(help_text(TOP))
        return 0
    from berth.engine.containers import is_running

    record = engine.get(args[0])
    # docker sends the options as one string, and its daemon splits it on single spaces.
    ps_args = " ".join(args[1:]) or "-ef"
    try:
        _validate_ps_args(ps_args)
        state = record["State"]
        if state.get("Restarting"):
            raise BerthError(f"Container {record['Id']} is restarting, wait until the container is running")
        if not is_running(record):
            raise BerthError(f"container {record['Id']} is not running")
        from berth.runtime.cgroups import open_cgroup

        pids = set(open_cgroup("/berth/" + record["Id"]).pids())
        titles, processes = parse_ps_output(run_ps(ps_args.split(" "), pids), pids)
    except BerthError as err:
        print(f"Error response from daemon: {err}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(tabulate([titles] + processes))
    sys.stdout.buffer.flush()
    return 0


def _validate_ps_args(ps_args: str) -> None:
    """docker refuses to let a column other than pid be renamed to PID (it would be taken
    for the PID column)."""
    import re

    for key, value in re.findall(r"\s+(\S*)=\s*(PID\S*)", ps_args):
        if key != "pid":
            raise BerthError(f'specifying "{key}={value}" is not allowed')


def run_ps(args: list[str], pids: set[int]) -> bytes:
    """`ps ARGS -q PIDS`, or plain `ps ARGS` when those options cannot be combined with -q."""
    selector = "-q" + ",".join(str(p) for p in sorted(pids))
    result = subprocess.run(["ps", *args, selector], capture_output=True)
    if result.returncode != 0:
        result = subprocess.run(["ps", *args], capture_output=True)
        if result.returncode != 0:
            first = result.stderr.split(b"\n", 1)[0].decode(errors="replace")
            raise BerthError(f"ps: {first or f'exit status {result.returncode}'}")
    return result.stdout


def parse_ps_output(output: bytes, pids: set[int]) -> tuple[list[bytes], list[list[bytes]]]:
    """docker's parsePSOutput: the header's fields, then the fields of each line whose PID is
    the container's (with `-m`, the thread lines "-" after such a line too); fields beyond
    the header's count are joined back into the last column."""
    lines = output.split(b"\n")
    titles = lines[0].split()  # bytes.split() splits on ASCII whitespace only, like fieldsASCII
    try:
        pid_index = titles.index(b"PID")
    except ValueError:
        raise BerthError("Couldn't find PID field in ps output") from None
    processes = []
    previous_ours = False
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == b"-":
            if previous_ours:
                processes.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise BerthError(f"Unexpected pid '{fields[pid_index].decode(errors='replace')}': "
                             f'strconv.Atoi: parsing "{fields[pid_index].decode(errors="replace")}": '
                             "invalid syntax") from None
        previous_ours = pid in pids
        if previous_ours:
            processes.append(_fit(fields, len(titles)))
    return titles, processes


def _fit(fields: list[bytes], count: int) -> list[bytes]:
    return fields[:count - 1] + [b" ".join(fields[count - 1:])]


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
