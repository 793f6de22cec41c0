"""Health checks as docker runs them: the --health-* flags and the image's HEALTHCHECK
(commit/import -c, load) merged into Config.Healthcheck, the supervisor's prober running
the probe with exec semantics on schedule (interval, timeout, retries, start period with its
start interval), State.Health in inspect, `ps` STATUS and --filter health=, health_status
events, and docker's refusals of bad values. Probe intervals are short (200 ms-1 s)."""

import json
import os
import re
import time

import pytest

from conftest import as_nobody, wait_for

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def inspect(b, name: str) -> dict:
    return json.loads(b.ok("inspect", name))[0]


def health(b, name: str) -> dict | None:
    return inspect(b, name)["State"].get("Health")


def wait_status(b, name: str, status: str) -> dict:
    return wait_for(lambda: (h := health(b, name)) and h["Status"] == status and h,
                    what=f"{name} to be {status}")


def ps_status(b, name: str) -> str:
    return b.ok("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").strip()


def supervisor_children(b, name: str) -> dict[int, str]:
    """The processes whose parent is the container's supervisor, by pid: their names. Its pid 1
    and, once it was probed, the probe launcher (berth-probe): nothing else is kept for probing."""
    supervisor = int(b.ok("inspect", "--format", "{{.State.Pid}}", name))
    with open(f"/proc/{supervisor}/stat") as f:
        supervisor = int(f.read().rpartition(")")[2].split()[1])  # pid 1's parent
    found = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:  # not a process, or ended meanwhile
            continue
        fields = text.rpartition(")")[2].split()
        if int(fields[1]) == supervisor and fields[0] != "Z":
            found[int(entry)] = text[text.index("(") + 1:text.rindex(")")]
    return found


def launchers(b, name: str) -> list[int]:
    return [pid for pid, comm in supervisor_children(b, name).items() if comm == "berth-probe"]


