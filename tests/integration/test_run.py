"""`berth run` / `create` / `start` against the real kernel: isolation is shown, not assumed."""

import contextlib
import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time

from conftest import cgroup_dirs, mounts_under, refused, wait_for

DEFAULT_CAPS_MASK = "00000000a80425fb"  # docker's 14 default capabilities


def run(berth, *args, **kw):
    return berth("run", "--rm", *args, **kw)


# -- isolation -----------------------------------------------------------------

def test_ps_sees_only_the_containers_processes(busybox):
    out = busybox.ok("run", "--rm", "busybox", "ps", "-o", "pid,comm")
    lines = out.strip().splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["1"], out
    assert lines[0].split()[1] == "ps"


def test_hostname_is_short_id_and_differs_from_host(busybox):
    container_id = busybox.ok("create", "busybox", "hostname").strip()
    out = busybox.ok("start", "-a", container_id).strip()
    assert out == container_id[:12]
    assert out != os.uname().nodename


def test_hostname_flag(busybox):
    assert busybox.ok("run", "--rm", "-h", "web01", "busybox", "hostname").strip() == "web01"
    assert busybox.ok("run", "--rm", "--hostname", "db", "busybox", "cat", "/etc/hostname").strip() == "db"


def test_namespaces_differ_from_host(busybox):
    kinds = ["mnt", "pid", "uts", "ipc", "net", "cgroup"]
    out = busybox.ok("run", "--rm", "--cgroupns", "private", "busybox", "sh", "-c",  # private: docker's v2 default
                     " ".join(f"readlink /proc/self/ns/{k};" for k in kinds))
    inside = out.split()
    assert len(inside) == len(kinds)
    for kind, link in zip(kinds, inside, strict=True):
        assert link != os.readlink(f"/proc/self/ns/{kind}"), kind


def test_network_namespace_has_loopback_and_eth0_up(busybox):
    out = busybox.ok("run", "--rm", "busybox", "ip", "-o", "link")
    names = [line.split(":")[1].strip().partition("@")[0] for line in out.strip().splitlines()]
    assert names == ["lo", "eth0"]
    assert out.count("UP") >= 2
    addr = busybox.ok("run", "--rm", "busybox", "ip", "-o", "-4", "addr")
    assert "127.0.0.1/8" in addr and " eth0 " in addr


def test_default_capabilities(busybox):
    out = busybox.ok("run", "--rm", "busybox", "grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in out.strip().splitlines())
    assert caps["CapEff"] == DEFAULT_CAPS_MASK
    assert caps["CapPrm"] == DEFAULT_CAPS_MASK
    assert caps["CapBnd"] == DEFAULT_CAPS_MASK
    assert caps["CapInh"] == "0000000000000000"


def test_non_root_user_has_no_effective_capabilities(busybox):
    out = busybox.ok("run", "--rm", "-u", "nobody", "busybox", "grep", "^Cap", "/proc/self/status")
    caps = dict(line.split(":\t") for line in out.strip().splitlines())
    assert caps["CapEff"] == "0000000000000000"
    assert caps["CapBnd"] == DEFAULT_CAPS_MASK


def test_dropped_capability_is_enforced(busybox):
    # CAP_SYS_ADMIN is not in docker's default set: mount must fail.
    result = run(busybox, "busybox", "mount", "-t", "tmpfs", "tmpfs", "/tmp")
    refused(result, 1, "mount: permission denied")  # busybox mount's own exit code, as under docker


def test_proc_sys_is_read_only(busybox):
    result = run(busybox, "busybox", "sh", "-c", "echo x > /proc/sys/kernel/domainname")
    refused(result, 1, "can't create /proc/sys/kernel/domainname: Read-only file system")


def test_sys_is_read_only(busybox):
    result = run(busybox, "busybox", "sh", "-c", "echo x > /sys/kernel/uevent_helper")
    refused(result, 1, "can't create /sys/kernel/uevent_helper: Read-only file system")


def test_masked_paths_are_empty(busybox):
    paths = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts")
             if os.path.exists(p)]
    assert paths, "the host has none of the masked /proc files"
    script = "; ".join(f"echo {p}=$(wc -c < {p})" for p in paths)
    out = busybox.ok("run", "--rm", "busybox", "sh", "-c", script)
    for p in paths:
        assert f"{p}=0" in out, out
    assert busybox.ok("run", "--rm", "busybox", "ls", "/proc/acpi").strip() == ""


