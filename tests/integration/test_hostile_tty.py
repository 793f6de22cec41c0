"""Attached modes without -t never hand the caller's terminal to the container: its fd 0/1/2
are pipes that berth pumps (stdin from ours with -i, else /dev/null), as docker does. A
process left behind in the container must not read what the admin types after berth
returned, nor write to the admin's terminal."""

import os
import select
import subprocess
import time
import tty

SHOW_FDS = ("for fd in 0 1 2; do echo fd$fd=$(readlink /proc/self/fd/$fd); "
            "if [ -t $fd ]; then echo fd$fd=isatty; fi; done")


class PtyRun:
    """`cmd` with a fresh pseudo-terminal's slave as its stdin, stdout and stderr (the admin's
    terminal); we hold the master: what we write there is what the admin types."""

    def __init__(self, cmd: list[str]):
        self.master, slave = os.openpty()
        tty.setraw(slave)  # bytes in, bytes out: no echo, no \r\n
        self.slave_name = os.ttyname(slave)
        self.output = b""
        try:
            self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        finally:
            os.close(slave)

    def read_available(self, wait: float = 0.0) -> bytes:
        """What the terminal shows within `wait` seconds (or already shows)."""
        got = b""
        deadline = time.monotonic() + wait
        while True:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: no process holds the slave any more
                break
            if not chunk:
                break
            got += chunk
        self.output += got
        return got

    def wait(self, timeout: float = 30) -> int:
        """The command's exit code; the terminal is read meanwhile (it must never fill up)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.proc.args} did not end within {timeout} s; saw {self.output!r}")
            self.read_available(0.05)
        self.read_available()
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def run_in_pty(berth, *args: str, timeout: float = 30) -> tuple[int, str, PtyRun]:
    run = PtyRun(berth.cmd(*args))
    code = run.wait(timeout)
    return code, run.output.decode(errors="replace"), run


def assert_not_terminal(output: str, slave_name: str, stdin: str) -> None:
    lines = output.split()
    assert "/dev/pts" not in output and slave_name not in output, output
    assert not [line for line in lines if line.endswith("=isatty")], output
    fds = dict(line.split("=", 1) for line in lines if line.startswith("fd"))
    assert fds["fd0"].startswith(stdin), output
    assert fds["fd1"].startswith("pipe:") and fds["fd2"].startswith("pipe:"), output


def wait_for_file(busybox, container: str, path: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = busybox("exec", container, "cat", path, timeout=15)
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared in {container}")


def running(busybox, name: str) -> None:
    busybox.ok("run", "-d", "--name", name, "busybox", "sleep", "3600")


# -- the container's fds are pipes, never the caller's terminal ---------------------------

def test_exec_without_t_gives_pipes_not_our_terminal(busybox):
    running(busybox, "box")
    for flags, stdin in (((), "/dev/null"), (("-i",), "pipe:")):
        run = None
        try:
            code, output, run = run_in_pty(busybox, "exec", *flags, "box", "sh", "-c", SHOW_FDS)
            assert code == 0, output
            assert_not_terminal(output, run.slave_name, stdin)
        finally:
            if run:
                run.close()


def test_run_and_start_attached_without_t_give_pipes(busybox):
    busybox.ok("create", "-i", "--name", "interactive", "busybox", "sh", "-c", SHOW_FDS)
    busybox.ok("create", "--name", "attached", "busybox", "sh", "-c", SHOW_FDS)
    for args, stdin in ((("run", "-i", "--rm", "busybox", "sh", "-c", SHOW_FDS), "pipe:"),
                        (("run", "--rm", "busybox", "sh", "-c", SHOW_FDS), "/dev/null"),
                        (("start", "-ai", "interactive"), "pipe:"),
                        (("start", "-a", "attached"), "/dev/null")):
        run = None
        try:
            code, output, run = run_in_pty(busybox, *args)
            assert code == 0, (args, output)
            assert_not_terminal(output, run.slave_name, stdin)
        finally:
            if run:
                run.close()


# -- the attack: a process left behind by exec -i reads what the admin types next ----------

def test_process_left_by_exec_cannot_read_or_write_the_admins_terminal(busybox):
    running(busybox, "box")
    secret = b"s3cret-" + os.urandom(6).hex().encode() + b"\n"
    # Left behind: it waits until exec has returned, then reads the exec's stdin (the admin's
    # terminal if berth handed it over; kept as fd 3, as sh gives a background job /dev/null)
    # and writes to its stderr (the same terminal).
    lurker = (f"exec 3<&0; (trap '' PIPE; sleep 1; head -c {len(secret)} <&3 > /tmp/stolen; "
              "echo INJECTED >&2; echo done > /tmp/done) & echo started")
    run = PtyRun(busybox.cmd("exec", "-i", "box", "sh", "-c", lurker))
    try:
        assert run.wait(30) == 0, run.output
        assert b"started" in run.output
        os.write(run.master, secret)  # the admin types at the prompt berth gave back
        wait_for_file(busybox, "box", "/tmp/done")
        shown = run.read_available(0.5)
        stolen = busybox.ok("exec", "box", "cat", "/tmp/stolen").encode()
        assert secret.strip() not in stolen, "a process left in the container read the admin's terminal"
        assert b"INJECTED" not in shown, "a process left in the container wrote to the admin's terminal"
    finally:
        run.close()


# -- pipes behave like docker's -------------------------------------------------------------

def test_run_i_forwards_stdin_and_closes_it_at_eof(busybox):
    result = busybox("run", "-i", "--rm", "busybox", "cat", input="hi\n", timeout=30)
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    # A megabyte each way through cat: stdin is fed while its output is copied (no deadlock).
    data = os.urandom(1 << 20)
    result = busybox("run", "-i", "--rm", "busybox", "cat", input=data, timeout=60)
    assert result.returncode == 0 and result.stdout == data, result.stderr
    # The container closes its stdin early (EPIPE for us): no hang, its code comes back.
    result = busybox("run", "-i", "--rm", "busybox", "sh", "-c", "head -c 3; exec 0<&-; sleep 0.2; exit 4",
                     input=b"x" * (4 << 20), timeout=30)
    assert (result.returncode, result.stdout) == (4, b"xxx"), result.stderr


def test_start_ai_forwards_stdin(busybox):
    busybox.ok("create", "-i", "--name", "interactive", "busybox", "sh", "-c", "cat; exit 6")
    result = busybox("start", "-ai", "interactive", input="through start\n", timeout=30)
    assert (result.returncode, result.stdout) == (6, "through start\n"), result.stderr


def test_exec_i_forwards_stdin_and_exit_codes_propagate(busybox):
    running(busybox, "box")
    result = busybox("exec", "-i", "box", "cat", input="a\nb\n", timeout=30)
    assert (result.returncode, result.stdout) == (0, "a\nb\n"), result.stderr
    result = busybox("exec", "box", "sh", "-c", "exit 7", timeout=30)
    assert result.returncode == 7
    result = busybox("exec", "-i", "box", "sh", "-c", "read line; echo got $line; exit 9", input="x\n", timeout=30)
    assert (result.returncode, result.stdout) == (9, "got x\n"), result.stderr
    result = busybox("run", "--rm", "busybox", "sh", "-c", "exit 5", timeout=30)
    assert result.returncode == 5


def test_exec_returns_when_its_process_exits_despite_a_lingering_child(busybox):
    running(busybox, "box")
    # The child keeps stdout and stderr open for 60 s; exec ends with its own process, as
    # docker's does, and still delivers all it wrote (more than a pipe holds) before exiting.
    result = busybox("exec", "box", "sh", "-c", "sleep 60 & head -c 300000 /dev/zero; echo end >&2; exit 3",
                     input=b"", timeout=20)
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"\0" * 300000 and result.stderr == b"end\n"
    result = busybox("exec", "-i", "box", "sh", "-c", "sleep 60 & echo main", input="", timeout=20)
    assert (result.returncode, result.stdout) == (0, "main\n"), result.stderr


def test_stdout_and_stderr_stay_separate(busybox):
    result = busybox("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2", timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    running(busybox, "box")
    result = busybox("exec", "box", "sh", "-c", "echo out; echo err >&2", timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
