"""`top`: what docker's daemon does for it: run the host's `ps` with the given options and keep
the lines whose PID is one of the container's (the pids in its cgroup, in its pid namespace)."""

import re
import subprocess

from berth.engine.containers import is_running
from berth.errors import BerthError, Conflict


def top(record: dict, ps_args: str = "-ef") -> tuple[list[bytes], list[list[bytes]]]:
    """docker's ContainerTop: (titles, processes), each process a list of fields. `ps_args` is
    one string, split on single spaces as docker's daemon splits it."""
    _validate_ps_args(ps_args)
    if record["State"].get("Restarting"):
        raise Conflict(f"Container {record['Id']} is restarting, wait until the container is running")
    if not is_running(record):
        raise Conflict(f"container {record['Id']} is not running")
    from berth.engine.state import container_cgroup  # lazy: only a running container has pids to list

    pids = in_pid_namespace(set(container_cgroup(record).pids()), record["State"]["Pid"])
    return parse_ps_output(run_ps(ps_args.split(" "), pids), pids)


def in_pid_namespace(pids: set[int], pid1: int) -> set[int]:
    """The container's processes: those of its cgroup that live in its pid namespace or one
    made inside it (as deep as its pid 1, or deeper); not a process that is joining it (an
    exec's or a health probe's child, in the cgroup an instant before its namespaces)."""
    depth = _pid_namespace_depth(pid1)
    if depth is None:
        return pids
    return {pid for pid in pids if (_pid_namespace_depth(pid) or 0) >= depth}


def _pid_namespace_depth(pid: int) -> int | None:
    """How many pid namespaces, ours down to its own, the process has a pid in (NSpid)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return len(line.split()) - 1
    except OSError:  # ended meanwhile
        pass
    return None


def _validate_ps_args(ps_args: str) -> None:
    """docker refuses to let a column other than pid be renamed to PID (it would be taken
    for the PID column)."""
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
