"""Crash safety of what holds a running container (issue 13): a commit killed while the
container is frozen, a full disk under the container's log, and a killed supervisor. Every
test performs the real crash (SIGKILL, a full tmpfs) and then asks berth, as a user would."""

import json
import os
import signal
import subprocess
import time

import pytest

from berth.engine.procs import same_process
from conftest import wait_for

FREEZER_V1 = "/sys/fs/cgroup/freezer"
UNIFIED = "/sys/fs/cgroup/cgroup.controllers"


# -- helpers -------------------------------------------------------------------

def run_d(b, *args: str) -> str:
    return b.ok("run", "-d", *args, timeout=30).strip()


def state(b, ref: str) -> dict:
    return json.loads(b.ok("inspect", "--format", "{{json .State}}", ref))


def status_of(b, name: str) -> str:
    return b.ok("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").strip()


def processes(b, container_id: str) -> dict:
    with open(os.path.join(b.run_root, "containers", container_id, "state.json")) as f:
        return json.load(f)


def alive(ident) -> bool:
    return same_process(ident)


def frozen(container_id: str) -> bool:
    """What the kernel says, not what berth says: is the container's cgroup frozen?"""
    if os.path.exists(UNIFIED) and not os.path.isdir(FREEZER_V1):
        path = f"/sys/fs/cgroup/berth/{container_id}/cgroup.freeze"
        with open(path) as f:
            return f.read().strip() == "1"
    with open(os.path.join(FREEZER_V1, "berth", container_id, "freezer.state")) as f:
        return f.read().strip() != "THAWED"


def log_lines(b, container_id: str) -> list[dict]:
    with open(os.path.join(b.root, "containers", container_id, f"{container_id}-json.log"), "rb") as f:
        lines = []
        for raw in f.read().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:  # a line torn by the full disk: readers skip it
                continue
        return lines


def kill_supervisor(b, container_id: str) -> tuple:
    """SIGKILL the container's supervisor (a process this test started, through berth);
    returns (the supervisor's identity, the container pid 1's identity)."""
    recorded = processes(b, container_id)
    supervisor, container = recorded["monitor"], recorded["pid"]
    os.kill(supervisor[0], signal.SIGKILL)
    wait_for(lambda: not alive(supervisor), what="the supervisor to die")
    return supervisor, container


# -- item 4: a commit killed while the container is frozen ---------------------------

