"""`berth logs` against real containers: what they wrote comes back on the same stream,
byte for byte, filtered and followed as `docker logs` does."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import refused, wait_for, wchan

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z $")


def logs(berth, *args, timeout: float = 30) -> subprocess.CompletedProcess:
    return _run_bytes(berth, "logs", *args, timeout=timeout)


def _run_bytes(berth, *args, timeout: float = 30) -> subprocess.CompletedProcess:
    """berth with bytes out: logs must give back exactly what was logged."""
    return subprocess.run(berth.cmd(*args), capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)


def ran(busybox, *command: str, name: str = "logged") -> str:
    """Run a container in the foreground to its end; its output is in its log."""
    busybox("run", "--name", name, "busybox", *command)
    return name


def wait_running(berth, name: str) -> None:
    wait_for(lambda: berth("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true",
             what=f"{name} to start")


def following(follower: subprocess.Popen) -> bool:
    """Has `logs -f` printed what was there and gone to sleep between looks at the log (or ended)?"""
    return follower.poll() is not None or "nanosleep" in wchan(follower.pid)


def test_stdout_and_stderr_come_back_on_their_own_streams(busybox):
    name = ran(busybox, "sh", "-c", "echo out1; echo err1 >&2; echo out2; printf 'no newline'")
    result = logs(busybox, name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"out1\nout2\nno newline"
    assert result.stderr == b"err1\n"


def test_order_is_kept_across_streams_when_they_share_a_file(busybox):
    name = ran(busybox, "sh", "-c", "echo 1; sleep 0.05; echo 2 >&2; sleep 0.05; echo 3")
    result = subprocess.run(busybox.cmd("logs", name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert result.stdout == b"1\n2\n3\n"


def test_bytes_are_written_exactly(busybox):
    name = ran(busybox, "sh", "-c", r"printf 'caf\303\251 \t tab\r\nx\n'")
    assert logs(busybox, name).stdout == "café \t tab\r\nx\n".encode()


def test_timestamps(busybox):
    name = ran(busybox, "sh", "-c", "echo a; echo b >&2")
    result = logs(busybox, "-t", name)
    stamp, text = result.stdout[:31].decode(), result.stdout[31:]
    assert STAMP.match(stamp), result.stdout
    assert text == b"a\n"
    assert STAMP.match(result.stderr[:31].decode()) and result.stderr[31:] == b"b\n"
    assert logs(busybox, "--timestamps", name).stdout == result.stdout


def test_details_adds_the_empty_attribute_list_and_a_space(busybox):
    name = ran(busybox, "echo", "hi")
    assert logs(busybox, "--details", name).stdout == b" hi\n"
    out = logs(busybox, "--details", "-t", name).stdout.decode()
    assert re.match(r"^\S+Z  hi\n$", out), out


@pytest.mark.parametrize("tail, expected", [
    ("2", b"4\n5\n"), ("0", b""), ("all", b"1\n2\n3\n4\n5\n"), ("9", b"1\n2\n3\n4\n5\n"),
    ("-1", b"1\n2\n3\n4\n5\n"), ("nonsense", b"1\n2\n3\n4\n5\n"),
])
def test_tail(busybox, tail, expected):
    name = ran(busybox, "sh", "-c", "for i in 1 2 3 4 5; do echo $i; done")
    assert logs(busybox, "--tail", tail, name).stdout == expected
    assert logs(busybox, "-n", tail, name).stdout == expected


def test_since_and_until(busybox):
    name = ran(busybox, "sh", "-c", "echo early; sleep 1.2; echo late")
    result = logs(busybox, "-t", name)
    lines = result.stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["early", "late"]
    late_stamp = lines[1].split(" ")[0]
    assert logs(busybox, "--since", late_stamp, name).stdout == b"late\n"
    assert logs(busybox, "--until", lines[0].split(" ")[0], name).stdout == b"early\n"
    assert logs(busybox, "--since", "1h", name).stdout == b"early\nlate\n"
    assert logs(busybox, "--since", "-1h", name).stdout == b""
    assert logs(busybox, "--until", "1h", name).stdout == b""
    assert logs(busybox, "--since", str(int(time.time()) + 3600), name).stdout == b""
    assert logs(busybox, "--since", f"{time.time() - 3600:.3f}", name).stdout == b"early\nlate\n"
    assert logs(busybox, "--since", "2000-01-01", name).stdout == b"early\nlate\n"
    assert logs(busybox, "--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02", name).stdout == b""
    assert logs(busybox, "--until", "0", name).stdout == b"early\nlate\n"


def test_bad_since_is_an_error_with_dockers_wording(busybox):
    name = ran(busybox, "true")
    # docker exits 1 (the CLI's own check, not run's 125)
    result = logs(busybox, "--since", "yesterday", name)
    refused(result, 1, 'invalid value for "since": failed to parse value as time or duration: "yesterday"')
    assert result.stderr.count(b"\n") == 1
    result = logs(busybox, "--until", "2023-13-01", name)
    refused(result, 1, 'invalid value for "until": parsing time "2023-13-01": month out of range')


def test_missing_container(berth):
    result = logs(berth, "nope")
    refused(result, 1)
    assert result.stderr.decode() == "Error: No such container: nope\n"
    assert result.stdout == b""


def test_needs_exactly_one_container(berth):
    refused(logs(berth), 1, "'berth logs' requires 1 argument")  # docker: exit 1


def test_container_logs_alias_and_id_prefix(busybox):
    ran(busybox, "echo", "via id")
    container_id = busybox.ok("inspect", "--format", "{{.Id}}", "logged").strip()
    assert _run_bytes(busybox, "container", "logs", container_id[:8]).stdout == b"via id\n"


def test_a_tty_container_logs_everything_as_stdout(busybox):
    # no terminal here: script(1) is not assumed, so run -t with a pty from python
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(busybox.binary, busybox.cmd("run", "--name", "tty", "-t", "busybox", "sh", "-c",
                                             "echo out; echo err >&2"))
    while True:
        try:
            if not os.read(fd, 1024):
                break
        except OSError:
            break
    os.waitpid(pid, 0)
    result = logs(busybox, "tty")
    assert result.stdout == b"out\r\nerr\r\n"
    assert result.stderr == b""


def test_follow_of_a_stopped_container_ends_at_once(busybox):
    name = ran(busybox, "echo", "done")
    result = logs(busybox, "-f", name, timeout=10)
    assert result.returncode == 0
    assert result.stdout == b"done\n"


def test_follow_streams_a_foreground_container_until_it_exits(busybox):
    runner = subprocess.Popen(busybox.cmd("run", "--name", "fg", "busybox", "sh", "-c",
                                          "echo a; sleep 1; echo b >&2; printf c; sleep 0.3; echo d"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_running(busybox, "fg")
        result = logs(busybox, "--follow", "fg", timeout=20)
        assert result.returncode == 0
        assert result.stdout == b"a\ncd\n"
        assert result.stderr == b"b\n"
    finally:
        runner.wait(20)


def test_follow_delivers_each_entry_as_it_is_written(busybox):
    runner = subprocess.Popen(busybox.cmd("run", "--name", "fg", "busybox", "sh", "-c",
                                          "echo first; sleep 30"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    follower = None
    try:
        wait_running(busybox, "fg")
        follower = subprocess.Popen(busybox.cmd("logs", "-f", "fg"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert follower.stdout.readline() == b"first\n"  # flushed while the container still runs
        assert follower.poll() is None
        follower.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        assert follower.wait(10) == 0
        assert follower.stderr.read() == b""
    finally:
        if follower and follower.poll() is None:
            follower.kill()
        busybox("rm", "-f", "fg")
        runner.wait(20)


def test_follow_ends_quietly_when_its_reader_goes_away(busybox):
    runner = subprocess.Popen(busybox.cmd("run", "--name", "fg", "busybox", "sh", "-c",
                                          "echo 1; while sleep 0.1; do echo more; done"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_running(busybox, "fg")
        follower = subprocess.Popen(busybox.cmd("logs", "-f", "fg"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert follower.stdout.readline() == b"1\n"
        follower.stdout.close()  # like `| head -1`
        assert follower.wait(10) == 0
        assert follower.stderr.read() == b""
    finally:
        busybox("rm", "-f", "fg")
        runner.wait(20)


def test_follow_ends_when_the_container_is_removed(busybox):
    runner = subprocess.Popen(busybox.cmd("run", "--name", "fg", "busybox", "sh", "-c", "echo x; sleep 30"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_running(busybox, "fg")
        follower = subprocess.Popen(busybox.cmd("logs", "-f", "fg"), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert follower.stdout.readline() == b"x\n"
        busybox.ok("rm", "-f", "fg")
        assert follower.wait(10) == 0
    finally:
        busybox("rm", "-f", "fg")
        runner.wait(20)


# -- detached containers --------------------------------------------------------------------------

def test_logs_of_a_detached_container(busybox):
    container_id = busybox.ok("run", "-d", "busybox", "sh", "-c", "echo out; echo err >&2").strip()
    busybox.ok("wait", container_id)
    result = logs(busybox, container_id)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


def test_follow_a_detached_container_to_its_end(busybox):
    container_id = busybox.ok("run", "-d", "busybox", "sh", "-c",
                              "for i in 1 2 3; do echo $i; sleep 0.3; done; echo bye >&2").strip()
    result = logs(busybox, "-f", container_id, timeout=20)
    assert result.returncode == 0
    assert result.stdout == b"1\n2\n3\n"
    assert result.stderr == b"bye\n"


def test_follow_with_tail_zero_shows_only_new_output(busybox):
    container_id = busybox.ok("run", "-d", "busybox", "sh", "-c",
                              "echo old; while [ ! -e /go ]; do sleep 0.05; done; echo new").strip()
    wait_for(lambda: logs(busybox, container_id).stdout == b"old\n", what="the first line")
    follower = subprocess.Popen(busybox.cmd("logs", "-f", "--tail", "0", container_id), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: following(follower), what="logs -f to start following")
        busybox.ok("exec", container_id, "touch", "/go")  # "new" is written only now
        out, err = follower.communicate(timeout=20)
        assert (follower.returncode, out, err) == (0, b"new\n", b"")
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_follow_survives_restarts(busybox):
    container_id = busybox.ok("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c",
                              "echo run; sleep 0.3; exit 3").strip()
    result = logs(busybox, "-f", container_id, timeout=30)
    assert result.returncode == 0
    assert result.stdout == b"run\nrun\nrun\n"  # the first run and two restarts
    assert busybox.ok("inspect", "--format", "{{.RestartCount}} {{.State.Running}}", container_id).split() == \
        ["2", "false"]


def test_follow_across_a_start_by_hand(busybox):
    container_id = busybox.ok("run", "-d", "busybox", "sh", "-c", "echo hello; sleep 1").strip()
    busybox.ok("wait", container_id)
    busybox.ok("start", container_id)
    result = logs(busybox, "-f", container_id, timeout=20)
    assert result.stdout == b"hello\nhello\n"
