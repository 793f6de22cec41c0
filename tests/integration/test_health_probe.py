"""Health probes started by the container's probe launcher (runtime.probe, forked by its
supervisor, which keeps the schedule: monitor.probing) keep docker's exec semantics: the
container's user, environment, working directory, capabilities, seccomp, cgroup and pid
namespace; a timeout kills the probe and what it started. Probes and `berth exec` emit
docker's exec_create / exec_start / exec_die events. The launcher is no process of the
container: neither `top` nor the container's own `ps` shows it, and it ends with the run."""

import json
import os
import time

from test_health import launchers

from conftest import berth_processes, wait_for


def health(b, name: str) -> dict | None:
    return json.loads(b.ok("inspect", name))[0]["State"].get("Health")


def first_output(b, name: str) -> str:
    state = wait_for(lambda: (h := health(b, name)) and h["Log"] and h, what=f"a first probe of {name}")
    return state["Log"][0]["Output"]


def nspid_depth(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(len(line.split()) - 1 for line in f if line.startswith("NSpid:"))


def exec_events(b, since: str) -> list[tuple[str, dict]]:
    out = b.ok("events", "--since", since, "--until", str(int(time.time()) + 1), "--format", "{{json .}}")
    found = []
    for line in out.splitlines():
        msg = json.loads(line)
        if msg["Action"].startswith("exec_"):
            found.append((msg["Action"], msg["Actor"]["Attributes"]))
    return found


def test_probe_runs_as_the_containers_user_with_its_env_and_workdir(busybox):
    busybox.ok("run", "-d", "--name", "who", "-u", "1000:1000", "-e", "GREETING=hello", "-w", "/tmp",
               "--health-cmd", 'echo "$(id -u):$(id -g) $GREETING $(pwd)"', "--health-interval", "200ms",
               "busybox", "sleep", "60")
    assert first_output(busybox, "who") == "1000:1000 hello /tmp\n"
    busybox.ok("rm", "-f", "who")


def test_probe_has_the_caps_seccomp_and_cgroup_of_an_exec(busybox):
    """The probe's capability sets, no_new_privs and seccomp mode are an exec's; it lives in
    the container's cgroup (its memory counts there) and pid namespace."""
    fields = "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; cat /proc/self/cgroup; readlink /proc/self/ns/pid"
    busybox.ok("run", "-d", "--name", "caps", "--cap-drop", "NET_RAW", "--security-opt", "no-new-privileges",
               "--health-cmd", fields, "--health-interval", "200ms", "busybox", "sleep", "60")
    probed = first_output(busybox, "caps")
    execed = busybox.ok("exec", "caps", "sh", "-c", fields)
    assert probed == execed
    assert "Seccomp:\t2" in probed and "NoNewPrivs:\t1" in probed
    assert probed.splitlines()[-1] == busybox.ok("exec", "caps", "readlink", "/proc/1/ns/pid").strip()
    busybox.ok("rm", "-f", "caps")


def test_timeout_kills_the_probe_and_what_it_started(busybox):
    """The first probe's background child (its pid noted in /tmp/bg) is dead once that probe
    timed out: killed with the probe's process group (a zombie at most: pid 1 is sleep)."""
    busybox.ok("run", "-d", "--name", "hang", "--health-cmd", "sleep 41 & echo $! >> /tmp/bg; sleep 42",
               "--health-interval", "200ms", "--health-timeout", "300ms", "--health-retries", "1",
               "busybox", "sleep", "60")
    state = wait_for(lambda: (h := health(busybox, "hang")) and h["Status"] == "unhealthy" and h,
                     what="a timed out probe")
    assert state["Log"][0]["ExitCode"] == -1
    assert state["Log"][0]["Output"] == "Health check exceeded timeout (300ms)"
    first = busybox.ok("exec", "hang", "head", "-n1", "/tmp/bg").strip()
    left = busybox.ok("exec", "hang", "sh", "-c", f"cut -d' ' -f3 /proc/{first}/stat 2>/dev/null; true").strip()
    assert left in ("", "Z")
    busybox.ok("rm", "-f", "hang")


def test_probes_and_exec_emit_dockers_exec_events(busybox):
    since = str(int(time.time()) - 1)
    busybox.ok("run", "-d", "--name", "ev", "--health-cmd", "exit 3", "--health-interval", "200ms",
               "busybox", "sleep", "60")
    first_output(busybox, "ev")
    busybox.fails(5, "exec", "ev", "sh", "-c", "exit 5")
    busybox.fails(127, "exec", "ev", "nosuch", says="executable file not found")
    events = exec_events(busybox, since)
    probe = [e for e in events if e[0] == "exec_create: /bin/sh -c exit 3"]
    assert probe, events
    exec_id = probe[0][1]["execID"]
    assert len(exec_id) == 64 and probe[0][1]["name"] == "ev" and probe[0][1]["image"] == "busybox"
    mine = [(action, attrs.get("exitCode")) for action, attrs in events if attrs["execID"] == exec_id]
    assert mine == [("exec_create: /bin/sh -c exit 3", None), ("exec_start: /bin/sh -c exit 3", None),
                    ("exec_die", "3")]
    by_exec = {}
    for action, attrs in events:
        by_exec.setdefault(attrs["execID"], []).append((action, attrs.get("exitCode")))
    assert [("exec_create: sh -c exit 5", None), ("exec_start: sh -c exit 5", None), ("exec_die", "5")] \
        in by_exec.values()
    # a command that cannot start: created and started, never died (docker's)
    assert [("exec_create: nosuch", None), ("exec_start: nosuch", None)] in by_exec.values()
    busybox.ok("rm", "-f", "ev")


def test_no_long_lived_helper_in_top_or_the_containers_ps(busybox):
    busybox.ok("run", "-d", "--name", "quiet", "--health-cmd", "true", "--health-interval", "200ms",
               "busybox", "sleep", "60")
    first_output(busybox, "quiet")
    found = wait_for(lambda: launchers(busybox, "quiet"), what="the probe launcher")
    for _ in range(10):  # while probes come and go: a probe may show, never the launcher
        top_pids = {int(line.split()[1]) for line in busybox.ok("top", "quiet").splitlines()[1:]}
        assert not top_pids & set(found)
        time.sleep(0.05)
    # The container cannot even name it: it has no pid in the container's pid namespace.
    pid1 = int(busybox.ok("inspect", "--format", "{{.State.Pid}}", "quiet"))
    assert [nspid_depth(p) for p in found] == [nspid_depth(pid1) - 1]
    wait_for(lambda: sorted(busybox.ok("exec", "quiet", "ps", "-o", "comm").split()[1:]) == ["ps", "sleep"],
             what="the container's ps to show its own processes only")
    busybox.ok("stop", "-t", "1", "quiet")
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in found), what="the launcher to end")
    busybox.ok("rm", "-f", "quiet")