def kill_commit_while_frozen(b, container_id: str, name: str) -> None:
    """Start `commit`, wait until the kernel says the container is frozen (a big upper dir
    keeps it there for a while), then SIGKILL the committer."""
    proc = subprocess.Popen(b.cmd("commit", name, "killed:commit"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: frozen(container_id) or proc.poll() is not None, timeout=30,
                 what="the commit to freeze the container")
        assert proc.poll() is None, "the commit ended before it could be killed"
        proc.kill()
    finally:
        proc.kill()
        proc.wait()
    assert frozen(container_id), "the killed commit's freeze is what this test needs"


def test_commit_killed_mid_freeze_is_thawed_by_the_next_command(busybox):
    # Many files in the upper dir: the commit is frozen long enough to be killed there.
    script = ("mkdir /d && cd /d && i=0; while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done; "
              "echo ready; while true; do echo tick; sleep 0.1; done")
    container_id = run_d(busybox, "--name", "fz", "busybox", "sh", "-c", script)
    wait_for(lambda: "ready\n" in busybox.ok("logs", "fz"), timeout=60, what="the files to be written")
    kill_commit_while_frozen(busybox, container_id, "fz")

    # ps is the first command to look: it finds the freeze's owner dead and thaws it
    assert status_of(busybox, "fz").startswith("Up ")
    assert "Paused" not in status_of(busybox, "fz")
    assert not frozen(container_id)
    st = state(busybox, "fz")
    assert st["Running"] is True and st["Paused"] is False and st["Status"] == "running"
    # unpause has nothing to undo (docker's words), exec runs at once, the container runs on
    busybox.fails(1, "unpause", "fz", says="is not paused")
    assert busybox.ok("exec", "fz", "echo", "alive", timeout=10) == "alive\n"
    # a user's pause is a pause: it stays until unpaused
    busybox.ok("pause", "fz")
    assert frozen(container_id) and state(busybox, "fz")["Paused"] is True
    assert "(Paused)" in status_of(busybox, "fz")
    assert frozen(container_id)
    busybox.ok("unpause", "fz")
    assert not frozen(container_id)
    # another commit works, and stop stops it at once
    assert busybox.ok("commit", "fz", "again:commit", timeout=60).startswith("sha256:")
    assert not frozen(container_id)
    start = time.monotonic()
    busybox.ok("stop", "-t", "1", "fz", timeout=30)
    assert time.monotonic() - start < 8, "stop of a thawed container must not wait out a frozen one"
    assert state(busybox, "fz")["Running"] is False


@pytest.mark.parametrize("first", ["stop", "kill", "exec", "unpause"])
def test_any_command_after_a_killed_commit_finds_it_thawed(busybox, first):
    script = ("mkdir /d && cd /d && i=0; while [ $i -lt 3000 ]; do echo $i > f$i; i=$((i+1)); done; "
              "echo ready; exec sleep 600")
    container_id = run_d(busybox, "--name", "fz2", "busybox", "sh", "-c", script)
    wait_for(lambda: "ready\n" in busybox.ok("logs", "fz2"), timeout=60, what="the files to be written")
    kill_commit_while_frozen(busybox, container_id, "fz2")
    start = time.monotonic()
    if first == "stop":
        busybox.ok("stop", "-t", "1", "fz2", timeout=30)
        assert state(busybox, "fz2")["Status"] == "exited"
    elif first == "kill":
        busybox.ok("kill", "fz2", timeout=30)
        wait_for(lambda: state(busybox, "fz2")["Status"] == "exited", timeout=10, what="the kill to end it")
    elif first == "exec":
        assert busybox.ok("exec", "fz2", "echo", "hi", timeout=10) == "hi\n"
        assert not frozen(container_id)
    else:
        busybox.fails(1, "unpause", "fz2", says="is not paused")
        assert not frozen(container_id)
    assert time.monotonic() - start < 8
    busybox.ok("rm", "-f", "fz2")


# -- item 7: the log on a full disk ------------------------------------------------

class FullLog:
    """A container whose json-file log is a file on a small tmpfs of its own (bind-mounted
    over the log's path before the container starts): its output fills that disk."""

    def __init__(self, b, tmp: str):
        self.b = b
        self.tmpfs = os.path.join(tmp, "full-tmpfs")
        os.mkdir(self.tmpfs)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "berth-test-full", self.tmpfs], check=True)
        self.binds = []

    def create(self, *args: str) -> str:
        container_id = self.b.ok("create", *args).strip()
        log = os.path.join(self.b.root, "containers", container_id, f"{container_id}-json.log")
        backing = os.path.join(self.tmpfs, container_id[:12])
        for path in (log, backing):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        subprocess.run(["mount", "--bind", backing, log], check=True)
        self.binds.append(log)
        return container_id

    def close(self) -> None:
        for name in self.b.ok("ps", "-aq", "--no-trunc").split():
            self.b("kill", name)
        for log in self.binds:
            subprocess.run(["umount", log], check=False)
        subprocess.run(["umount", self.tmpfs], check=False)


@pytest.fixture
def full_log(busybox, tmp_path):
    full = FullLog(busybox, str(tmp_path))
    try:
        yield full
    finally:
        full.close()


def test_full_disk_drops_log_lines_and_the_supervisor_survives(full_log):
    b = full_log.b
    # Fast enough to fill 256 KiB in a moment, then slow enough to read back one by one.
    script = ("i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done; "
              "echo burst-done; while true; do if [ -e /go ]; then echo after-$(cat /go); fi; sleep 0.2; done")
    container_id = full_log.create("--name", "full", "busybox", "sh", "-c", script)
    b.ok("start", "full", timeout=30)
    supervisor = processes(b, container_id)["monitor"]
    log = os.path.join(b.root, "containers", container_id, f"{container_id}-json.log")

    def disk_full() -> bool:
        st = os.statvfs(log)
        return st.f_bavail == 0

    wait_for(disk_full, timeout=30, what="the log to fill the tmpfs")
    wait_for(lambda: "burst-done" in b.ok("exec", "full", "sh", "-c", "echo burst-done"), what="exec")
    time.sleep(0.5)  # more output meets the full disk
    assert alive(supervisor), "the supervisor died of the full disk"
    assert state(b, "full")["Running"] is True
    # free the disk: the supervisor writes again, first a line saying what was lost
    os.truncate(log, 0)
    b.ok("exec", "full", "sh", "-c", "echo 1 > /go")
    wait_for(lambda: any(e["log"].startswith("after-1") for e in log_lines(b, container_id)), timeout=20,
             what="the log to resume after the disk was freed")
    entries = log_lines(b, container_id)
    notices = [e for e in entries if e["log"].startswith("berth: ") and "log lines lost" in e["log"]]
    assert len(notices) == 1, entries[:5]
    assert "no space left on device" in notices[0]["log"] and notices[0]["stream"] == "stderr"
    assert entries.index(notices[0]) < next(i for i, e in enumerate(entries) if e["log"].startswith("after-"))
    assert alive(supervisor)
    assert "after-1" in b.ok("logs", "--tail", "5", "full")
    b.ok("stop", "-t", "1", "full", timeout=30)
    assert state(b, "full")["Status"] == "exited"


