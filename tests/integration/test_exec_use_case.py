"""`exec` as the engine's use case (berth.engine.execs), called as a front door calls it: no
terminal, no CLI; the caller's stdio are pipes made here. The container is started through
the CLI; each exec is one engine call that returns the exit code."""

import os
import signal
import threading
import time

import pytest

from berth.engine.containers import Engine
from berth.engine.execs import ExecRequest, run_exec, start_exec
from berth.errors import CommandNotFound, Conflict, NotFound
from berth.paths import Paths
from conftest import wait_for


def engine_of(b) -> Engine:
    return Engine(Paths(b.root, b.run_root), b.config_file)


@pytest.fixture
def running(busybox) -> Engine:
    """An engine on a root where container `ex` runs."""
    busybox.ok("run", "-d", "--network", "none", "--name", "ex", "busybox", "sleep", "300")
    return engine_of(busybox)


class Pipes:
    """stdin, stdout and stderr for an exec: pipes whose far ends the test holds."""

    def __init__(self, stdin: bytes | None = None):
        self.stdin_r = -1
        if stdin is not None:
            self.stdin_r, writer = os.pipe()
            os.write(writer, stdin)
            os.close(writer)  # the exec reads `stdin`, then EOF
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()

    def fds(self) -> tuple[int, int, int]:
        return self.stdin_r, self.out_w, self.err_w

    def read(self) -> tuple[bytes, bytes]:
        """What the exec wrote to each (after it returned)."""
        os.close(self.out_w)
        os.close(self.err_w)
        out, err = _read_all(self.out_r), _read_all(self.err_r)
        for fd in (self.out_r, self.err_r, self.stdin_r):
            if fd >= 0:
                os.close(fd)
        return out, err


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_exit_code_and_separate_streams(running):
    pipes = Pipes()
    code = run_exec(running, "ex", ExecRequest(["sh", "-c", "echo out; echo err >&2; exit 7"]), *pipes.fds())
    assert code == 7
    assert pipes.read() == (b"out\n", b"err\n")


def test_user_env_and_workdir(running):
    pipes = Pipes()
    req = ExecRequest(["sh", "-c", 'echo "$(id -u) $X $(pwd)"'], user="nobody", env=["X=1"], workdir="/tmp")
    assert run_exec(running, "ex", req, *pipes.fds()) == 0
    assert pipes.read() == (b"65534 1 /tmp\n", b"")


def test_attached_stdin_is_copied_then_closed(running):
    pipes = Pipes(stdin=b"through stdin\n")
    code = run_exec(running, "ex", ExecRequest(["sh", "-c", "cat; echo eof"], attach_stdin=True), *pipes.fds())
    assert code == 0
    assert pipes.read() == (b"through stdin\neof\n", b"")


def test_unattached_stdin_reads_nothing(running):
    pipes = Pipes(stdin=b"not for it\n")
    assert run_exec(running, "ex", ExecRequest(["cat"]), *pipes.fds()) == 0
    assert pipes.read() == (b"", b"")


def test_its_own_pty_sized_and_fed_from_a_pipe(running):
    """-t without a terminal on our side: the process has a pty of its own, its size is the
    one asked for and changes with resize(); our stdin's end reaches it as ^D."""
    pipes = Pipes(stdin=b"hello\n")
    req = ExecRequest(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty; stty size; read x; echo got:$x"],
                      tty=True, attach_stdin=True)
    session = start_exec(running, "ex", req, console_size=(30, 100))
    assert session.tty
    code = session.stream(*pipes.fds())
    out, err = pipes.read()
    assert code == 0
    # the pty echoes what it was fed whenever that arrives: look at each line on its own
    assert {b"tty", b"30 100", b"got:hello"} <= set(out.split(b"\r\n"))
    assert err == b""  # a tty has only the one stream

    pipes = Pipes()
    session = start_exec(running, "ex", ExecRequest(["sh", "-c", "sleep 1; stty size"], tty=True), (30, 100))
    session.resize(40, 120)
    assert session.stream(*pipes.fds()) == 0
    assert pipes.read()[0] == b"40 120\r\n"


def test_on_started_gets_the_pid_to_signal(running):
    """What a front door's sig-proxy needs: the process's pid once it runs."""
    pipes = Pipes()
    seen = []

    def on_started(pid: int) -> None:
        seen.append(pid)
        os.kill(pid, signal.SIGKILL)

    code = run_exec(running, "ex", ExecRequest(["sleep", "60"]), *pipes.fds(), on_started=on_started)
    assert code == 128 + signal.SIGKILL
    assert len(seen) == 1 and seen[0] != os.getpid()
    pipes.read()


def test_returns_when_the_process_ends_despite_a_child_holding_its_pipes(running):
    pipes = Pipes()
    result = []
    worker = threading.Thread(target=lambda: result.append(
        run_exec(running, "ex", ExecRequest(["sh", "-c", "(sleep 30 &); echo done"]), *pipes.fds())), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(20)
    assert result == [0], "the exec did not return while a background child held its output"
    assert time.monotonic() - started < 20
    assert pipes.read()[0] == b"done\n"


def test_detached_returns_at_once_and_runs_on(running, busybox):
    assert run_exec(running, "ex", ExecRequest(["sh", "-c", "echo started > /tmp/mark; exec sleep 50"],
                                               detach=True)) is None
    wait_for(lambda: busybox.ok("exec", "ex", "cat", "/tmp/mark") == "started\n", what="the detached exec")
    assert "sleep 50" in busybox.ok("exec", "ex", "ps", "-o", "args")


def test_errors_have_docker_kinds(running, busybox):
    pipes = Pipes()
    with pytest.raises(CommandNotFound, match='exec: "nosuch": executable file not found'):
        run_exec(running, "ex", ExecRequest(["nosuch"]), *pipes.fds())
    with pytest.raises(NotFound, match="No such container: nothere"):
        run_exec(running, "nothere", ExecRequest(["true"]), *pipes.fds())
    busybox.ok("create", "--network", "none", "--name", "idle", "busybox", "true")
    with pytest.raises(Conflict, match="is not running"):
        run_exec(running, "idle", ExecRequest(["true"]), *pipes.fds())
    assert pipes.read() == (b"", b"")
