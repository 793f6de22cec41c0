"""A container's life through the CLI, against real containers: detached run and its
supervisor, ps, inspect, exec, stop/kill/rm/wait, start/restart, pause, rename, restart
policies, init, and the truth after a lost supervisor or a reboot. Docker is the reference."""

import datetime
import json
import os
import re
import subprocess

from conftest import berth_processes, cgroup_dirs, mounts_under, refused, wait_for, wchan

HEX64 = re.compile(r"^[0-9a-f]{64}$")
RFC3339_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
DEFAULT_CAPS_MASK = "00000000a80425fb"  # docker's 14 default capabilities
PS_COLUMNS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
# A loop that says it is ready once its trap is set, so a signal never arrives before it.
TRAP = 'trap "echo caught; exit {code}" {sig}; echo ready; while true; do sleep 0.1; done'


# -- helpers -------------------------------------------------------------------

def parse_time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp)


def inspect(b, ref: str, fmt: str) -> str:
    return b.ok("inspect", "--format", fmt, ref).rstrip("\n")


def state(b, ref: str) -> dict:
    return json.loads(inspect(b, ref, "{{json .State}}"))


def full_id(b, ref: str) -> str:
    return inspect(b, ref, "{{.Id}}")


def log_path(b, container_id: str) -> str:
    return os.path.join(b.root, "containers", container_id, f"{container_id}-json.log")


def log_entries(b, container_id: str) -> list[dict]:
    """The json-file log's entries; a line still being written (no newline yet) is left out."""
    try:
        with open(log_path(b, container_id)) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []


def log_text(b, container_id: str, stream: str = "stdout") -> str:
    return "".join(e["log"] for e in log_entries(b, container_id) if e["stream"] == stream)


def run_d(b, *args: str) -> str:
    out = b.ok("run", "-d", *args)
    container_id = out.strip()
    assert HEX64.match(container_id), out
    return container_id


def run_exit(b, name: str, code: int, script: str) -> str:
    """An attached `sh -c script` container that exits with `code`; its full id."""
    result = b("run", "--name", name, "busybox", "sh", "-c", script)
    assert result.returncode == code, result.stderr
    return full_id(b, name)


def run_ready(b, name: str, script: str, *flags: str, image: str = "busybox") -> str:
    """A detached `sh -c script` container whose script prints "ready" once set up."""
    container_id = run_d(b, "--name", name, *flags, image, "sh", "-c", script)
    wait_for(lambda: "ready\n" in log_text(b, container_id), what=f"{name} to be ready")
    return container_id


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a process, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0].decode(), int(fields[19])


def identity(pid: int):
    stat = proc_stat(pid)
    return (pid, stat[1]) if stat else None


def alive(ident) -> bool:
    """The process we identified (pid + start time) still runs (a zombie does not count)."""
    stat = proc_stat(ident[0])
    return bool(stat) and stat[1] == ident[1] and stat[0] not in ("Z", "X")


def cgroup_procs(container_id: str) -> list[int]:
    pids = set()
    for path in cgroup_dirs(container_id):
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return sorted(pids)


def sleeping_in_poll(pid: int) -> bool:
    """Is `pid` asleep in poll/select (say, on a pidfd), as a command blocked waiting for something?"""
    where = wchan(pid)
    return "poll" in where or "select" in where


def frozen(container_id: str) -> bool:
    v1 = f"/sys/fs/cgroup/freezer/berth/{container_id}/freezer.state"
    if os.path.exists(v1):
        with open(v1) as f:
            return f.read().strip() == "FROZEN"
    with open(f"/sys/fs/cgroup/berth/{container_id}/cgroup.freeze") as f:
        return f.read().strip() == "1"


