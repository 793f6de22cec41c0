"""`berth attach` and the attach socket every supervisor serves (as conmon's): any number of
clients see the container's output, one of them feeds its stdin, the detach keys leave it
running, a client that dies or stops reading never holds it back, and `run`/`start -a` are
such clients too (so a foreground run can be attached to, detached from, and killed)."""

import fcntl
import json
import os
import select
import signal
import stat
import struct
import subprocess
import termios
import time

import pytest

from conftest import wait_for

WAIT_FOR_GO = "while [ ! -e /go ]; do sleep 0.05; done; "


def run_d(b, *args: str) -> str:
    return b.ok("run", "-d", *args).strip()


def state(b, ref: str) -> dict:
    return json.loads(b.ok("inspect", "--format", "{{json .State}}", ref))


def monitor_pid(b, container_id: str) -> int:
    with open(os.path.join(b.run_root, "containers", container_id, "state.json")) as f:
        return json.load(f)["monitor"][0]


def attached(b, container_id: str) -> int:
    """Clients connected to the container's attach socket now, as the kernel lists them: the
    supervisor's accepted sockets carry the name it bound (…/.attach-<its pid>), state 03."""
    suffix = f"/.attach-{monitor_pid(b, container_id)}"
    with open("/proc/net/unix") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if len(row) >= 8 and row[-1].endswith(suffix) and row[5] == "03")


def popen(b, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(b.cmd(*args), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, bytes, bytes]:
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # communicate() would flush it
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def read_line(proc: subprocess.Popen, timeout: float = 20) -> bytes:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output in time"
    line = proc.stdout.readline()
    assert line, f"{proc.args} ended: {proc.stderr.read()!r}"
    return line


class Pty:
    """A command on a fresh terminal (its own session, the terminal its controlling one) of
    `rows` x `cols`; we hold the master: what we write is what a user types."""

    def __init__(self, cmd: list[str], rows: int = 30, cols: int = 100):
        self.master, slave = os.openpty()
        self.resize(rows, cols, slave)
        self.output = b""

        def controlling():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling)
        os.close(slave)

    def resize(self, rows: int, cols: int, fd: int | None = None) -> None:
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, needle: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.output and time.monotonic() < deadline:
            if not self._read(0.1):
                break
        assert needle in self.output, f"{needle!r} not seen; the terminal shows {self.output!r}"
        return self.output

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: nobody holds the terminal any more
                return False
            if not chunk:
                return False
            self.output += chunk
        return True

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"{self.proc.args} still runs; the terminal shows {self.output!r}"
            self._read(0.05)
        while self._read(0):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def ptys():
    made = []
    yield lambda cmd, **kw: made.append(Pty(cmd, **kw)) or made[-1]
    for pty in made:
        pty.close()


# -- output to every client --------------------------------------------------------------

def test_two_attachers_see_the_same_output(busybox):
    script = WAIT_FOR_GO + "i=0; while [ $i -lt 500 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; exit 3"
    container_id = run_d(busybox, "--name", "two", "busybox", "sh", "-c", script)
    first = popen(busybox, "attach", "--no-stdin", "two")
    second = popen(busybox, "attach", "two")  # stdin asked for, but the container has none (no -i)
    wait_for(lambda: attached(busybox, container_id) == 2, what="both clients connected")
    busybox.ok("exec", "two", "touch", "/go")
    expected_out = "".join(f"out{i}\n" for i in range(500)).encode()
    expected_err = "".join(f"err{i}\n" for i in range(500)).encode()
    for proc in (first, second):
        code, out, err = finish(proc)
        assert (code, out, err) == (3, expected_out, expected_err)
    assert state(busybox, "two")["ExitCode"] == 3
    # the log got the same, once
    assert busybox.ok("logs", "two") == expected_out.decode()