def test_devices_are_dockers_defaults(busybox):
    out = busybox.ok("run", "--rm", "busybox", "ls", "/dev")
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx", "fd"):
        assert name in out.split(), name
    assert "sda" not in out and "vda" not in out
    out = busybox.ok("run", "--rm", "busybox", "sh", "-c", "head -c 4 /dev/zero | wc -c; stat -c %t:%T /dev/null")
    assert out.split() == ["4", "1:3"]


def test_device_cgroup_refuses_a_host_disk(busybox):
    result = run(busybox, "busybox", "sh", "-c", "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk")
    refused(result, 1, "head: /tmp/disk: Operation not permitted")  # the node is made; opening it is refused


def test_container_writes_stay_out_of_the_image_layers(busybox):
    container_id = busybox.ok("create", "busybox", "sh", "-c", "echo data > /written; rm /bin/vi").strip()
    busybox.ok("start", "-a", container_id)
    record = busybox.ok("inspect", "--format", "{{.GraphDriver.Data.LowerDir}}|{{.GraphDriver.Data.UpperDir}}",
                        container_id).strip()
    lower, upper = record.split("|")
    init, *image_layers = lower.split(":")  # like docker's "-init" layer, topmost of the lowers
    assert init.endswith("/init-layer") and image_layers
    for layer in image_layers:
        assert not os.path.exists(os.path.join(layer, "written"))
        assert os.path.lexists(os.path.join(layer, "bin", "vi"))
    with open(os.path.join(upper, "written")) as f:
        assert f.read() == "data\n"
    assert os.stat(os.path.join(upper, "bin", "vi")).st_rdev == 0  # an overlay whiteout


def test_rm_leaves_no_trace(busybox):
    out = busybox.ok("run", "--rm", "busybox", "cat", "/proc/self/cgroup")
    assert "/" in out
    assert busybox.container_ids() == []
    assert os.listdir(os.path.join(busybox.root, "names")) == []
    assert mounts_under(busybox.base) == []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        berth_dir = os.path.join("/sys/fs/cgroup", hierarchy, "berth")
        if os.path.isdir(berth_dir):
            leftovers = [d for d in os.listdir(berth_dir) if len(d) == 64]
            assert not [d for d in leftovers if d in out], leftovers


def test_running_container_has_a_cgroup_that_is_removed_after(busybox):
    container_id = busybox.ok("create", "--cgroupns", "private", "busybox", "sh", "-c", "cat /proc/self/cgroup").strip()
    out = busybox.ok("start", "-a", container_id)
    assert cgroup_dirs(container_id) == []
    # with a private cgroup namespace the container sees itself at the root
    assert all(line.endswith(":/") for line in out.strip().splitlines()), out