def ps_table(out: str) -> tuple[list[str], list[dict]]:
    """Column names (the header split on 2+ spaces) and rows cut at the header's offsets."""
    lines = out.rstrip("\n").split("\n")
    header = lines[0]
    names = re.split(r" {2,}", header.strip())
    starts, at = [], 0
    for name in names:
        at = header.index(name, at)
        starts.append(at)
        at += len(name)
    rows = []
    for line in lines[1:]:
        cells = [line[s:e].strip() for s, e in zip(starts, starts[1:] + [None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return names, rows


def ps_rows(b, *args: str) -> dict:
    names, rows = ps_table(b.ok("ps", *args))
    assert names == PS_COLUMNS
    return {row["NAMES"]: row for row in rows}


def monitor_pid(b, container_id: str) -> int:
    with open(os.path.join(b.run_root, "containers", container_id, "state.json")) as f:
        return json.load(f)["monitor"][0]


def host_bounding_set() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return 0


def all_caps_mask() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return (1 << (int(f.read()) + 1)) - 1


# -- run -d and the supervisor -------------------------------------------------

def test_run_detached_prints_full_id_and_logs_in_json_file_format(busybox):
    out = busybox.ok("run", "-d", "--name", "d1", "busybox", "sh", "-c",
                     "echo hello; echo oops >&2; sleep 0.3; echo late; exit 3")
    assert re.fullmatch(r"[0-9a-f]{64}\n", out), out
    container_id = out.strip()
    # The CLI is gone; the supervisor keeps collecting output and records the end.
    assert busybox.ok("wait", "d1") == "3\n"
    with open(log_path(busybox, container_id)) as f:
        lines = f.read().splitlines()
    for text, stream in (("hello", "stdout"), ("oops", "stderr")):  # docker's bytes, key order included
        line = rf'\{{"log":"{text}\\n","stream":"{stream}","time":"{RFC3339_Z}"\}}'
        assert any(re.fullmatch(line, ln) for ln in lines), lines
    assert log_text(busybox, container_id) == "hello\nlate\n"
    assert log_text(busybox, container_id, "stderr") == "oops\n"
    assert inspect(busybox, "d1", "{{.State.ExitCode}} {{.State.Status}}") == "3 exited"
    st = state(busybox, "d1")
    assert re.fullmatch(RFC3339_Z, st["FinishedAt"]) and not st["FinishedAt"].startswith("0001")
    assert parse_time(st["FinishedAt"]) >= parse_time(st["StartedAt"])
    assert st["Pid"] == 0 and st["Running"] is False
    wait_for(lambda: cgroup_dirs(container_id) == [], what="the cgroup to be removed")


def test_run_detached_returns_while_container_runs_without_cli(busybox):
    container_id = run_d(busybox, "--name", "bg", "busybox", "sleep", "60")
    st = state(busybox, "bg")
    assert st["Running"] is True and st["Status"] == "running"
    pid = st["Pid"]
    assert proc_stat(pid) is not None
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert cgroup_dirs(container_id)
    assert pid in cgroup_procs(container_id)
    # its supervisor is a process of its own, not the CLI that returned
    supervisor = monitor_pid(busybox, container_id)
    assert proc_stat(supervisor) is not None and supervisor != os.getpid()
    busybox.ok("rm", "-f", "bg")


def test_rm_detached_container_removes_itself(busybox):
    container_id = run_d(busybox, "--rm", "--name", "gone", "busybox", "sh", "-c", "echo bye")
    wait_for(lambda: not os.path.exists(os.path.join(busybox.root, "containers", container_id)),
             what="--rm to remove the container")
    result = busybox("inspect", "gone")
    assert result.returncode == 1 and "No such" in result.stderr
    assert cgroup_dirs(container_id) == []
    assert os.listdir(os.path.join(busybox.root, "names")) == []
    run_d(busybox, "--rm", "--name", "gone", "busybox", "true")  # the name is free again


# -- ps ------------------------------------------------------------------------

def test_ps_columns_and_status(busybox):
    run_d(busybox, "--name", "up", "busybox", "sleep", "60")
    run_exit(busybox, "ex", 3, "exit 3")
    busybox.ok("create", "--name", "cr", "busybox", "true")
    rows = ps_rows(busybox)
    assert list(rows) == ["up"]
    assert rows["up"]["STATUS"].startswith("Up ")
    assert rows["up"]["IMAGE"] == "busybox"
    assert rows["up"]["COMMAND"] == '"sleep 60"'
    assert re.fullmatch(r"[0-9a-f]{12}", rows["up"]["CONTAINER ID"])
    assert rows["up"]["CREATED"].endswith("ago")
    rows = ps_rows(busybox, "-a")
    assert set(rows) == {"up", "ex", "cr"}
    assert re.fullmatch(r"Exited \(3\) .+ ago", rows["ex"]["STATUS"]), rows["ex"]
    assert rows["cr"]["STATUS"] == "Created"


def test_ps_quiet_latest_last_no_trunc(busybox):
    first = run_d(busybox, "--name", "first", "busybox", "sleep", "60")
    busybox.ok("run", "--name", "second", "busybox", "true")
    second = full_id(busybox, "second")
    third = busybox.ok("create", "--name", "third", "busybox", "echo", "a long command line here").strip()
    assert busybox.ok("ps", "-q") == first[:12] + "\n"
    assert busybox.ok("ps", "-aq").split() == [third[:12], second[:12], first[:12]]
    assert list(ps_rows(busybox, "-l")) == ["third"]
    assert list(ps_rows(busybox, "-n", "2")) == ["third", "second"]
    assert busybox.ok("ps", "-q", "-n", "1") == third[:12] + "\n"
    rows = ps_rows(busybox, "-a", "--no-trunc")
    assert rows["third"]["CONTAINER ID"] == third
    assert rows["third"]["COMMAND"] == '"echo a long command line here"'
    rows = ps_rows(busybox, "-a")
    assert rows["third"]["COMMAND"] == '"echo a long command…"'  # 19 characters and an ellipsis


def test_ps_format(busybox):
    up = run_d(busybox, "--name", "fmt-up", "busybox", "sleep", "60")
    run_exit(busybox, "fmt-ex", 2, "exit 2")
    assert busybox.ok("ps", "--format", "{{.ID}} {{.Names}}") == f"{up[:12]} fmt-up\n"
    out = busybox.ok("ps", "-a", "--format", "table {{.Names}}\t{{.Status}}")
    lines = out.rstrip("\n").split("\n")
    assert re.split(r" {2,}", lines[0].strip()) == ["NAMES", "STATUS"]
    cells = {re.split(r" {2,}", ln.strip())[0]: re.split(r" {2,}", ln.strip())[1] for ln in lines[1:]}
    assert set(cells) == {"fmt-up", "fmt-ex"}
    assert cells["fmt-up"].startswith("Up ")
    assert cells["fmt-ex"].startswith("Exited (2) ")
    assert busybox.ok("ps", "-a", "--format", "{{.Names}}:{{.State}}").split() == ["fmt-ex:exited", "fmt-up:running"]


def test_ps_filter(busybox):
    up = run_d(busybox, "--name", "web-1", "-l", "tier=front", "busybox", "sleep", "60")
    assert busybox("run", "--name", "web-2", "-l", "tier=back", "busybox", "sh", "-c", "exit 4").returncode == 4
    busybox.ok("create", "--name", "db", "busybox", "true")

    def names(*filters):
        args = ["ps", "-a", "--format", "{{.Names}}"]
        for f in filters:
            args += ["--filter", f]
        return sorted(busybox.ok(*args).split())

    assert names("name=web") == ["web-1", "web-2"]
    assert names("status=exited") == ["web-2"]
    assert names("status=running") == ["web-1"]
    assert names("status=created") == ["db"]
    assert names("exited=4") == ["web-2"]
    assert names("label=tier=front") == ["web-1"]
    assert names("label=tier") == ["web-1", "web-2"]
    assert names(f"id={up[:10]}") == ["web-1"]
    assert names("name=web", "status=running") == ["web-1"]
    assert names("name=nomatch") == []
    busybox.fails(1, "ps", "--filter", "nosuchkey=1", says="invalid filter 'nosuchkey'")


def test_ps_size(busybox):
    busybox.ok("run", "--name", "sized", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /blob")
    busybox.ok("run", "--name", "empty", "busybox", "true")
    names, rows = ps_table(busybox.ok("ps", "-a", "-s"))
    assert names == PS_COLUMNS + ["SIZE"]
    sizes = {row["NAMES"]: row["SIZE"] for row in rows}
    # docker: "<writable layer> (virtual <writable + image>)" in 1000-based units
    sized = re.fullmatch(r"100kB \(virtual ([\d.]+)MB\)", sizes["sized"])
    empty = re.fullmatch(r"0B \(virtual ([\d.]+)MB\)", sizes["empty"])
    assert sized and empty, sizes
    assert abs(float(sized.group(1)) - float(empty.group(1)) - 0.1) < 0.015


def test_ps_status_of_paused_container(busybox):
    run_d(busybox, "--name", "pz", "busybox", "sleep", "60")
    busybox.ok("pause", "pz")
    try:
        assert re.fullmatch(r"Up .+ \(Paused\)", ps_rows(busybox)["pz"]["STATUS"])
    finally:
        busybox("unpause", "pz")


def test_ps_command_is_go_quoted(busybox):
    busybox.ok("create", "--name", "qq", "busybox", "sh", "-c", 'echo "hi"')
    assert busybox.ok("ps", "-a", "--no-trunc", "--format", "{{.Command}}") == '"sh -c echo \\"hi\\""\n'


# -- inspect -------------------------------------------------------------------

def test_inspect_shape(busybox):
    container_id = run_d(busybox, "--name", "shape", "-e", "A=1", "-l", "k=v", "busybox", "sleep", "60")
    out = busybox.ok("inspect", "shape")
    records = json.loads(out)
    assert isinstance(records, list) and len(records) == 1
    r = records[0]
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount", "HostConfig",
                "Config", "NetworkSettings", "Mounts"):
        assert key in r, key
    assert r["Id"] == container_id
    assert re.fullmatch(RFC3339_Z, r["Created"])
    assert r["Path"] == "sleep" and r["Args"] == ["60"]
    assert r["Name"] == "/shape"
    assert r["RestartCount"] == 0
    assert r["Image"].startswith("sha256:")
    assert isinstance(r["HostConfig"], dict) and isinstance(r["NetworkSettings"], dict)
    assert isinstance(r["Mounts"], list)
    st = r["State"]
    assert set(st) >= {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
                       "Error", "StartedAt", "FinishedAt"}
    assert (st["Status"], st["Running"], st["Paused"], st["Restarting"], st["OOMKilled"], st["Dead"]) == \
        ("running", True, False, False, False, False)
    assert st["ExitCode"] == 0 and st["Error"] == ""
    assert re.fullmatch(RFC3339_Z, st["StartedAt"]) and st["FinishedAt"] == "0001-01-01T00:00:00Z"
    config = r["Config"]
    assert set(config) >= {"Hostname", "User", "Env", "Cmd", "Entrypoint", "WorkingDir", "Volumes", "Labels",
                           "Image"}
    assert config["Hostname"] == container_id[:12]
    assert config["Image"] == "busybox"
    assert config["Cmd"] == ["sleep", "60"]
    assert "A=1" in config["Env"]
    assert config["Labels"] == {"k": "v"}


def test_inspect_format(busybox):
    run_d(busybox, "--name", "fm", "-e", "A=1", "-e", "B=two", "-l", "k=val", "busybox", "sleep", "60")
    pid = int(inspect(busybox, "fm", "{{.State.Pid}}"))
    assert pid > 0 and proc_stat(pid) is not None
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    env = json.loads(inspect(busybox, "fm", "{{json .Config.Env}}"))
    assert "A=1" in env and "B=two" in env
    ranged = inspect(busybox, "fm", "{{range .Config.Env}}{{.}} {{end}}")
    assert ranged == " ".join(env) + " "
    assert inspect(busybox, "fm", '{{index .Config.Labels "k"}}') == "val"
    assert inspect(busybox, "fm", "{{.Name}} {{.State.Running}}") == "/fm true"


def test_inspect_unknown_field_fails_like_go(busybox):
    busybox.ok("create", "--name", "nf", "busybox", "true")
    result = busybox("inspect", "--format", "{{.Nope}}", "nf")
    assert result.returncode == 1
    assert 'map has no entry for key "Nope"' in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_missing_container(busybox):
    result = busybox("inspect", "--type", "container", "nosuch")
    assert result.returncode == 1
    assert "No such container: nosuch" in result.stderr


# -- exec ----------------------------------------------------------------------

def test_exec_shares_the_containers_pid_namespace(busybox):
    run_d(busybox, "--name", "ex", "busybox", "sleep", "60")
    out = busybox.ok("exec", "ex", "ps", "-o", "pid,args")
    procs = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in out.strip().splitlines()[1:]}
    assert procs["1"] == "sleep 60"
    assert any(args.startswith("ps") for args in procs.values())


def test_exec_exit_code_user_env_workdir_stdin(busybox):
    run_d(busybox, "--name", "ex", "busybox", "sleep", "60")
    assert busybox("exec", "ex", "sh", "-c", "exit 7").returncode == 7
    assert busybox.ok("exec", "-u", "nobody", "ex", "id", "-u") == "65534\n"
    assert busybox.ok("exec", "-e", "X=1", "ex", "sh", "-c", "echo $X") == "1\n"
    assert busybox.ok("exec", "-w", "/tmp", "ex", "pwd") == "/tmp\n"
    assert busybox.ok("exec", "ex", "pwd") == "/\n"
    assert busybox.ok("exec", "-i", "ex", "cat", input="through stdin\n") == "through stdin\n"
    # without -i the command's stdin is empty, not ours
    assert busybox.ok("exec", "ex", "cat", input="ignored\n") == ""


def test_exec_not_found_is_127(busybox):
    run_d(busybox, "--name", "ex", "busybox", "sleep", "60")
    result = busybox("exec", "ex", "nosuch")
    assert result.returncode == 127
    assert "nosuch" in result.stderr


def test_exec_into_stopped_container_fails(busybox):
    busybox.ok("run", "--name", "stopped", "busybox", "true")
    stopped = full_id(busybox, "stopped")
    busybox.fails(1, "exec", "stopped", "true", says=f"{stopped} is not running")
    created = busybox.ok("create", "--name", "created", "busybox", "true").strip()
    busybox.fails(1, "exec", "created", "true", says=f"{created} is not running")


def test_exec_default_capabilities(busybox):
    run_d(busybox, "--name", "caps", "busybox", "sleep", "60")
    out = busybox.ok("exec", "caps", "grep", "^CapEff", "/proc/self/status")
    assert out.split() == ["CapEff:", DEFAULT_CAPS_MASK]
    out = busybox.ok("exec", "-u", "nobody", "caps", "grep", "^CapEff", "/proc/self/status")
    assert out.split() == ["CapEff:", "0000000000000000"]


def test_exec_privileged_has_all_capabilities(busybox):
    run_d(busybox, "--name", "priv", "busybox", "sleep", "60")
    result = busybox("exec", "--privileged", "priv", "grep", "^CapEff", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    expected = host_bounding_set() & all_caps_mask()  # all caps on an unrestricted host: ffffffff...
    assert result.stdout.split() == ["CapEff:", f"{expected:016x}"]


def test_exec_detached_returns_at_once(busybox):
    container_id = run_d(busybox, "--name", "exd", "busybox", "sleep", "60")
    result = busybox("exec", "-d", "exd", "sh", "-c", "echo started > /tmp/mark; exec sleep 50", timeout=20)
    assert result.returncode == 0 and result.stdout == ""
    wait_for(lambda: "sleep 50" in busybox.ok("exec", "exd", "ps", "-o", "args"), what="the exec -d process")
    assert busybox.ok("exec", "exd", "cat", "/tmp/mark") == "started\n"
    # it lives in the container's cgroup, so rm -f takes it along
    assert len(cgroup_procs(container_id)) == 2
    busybox.ok("rm", "-f", "exd")
    assert cgroup_dirs(container_id) == []


def test_exec_in_paused_container_fails(busybox):
    run_d(busybox, "--name", "pe", "busybox", "sleep", "60")
    busybox.ok("pause", "pe")
    try:
        busybox.fails(1, "exec", "pe", "true", timeout=20, says="is paused, unpause the container before exec")
    finally:
        busybox.ok("unpause", "pe")


# -- stop ----------------------------------------------------------------------

def test_stop_lets_a_term_handler_exit_with_its_code(busybox):
    container_id = run_ready(busybox, "tt", TRAP.format(code=3, sig="TERM"))
    # -t 30 and a 20 s bound on the CLI: it must not have waited for the kill
    assert busybox.ok("stop", "-t", "30", "tt", timeout=20) == "tt\n"
    assert inspect(busybox, "tt", "{{.State.ExitCode}} {{.State.Status}}") == "3 exited"
    assert "caught\n" in log_text(busybox, container_id)
    assert cgroup_dirs(container_id) == []


def test_stop_kills_after_timeout(busybox):
    container_id = run_d(busybox, "--name", "ig", "busybox", "sleep", "60")
    pid = identity(state(busybox, "ig")["Pid"])
    assert busybox.ok("stop", "-t", "1", "ig", timeout=20) == "ig\n"  # sleep 60 as pid 1 ignores SIGTERM
    assert inspect(busybox, "ig", "{{.State.ExitCode}} {{.State.Status}}") == "137 exited"
    assert not alive(pid)
    assert cgroup_dirs(container_id) == []
    assert ps_rows(busybox, "-a")["ig"]["STATUS"].startswith("Exited (137) ")


def test_stop_of_stopped_container_is_fine(busybox):
    run_exit(busybox, "done", 4, "exit 4")
    result = busybox("stop", "done")
    assert result.returncode == 0 and result.stdout == "done\n"
    assert inspect(busybox, "done", "{{.State.ExitCode}} {{.State.Status}}") == "4 exited"
    result = busybox("stop", "nosuch")
    assert result.returncode == 1 and "No such container: nosuch" in result.stderr


def test_stop_signal_flag_is_honoured(busybox):
    container_id = run_ready(busybox, "su", TRAP.format(code=10, sig="USR1"), "--stop-signal", "SIGUSR1")
    assert inspect(busybox, "su", "{{.Config.StopSignal}}") == "SIGUSR1"
    assert busybox.ok("stop", "-t", "30", "su", timeout=20) == "su\n"
    assert inspect(busybox, "su", "{{.State.ExitCode}}") == "10"
    assert "caught\n" in log_text(busybox, container_id)


def test_image_stopsignal_is_honoured(busybox):
    busybox.import_busybox(busybox.busybox_tar, "usr1:latest", "STOPSIGNAL SIGUSR1", 'CMD ["sh"]')
    run_ready(busybox, "si", TRAP.format(code=11, sig="USR1"), image="usr1")
    assert inspect(busybox, "si", "{{.Config.StopSignal}}") == "SIGUSR1"
    assert busybox.ok("stop", "-t", "30", "si", timeout=20) == "si\n"
    assert inspect(busybox, "si", "{{.State.ExitCode}}") == "11"


def test_stop_signal_option(busybox):
    run_ready(busybox, "so", TRAP.format(code=12, sig="USR1"))
    assert busybox.ok("stop", "-s", "SIGUSR1", "-t", "5", "so", timeout=20) == "so\n"
    assert inspect(busybox, "so", "{{.State.ExitCode}}") == "12"


# -- kill ----------------------------------------------------------------------

def test_kill_default_is_sigkill(busybox):
    container_id = run_d(busybox, "--name", "kk", "busybox", "sleep", "60")
    assert busybox.ok("kill", "kk") == "kk\n"
    assert busybox.ok("wait", "kk", timeout=20) == "137\n"
    assert inspect(busybox, "kk", "{{.State.ExitCode}} {{.State.Status}}") == "137 exited"
    wait_for(lambda: cgroup_dirs(container_id) == [], what="the cgroup to be removed")


def test_kill_with_signal_reaches_the_trap(busybox):
    container_id = run_ready(busybox, "ku", TRAP.format(code=5, sig="USR1"))
    assert busybox.ok("kill", "-s", "USR1", "ku") == "ku\n"
    assert busybox.ok("wait", "ku", timeout=20) == "5\n"
    assert "caught\n" in log_text(busybox, container_id)


def test_kill_of_stopped_container_fails(busybox):
    busybox.ok("run", "--name", "ks", "busybox", "true")
    result = busybox("kill", "ks")
    refused(result, 1, ("Cannot kill container: ", f"Container {full_id(busybox, 'ks')} is not running"))
    assert result.stdout == ""


def test_kill_with_invalid_signal(busybox):
    run_d(busybox, "--name", "kb", "busybox", "sleep", "60")
    busybox.fails(1, "kill", "-s", "NOSUCHSIG", "kb", says="Invalid signal: NOSUCHSIG")  # docker: exit 1
    assert state(busybox, "kb")["Running"] is True


# -- rm ------------------------------------------------------------------------

def test_rm_several_names(busybox):
    for name in ("aa", "bb", "cc"):
        busybox.ok("create", "--name", name, "busybox", "true")
    assert busybox.ok("rm", "aa", "bb", "cc") == "aa\nbb\ncc\n"
    assert busybox.container_ids() == []
    assert os.listdir(os.path.join(busybox.root, "names")) == []


def test_rm_force_of_a_missing_container_is_not_a_failure(busybox):
    """docker 28's CLI: `rm -f` prints the daemon's "No such container" and exits 0 (without
    -f it exits 1); the containers that exist are removed either way."""
    busybox.ok("create", "--name", "there", "busybox", "true")
    result = busybox("rm", "-f", "nope", "there")
    assert (result.returncode, result.stdout) == (0, "there\n")
    assert result.stderr == "Error response from daemon: No such container: nope\n"
    busybox.fails(1, "rm", "nope", says="No such container: nope")


def test_rm_running_container_needs_force(busybox):
    container_id = run_d(busybox, "--name", "xx", "busybox", "sleep", "60")
    pid = identity(state(busybox, "xx")["Pid"])
    busybox.fails(1, "rm", "xx", says='cannot remove container "/xx": container is running: stop the container '
                                      "before removing or force remove")
    assert alive(pid) and state(busybox, "xx")["Running"] is True
    assert busybox.ok("rm", "-f", "xx") == "xx\n"
    assert not alive(pid)
    assert cgroup_dirs(container_id) == []
    assert mounts_under(busybox.base) == []
    assert not os.path.exists(os.path.join(busybox.root, "containers", container_id))
    assert not os.path.exists(os.path.join(busybox.run_root, "containers", container_id))
    busybox.fails(1, "inspect", "xx", says="No such object: xx")
    run_d(busybox, "--name", "xx", "busybox", "true")  # the name is free


def test_rm_missing_container(busybox):
    result = busybox("rm", "nosuch")
    assert result.returncode == 1
    assert "No such container: nosuch" in result.stderr
    busybox.ok("create", "--name", "there", "busybox", "true")
    result = busybox("rm", "there", "nosuch")
    assert result.returncode == 1
    assert result.stdout == "there\n"


# -- wait ----------------------------------------------------------------------

def test_wait_blocks_until_exit(busybox):
    run_d(busybox, "--name", "ww", "busybox", "sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; exit 6")
    waiter = subprocess.Popen(busybox.cmd("wait", "ww"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # once the wait command sleeps in the kernel, waiting for the container, it must not have returned
        wait_for(lambda: waiter.poll() is not None or sleeping_in_poll(waiter.pid), what="wait to block")
        assert waiter.poll() is None, "wait returned while the container still runs"
        busybox.ok("exec", "ww", "touch", "/go")
        out, err = waiter.communicate(timeout=20)
        assert waiter.returncode == 0, err
        assert out == "6\n"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_wait_on_exited_container_prints_code_at_once(busybox):
    run_exit(busybox, "we", 9, "exit 9")
    assert busybox.ok("wait", "we", timeout=20) == "9\n"
    busybox.fails(1, "wait", "nosuch", says="No such container: nosuch")


# -- start / restart -----------------------------------------------------------

def test_start_stopped_container_detached_keeps_rootfs(busybox):
    script = "if [ -e /marker ]; then echo second; exec sleep 60; fi; echo first > /marker"
    busybox.ok("run", "--name", "ss", "busybox", "sh", "-c", script)
    container_id = full_id(busybox, "ss")
    assert state(busybox, "ss")["Status"] == "exited"
    assert busybox.ok("start", "ss", timeout=20) == "ss\n"
    st = state(busybox, "ss")
    assert st["Running"] is True and st["Status"] == "running"
    assert busybox.ok("exec", "ss", "cat", "/marker") == "first\n"
    wait_for(lambda: log_text(busybox, container_id) == "second\n", what="the second run's output")
    assert busybox.ok("start", "ss") == "ss\n"  # already running: nothing to do, like docker
    assert state(busybox, "ss")["Pid"] == st["Pid"]


def test_restart(busybox):
    container_id = run_d(busybox, "--name", "rs", "busybox", "sh", "-c", "echo run; exec sleep 60")
    before = state(busybox, "rs")
    first = identity(before["Pid"])
    assert busybox.ok("restart", "-t", "1", "rs", timeout=30) == "rs\n"
    after = state(busybox, "rs")
    assert after["Running"] is True and after["Status"] == "running"
    assert not alive(first)
    assert parse_time(after["StartedAt"]) > parse_time(before["StartedAt"])
    wait_for(lambda: log_text(busybox, container_id) == "run\nrun\n", what="both runs in the log")
    busybox.ok("stop", "-t", "0", "rs")
    assert busybox.ok("restart", "rs", timeout=30) == "rs\n"  # restart of a stopped container starts it
    assert state(busybox, "rs")["Running"] is True


def test_start_attach(busybox):
    busybox.ok("create", "--name", "sa", "busybox", "sh", "-c", "echo attached; echo to-err >&2; exit 3")
    result = busybox("start", "-a", "sa")
    assert result.returncode == 3
    assert result.stdout == "attached\n"
    assert result.stderr == "to-err\n"
    assert inspect(busybox, "sa", "{{.State.ExitCode}} {{.State.Status}}") == "3 exited"


def test_start_missing_and_several(busybox):
    busybox.ok("create", "--name", "one", "busybox", "sleep", "60")
    busybox.ok("create", "--name", "two", "busybox", "sleep", "60")
    assert busybox.ok("start", "one", "two") == "one\ntwo\n"
    assert state(busybox, "one")["Running"] and state(busybox, "two")["Running"]
    busybox.fails(1, "start", "nosuch", says="No such container: nosuch")


# -- pause ---------------------------------------------------------------------

def test_pause_freezes_and_unpause_resumes(busybox):
    container_id = run_d(busybox, "--name", "pp", "busybox", "sh", "-c",
                         "while true; do echo tick; sleep 0.02; done")
    wait_for(lambda: log_entries(busybox, container_id), what="the first tick")
    assert busybox.ok("pause", "pp") == "pp\n"
    st = state(busybox, "pp")
    assert st["Status"] == "paused" and st["Paused"] is True and st["Running"] is True
    assert frozen(container_id)
    # what was already in the pipe still reaches the log; then the log must stay still while a
    # twin that is not paused ticks on: its ticks are the clock (a loaded machine slows both)
    twin = run_d(busybox, "--name", "twin", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.02; done")

    def twin_ticks(more: int) -> None:
        target = len(log_entries(busybox, twin)) + more
        wait_for(lambda: len(log_entries(busybox, twin)) >= target, what=f"{more} ticks of the twin")

    def settled():
        before = len(log_entries(busybox, container_id))
        twin_ticks(10)
        return len(log_entries(busybox, container_id)) == before

    wait_for(settled, what="the log of a frozen container to stop growing")
    count = len(log_entries(busybox, container_id))
    twin_ticks(25)
    assert len(log_entries(busybox, container_id)) == count
    busybox.fails(1, "pause", "pp", says=f"Container {container_id} is already paused")
    assert busybox.ok("unpause", "pp") == "pp\n"
    st = state(busybox, "pp")
    assert st["Status"] == "running" and st["Paused"] is False
    assert not frozen(container_id)
    wait_for(lambda: len(log_entries(busybox, container_id)) > count, what="ticks after unpause")
    busybox.fails(1, "unpause", "pp", says=f"Container {container_id} is not paused")


def test_pause_of_stopped_container_fails(busybox):
    busybox.ok("run", "--name", "ps", "busybox", "true")
    busybox.fails(1, "pause", "ps", says=f"Container {full_id(busybox, 'ps')} is not running")
    assert state(busybox, "ps")["Status"] == "exited"


def test_stop_and_rm_of_paused_container(busybox):
    c1 = run_d(busybox, "--name", "ps1", "busybox", "sleep", "60")
    c2 = run_d(busybox, "--name", "ps2", "busybox", "sleep", "60")
    busybox.ok("pause", "ps1", "ps2")
    assert busybox.ok("stop", "-t", "1", "ps1", timeout=30) == "ps1\n"
    assert inspect(busybox, "ps1", "{{.State.Status}} {{.State.Paused}}") == "exited false"
    assert cgroup_dirs(c1) == []
    pid = identity(state(busybox, "ps2")["Pid"])
    assert busybox.ok("rm", "-f", "ps2", timeout=30) == "ps2\n"
    assert not alive(pid) and cgroup_dirs(c2) == []


# -- rename --------------------------------------------------------------------

def test_rename(busybox):
    container_id = run_d(busybox, "--name", "old", "busybox", "sleep", "60")
    busybox.ok("rename", "old", "new")
    assert inspect(busybox, "new", "{{.Name}}") == "/new"
    assert full_id(busybox, "new") == container_id
    busybox.fails(1, "inspect", "--type", "container", "old", says="No such container: old")
    other = busybox.ok("create", "--name", "old", "busybox", "true").strip()  # the old name is free
    busybox.fails(1, "rename", "new", "old", says=(
        f'Conflict. The container name "/old" is already in use by container "{other}". '
        "You have to remove (or rename) that container to be able to reuse that name."))
    assert inspect(busybox, "new", "{{.Name}}") == "/new"
    assert full_id(busybox, "old") == other
    busybox.fails(1, "rename", "new", "new", says="Renaming a container with the same name as its current name")
    busybox.fails(1, "rename", "nosuch", "xx", says="No such container: nosuch")
    assert sorted(os.listdir(os.path.join(busybox.root, "names"))) == ["new", "old"]


def test_rename_conflict_exit_code(busybox):
    busybox.ok("create", "--name", "aa", "busybox", "true")
    busybox.ok("create", "--name", "bb", "busybox", "true")
    busybox.fails(1, "rename", "aa", "bb", says='Conflict. The container name "/bb" is already in use')


# -- restart policies ----------------------------------------------------------

def wait_exited(b, ref: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: (s := state(b, ref))["Status"] == "exited" and s, timeout, f"{ref} to exit")


def test_restart_on_failure_max_retries_and_logs_survive(busybox):
    container_id = run_d(busybox, "--name", "of", "--restart", "on-failure:2", "busybox", "sh", "-c",
                         "echo attempt; exit 1")
    st = wait_exited(busybox, "of")
    assert st["ExitCode"] == 1
    assert inspect(busybox, "of", "{{.RestartCount}}") == "2"
    assert json.loads(inspect(busybox, "of", "{{json .HostConfig.RestartPolicy}}")) == \
        {"Name": "on-failure", "MaximumRetryCount": 2}
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    assert log_text(busybox, container_id) == "attempt\n" * 3  # all three runs' output
    assert inspect(busybox, "of", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    assert cgroup_dirs(container_id) == []


def test_restart_always_until_stopped(busybox):
    container_id = run_d(busybox, "--name", "al", "--restart", "always", "busybox", "sh", "-c", "echo up")
    wait_for(lambda: int(inspect(busybox, "al", "{{.RestartCount}}")) >= 2, what="restarts")
    assert busybox.ok("stop", "-t", "1", "al", timeout=30) == "al\n"
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    # no supervisor is left to restart it: it stays exited
    count = int(inspect(busybox, "al", "{{.RestartCount}}"))
    assert state(busybox, "al")["Status"] == "exited"
    assert log_text(busybox, container_id).count("up\n") in (count, count + 1)  # the last run may not have printed
    assert cgroup_dirs(container_id) == []
    # a later start applies the policy again
    runs = log_text(busybox, container_id).count("up\n")
    busybox.ok("start", "al")
    wait_for(lambda: log_text(busybox, container_id).count("up\n") >= runs + 3, what="restarts after start")
    busybox.ok("rm", "-f", "al")
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end after rm -f")
    assert cgroup_dirs(container_id) == []


def test_start_resets_restart_count(busybox):
    container_id = run_d(busybox, "--name", "rc", "--restart", "on-failure:2", "busybox", "sh", "-c",
                         "echo attempt; exit 1")
    wait_exited(busybox, "rc")
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    assert inspect(busybox, "rc", "{{.RestartCount}}") == "2"
    busybox.ok("start", "rc")
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    assert inspect(busybox, "rc", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    assert log_text(busybox, container_id) == "attempt\n" * 6


def test_restart_no_never_restarts(busybox):
    container_id = run_d(busybox, "--name", "rn", "--restart", "no", "busybox", "sh", "-c", "echo once; exit 1")
    assert busybox.ok("wait", "rn", timeout=20) == "1\n"
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    assert inspect(busybox, "rn", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}") == "0 exited 1"
    assert log_text(busybox, container_id) == "once\n"


def test_restart_on_failure_does_not_restart_success(busybox):
    run_d(busybox, "--name", "ok", "--restart", "on-failure", "busybox", "true")
    assert busybox.ok("wait", "ok", timeout=20) == "0\n"
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    assert inspect(busybox, "ok", "{{.RestartCount}} {{.State.Status}}") == "0 exited"


def test_restart_policy_errors(busybox):
    result = busybox("run", "-d", "--restart", "bogus", "busybox", "true")
    assert result.returncode == 125
    assert "invalid restart policy" in result.stderr
    result = busybox("run", "-d", "--rm", "--restart", "always", "busybox", "true")
    assert result.returncode == 125
    assert "Conflicting options" in result.stderr
    result = busybox("run", "-d", "--restart", "always:3", "busybox", "true")
    assert result.returncode == 125
    assert busybox.container_ids() == []


def test_rm_force_during_restart_backoff_ends_the_supervisor(busybox):
    container_id = run_d(busybox, "--name", "rf", "--restart", "always", "busybox", "true")
    # back-offs double from 100 ms: after the 6th restart the next wait is 6.4 s
    wait_for(lambda: int(inspect(busybox, "rf", "{{.RestartCount}}")) >= 6, what="six restarts")
    busybox.ok("rm", "-f", "rf")
    try:
        wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end after rm -f")
    finally:
        for line in berth_processes(busybox.base, amid_exec=False):  # the lingering supervisor: this test started it
            try:
                os.kill(int(line.split()[0]), 9)
            except ProcessLookupError:
                pass
    assert cgroup_dirs(container_id) == []


def _restarting(b, name: str) -> dict:
    return wait_for(lambda: (s := state(b, name))["Status"] == "restarting" and s, what=f"{name} restarting")


def test_ps_shows_restarting_container(busybox):
    run_d(busybox, "--name", "rr", "--restart", "always", "busybox", "true")
    wait_for(lambda: int(inspect(busybox, "rr", "{{.RestartCount}}")) >= 3, what="restarts")
    # the back-off now dominates: the container is mostly seen between runs
    wait_for(lambda: ps_rows(busybox, "-a")["rr"]["STATUS"].startswith("Restarting (0) "), what="a Restarting status")
    wait_for(lambda: "rr" in ps_rows(busybox) and state(busybox, "rr")["Status"] == "restarting",
             what="ps without -a to list it while restarting")


def test_inspect_restarting_state(busybox):
    run_d(busybox, "--name", "ri", "--restart", "always", "busybox", "true")
    st = _restarting(busybox, "ri")
    assert (st["Running"], st["Restarting"], st["Pid"]) == (True, True, 0)


def test_stop_during_restart_backoff_keeps_exit_code(busybox):
    run_d(busybox, "--name", "rb", "--restart", "always", "busybox", "true")
    wait_for(lambda: int(inspect(busybox, "rb", "{{.RestartCount}}")) >= 3, what="restarts")
    _restarting(busybox, "rb")
    busybox.ok("stop", "-t", "1", "rb", timeout=30)
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")
    assert inspect(busybox, "rb", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"


# -- init and orphans ----------------------------------------------------------

def test_init_is_pid_1(busybox):
    out = busybox.ok("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm")
    procs = dict(line.split() for line in out.strip().splitlines()[1:])
    assert procs["1"] in ("docker-init", "tini", "berth-init")
    assert "ps" in procs.values() and procs["1"] != "ps"
    # exec into an --init container still sees the init as pid 1
    run_d(busybox, "--name", "in", "--init", "busybox", "sleep", "60")
    out = busybox.ok("exec", "in", "ps", "-o", "pid,comm")
    procs = dict(line.split() for line in out.strip().splitlines()[1:])
    assert procs["1"] in ("docker-init", "tini", "berth-init")
    assert "sleep" in procs.values()


def _zombies(b, name: str) -> list[str]:
    out = b.ok("exec", name, "ps", "-o", "stat,comm")
    return [line for line in out.splitlines()[1:] if line.split()[0].startswith("Z")]


def test_init_reaps_zombies(busybox):
    # The subshell's `sleep 0.2` is orphaned and re-parented to the namespace's pid 1; when it
    # exits, pid 1 must reap it. Without --init pid 1 is `sleep 60`, which never does.
    script = "(sleep 0.2 &) ; exec sleep 60"
    run_d(busybox, "--name", "noinit", "busybox", "sh", "-c", script)
    wait_for(lambda: _zombies(busybox, "noinit"), what="a zombie without --init")
    run_d(busybox, "--name", "init", "--init", "busybox", "sh", "-c", script)
    # `sleep 60` runs once the subshell has started the orphan; then the orphan must end and be reaped
    wait_for(lambda: "sleep 60" in busybox.ok("exec", "init", "ps", "-o", "args").splitlines(),
             what="the init's child")
    wait_for(lambda: not _zombies(busybox, "init")
             and "sleep 0.2" not in busybox.ok("exec", "init", "ps", "-o", "args").splitlines(),
             what="the orphan to be reaped by --init")


def test_pid1_exit_with_children_ends_cleanly_detached(busybox):
    container_id = run_d(busybox, "--name", "or", "busybox", "sh", "-c",
                         "(sleep 30 &); (sleep 30 &); echo ready; exec sleep 0.5")
    wait_for(lambda: len(cgroup_procs(container_id)) >= 3, what="the orphans to start")
    members = [identity(pid) for pid in cgroup_procs(container_id)]
    members = [m for m in members if m]
    assert busybox.ok("wait", "or", timeout=20) == "0\n"
    wait_for(lambda: cgroup_dirs(container_id) == [], what="the cgroup to be removed")
    assert not [m for m in members if alive(m)], "processes of the container outlived it"
    wait_for(lambda: not berth_processes(busybox.base), what="the supervisor to end")


def test_pid1_exit_with_children_ends_cleanly_attached(busybox):
    # The orphans hold the stdout pipe; the CLI must not wait for them (sleep 30 > the 20 s bound).
    result = busybox("run", "--name", "ora", "busybox", "sh", "-c", "(sleep 30 &); echo out; exec sleep 0.2",
                     timeout=20)
    assert result.returncode == 0 and result.stdout == "out\n"
    assert cgroup_dirs(full_id(busybox, "ora")) == []


# -- a lost supervisor, a reboot -----------------------------------------------

def test_supervisor_killed_state_stays_truthful(busybox):
    container_id = run_d(busybox, "--name", "lost", "busybox", "sleep", "60")
    supervisor = identity(monitor_pid(busybox, container_id))
    os.kill(supervisor[0], 9)  # our own child's child: this test started it
    wait_for(lambda: not alive(supervisor), what="the supervisor to die")
    pid = state(busybox, "lost")["Pid"]
    st = state(busybox, "lost")
    assert st["Running"] is True and st["Status"] == "running" and st["Pid"] == pid
    assert ps_rows(busybox)["lost"]["STATUS"].startswith("Up ")
    os.kill(pid, 9)  # the container's process, which this test started
    wait_for(lambda: state(busybox, "lost")["Status"] == "exited", what="the container to show exited")
    st = state(busybox, "lost")
    assert st["Running"] is False and st["Pid"] == 0
    assert ps_rows(busybox, "-a")["lost"]["STATUS"].startswith("Exited (")
    assert "lost" not in ps_rows(busybox)
    # it can be started again, with a new supervisor
    assert busybox.ok("start", "lost", timeout=20) == "lost\n"
    st = state(busybox, "lost")
    assert st["Running"] is True and st["Pid"] != pid
    assert busybox.ok("exec", "lost", "echo", "alive") == "alive\n"
    assert busybox.ok("stop", "-t", "0", "lost") == "lost\n"
    assert busybox.ok("rm", "lost") == "lost\n"
    assert cgroup_dirs(container_id) == []


def test_supervisor_killed_then_stop_and_rm(busybox):
    container_id = run_d(busybox, "--name", "orphan", "busybox", "sleep", "60")
    supervisor = identity(monitor_pid(busybox, container_id))
    os.kill(supervisor[0], 9)
    wait_for(lambda: not alive(supervisor), what="the supervisor to die")
    pid = identity(state(busybox, "orphan")["Pid"])
    # nobody is left to record the end: stop must record it itself
    assert busybox.ok("stop", "-t", "1", "orphan", timeout=30) == "orphan\n"
    assert not alive(pid)
    st = state(busybox, "orphan")
    assert st["Status"] == "exited"
    assert st["ExitCode"] == 137  # sleep as pid 1 ignores SIGTERM: stop's SIGKILL ended it
    assert st["FinishedAt"] > st["StartedAt"]
    assert cgroup_dirs(container_id) == []
    assert busybox.ok("rm", "orphan") == "orphan\n"


def reboot(b) -> None:
    """What a reboot does to berth's state: /run is empty, and the boot ID the address leases
    were taken under is an earlier one (such a lease is void)."""
    import glob
    import shutil

    shutil.rmtree(b.run_root)
    for path in glob.glob(os.path.join(b.root, "network", "leases", "*")):
        with open(path) as f:
            holder = f.read().partition("\n")[0]
        with open(path, "w") as f:
            f.write(f"{holder}\n{'0' * 8}-0000-0000-0000-{'0' * 12}")


def test_reboot_leaves_containers_exited_and_startable(busybox):
    container_id = run_d(busybox, "--name", "rb", "busybox", "sleep", "60")
    supervisor = identity(monitor_pid(busybox, container_id))
    pid = identity(state(busybox, "rb")["Pid"])
    os.kill(supervisor[0], 9)
    os.kill(pid[0], 9)
    wait_for(lambda: not alive(supervisor) and not alive(pid), what="both to die")
    reboot(busybox)
    rows = ps_rows(busybox, "-a")
    assert rows["rb"]["STATUS"].startswith("Exited ("), rows["rb"]
    assert "rb" not in ps_rows(busybox)
    assert state(busybox, "rb")["Running"] is False
    assert busybox.ok("start", "rb", timeout=20) == "rb\n"
    st = state(busybox, "rb")
    assert st["Running"] is True and st["Status"] == "running"
    assert busybox.ok("exec", "rb", "echo", "back") == "back\n"
    busybox.ok("rm", "-f", "rb")
    assert cgroup_dirs(container_id) == []


def test_reconciled_exit_is_stable(busybox):
    container_id = run_d(busybox, "--name", "st", "busybox", "sleep", "60")
    supervisor = identity(monitor_pid(busybox, container_id))
    pid = identity(state(busybox, "st")["Pid"])
    os.kill(supervisor[0], 9)
    os.kill(pid[0], 9)
    wait_for(lambda: not alive(supervisor) and not alive(pid), what="both to die")
    reboot(busybox)
    first = inspect(busybox, "st", "{{.State.FinishedAt}}")
    # a second command runs tens of ms later: an end time made up at each look would differ
    assert inspect(busybox, "st", "{{.State.FinishedAt}}") == first


def test_idle_supervisor_is_the_lean_monitor(busybox):
    """Once the container runs, its supervisor is a fresh interpreter holding only its stdio
    and log (same pid, still named berth-monitor); it records the end and restarts as before."""
    container_id = run_d(busybox, "--restart", "on-failure:1", "busybox", "sh", "-c", "echo up; sleep 0.5; exit 4")
    pid = monitor_pid(busybox, container_id)

    def lean() -> bool:
        with open(f"/proc/{pid}/cmdline", "rb") as f, open(f"/proc/{pid}/comm") as comm:
            return b"berth.monitor.lean" in f.read() and comm.read().strip() == "berth-monitor"

    wait_for(lean, what="the supervisor to exec the lean monitor")
    wait_for(lambda: state(busybox, container_id)["Status"] == "exited" and
             busybox.ok("inspect", "-f", "{{.RestartCount}}", container_id).strip() == "1",
             what="one restart, then the end recorded")
    assert state(busybox, container_id)["ExitCode"] == 4
    assert busybox.ok("logs", container_id) == "up\nup\n"


def test_wait_for_an_auto_removed_container_gives_its_exit_code(busybox):
    """docker wait of a --rm container: the code it ended with, though its record is gone
    (berth's --rm removes it without recording the end: the die event tells the code)."""
    busybox.ok("run", "-d", "--rm", "--name", "gone-soon", "busybox", "sh", "-c", "sleep 1; exit 3")
    assert busybox.ok("wait", "gone-soon") == "3\n"
    busybox.fails(1, "inspect", "gone-soon", says="No such object: gone-soon")