def test_a_foreground_run_can_be_attached_to(busybox):
    runner = popen(busybox, "run", "--name", "fg", "busybox", "sh", "-c", WAIT_FOR_GO + "echo hello; exit 4")
    try:
        wait_for(lambda: state(busybox, "fg")["Running"] if busybox("inspect", "fg").returncode == 0 else False,
                 what="the foreground container to run")
        container_id = busybox.ok("inspect", "--format", "{{.Id}}", "fg").strip()
        other = popen(busybox, "attach", "fg")
        wait_for(lambda: attached(busybox, container_id) == 1, what="the second client connected")
        busybox.ok("exec", "fg", "touch", "/go")
        assert finish(other) == (4, b"hello\n", b"")
        assert finish(runner) == (4, b"hello\n", b"")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_the_socket_is_private_and_goes_with_the_container(busybox):
    container_id = run_d(busybox, "--name", "priv", "busybox", "sleep", "60")
    path = os.path.join(busybox.run_root, "containers", container_id, "attach")
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0
    assert [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".attach")] == []
    busybox.ok("stop", "-t", "0", "priv")
    assert not os.path.exists(path)


# -- refusals ------------------------------------------------------------------------------

def test_attaching_to_a_stopped_container_errors_like_docker(busybox):
    busybox.ok("create", "--name", "made", "busybox", "true")
    busybox.fails(1, "attach", "made", says="You cannot attach to a stopped container, start it first")
    busybox.ok("run", "--name", "ended", "busybox", "true")
    busybox.fails(1, "attach", "ended", says="You cannot attach to a stopped container, start it first")
    run_d(busybox, "--name", "frozen", "busybox", "sleep", "60")
    busybox.ok("pause", "frozen")
    busybox.fails(1, "attach", "frozen", says="You cannot attach to a paused container, unpause it first")
    busybox.ok("unpause", "frozen")
    busybox.fails(1, "attach", "nosuch", says="No such container: nosuch")
    busybox.fails(1, "attach", "--detach-keys", "ctrl-p,bogus", "frozen",
                  says="Invalid detach keys (ctrl-p,bogus) provided")


# -- stdin ---------------------------------------------------------------------------------

def test_stdin_comes_from_the_first_client_that_asks(busybox):
    busybox.ok("create", "-i", "--name", "cat", "busybox", "cat")  # docker's StdinOnce: create -i, not run -di
    busybox.ok("start", "cat")
    container_id = busybox.ok("inspect", "--format", "{{.Id}}", "cat").strip()
    owner = popen(busybox, "attach", "cat", stdin=subprocess.PIPE)
    wait_for(lambda: attached(busybox, container_id) == 1, what="the first client connected")
    owner.stdin.write(b"hello\n")
    owner.stdin.flush()
    assert read_line(owner) == b"hello\n"  # it owns stdin now
    watcher = popen(busybox, "attach", "cat", stdin=subprocess.PIPE)
    wait_for(lambda: attached(busybox, container_id) == 2, what="the second client connected")
    watcher.stdin.write(b"ignored\n")  # stdin is the first one's
    watcher.stdin.close()
    owner.stdin.write(b"second\n")
    owner.stdin.close()  # its end is the container's (created with -i: docker's StdinOnce)
    assert finish(owner) == (0, b"second\n", b"")  # (hello was read above)
    code, out, err = finish(watcher)
    assert (code, out, err) == (0, b"second\n", b"")
    assert busybox.ok("logs", "cat") == "hello\nsecond\n"


def test_attach_forwards_signals_and_returns_the_exit_code(busybox):
    script = 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.05; done'
    container_id = run_d(busybox, "--name", "sig", "busybox", "sh", "-c", script)
    wait_for(lambda: busybox.ok("logs", "sig") == "ready\n", what="the trap")
    client = popen(busybox, "attach", "sig")
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
    client.send_signal(signal.SIGTERM)
    assert finish(client) == (7, b"got-term\n", b"")
    # --sig-proxy=false: the signal ends the client only
    container_id = run_d(busybox, "--name", "sig2", "busybox", "sh", "-c", script)
    wait_for(lambda: busybox.ok("logs", "sig2") == "ready\n", what="the trap")
    client = popen(busybox, "attach", "--sig-proxy=false", "sig2")
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
    client.send_signal(signal.SIGTERM)
    assert finish(client)[0] == -signal.SIGTERM
    assert state(busybox, "sig2")["Running"] is True


# -- clients that die, stop reading, or detach -------------------------------------------

