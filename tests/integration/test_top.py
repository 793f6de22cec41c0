"""`berth top`: the host's ps, narrowed to the container's processes, in docker's columns."""

import contextlib
import os
import subprocess

import pytest

from berth.cli.top import parse_ps_output, tabulate
from berth.errors import BerthError
from conftest import wait_for


@contextlib.contextmanager
def running(busybox, *command: str, name: str = "topped"):
    """A foreground `berth run` in the background, removed afterwards."""
    runner = subprocess.Popen(busybox.cmd("run", "--rm", "--name", name, "busybox", *command),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: runner.poll() is not None
                 or busybox("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true",
                 what="the container to start")
        assert runner.poll() is None, "the container ended before it could be looked at"
        yield name
    finally:
        busybox("rm", "-f", name)
        runner.wait(20)


def container_pid(busybox, name: str) -> int:
    return int(busybox.ok("inspect", "--format", "{{.State.Pid}}", name))


def test_top_shows_the_containers_process_with_ps_ef_columns(busybox):
    with running(busybox, "sleep", "30") as name:
        pid = container_pid(busybox, name)
        out = busybox.ok("top", name)
    lines = out.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(lines) == 2, out
    fields = lines[1].split()
    assert fields[0] == "root" and fields[1] == str(pid)
    assert lines[1].endswith("sleep 30")
    # docker's tabwriter: columns 20 wide (or the widest cell + 3)
    assert lines[0].startswith("UID" + " " * 17 + "PID" + " " * 17 + "PPID")


def test_top_lists_every_process_and_nothing_of_the_host(busybox):
    with running(busybox, "sh", "-c", "sleep 300 & sleep 301 & wait") as name:
        out = wait_for(lambda: (text := busybox.ok("top", name, "-o", "pid,args")).count("\n") == 4 and text,
                       what="the three processes")
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    commands = sorted(line.split(None, 1)[1] for line in lines[1:])
    assert commands == ["sh -c sleep 300 & sleep 301 & wait", "sleep 300", "sleep 301"]
    pids = [int(line.split()[0]) for line in lines[1:]]
    assert os.getpid() not in pids and 1 not in pids


def test_top_passes_ps_options_through(busybox):
    with running(busybox, "sleep", "30") as name:
        pid = container_pid(busybox, name)
        out = busybox.ok("top", name, "-o", "pid,comm")
        aux = busybox.ok("top", name, "aux")
        container_alias = busybox.ok("container", "top", name, "-o", "pid")
    assert out.splitlines() == [f"{'PID':<20}COMMAND", f"{pid:<20}sleep"]
    assert aux.splitlines()[0].split()[:3] == ["USER", "PID", "%CPU"]
    assert aux.splitlines()[1].split()[1] == str(pid)
    assert container_alias.split() == ["PID", str(pid)]


def test_top_without_a_pid_column(busybox):
    with running(busybox, "sleep", "30") as name:
        result = busybox("top", name, "-o", "comm")
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: Couldn't find PID field in ps output\n"


def test_top_refuses_renaming_a_column_to_pid(busybox):
    with running(busybox, "sleep", "30") as name:
        result = busybox("top", name, "-o", "pid,comm=PID")
    assert result.returncode == 1
    assert result.stderr == 'Error response from daemon: specifying "pid,comm=PID" is not allowed\n'


def test_top_reports_a_failing_ps(busybox):
    with running(busybox, "sleep", "30") as name:
        result = busybox("top", name, "--no-such-ps-option")
    assert result.returncode == 1
    assert result.stderr.startswith("Error response from daemon: ps: ")


def test_top_of_a_container_that_is_not_running(busybox):
    container_id = busybox.ok("create", "busybox", "true").strip()
    result = busybox("top", container_id)
    assert result.returncode == 1
    assert result.stderr == f"Error response from daemon: container {container_id} is not running\n"
    assert result.stdout == ""


def test_top_of_a_missing_container(berth):
    result = berth("top", "nope")
    assert result.returncode == 1
    assert result.stderr == "Error: No such container: nope\n"


def test_top_needs_a_container(berth):
    berth.fails(1, "top", says="'berth top' requires at least 1 argument")  # docker: exit 1


# -- docker's parsePSOutput and tabwriter, on ps output written here ---------------------------------

PS_EF = b"""UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         100       1  0 10:01 ?        00:00:00 sleep   30
nobody       101     100  0 10:01 pts/0    00:00:00 sh -c echo hi
"""


def test_parse_ps_output_keeps_the_containers_lines_and_joins_the_last_column():
    titles, processes = parse_ps_output(PS_EF, {100, 101})
    assert titles == [b"UID", b"PID", b"PPID", b"C", b"STIME", b"TTY", b"TIME", b"CMD"]
    assert processes == [[b"root", b"100", b"1", b"0", b"10:01", b"?", b"00:00:00", b"sleep 30"],
                         [b"nobody", b"101", b"100", b"0", b"10:01", b"pts/0", b"00:00:00", b"sh -c echo hi"]]


def test_parse_ps_output_keeps_thread_lines_of_the_containers_processes():
    output = b"PID TID CMD\n1 - init\n- 1 -\n100 - sleep\n- 100 -\n- 102 -\n"
    _, processes = parse_ps_output(output, {100})
    assert processes == [[b"100", b"-", b"sleep"], [b"-", b"100", b"-"], [b"-", b"102", b"-"]]


def test_parse_ps_output_errors():
    with pytest.raises(BerthError, match="^Couldn't find PID field in ps output$"):
        parse_ps_output(b"COMMAND\nsleep\n", {1})
    with pytest.raises(BerthError, match="^Unexpected pid 'x': "):
        parse_ps_output(b"PID CMD\nx sleep\n", {1})


def test_tabulate_like_dockers_tabwriter():
    rows = [[b"PID", b"COMMAND"], [b"1", b"a"], [b"x" * 25, b"last column is never padded"]]
    assert tabulate(rows) == (b"PID" + b" " * 25 + b"COMMAND\n"
                              + b"1" + b" " * 27 + b"a\n"
                              + b"x" * 25 + b"   last column is never padded\n")
    assert tabulate([["é".encode(), b"b"]]) == "é".encode() + b" " * 19 + b"b\n"
