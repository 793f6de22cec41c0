"""Isolation flags enforced by the kernel: IPC modes, privileged, read-only rootfs, sysctls,
run-as users and groups, and escape attempts from a default container that must fail."""

import json
import os

from conftest import refused


def ns(b, ref_or_args, kind: str = "ipc") -> str:
    return b.ok("exec", ref_or_args, "readlink", f"/proc/self/ns/{kind}").strip()


def test_ipc_shareable_and_container_join_share_namespace_and_shm(busybox):
    busybox.ok("run", "-d", "--name", "producer", "--ipc", "shareable", "busybox", "sleep", "60")
    busybox.ok("exec", "producer", "sh", "-c", "echo message > /dev/shm/queue")
    out = busybox.ok("run", "--rm", "--ipc", "container:producer", "busybox", "sh", "-c",
                     "readlink /proc/self/ns/ipc; cat /dev/shm/queue")
    joined_ns, message = out.splitlines()
    assert joined_ns == ns(busybox, "producer")
    assert message == "message"
    assert busybox.ok("inspect", "-f", "{{.HostConfig.IpcMode}}", "producer").strip() == "shareable"
    assert ns(busybox, "producer") != os.readlink("/proc/self/ns/ipc")


def test_ipc_private_is_the_default_and_cannot_be_joined(busybox):
    busybox.ok("run", "-d", "--name", "loner", "busybox", "sleep", "60")
    assert busybox.ok("inspect", "-f", "{{.HostConfig.IpcMode}}", "loner").strip() == "private"
    cid = busybox.ok("inspect", "-f", "{{.Id}}", "loner").strip()
    result = busybox("run", "--rm", "--ipc", "container:loner", "busybox", "true")
    assert result.returncode == 125
    assert f"can't join IPC of container {cid}: non-shareable IPC" in result.stderr


def test_ipc_host_and_none(busybox):
    assert busybox.ok("run", "--rm", "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc").strip() == \
        os.readlink("/proc/self/ns/ipc")
    out = busybox.ok("run", "--rm", "--ipc", "none", "busybox", "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts; true")
    assert out.strip() == "0"


def test_shm_size(busybox):
    out = busybox.ok("run", "--rm", "--shm-size", "16m", "busybox", "grep", " /dev/shm ", "/proc/mounts")
    assert "size=16384k" in out


def test_bad_isolation_input_creates_nothing(busybox):
    for args, message in (
        (["--ipc", "container:missing"], "No such container: missing"),
        (["--ipc", "bogus"], "--ipc: invalid IPC mode"),
        (["-u", "nosuchuser"], "unable to find user nosuchuser: no matching entries in passwd file"),
        (["--group-add", "nosuchgroup"], "unable to find group nosuchgroup"),
        (["--sysctl", "vm.swappiness=1"], "sysctl 'vm.swappiness=1' is not allowed"),
        (["--shm-size", "lots"], "invalid size: 'lots'"),
        (["--lxc-conf", "lxc.cgroup.cpuset.cpus=0"], "--cpuset-cpus"),
        (["--userns", "private"], "--userns: invalid USER mode"),
    ):
        result = busybox("run", "--rm", *args, "busybox", "true")
        assert result.returncode == 125, args
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
    assert busybox.container_ids() == []


def test_run_as_users_and_groups(busybox):
    assert busybox.ok("run", "--rm", "-u", "1234:5678", "busybox", "id").strip() == "uid=1234 gid=5678 groups=5678"
    assert busybox.ok("run", "--rm", "-u", "nobody", "busybox", "id", "-un").strip() == "nobody"
    out = busybox.ok("run", "--rm", "-u", "nobody", "--group-add", "4242", "--group-add", "wheel", "busybox",
                     "id", "-G")
    groups = out.split()
    assert "4242" in groups and "10" in groups  # wheel is gid 10 in our busybox's /etc/group
    root_only = busybox("run", "--rm", "-u", "nobody", "busybox", "ls", "/root")  # /root is 0700
    refused(root_only, 1, "ls: can't open '/root': Permission denied")
    assert busybox("run", "--rm", "busybox", "ls", "/root").returncode == 0