def test_a_killed_attacher_leaves_the_container_running(busybox):
    script = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"
    container_id = run_d(busybox, "-i", "--name", "counter", "busybox", "sh", "-c", script)
    client = popen(busybox, "attach", "counter", stdin=subprocess.PIPE)
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
    assert read_line(client).strip().isdigit()
    client.kill()
    client.wait()
    wait_for(lambda: attached(busybox, container_id) == 0, what="the supervisor to drop the dead client")
    before = busybox.ok("logs", "counter").count("\n")
    wait_for(lambda: busybox.ok("logs", "counter").count("\n") > before + 5, what="the container to go on")
    assert state(busybox, "counter")["Running"] is True
    again = popen(busybox, "attach", "counter")
    assert read_line(again).strip().isdigit()  # and it can be attached to again
    again.kill()
    again.wait()


def test_a_killed_foreground_run_leaves_its_container_running(busybox, ptys):
    """A `run -it` whose terminal goes away (its CLI killed): the container goes on under its
    supervisor, which records its end. (A run without a tty is supervised by its CLI.)"""
    script = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"
    term = ptys(busybox.cmd("run", "-it", "--name", "fgk", "busybox", "sh", "-c", script))
    term.read_until(b"3")
    term.proc.kill()
    term.wait()
    before = busybox.ok("logs", "fgk").count("\n")
    wait_for(lambda: busybox.ok("logs", "fgk").count("\n") > before + 5, what="the container to go on")
    assert state(busybox, "fgk")["Running"] is True
    busybox.ok("stop", "-t", "0", "fgk")
    assert state(busybox, "fgk")["ExitCode"] == 137


def test_a_foreground_run_with_a_restart_policy_returns_and_restarts(busybox):
    """As docker's: the command ends with the first run's code, the container restarts."""
    result = busybox("run", "--name", "again", "--restart", "on-failure:1", "busybox", "sh", "-c",
                     "echo run; exit 3", timeout=30)
    assert (result.returncode, result.stdout) == (3, "run\n"), result.stderr
    wait_for(lambda: busybox.ok("logs", "again") == "run\nrun\n" and state(busybox, "again")["Status"] == "exited",
             what="the restart")
    assert busybox.ok("inspect", "--format", "{{.RestartCount}} {{.State.ExitCode}}", "again") == "1 3\n"


def test_a_client_that_stops_reading_never_blocks_the_container_or_the_log(busybox):
    flood = 'while true; do head -c 65536 /dev/zero | tr "\\0" x; echo; done'
    container_id = run_d(busybox, "--name", "flood", "busybox", "sh", "-c", flood)
    log = busybox.ok("inspect", "--format", "{{.LogPath}}", "flood").strip()
    stuck = popen(busybox, "attach", "flood")  # its stdout is a pipe nobody reads: it blocks writing
    try:
        wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
        start = os.stat(log).st_size
        # 32 MB: far more than the client's pipe, socket buffers and the supervisor's queue for it
        wait_for(lambda: os.stat(log).st_size > start + (32 << 20), timeout=60, what="the log to go on growing")
        wait_for(lambda: attached(busybox, container_id) == 0, what="the supervisor to drop the stuck client")
        assert state(busybox, "flood")["Running"] is True
    finally:
        stuck.kill()
        stuck.wait()
        busybox.ok("rm", "-f", "flood")


def test_detach_keys_leave_the_container_running(busybox, ptys):
    container_id = run_d(busybox, "-it", "--name", "shell", "busybox", "sh")
    term = ptys(busybox.cmd("attach", "shell"))
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
    term.write(b"echo $((6*7))\r")
    term.read_until(b"42")
    term.write(b"\x10\x11")  # ctrl-p ctrl-q: docker's default
    assert term.wait() == 1
    assert b"read escape sequence" in term.output
    assert state(busybox, "shell")["Running"] is True
    # again, with keys of our own; a ctrl-a not followed by x reaches the container
    term = ptys(busybox.cmd("attach", "--detach-keys", "ctrl-a,x", "shell"))
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected again")
    term.write(b"\x01\x15")  # ctrl-a then not x: both reach the shell (start of line, kill line)
    term.write(b"echo $((6*9))\r")
    term.read_until(b"54")
    term.write(b"\x01x")
    assert term.wait() == 1
    assert state(busybox, "shell")["Running"] is True
    # the shell still reads what the next client types, and ends when told
    term = ptys(busybox.cmd("attach", "shell"))
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected a third time")
    term.write(b"exit 5\r")
    assert term.wait() == 5
    assert state(busybox, "shell")["ExitCode"] == 5