def test_cgroup_exists_while_running(busybox):
    proc = subprocess.Popen(busybox.cmd("run", "--rm", "--name", "sleeper", "busybox", "sleep", "30"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        [container_id] = wait_for(busybox.container_ids, what="the container")
        dirs = wait_for(lambda: cgroup_dirs(container_id), what="the container's cgroup")

        def members():
            with open(os.path.join(dirs[0], "cgroup.procs")) as f:
                return f.read().split()

        wait_for(members, what="pid 1 in the cgroup")  # the cgroup is made just before pid 1 joins
    finally:
        proc.terminate()  # the CLI forwards SIGTERM; sleep as pid 1 ignores it, so kill via rm
        busybox("rm", "-f", "sleeper")
        proc.wait(timeout=20)
    assert cgroup_dirs(container_id) == []


# -- exit codes and errors -----------------------------------------------------

def test_exit_code_is_the_containers(busybox):
    assert run(busybox, "busybox", "sh", "-c", "exit 3").returncode == 3
    assert run(busybox, "busybox", "true").returncode == 0
    assert run(busybox, "busybox", "false").returncode == 1


def test_killed_by_signal_is_128_plus_signal(busybox):
    proc = subprocess.Popen(busybox.cmd("run", "--rm", "--name", "victim", "busybox", "sh", "-c", "echo up; sleep 30"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"up\n"
        # the record gets the pid just after start
        pid = wait_for(lambda: int(busybox.ok("inspect", "--format", "{{.State.Pid}}", "victim")), what="its pid")
        assert pid > 1
        os.kill(pid, 9)  # the container's pid 1, a process this test started through berth
        assert proc.wait(timeout=10) == 137
    finally:
        if proc.poll() is None:
            busybox("rm", "-f", "victim")
            proc.wait(timeout=10)


def test_command_not_found_is_127(busybox):
    result = run(busybox, "busybox", "nosuchcommand")
    assert result.returncode == 127
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in result.stderr
    assert "Traceback" not in result.stderr
    assert busybox.container_ids() == []


def test_not_executable_is_126(busybox):
    result = run(busybox, "busybox", "/etc/passwd")
    assert result.returncode == 126
    assert "permission denied" in result.stderr


def test_unknown_image(berth):
    result = berth("run", "--rm", "127.0.0.1:9/nosuch")  # pulled from loopback, where nothing listens
    assert result.returncode == 125
    assert "Unable to find image '127.0.0.1:9/nosuch:latest' locally" in result.stderr
    assert "Traceback" not in result.stderr
    assert berth.container_ids() == []


def test_name_conflict(busybox):
    first = busybox.ok("create", "--name", "web", "busybox", "true").strip()
    result = busybox("create", "--name", "web", "busybox", "true")
    assert result.returncode == 125
    assert f'The container name "/web" is already in use by container "{first}"' in result.stderr
    assert busybox.container_ids() == [first]


def test_unknown_flag(busybox):
    result = busybox("run", "--bogus", "busybox", "true")
    assert result.returncode == 125
    assert "unknown flag: --bogus" in result.stderr


def test_unknown_user_name_is_refused_and_leaves_nothing(busybox):
    result = run(busybox, "-u", "nosuchuser", "busybox", "id")
    assert result.returncode == 125
    assert "unable to find user nosuchuser" in result.stderr
    assert busybox.container_ids() == []


def test_failed_start_without_rm_keeps_a_created_container(busybox):
    result = busybox("run", "--name", "broken", "busybox", "nosuchcommand")
    assert result.returncode == 127
    state = busybox.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "broken").split()
    assert state == ["created", "127"]
    container_id = busybox.container_ids()[0]
    assert cgroup_dirs(container_id) == []


# -- entrypoint, cmd, env, workdir, user ---------------------------------------

def test_entrypoint_and_cmd_semantics(berth):
    berth.import_busybox(berth.busybox_tar, "ep:latest", 'ENTRYPOINT ["echo","ep"]', 'CMD ["default"]')
    assert berth.ok("run", "--rm", "ep").strip() == "ep default"
    assert berth.ok("run", "--rm", "ep", "given").strip() == "ep given"
    assert berth.ok("run", "--rm", "--entrypoint", "echo", "ep", "only").strip() == "only"
    # --entrypoint discards the image's CMD too
    assert berth.ok("run", "--rm", "--entrypoint", "echo", "ep").strip() == ""
    assert berth.ok("run", "--rm", "--entrypoint", "", "ep", "echo", "cleared").strip() == "cleared"
    result = berth("run", "--rm", "--entrypoint", "", "ep")
    assert result.returncode == 125
    assert "No command specified" in result.stderr


def test_image_cmd_is_default_command(busybox):
    assert busybox.ok("inspect", "--format", "{{json .Config.Cmd}}", "busybox").strip() == '["sh"]'
    out = busybox.ok("run", "--rm", "busybox", input="echo from-stdin\n")
    assert out == ""  # without -i stdin is not attached
    out = busybox.ok("run", "--rm", "-i", "busybox", input="echo from-stdin\n")
    assert out.strip() == "from-stdin"


def test_environment(busybox, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\n\nPASSED\n")
    env = dict(os.environ, PASSED="through", ALSO="yes")
    out = busybox.ok("run", "--rm", "-e", "A=1", "--env", "B=two words", "-e", "ALSO", "-e", "UNSET_VAR_X",
                     "--env-file", str(env_file), "busybox", "env", env=env)
    lines = set(out.strip().splitlines())
    assert {"A=1", "B=two words", "ALSO=yes", "FROM_FILE=1", "PASSED=through", "HOME=/root"} <= lines
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in lines
    assert any(line.startswith("HOSTNAME=") for line in lines)
    assert not any(line.startswith(("UNSET_VAR_X", "TERM=")) for line in lines)


def test_workdir(busybox):
    assert busybox.ok("run", "--rm", "-w", "/tmp", "busybox", "pwd").strip() == "/tmp"
    assert busybox.ok("run", "--rm", "--workdir", "/new/dir", "busybox", "pwd").strip() == "/new/dir"


def test_user_forms(busybox):
    assert busybox.ok("run", "--rm", "-u", "nobody", "busybox", "id").startswith("uid=65534(nobody) gid=65534")
    assert busybox.ok("run", "--rm", "-u", "nobody", "busybox", "sh", "-c", "echo $HOME").strip() == "/home"
    assert busybox.ok("run", "--rm", "-u", "1234:5678", "busybox", "id").strip() == "uid=1234 gid=5678 groups=5678"
    assert busybox.ok("run", "--rm", "-u", "0", "busybox", "id", "-u").strip() == "0"
    assert busybox.ok("run", "--rm", "busybox", "id").strip() == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    result = run(busybox, "-u", "nobody:nosuchgroup", "busybox", "id")
    assert result.returncode == 125 and "unable to find group nosuchgroup" in result.stderr


def test_labels_and_inspect_shape(busybox):
    container_id = busybox.ok("create", "-l", "tier=web", "--label", "x=y", "--name", "lbl", "busybox", "true").strip()
    out = busybox.ok("inspect", "--format",
                     "{{.Name}} {{.Config.Labels.tier}} {{.State.Status}} {{.Path}} {{json .Args}} {{.Config.Image}}",
                     "lbl").strip()
    assert out == '/lbl web created true [] busybox'
    assert busybox.ok("inspect", "--format", "{{.Id}}", container_id[:8]).strip() == container_id


def test_random_names_look_like_dockers(busybox):
    container_id = busybox.ok("create", "busybox", "true").strip()
    name = busybox.ok("inspect", "--format", "{{.Name}}", container_id).strip()
    assert re.fullmatch(r"/[a-z]+_[a-z]+", name), name


# -- create + start --------------------------------------------------------------

def test_create_then_start_keeps_the_rootfs(busybox):
    container_id = busybox.ok("create", "--name", "twice", "busybox", "sh", "-c",
                              "echo run >> /count; wc -l < /count; exit 4").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)
    assert busybox.ok("inspect", "--format", "{{.State.Status}}", "twice").strip() == "created"
    first = busybox("start", "-a", "twice")
    assert (first.returncode, first.stdout.strip()) == (4, "1")
    second = busybox("start", "-a", "twice")
    assert (second.returncode, second.stdout.strip()) == (4, "2")
    state = busybox.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", "twice")
    assert state.split() == ["exited", "4", "false"]


def test_start_missing_container(berth):
    result = berth("start", "-a", "nosuch")
    assert result.returncode == 1
    assert "No such container: nosuch" in result.stderr


def test_rm_of_created_container(busybox):
    busybox.ok("create", "--name", "gone", "busybox", "true")
    assert busybox.ok("rm", "gone").strip() == "gone"
    assert busybox.container_ids() == []
    assert busybox("rm", "gone").returncode == 1


# -- terminal --------------------------------------------------------------------

def _spawn_in_pty(cmd: list[str], rows: int = 30, cols: int = 100):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def make_controlling():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, preexec_fn=make_controlling)
    os.close(slave)
    return proc, master


def _read_until(master: int, needle: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_tty_is_a_pts_in_the_container(busybox):
    script = "tty; stty size; echo TERM=$TERM"
    proc, master = _spawn_in_pty(busybox.cmd("run", "--rm", "-t", "busybox", "sh", "-c", script))
    try:
        out = _read_until(master, b"TERM=")
        out += _read_until(master, b"\n", timeout=2)
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(master)
    text = out.decode()
    assert "/dev/pts/0" in text
    assert "30 100" in text
    assert "TERM=xterm" in text


@contextlib.contextmanager
def _pty_session(cmd: list[str]):
    """The command on a fresh terminal; killed (it is ours) if the test leaves it running."""
    proc, master = _spawn_in_pty(cmd)
    try:
        yield proc, master
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_interactive_tty_ctrl_c_reaches_the_container(busybox):
    script = 'trap "echo got-int; exit 5" INT; echo ready; while true; do sleep 0.1; done'
    with _pty_session(busybox.cmd("run", "--rm", "-it", "busybox", "sh", "-c", script)) as (proc, master):
        assert b"ready" in _read_until(master, b"ready")
        os.write(master, b"\x03")
        assert b"got-int" in _read_until(master, b"got-int")
        assert proc.wait(timeout=10) == 5


def test_interactive_tty_shell_session(busybox):
    with _pty_session(busybox.cmd("run", "--rm", "-it", "busybox", "sh")) as (proc, master):
        _read_until(master, b"#")
        os.write(master, b"echo $((6*7)); exit 9\r")
        assert b"42" in _read_until(master, b"42")
        assert proc.wait(timeout=10) == 9


def test_sigterm_to_cli_is_forwarded(busybox):
    script = 'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done'
    proc = subprocess.Popen(busybox.cmd("run", "--rm", "busybox", "sh", "-c", script),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        assert b"got-term" in out
        assert proc.returncode == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