def test_sysctls_are_namespaced(busybox):
    out = busybox.ok("run", "--rm", "--sysctl", "kernel.msgmax=12345",
                     "--sysctl", "net.ipv4.ip_local_port_range=40000 40100", "busybox", "sh", "-c",
                     "cat /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ip_local_port_range")
    assert out.split() == ["12345", "40000", "40100"]
    with open("/proc/sys/kernel/msgmax") as f:
        assert f.read().strip() != "12345"  # the host's is untouched


def test_read_only_rootfs(busybox):
    result = busybox("run", "--rm", "--read-only", "busybox", "touch", "/x")
    refused(result, 1, "touch: /x: Read-only file system")
    assert busybox.ok("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /dev/shm/ok && echo ok") == "ok\n"
    assert busybox.ok("run", "--rm", "--read-only", "busybox", "cat", "/etc/hostname").strip()


def test_privileged_gets_everything_but_its_own_network(busybox):
    out = busybox.ok("run", "--rm", "--privileged", "busybox", "sh", "-c",
                     "grep CapEff /proc/self/status; grep ' /sys ' /proc/mounts; ls /dev; readlink /proc/self/ns/net;"
                     " head -c 10 /proc/timer_list | wc -c")
    lines = out.splitlines()
    with open("/proc/self/status") as f:  # every capability we hold (this VM withholds a few from root)
        held = next(int(line.split()[1], 16) for line in f if line.startswith("CapPrm:"))
    assert int(lines[0].split()[1], 16) == held
    assert " rw," in lines[1] or lines[1].split()[3].startswith("rw")
    host_devices = {n for n in os.listdir("/dev") if os.path.exists(f"/dev/{n}") and not os.path.isdir(f"/dev/{n}")
                    and not os.path.islink(f"/dev/{n}")}
    assert host_devices - {"ptmx", "console"} <= set(lines[2:-2]) | {"ptmx", "console"}
    assert lines[-2] != os.readlink("/proc/self/ns/net")
    assert lines[-1] == "10"  # not masked
    inspect = json.loads(busybox.ok("inspect", busybox.ok("create", "--privileged", "busybox", "true").strip()))[0]
    assert inspect["HostConfig"]["Privileged"] is True and inspect["HostConfig"]["MaskedPaths"] is None


def test_escape_attempts_from_a_default_container_fail(busybox):
    script = "; ".join([
        "mount -o remount,rw /proc/sys 2>/dev/null && echo proc-sys-rw",
        "echo x > /sys/kernel/uevent_helper 2>/dev/null && echo sys-written",
        "mknod /tmp/sda b 8 0 && (head -c1 /tmp/sda >/dev/null 2>&1 && echo disk-read)",
        "mount -t tmpfs none /mnt 2>/dev/null && echo mounted",
        "head -c1 /proc/kcore 2>/dev/null | wc -c | grep -q 1 && echo kcore",
        "cat /proc/timer_list 2>/dev/null | head -c1 | wc -c | grep -q 1 && echo timer_list",
        "echo done",
    ])
    out = busybox.ok("run", "--rm", "busybox", "sh", "-c", script)
    assert out == "done\n"


def test_sysv_message_queue_is_seen_by_the_joined_container(busybox):
    """The book's producer/consumer: a queue made in the shareable container's IPC namespace
    (by a process of ours that joins it: this busybox has no ipcmk/ipcs) is seen by a joined one."""
    import ctypes

    busybox.ok("run", "-d", "--name", "producer", "--ipc", "shareable", "busybox", "sleep", "60")
    pid = int(busybox.ok("inspect", "-f", "{{.State.Pid}}", "producer"))
    child = os.fork()
    if child == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/proc/{pid}/ns/ipc", os.O_RDONLY)
            libc.setns(fd, 0x08000000)  # CLONE_NEWIPC
            os._exit(0 if libc.msgget(0x1234, 0o1666) >= 0 else 1)  # IPC_CREAT | 0666
        except BaseException:
            os._exit(2)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    def keys(out: str) -> list[str]:  # /proc/sysvipc/msg: a header, then one queue per line, key first
        return [line.split()[0] for line in out.splitlines()[1:]]

    consumer = busybox.ok("run", "--rm", "--ipc", "container:producer", "busybox", "cat", "/proc/sysvipc/msg")
    assert keys(consumer) == [str(0x1234)]
    assert keys(busybox.ok("run", "--rm", "busybox", "cat", "/proc/sysvipc/msg")) == []  # private: its own