def test_run_it_detaches_with_the_keys_and_exits_0(busybox, ptys):
    term = ptys(busybox.cmd("run", "-it", "--name", "fgt", "busybox", "sh"))
    term.write(b"echo $((7*8))\r")
    term.read_until(b"56")
    term.write(b"\x10\x11")
    assert term.wait() == 0
    assert b"read escape sequence" not in term.output
    assert state(busybox, "fgt")["Running"] is True
    # its supervisor serves it on, for another client
    container_id = busybox.ok("inspect", "--format", "{{.Id}}", "fgt").strip()
    term = ptys(busybox.cmd("attach", "fgt"))
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
    term.write(b"exit 6\r")
    assert term.wait() == 6


def test_start_ai_detaches_and_start_a_of_a_running_container_attaches(busybox, ptys):
    busybox.ok("create", "-it", "--name", "later", "busybox", "sh")
    term = ptys(busybox.cmd("start", "-ai", "later"))
    term.write(b"echo $((3*5))\r")
    term.read_until(b"15")
    term.write(b"\x10\x11")
    assert term.wait() == 0
    assert state(busybox, "later")["Running"] is True
    term = ptys(busybox.cmd("start", "-ai", "later"))  # docker: start -a of a running one attaches
    term.write(b"echo $((4*5))\r")
    term.read_until(b"20")
    term.write(b"exit 2\r")
    assert term.wait() == 2


def test_a_tty_takes_the_size_of_each_clients_terminal(busybox, ptys):
    script = WAIT_FOR_GO + "stty size; rm /go; " + WAIT_FOR_GO + "stty size"
    container_id = run_d(busybox, "-t", "--name", "sized", "busybox", "sh", "-c", script)
    term = ptys(busybox.cmd("attach", "--no-stdin", "sized"), rows=40, cols=120)
    wait_for(lambda: attached(busybox, container_id) == 1, what="the client connected")
    busybox.ok("exec", "sized", "touch", "/go")
    term.read_until(b"40 120")
    wait_for(lambda: busybox("exec", "sized", "test", "-e", "/go").returncode == 1, what="the first look")
    term.resize(50, 132)  # the kernel tells the client (SIGWINCH), the client the supervisor
    wait_for(lambda: busybox.ok("exec", "sized", "sh", "-c", "stty size < /dev/pts/0").strip() == "50 132",
             what="the container's terminal to be resized")
    busybox.ok("exec", "sized", "touch", "/go")
    term.read_until(b"50 132")
    assert term.wait() == 0


# -- docker's --detach-keys format ----------------------------------------------------------

def test_detach_keys_format():
    from berth.engine.attach import EscapeDetector, parse_detach_keys
    from berth.errors import InvalidArgument

    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,ctrl-a,ctrl-z,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes(
        [0, 1, 26, 27, 28, 29, 30, 31])
    assert parse_detach_keys("a,b,DEL") == b"ab\x7f"
    for bad in ("ctrl-p,", "ctrl-1", "ab", "CTRL-P"):
        with pytest.raises(InvalidArgument):
            parse_detach_keys(bad)
    detector = EscapeDetector(b"\x10\x11")
    assert detector.feed(b"ab\x10") == (b"ab", False)  # held back: the sequence may go on
    assert detector.feed(b"c") == (b"\x10c", False)  # it did not
    assert detector.feed(b"\x10\x10") == (b"\x10", False)
    assert detector.feed(b"\x11rest") == (b"", True)


def test_stdin_once_and_attach_flags_as_dockers_cli_sets_them(busybox):
    """docker: -i attaches stdin and closes it after the first attach ends (StdinOnce);
    run -d attaches nothing and keeps stdin open for any later attacher."""
    fmt = "{{.Config.AttachStdin}} {{.Config.AttachStdout}} {{.Config.OpenStdin}} {{.Config.StdinOnce}}"
    busybox.ok("create", "-i", "--name", "created", "busybox", "cat")
    assert busybox.ok("inspect", "-f", fmt, "created").split() == ["true", "true", "true", "true"]
    busybox.ok("run", "-d", "-i", "--name", "detached", "busybox", "cat")
    assert busybox.ok("inspect", "-f", fmt, "detached").split() == ["false", "false", "true", "false"]
    busybox.ok("run", "-d", "--name", "plain", "busybox", "true")
    assert busybox.ok("inspect", "-f", fmt, "plain").split() == ["false", "false", "false", "false"]
    busybox.ok("rm", "-f", "created", "detached", "plain")