def test_healthy_probe_is_logged_as_docker_shows_it(busybox):
    cid = busybox.ok("run", "-d", "--name", "web", "--health-cmd", "echo hi", "--health-interval", "200ms",
                     "busybox", "sleep", "60").strip()
    record = inspect(busybox, "web")
    assert record["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "echo hi"], "Interval": 200_000_000}
    assert list(record["Config"]).index("Healthcheck") == list(record["Config"]).index("Cmd") + 1
    assert record["State"]["Health"]["Status"] in ("starting", "healthy")
    assert list(record["State"]) == ["Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                                     "ExitCode", "Error", "StartedAt", "FinishedAt", "Health"]
    wait_status(busybox, "web", "healthy")
    assert "(healthy)" in ps_status(busybox, "web")
    state = wait_for(lambda: len(health(busybox, "web")["Log"]) == 5 and health(busybox, "web"),
                     what="5 log entries")
    first = state["Log"][0]["Start"]
    wait_for(lambda: health(busybox, "web")["Log"][0]["Start"] != first, what="the log to roll over")
    state = health(busybox, "web")
    assert len(state["Log"]) == 5 and state["FailingStreak"] == 0
    for entry in state["Log"]:
        assert list(entry) == ["Start", "End", "ExitCode", "Output"]
        assert RFC3339_NANO.match(entry["Start"]) and RFC3339_NANO.match(entry["End"])
        assert entry["ExitCode"] == 0 and entry["Output"] == "hi\n"
    pid1 = int(busybox.ok("inspect", "--format", "{{.State.Pid}}", "web"))
    kept = supervisor_children(busybox, "web")
    assert len(kept) == 2 and kept[pid1] == "sleep" and len(launchers(busybox, "web")) == 1
    busybox.ok("stop", "-t", "0", "web")  # docker: a stopped container is unhealthy, its log kept
    stopped = health(busybox, "web")
    assert stopped["Status"] == "unhealthy" and len(stopped["Log"]) == 5
    time.sleep(0.6)  # three intervals: probing ended with the run, and its launcher
    assert health(busybox, "web") == stopped
    assert not any(os.path.exists(f"/proc/{p}") for p in kept if p != pid1)
    busybox.ok("start", "web")
    assert health(busybox, "web")["Status"] in ("starting", "healthy")
    wait_status(busybox, "web", "healthy")
    assert inspect(busybox, "web")["Id"] == cid
    busybox.ok("rm", "-f", "web")


def test_foreground_run_and_an_attached_client_keep_probing(busybox):
    """The probes run in whichever loop supervises the container: a foreground `run` (the
    CLI itself), and a supervisor that a client attached to and left (it hands the probing
    over to its lean monitor)."""
    import subprocess

    front = subprocess.Popen(busybox.cmd("run", "--name", "front", "--health-cmd", "echo up",
                                         "--health-interval", "200ms", "busybox", "sleep", "3"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: busybox("inspect", "front").returncode == 0, what="the foreground container")
        state = wait_status(busybox, "front", "healthy")
        assert state["Log"][-1]["Output"] == "up\n"
        assert front.wait(timeout=20) == 0
    finally:
        if front.poll() is None:
            front.kill()
            front.wait()
    busybox.ok("run", "-d", "--name", "att", "--health-cmd", "echo ok", "--health-interval", "200ms",
               "busybox", "sh", "-c", "while sleep 0.1; do echo tick; done")
    wait_status(busybox, "att", "healthy")
    attached = subprocess.Popen(busybox.cmd("attach", "--no-stdin", "att"), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    try:
        assert attached.stdout.readline() == b"tick\n"
        during = health(busybox, "att")["Log"][-1]["Start"]
        wait_for(lambda: health(busybox, "att")["Log"][-1]["Start"] != during, what="probes while attached")
    finally:
        attached.kill()
        attached.wait()
    after = health(busybox, "att")["Log"][-1]["Start"]
    wait_for(lambda: health(busybox, "att")["Log"][-1]["Start"] != after, what="probes after the client left")
    assert health(busybox, "att")["Status"] == "healthy"
    busybox.ok("rm", "-f", "front", "att")


def test_unhealthy_after_retries_with_output_and_exit_code(busybox):
    busybox.ok("run", "-d", "--name", "bad", "--health-cmd", "echo broken >&2; exit 3", "--health-interval",
               "200ms", "--health-retries", "2", "busybox", "sleep", "60")
    state = wait_for(lambda: (h := health(busybox, "bad")) and h["Log"] and h, what="a first probe")
    if len(state["Log"]) == 1:  # one failure is not enough with --health-retries 2
        assert state["Status"] == "starting" and state["FailingStreak"] == 1
    state = wait_status(busybox, "bad", "unhealthy")
    assert state["FailingStreak"] >= 2
    assert {(e["ExitCode"], e["Output"]) for e in state["Log"]} == {(3, "broken\n")}
    assert "(unhealthy)" in ps_status(busybox, "bad")
    busybox.ok("rm", "-f", "bad")


def test_output_is_cut_at_4096_bytes_like_dockers(busybox):
    busybox.ok("run", "-d", "--name", "chatty", "--health-cmd", 'head -c 5000 /dev/zero | tr "\\0" a',
               "--health-interval", "200ms", "busybox", "sleep", "60")
    state = wait_status(busybox, "chatty", "healthy")
    assert state["Log"][0]["Output"] == "a" * 4096 + "..."
    busybox.ok("rm", "-f", "chatty")


def test_paused_container_is_unhealthy_and_not_probed(busybox):
    """docker stops probing a paused container and calls it unhealthy; after unpause the
    probes go on from there."""
    busybox.ok("run", "-d", "--name", "nap", "--health-cmd", "true", "--health-interval", "200ms", "busybox",
               "sleep", "60")
    wait_status(busybox, "nap", "healthy")
    busybox.ok("pause", "nap")
    paused = health(busybox, "nap")
    assert paused["Status"] == "unhealthy"
    time.sleep(0.6)
    assert health(busybox, "nap")["Log"] == paused["Log"]
    busybox.ok("unpause", "nap")
    wait_status(busybox, "nap", "healthy")
    busybox.ok("rm", "-f", "nap")


def test_probe_over_its_timeout_is_killed_and_fails(busybox):
    busybox.ok("run", "-d", "--name", "slow", "--health-cmd", "sleep 30", "--health-interval", "200ms",
               "--health-timeout", "300ms", "--health-retries", "1", "busybox", "sleep", "60")
    state = wait_status(busybox, "slow", "unhealthy")
    entry = state["Log"][0]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (300ms)"
    wait_for(lambda: "sleep 30" not in busybox.ok("top", "slow"), what="the timed out probe to be killed")
    busybox.ok("rm", "-f", "slow")


def test_failures_in_the_start_period_do_not_count(busybox):
    """Within --health-start-period probes come every --health-start-interval and their
    failures leave it starting; after it, one failure (--health-retries 1) is unhealthy."""
    busybox.ok("run", "-d", "--name", "boot", "--health-cmd", "exit 1", "--health-start-period", "2s",
               "--health-start-interval", "200ms", "--health-interval", "1s", "--health-retries", "1",
               "busybox", "sleep", "60")
    state = wait_status(busybox, "boot", "unhealthy")
    started = inspect(busybox, "boot")["State"]["StartedAt"]
    period_end = _seconds(started) + 2
    after = [e for e in state["Log"] if _seconds(e["Start"]) >= period_end]
    within = [e for e in state["Log"] if _seconds(e["Start"]) < period_end]
    assert state["FailingStreak"] == len(after) >= 1
    assert len(within) >= 3  # more than a 1 s interval gives in 2 s: the start interval ran them
    busybox.ok("rm", "-f", "boot")


def _seconds(rfc3339: str) -> float:
    from berth.units import parse_rfc3339

    return parse_rfc3339(rfc3339)


def test_image_healthcheck_from_commit_is_inherited_and_overridden(busybox):
    busybox.ok("create", "--name", "base", "busybox", "true")
    busybox.ok("commit", "-c", 'HEALTHCHECK --interval=200ms --retries=1 CMD ["sh", "-c", "exit 0"]', "base",
               "checked:1")
    image = json.loads(busybox.ok("image", "inspect", "checked:1"))[0]
    assert image["Config"]["Healthcheck"] == {"Test": ["CMD", "sh", "-c", "exit 0"], "Interval": 200_000_000,
                                              "Retries": 1}
    busybox.ok("run", "-d", "--name", "inherits", "checked:1", "sleep", "60")
    assert inspect(busybox, "inherits")["Config"]["Healthcheck"] == image["Config"]["Healthcheck"]
    wait_status(busybox, "inherits", "healthy")
    # flags override the fields they give, docker's merge keeps the image's others
    busybox.ok("run", "-d", "--name", "merged", "--health-retries", "4", "--health-cmd", "exit 1", "checked:1",
               "sleep", "60")
    assert inspect(busybox, "merged")["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "exit 1"], "Interval": 200_000_000, "Retries": 4}
    # --no-healthcheck turns the image's off: no State.Health at all, as docker's
    busybox.ok("run", "-d", "--name", "off", "--no-healthcheck", "checked:1", "sleep", "60")
    record = inspect(busybox, "off")
    assert record["Config"]["Healthcheck"] == {"Test": ["NONE"], "Interval": 200_000_000, "Retries": 1}  # docker's
    assert "Health" not in record["State"]
    time.sleep(0.6)  # three intervals of the image's probe: none runs
    assert "Health" not in inspect(busybox, "off")["State"]
    assert re.fullmatch(r"Up [^()]+", ps_status(busybox, "off"))
    # a saved and loaded image keeps it
    archive = os.path.join(busybox.base, "checked.tar")
    busybox.ok("save", "-o", archive, "checked:1")
    busybox.ok("rm", "-f", "inherits", "merged", "off", "base")
    busybox.ok("rmi", "checked:1")
    busybox.ok("load", "-i", archive)
    assert json.loads(busybox.ok("image", "inspect", "checked:1"))[0]["Config"]["Healthcheck"] == \
        image["Config"]["Healthcheck"]


def test_import_change_sets_the_image_healthcheck(busybox):
    busybox.import_busybox(busybox.busybox_tar, "probed:1", 'CMD ["sh"]', "HEALTHCHECK --timeout=2s CMD test -d /")
    image = json.loads(busybox.ok("image", "inspect", "probed:1"))[0]
    assert image["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "test -d /"], "Timeout": 2_000_000_000}


def test_ps_filters_by_health(busybox):
    good = busybox.ok("run", "-d", "--health-cmd", "true", "--health-interval", "200ms", "busybox",
                      "sleep", "60").strip()
    bad = busybox.ok("run", "-d", "--health-cmd", "false", "--health-interval", "200ms", "--health-retries", "1",
                     "busybox", "sleep", "60").strip()
    waiting = busybox.ok("run", "-d", "--health-cmd", "true", "--health-interval", "1h", "busybox",
                         "sleep", "60").strip()
    plain = busybox.ok("run", "-d", "busybox", "sleep", "60").strip()
    wait_for(lambda: busybox.ok("ps", "-q", "--no-trunc", "--filter", "health=unhealthy").split() == [bad]
             and busybox.ok("ps", "-q", "--no-trunc", "--filter", "health=healthy").split() == [good],
             what="one healthy and one unhealthy container")
    assert busybox.ok("ps", "-q", "--no-trunc", "--filter", "health=starting").split() == [waiting]
    assert busybox.ok("ps", "-q", "--no-trunc", "--filter", "health=none").split() == [plain]
    assert "(health: starting)" in busybox.ok("ps", "--no-trunc", "--filter", f"id={waiting}")
    busybox.fails(1, "ps", "--filter", "health=bogus", says="Unrecognised filter value for health: bogus")
    busybox.ok("rm", "-f", good, bad, waiting, plain)


def test_status_changes_are_health_status_events(busybox):
    cid = busybox.ok("run", "-d", "--name", "ev", "--label", "tier=db", "--health-cmd", "true",
                     "--health-interval", "200ms", "busybox", "sleep", "60").strip()
    wait_status(busybox, "ev", "healthy")
    time.sleep(0.5)  # more healthy probes: no more events, only changes are
    out = busybox.ok("events", "--since", "0", "--until", f"{time.time():.9f}", "--format", "json",
                     "--filter", "event=health_status")
    messages = [json.loads(line) for line in out.splitlines()]
    assert [m["Action"] for m in messages] == ["health_status: healthy"]
    assert messages[0]["id"] == cid and messages[0]["status"] == "health_status: healthy"
    assert messages[0]["Actor"]["Attributes"] == {"image": "busybox", "name": "ev", "tier": "db"}
    busybox.ok("rm", "-f", "ev")


@pytest.mark.parametrize("args, code, says", [
    (["--health-interval", "x"], 125, 'invalid argument "x" for "--health-interval" flag: time: invalid duration "x"'),
    (["--health-timeout", "5"], 125, 'invalid argument "5" for "--health-timeout" flag: time: missing unit in '
                                     'duration "5"'),
    (["--health-retries", "x"], 125, 'invalid argument "x" for "--health-retries" flag: strconv.ParseInt: '
                                     'parsing "x": invalid syntax'),
    (["--health-interval", "-1s"], 125, "--health-interval cannot be negative"),
    (["--health-timeout", "-1s"], 125, "--health-timeout cannot be negative"),
    (["--health-retries", "-1"], 125, "--health-retries cannot be negative"),
    (["--health-start-period", "-2s"], 125, "--health-start-period cannot be negative"),
    (["--health-start-interval", "-1s"], 125, "--health-start-interval cannot be negative"),
    (["--no-healthcheck", "--health-cmd", "true"], 125, "--no-healthcheck conflicts with --health-* options"),
    (["--health-interval", "1us"], 125, "Interval in Healthcheck cannot be less than 1ms"),
    (["--health-timeout", "500us"], 125, "Timeout in Healthcheck cannot be less than 1ms"),
    (["--health-start-period", "1ns"], 125, "StartPeriod in Healthcheck cannot be less than 1ms"),
    (["--health-start-interval", "999us"], 125, "StartInterval in Healthcheck cannot be less than 1ms"),
])
def test_bad_values_are_refused_as_docker_does(busybox, args, code, says):
    for verb in ("create", "run"):
        busybox.fails(code, verb, *args, "busybox", "true", says=says)
    assert busybox.ok("ps", "-aq") == ""


def test_no_healthcheck_with_zero_values_is_no_conflict(busybox):
    """docker checks for values that are set (non-zero), not for flags that were given."""
    busybox.ok("create", "--name", "zero", "--no-healthcheck", "--health-retries", "0", "busybox", "true")
    assert inspect(busybox, "zero")["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    busybox.ok("rm", "zero")



def test_rm_force_kills_what_is_in_one_hierarchy_only(busybox):
    """rm -f removes the cgroup even when a process is in only one of its hierarchies (a probe
    launcher is, for the instant it moves itself in or out for a spawn): it is killed with
    the rest, never EBUSY."""
    import subprocess

    cid = busybox.ok("run", "-d", "--name", "half", "busybox", "sleep", "60").strip()
    hierarchy = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    directory = next(os.path.join(root, name) for root, dirs, _ in os.walk(hierarchy) for name in dirs
                     if name == cid or name.endswith(cid))
    stray = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(directory, "cgroup.procs"), "w") as f:
            f.write(str(stray.pid))
        busybox.ok("rm", "-f", "half")
        assert not os.path.isdir(directory)
        assert stray.wait(timeout=10) == -9
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def command_lines() -> str:
    """Every process's command line, one a line (what ps shows)."""
    seen = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                seen.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # not a process, or ended meanwhile
            pass
    return "\n".join(seen)


def test_the_environment_of_a_probed_container_is_on_no_command_line(busybox):
    """The attack: a local user reads the container's secrets from `ps`. The supervisor of a
    container with a health check holds its probes' OCI process (the container's env); that
    plan once was the supervisor's (and its probe launcher's) command line, readable by all."""
    secret = "hunter2-" + os.urandom(8).hex()
    busybox.ok("run", "-d", "--name", "secret", "-e", f"DB_PASSWORD={secret}", "--health-cmd", "true",
               "--health-interval", "200ms", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 3")
    try:
        wait_status(busybox, "secret", "healthy")
        assert launchers(busybox, "secret")
        seen = as_nobody(command_lines)
        assert "berth" in seen  # the reader did see our processes
        assert secret not in seen
        # after the container ended: the plan went through the supervisor's next exec, and back
        wait_for(lambda: inspect(busybox, "secret")["RestartCount"] >= 1, what="a restart")
        wait_status(busybox, "secret", "healthy")
        assert secret not in as_nobody(command_lines)
    finally:
        busybox.ok("rm", "-f", "secret")