def test_full_disk_under_a_foreground_start_keeps_the_container(full_log):
    """A foreground start supervises the container itself: a full log must not end it."""
    b = full_log.b
    full_log.create("--name", "fg", "busybox", "sh", "-c",
                    "i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done; echo finished; exit 3")
    result = b("start", "-a", "fg", timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout.endswith("finished\n")
    assert state(b, "fg")["ExitCode"] == 3


# -- item 8: a killed supervisor is adopted ---------------------------------------

# Ends with the code written to /stop (taken away first: a restarted one runs on).
TICKER = ("i=0; while true; do echo tick$i; i=$((i+1)); "
          "if [ -e /stop ]; then c=$(cat /stop); rm /stop; exit $c; fi; sleep 0.1; done")


def test_killed_supervisor_is_adopted_and_its_output_recovered(busybox):
    container_id = run_d(busybox, "--name", "ad", "busybox", "sh", "-c", TICKER)
    wait_for(lambda: "tick1\n" in busybox.ok("logs", "ad"), what="output")
    old, container = kill_supervisor(busybox, container_id)
    time.sleep(0.3)  # output meanwhile goes nowhere
    assert status_of(busybox, "ad").startswith("Up ")  # ps adopts it
    adopter = processes(busybox, container_id)["monitor"]
    assert adopter != old and alive(adopter)
    assert processes(busybox, container_id)["pid"] == container
    # its output is read again, after a line that says since when some may be lost
    before = len(log_lines(busybox, container_id))
    wait_for(lambda: len(log_lines(busybox, container_id)) > before + 3, what="the log to grow again")
    entries = log_lines(busybox, container_id)
    notices = [e for e in entries if "supervisor was killed" in e["log"]]
    assert len(notices) == 1 and notices[0]["stream"] == "stderr"
    assert "read again from now" in notices[0]["log"]
    # a second look adopts nothing more
    busybox.ok("ps")
    assert processes(busybox, container_id)["monitor"] == adopter
    # its end is recorded by the adopter, with the real exit code when it can be known
    busybox.ok("exec", "ad", "sh", "-c", "echo 7 > /stop")
    wait_for(lambda: state(busybox, "ad")["Status"] == "exited", what="the end to be recorded")
    st = state(busybox, "ad")
    assert (st["ExitCode"], st["Error"]) == (7, "") or (st["ExitCode"] == 255 and "exit status unknown" in st["Error"])
    assert not alive(adopter) or wait_for(lambda: not alive(adopter), what="the adopter to end")
    busybox.ok("rm", "ad")


@pytest.mark.parametrize("policy, restarts", [("no", False), ("always", True), ("unless-stopped", True),
                                              ("on-failure", True)])
def test_killed_supervisor_then_exit_applies_the_restart_policy(busybox, policy, restarts):
    container_id = run_d(busybox, "--name", "rp", "--restart", policy, "busybox", "sh", "-c", TICKER)
    wait_for(lambda: "tick1\n" in busybox.ok("logs", "rp"), what="output")
    kill_supervisor(busybox, container_id)
    busybox.ok("inspect", "rp")  # adopts it
    adopter = processes(busybox, container_id)["monitor"]
    assert alive(adopter)
    first_pid = state(busybox, "rp")["Pid"]
    busybox.ok("exec", "rp", "sh", "-c", "echo 5 > /stop")
    if restarts:
        wait_for(lambda: state(busybox, "rp")["Running"] and state(busybox, "rp")["Pid"] not in (0, first_pid),
                 timeout=30, what="the restart policy to start it again")
        st = state(busybox, "rp")
        assert st["Status"] == "running" and busybox.ok("inspect", "--format", "{{.RestartCount}}", "rp") == "1\n"
        # the container it restarted is supervised as any other: stop records its end
        busybox.ok("stop", "-t", "1", "rp", timeout=30)
        assert state(busybox, "rp")["Status"] == "exited"
    else:
        wait_for(lambda: state(busybox, "rp")["Status"] == "exited", what="the end to be recorded")
        st = state(busybox, "rp")
        assert st["Running"] is False and st["Pid"] == 0
        assert (st["ExitCode"], st["Error"]) == (5, "") or (st["ExitCode"] == 255 and st["Error"])
    busybox.ok("rm", "-f", "rp")


def test_killed_supervisor_of_a_container_that_ended_meanwhile(busybox):
    """The container ends while nobody supervises it: the next look records its end (not a
    made-up 255 without a word) and `always` starts it again."""
    container_id = run_d(busybox, "--name", "gone", "--restart", "always", "busybox", "sh", "-c", TICKER)
    wait_for(lambda: "tick1\n" in busybox.ok("logs", "gone"), what="output")
    _, container = kill_supervisor(busybox, container_id)
    os.kill(container[0], signal.SIGKILL)  # the container's pid 1, which this test started through berth
    wait_for(lambda: not alive(container), what="the container to die")
    st = state(busybox, "gone")  # the look that adopts it: the end is recorded, the policy applies
    assert st["ExitCode"] == 137 and st["Error"] == "" or st["ExitCode"] == 255 and "unknown" in st["Error"]
    wait_for(lambda: state(busybox, "gone")["Status"] == "running" and state(busybox, "gone")["Pid"] != container[0],
             timeout=30, what="always to start it again")
    busybox.ok("stop", "-t", "1", "gone", timeout=30)
    busybox.ok("rm", "gone")


def test_stop_of_an_adopted_container_records_its_end(busybox):
    container_id = run_d(busybox, "--name", "st", "--restart", "always", "busybox", "sleep", "600")
    old, _ = kill_supervisor(busybox, container_id)
    busybox.ok("ps")  # adopts it
    adopter = processes(busybox, container_id)["monitor"]
    assert adopter != old and alive(adopter)
    busybox.ok("stop", "-t", "1", "st", timeout=30)  # no restart: stopped by hand
    wait_for(lambda: not alive(adopter), what="the adopter to record the end and go")
    st = state(busybox, "st")
    assert st["Status"] == "exited" and st["Running"] is False
    assert (st["ExitCode"], st["Error"]) == (137, "") or (st["ExitCode"] == 255 and st["Error"])
    time.sleep(0.5)
    assert state(busybox, "st")["Status"] == "exited"  # stopped by hand: always does not apply
    busybox.ok("rm", "st")


def test_killed_supervisor_in_the_restart_back_off_restarts_it(busybox):
    """Killed while it waited to restart the container (the policy's back-off): the next look
    finds nobody left to restart it, and a new supervisor does, as the old one was about to."""
    container_id = run_d(busybox, "--name", "bo", "--restart", "always", "busybox", "sh", "-c", "echo try; exit 3")
    wait_for(lambda: state(busybox, "bo")["Restarting"] and busybox.ok("logs", "bo").count("try") >= 3,
             timeout=30, what="the back-off of a few restarts")
    monitor = processes(busybox, container_id)["monitor"]
    os.kill(monitor[0], signal.SIGKILL)
    wait_for(lambda: not alive(monitor), what="the supervisor to die")
    tries = busybox.ok("logs", "bo").count("try")
    busybox.ok("ps", "-a")  # the look that restarts it
    wait_for(lambda: busybox.ok("logs", "bo").count("try") > tries, timeout=30, what="the policy to go on")
    assert processes(busybox, container_id)["monitor"] != monitor
    busybox.ok("stop", "-t", "1", "bo", timeout=30)
    assert state(busybox, "bo")["Status"] == "exited"
    busybox.ok("rm", "bo")


def test_adopted_container_is_still_probed(busybox):
    """A health-checked container whose supervisor was killed keeps its probes under the
    supervisor that adopts it (its launcher died with the old one)."""
    container_id = run_d(busybox, "--name", "hp", "--health-cmd", "echo alive", "--health-interval", "200ms",
                         "busybox", "sleep", "60")
    wait_for(lambda: state(busybox, "hp").get("Health", {}).get("Status") == "healthy", what="healthy")
    kill_supervisor(busybox, container_id)
    assert status_of(busybox, "hp").startswith("Up ")  # ps adopts it
    last = state(busybox, "hp")["Health"]["Log"][-1]["Start"]
    wait_for(lambda: state(busybox, "hp")["Health"]["Log"][-1]["Start"] != last, what="a probe by the adopter")
    entry = state(busybox, "hp")["Health"]["Log"][-1]
    assert (entry["ExitCode"], entry["Output"]) == (0, "alive\n")
    busybox.ok("rm", "-f", "hp")