def test_a_missing_probe_command_is_dockers_probe_error(busybox):
    busybox.ok("create", "--name", "base", "busybox", "true")  # the exec form comes from an image
    busybox.ok("commit", "-c", 'HEALTHCHECK --interval=200ms --retries=1 CMD ["nosuch"]', "base", "missing:1")
    busybox.ok("run", "-d", "--name", "missing", "missing:1", "sleep", "60")
    state = wait_for(lambda: (h := health(busybox, "missing")) and h["Status"] == "unhealthy" and h,
                     what="an unhealthy container")
    assert state["Log"][0]["ExitCode"] == -1
    assert state["Log"][0]["Output"] == ('OCI runtime exec failed: exec failed: unable to start container '
                                         'process: exec: "nosuch": executable file not found in $PATH: unknown')
    busybox.ok("rm", "-f", "missing", "base")


def test_launcher_leaves_every_cgroup_when_joining_one_fails():
    """The launcher moves itself into each of the container's hierarchies for a spawn; when
    one of them is gone (rm removing the cgroup as a probe starts), it must not stay in the
    ones it already joined: the container's cgroup could never be removed (EBUSY)."""
    import select

    from berth.runtime.probe import ProbeLauncher, join_files, leave_files, schedule_line

    name = f"berth-probe-test-{os.getpid()}"
    unified, pids = f"/sys/fs/cgroup/unified/{name}", f"/sys/fs/cgroup/pids/{name}"
    if not os.path.isdir("/sys/fs/cgroup/unified"):  # cgroup2 alone: one hierarchy, nothing to half-join
        unified, pids = f"/sys/fs/cgroup/{name}-a", f"/sys/fs/cgroup/{name}-b"
    os.mkdir(unified)
    os.mkdir(pids)
    process = {"cwd": "/", "env": ["PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}}
    launcher = ProbeLauncher(process, [], None, join_files([unified, pids]), leave_files([unified, pids]))
    try:
        os.rmdir(pids)  # the second hierarchy's cgroup goes first, as rm removes them in turn
        launcher.send(schedule_line(["true"], 5.0, 100, time.time(), 60.0))
        assert select.select([launcher.answers], [], [], 10)[0]
        answer = launcher.answer()  # the launcher's own answer, not the end of one that died
        assert "error" in answer and "ended" not in answer, answer
        with open(f"/proc/{launcher.pid}/cgroup") as f:
            assert name not in f.read(), "the launcher stayed in a cgroup it joined"
        os.rmdir(unified)  # EBUSY while it stays there
    finally:
        launcher.close()
        for directory in (unified, pids):
            if os.path.isdir(directory):
                os.rmdir(directory)


def _cgroup_paths(pid: int) -> dict:
    """{hierarchy (controllers or name=...): path} of a process, from /proc/<pid>/cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        return {fields[1] or "unified": fields[2] for fields in (line.rstrip("\n").split(":", 2) for line in f)}


def test_the_launcher_counts_in_neither_pids_nor_memory_of_the_container(busybox):
    """docker's `stats` PIDS and memory usage are the container's own processes': the launcher
    joins the container's pids and memory cgroups only while it spawns a probe (the probe
    stays there, as an exec's process). On cgroup v1 it lives in the container's other
    hierarchies (one move each way per probe instead of ten)."""
    busybox.ok("run", "-d", "--name", "counted", "--health-cmd", "true", "--health-interval", "100ms",
               "busybox", "sleep", "60")
    first_output(busybox, "counted")
    [launcher] = wait_for(lambda: launchers(busybox, "counted"), what="the probe launcher")
    container_id = busybox.ok("inspect", "--format", "{{.Id}}", "counted").strip()
    counted = []
    for _ in range(50):  # while probes come and go: in its spawn's instant it is in them, at most
        paths = _cgroup_paths(launcher)
        per_probe = {h for h in paths if h in ("pids", "memory") or h == "unified" and "pids" not in paths}
        assert all(container_id in path for h, path in paths.items() if h not in per_probe), paths
        counted.append(any(container_id in paths[h] for h in per_probe))
        time.sleep(0.01)
    assert counted.count(True) <= 5, counted
    assert busybox.ok("stats", "--no-stream", "--format", "{{.PIDs}}", "counted").strip() in ("1", "2")
    busybox.ok("rm", "-f", "counted")


def test_a_probe_frozen_by_pause_does_not_stall_the_supervisor(busybox):
    """Paused while a probe runs: the launcher (frozen with the container on cgroup v1) is
    given up once late, without waiting for it to die (it can only once thawed); the
    supervisor goes on serving (logs, stop), and probing resumes after unpause."""
    busybox.ok("run", "-d", "--name", "frozen", "--health-cmd", "sleep 0.5", "--health-interval", "100ms",
               "--health-timeout", "200ms", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    wait_for(lambda: launchers(busybox, "frozen"), what="the probe launcher")
    busybox.ok("pause", "frozen")
    time.sleep(11)  # past the probe's timeout and LATE: the launcher is taken for stuck
    busybox.ok("unpause", "frozen")
    before = busybox.ok("logs", "frozen").count("tick")
    wait_for(lambda: busybox.ok("logs", "frozen").count("tick") > before + 2, what="output copied on")
    wait_for(lambda: (h := health(busybox, "frozen")) and len(h["Log"]) == 5
             and h["Log"][-1]["Output"] == "Health check exceeded timeout (200ms)", what="probes after unpause")
    container_id = busybox.ok("inspect", "--format", "{{.Id}}", "frozen").strip()
    busybox.ok("stop", "-t", "1", "frozen")
    # the probe that outlived its launcher was killed and reaped: nothing keeps the container's
    # init from ending (it waits for every process of its pid namespace), nor its supervisor
    wait_for(lambda: not [p for p in berth_processes(busybox.base, amid_exec=False) if container_id in p],
             what="the supervisor to end")
    assert busybox.ok("inspect", "--format", "{{.State.Status}}", "frozen").strip() == "exited"
    busybox.ok("rm", "-f", "frozen")
