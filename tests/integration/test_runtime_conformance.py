"""The same OCI bundle run by runc (/usr/bin/runc) and by berth-runtime gives the same observable
result: capabilities, ids, hostname, mounts (mountinfo, normalised), rlimits, cgroup files,
exit code and the order of hooks, across a table of spec variations, one case each.

In crun's style: `base_config()` builds the OCI config dict, each case changes what it tests,
and a busybox shell inside the container prints what it sees. Each runtime gets its own bundle
(same rootfs tar), state root and cgroup; what it leaves behind fails the case. Where runc 1.1
(this host's) does not know a field, the case says what berth-runtime must show instead."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid

import pytest

from conftest import runtime_binary

RUNC = "/usr/bin/runc"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_CAPS = sorted((
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
))
CGROUP_PARENT = "berth-conformance"

# What the container prints by default: its credentials, names, limits and filesystem view.
REPORT = r"""
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp:|Uid|Gid|Groups)' /proc/self/status
echo "== id"; id
echo "== hostname"; hostname; cat /proc/sys/kernel/domainname
echo "== cwd"; pwd; umask
echo "== limits"; cat /proc/self/limits
echo "== oom"; cat /proc/self/oom_score_adj
echo "== mounts"; cat /proc/self/mountinfo
echo "== dev"; ls -ln /dev | awk 'NR > 1 {print $1, $3, $4, $5, $6, $NF}'
"""


def base_config(*args: str) -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args) or ["sh", "-c", REPORT],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {key: list(DOCKER_CAPS) for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


class Ctx:
    """One runtime's side of a case: its scratch directory (host files a case binds or its hooks
    write), and the host files whose content after the run is part of what is compared."""

    def __init__(self, directory: str):
        self.dir = directory
        self.collect: list[str] = []

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def host_dir(self, name: str, files: dict | None = None) -> str:
        path = self.path(name)
        os.makedirs(path, exist_ok=True)
        for file, content in (files or {}).items():
            with open(os.path.join(path, file), "w") as f:
                f.write(content)
        return path

    def hook(self, name: str, timeout: int | None = None, exit_code: int = 0, sleep: float = 0) -> dict:
        """A hook that appends its name and the state's status (read from stdin) to hooks.log."""
        log = self.path("hooks.log")
        if log not in self.collect:
            self.collect.append(log)
        script = (f'state=$(cat); status=$(echo "$state" | sed -n \'s/.*"status": *"\\([a-z]*\\)".*/\\1/p\'); '
                  f'echo "{name} $status" >> {log}; sleep {sleep}; exit {exit_code}')
        entry = {"path": "/bin/sh", "args": ["sh", "-c", script]}
        if timeout is not None:
            entry["timeout"] = timeout
        return entry


def shell(config: dict, script: str) -> None:
    config["process"]["args"] = ["sh", "-c", script]


def caps(config: dict, **sets) -> None:
    config["process"]["capabilities"] = sets


def cgroup_mount(config: dict) -> None:
    config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})


def resources(config: dict, script: str, **fields) -> None:
    cgroup_mount(config)
    config["linux"]["resources"] = fields
    shell(config, script)


def namespaces(config: dict, *kinds: str) -> None:
    config["linux"]["namespaces"] = [{"type": t} for t in kinds]


def user_namespace(config: dict, uid: int = 100000, size: int = 65536) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": size}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": uid, "size": size}]
    # sysfs needs the network namespace's owner; without a mapped root the mount is refused
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "sysfs"]


def add_mount(config: dict, **mount) -> None:
    config["mounts"].append(mount)


# -- the cases: (name, change(config, ctx)) ---------------------------------------------------

def c_user(config, ctx):
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 5]}


def c_nobody(config, ctx):
    config["process"]["user"] = {"uid": 65534, "gid": 65534}


def c_umask(config, ctx):
    config["process"]["user"]["umask"] = 0o077
    shell(config, "umask; touch /tmp/f; ls -ln /tmp/f | cut -c1-10")


def c_caps_all_five(config, ctx):
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    names = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_KILL"]
    caps(config, bounding=names, effective=names, permitted=names, inheritable=names,
         ambient=["CAP_NET_BIND_SERVICE", "CAP_KILL"])


def c_caps_empty(config, ctx):
    caps(config)


def c_caps_bounding_only(config, ctx):
    caps(config, bounding=["CAP_CHOWN", "CAP_SYS_ADMIN"])


def c_caps_everything(config, ctx):
    every = list(CAP_NAMES)
    caps(config, bounding=every, effective=every, permitted=every, inheritable=every)


def c_caps_unknown_name(config, ctx):
    caps(config, bounding=["CAP_CHOWN", "CAP_NOT_A_CAP"], effective=["CAP_CHOWN"], permitted=["CAP_CHOWN"])


def c_new_privileges(config, ctx):
    config["process"]["noNewPrivileges"] = False


def c_rlimits(config, ctx):
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 512}, {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}, {"type": "RLIMIT_STACK", "hard": 16777216, "soft": 8388608},
        {"type": "RLIMIT_MEMLOCK", "hard": 65536, "soft": 65536},
    ]


def c_rlimit_bad_type(config, ctx):
    config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}]


def c_hostname_domainname(config, ctx):
    config["hostname"] = "box.example"
    config["domainname"] = "example.test"


def c_env_cwd(config, ctx):
    config["process"]["cwd"] = "/made/by/runtime"
    config["process"]["env"] += ["GREETING=hi there", "EMPTY="]
    shell(config, 'pwd; echo "$GREETING|$EMPTY"; env | sort')


def c_exit_code(config, ctx):
    shell(config, "echo out; echo err >&2; exit 42")


def c_command_not_found(config, ctx):
    config["process"]["args"] = ["no-such-command"]


def c_readonly_root(config, ctx):
    config["root"]["readonly"] = True
    shell(config, "touch /x 2>&1 || echo refused; touch /tmp/y 2>&1 || echo tmp-refused; " + REPORT)


def c_bind_ro(config, ctx):
    add_mount(config, destination="/data", type="bind", source=ctx.host_dir("data", {"f": "content\n"}),
              options=["rbind", "ro"])
    shell(config, "cat /data/f; touch /data/g 2>&1 || echo refused; grep ' /data ' /proc/self/mountinfo")


def c_bind_nosuid_nodev_noexec(config, ctx):
    add_mount(config, destination="/data", type="bind", source=ctx.host_dir("data"),
              options=["bind", "nosuid", "nodev", "noexec"])
    shell(config, "grep ' /data ' /proc/self/mountinfo")


def c_bind_file(config, ctx):
    host = ctx.host_dir("files", {"hosts": "127.0.0.1 bound\n"})
    add_mount(config, destination="/etc/bound-hosts", type="bind", source=host + "/hosts", options=["rbind", "ro"])
    shell(config, "cat /etc/bound-hosts; grep ' /etc/bound-hosts ' /proc/self/mountinfo")


def c_rbind_recursive(config, ctx):
    outer = ctx.host_dir("outer", {"top": "1"})
    inner = ctx.host_dir("outer/inner")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", inner], check=True)
    with open(os.path.join(inner, "deep"), "w") as f:
        f.write("2")
    ctx.unmount.append(inner)
    add_mount(config, destination="/outer", type="bind", source=outer, options=["rbind"])
    add_mount(config, destination="/flat", type="bind", source=outer, options=["bind"])
    shell(config, "cat /outer/inner/deep; echo; ls /flat/inner; grep -E ' /(outer|flat)' /proc/self/mountinfo")


def c_tmpfs_options(config, ctx):
    add_mount(config, destination="/scratch", type="tmpfs", source="tmpfs",
              options=["nosuid", "nodev", "noexec", "size=2m", "mode=1750", "uid=1000", "gid=1000", "nr_inodes=100"])
    shell(config, "ls -lnd /scratch | cut -c1-10; stat -c '%u %g' /scratch; grep ' /scratch ' /proc/self/mountinfo")


def c_tmpfs_ro_noatime(config, ctx):
    add_mount(config, destination="/scratch", type="tmpfs", source="tmpfs", options=["ro", "noatime", "nodiratime"])
    shell(config, "touch /scratch/x 2>&1 || echo refused; grep ' /scratch ' /proc/self/mountinfo")


def c_bind_propagation(kind):
    def change(config, ctx):
        source = ctx.host_dir("shared")
        subprocess.run(["mount", "--bind", "--make-shared", source, source], check=True)
        ctx.unmount.append(source)
        add_mount(config, destination="/prop", type="bind", source=source, options=["rbind", kind])
        shell(config, "grep ' /prop ' /proc/self/mountinfo | sed -E 's/(shared|master):[0-9]+/\\1/g'")
    return change


def c_rootfs_propagation(kind):
    def change(config, ctx):
        config["linux"]["rootfsPropagation"] = kind
        shell(config, "grep ' / / ' /proc/self/mountinfo | sed -E 's/(shared|master):[0-9]+/\\1/g'")
    return change


def c_masked_paths(config, ctx):
    config["linux"]["maskedPaths"] = ["/proc/kcore", "/etc/passwd", "/root", "/does/not/exist"]
    shell(config, "cat /etc/passwd | wc -c; ls -a /root; touch /root/x 2>&1 || echo refused; "
                  "grep -E ' /(etc/passwd|root|proc/kcore) ' /proc/self/mountinfo")


def c_readonly_paths(config, ctx):
    config["linux"]["readonlyPaths"] = ["/proc/sys", "/etc", "/tmp", "/does/not/exist"]
    shell(config, "touch /etc/x 2>&1 || echo etc-refused; touch /tmp/x 2>&1 || echo tmp-refused; "
                  "grep -E ' /(etc|tmp|proc/sys) ' /proc/self/mountinfo")


def c_sysctl(config, ctx):
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536", "net/ipv4/tcp_syncookies": "0"}
    shell(config, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/net/ipv4/tcp_syncookies")


def c_sysctl_host_network(config, ctx):
    namespaces(config, "pid", "ipc", "uts", "mount")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}


def c_sysctl_not_namespaced(config, ctx):
    config["linux"]["sysctl"] = {"vm.swappiness": "10"}


def c_devices(config, ctx):
    config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 5},
        {"path": "/dev/sub/loopish", "type": "b", "major": 7, "minor": 99, "fileMode": 0o600},
    ]
    shell(config, "ls -ln /dev/fuse /dev/sub/loopish | cut -c1-10,15-")


def c_device_fifo(config, ctx):
    config["linux"]["devices"] = [{"path": "/dev/pipe", "type": "p", "fileMode": 0o600},
                                  {"path": "/dev/unbuffered", "type": "u", "major": 1, "minor": 3}]
    shell(config, "ls -ln /dev/pipe /dev/unbuffered | awk '{print $1, $3, $4, $5, $6, $NF}'")


def c_no_namespaces(config, ctx):
    """No namespace at all: the process is chrooted into the rootfs (no /proc there to look at)."""
    namespaces(config)
    del config["hostname"]
    config["mounts"] = []
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    shell(config, "ls /bin/busybox; pwd; ls /proc | wc -l")


def c_masked_without_mount_namespace(config, ctx):
    namespaces(config, "pid", "network", "ipc", "uts")


def c_hostname_without_uts(config, ctx):
    namespaces(config, "pid", "network", "ipc", "mount")


def c_device_cgroup(config, ctx):
    config["linux"]["resources"] = {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]}
    shell(config, "echo x > /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null 2>&1 || echo zero-refused")


def c_cgroup_memory(config, ctx):
    resources(config, "cd /sys/fs/cgroup/memory; cat memory.limit_in_bytes memory.soft_limit_in_bytes "
                      "memory.memsw.limit_in_bytes memory.swappiness 2>&1",
              memory={"limit": 67108864, "reservation": 33554432, "swap": 134217728, "swappiness": 10})


def c_cgroup_cpu(config, ctx):
    resources(config, "cd /sys/fs/cgroup; cat cpu/cpu.shares cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us "
                      "cpuset/cpuset.cpus cpuset/cpuset.mems",
              cpu={"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"})


def c_cgroup_pids(config, ctx):
    resources(config, "cat /sys/fs/cgroup/pids/pids.max", pids={"limit": 42})


def c_cgroup_blkio(config, ctx):
    resources(config, "cd /sys/fs/cgroup/blkio; cat blkio.weight 2>/dev/null || cat blkio.bfq.weight",
              blockIO={"weight": 300})


def c_cgroup_memory_more(config, ctx):
    resources(config, "cd /sys/fs/cgroup/memory; cat memory.kmem.tcp.limit_in_bytes memory.oom_control "
                      "memory.use_hierarchy memory.kmem.limit_in_bytes",
              memory={"limit": 67108864, "kernelTCP": 16777216, "kernel": 33554432, "disableOOMKiller": True,
                      "useHierarchy": True})


def c_cgroup_cpu_more(config, ctx):
    resources(config, "cd /sys/fs/cgroup/cpu; cat cpu.idle cpu.cfs_burst_us cpu.rt_runtime_us",
              cpu={"quota": 20000, "period": 100000, "burst": 10000, "idle": 1})


def c_cgroup_blkio_throttle(config, ctx):
    device = os.stat("/dev/vda").st_rdev  # this VM's disk
    major, minor = os.major(device), os.minor(device)
    resources(config, "cd /sys/fs/cgroup/blkio; cat blkio.throttle.read_bps_device blkio.throttle.write_iops_device",
              blockIO={"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                       "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]})


def c_cgroup_hugetlb(config, ctx):
    resources(config, "ls /sys/fs/cgroup", hugepageLimits=[{"pageSize": "2MB", "limit": 4194304}])


def c_cgroup_network(config, ctx):
    resources(config, "ls /sys/fs/cgroup", network={"classID": 1048577, "priorities": [{"name": "lo", "priority": 3}]})


def c_cgroup_unified(config, ctx):
    resources(config, "ls /sys/fs/cgroup", unified={"pids.max": "10"})


def c_cgroup_rdma(config, ctx):
    resources(config, "ls /sys/fs/cgroup", rdma={"mlx5_0": {"hcaHandles": 3}})


def c_cgroup_pids_unlimited(config, ctx):
    resources(config, "cat /sys/fs/cgroup/pids/pids.max", pids={"limit": -1})


def c_cgroup_mount_layout(config, ctx):
    cgroup_mount(config)
    shell(config, "ls /sys/fs/cgroup; grep ' /sys/fs/cgroup' /proc/self/mountinfo | "
                  "sed -E 's|/[^ ]*berth-conformance/[^ ]*|<cgroup>|'")


def c_oom_score_adj(config, ctx):
    config["process"]["oomScoreAdj"] = 500


def c_host_pid_namespace(config, ctx):
    namespaces(config, "network", "ipc", "uts", "mount")
    host = os.readlink("/proc/self/ns/pid")
    shell(config, f'[ "$(readlink /proc/self/ns/pid)" = "{host}" ] && echo host-pid')


def c_cgroup_namespace(config, ctx):
    config["linux"]["namespaces"].append({"type": "cgroup"})
    shell(config, "cat /proc/self/cgroup | sort")


def c_join_network_by_path(config, ctx):
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    ctx.processes.append(holder)
    wanted = _wait_ns(holder.pid, "net")
    namespaces(config, "pid", "ipc", "uts", "mount")
    config["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
    shell(config, f'[ "$(readlink /proc/self/ns/net)" = "{wanted}" ] && echo joined')


def c_join_bad_path(config, ctx):
    config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
        {"type": "network", "path": "/proc/self/ns/does-not-exist"}]


def c_userns(config, ctx):
    user_namespace(config)
    shell(config, "cat /proc/self/uid_map /proc/self/gid_map; id; " + REPORT)


def c_userns_user(config, ctx):
    user_namespace(config)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    shell(config, "id; grep -E '^(Cap|Uid|Gid)' /proc/self/status; cat /proc/self/uid_map")


def c_hooks_all(config, ctx):
    config["hooks"] = {kind: [ctx.hook(f"{kind}-{i}") for i in range(2)]
                       for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                                    "poststart", "poststop")}
    shell(config, "echo ran")


def c_hook_fails(config, ctx):
    config["hooks"] = {"prestart": [ctx.hook("prestart", exit_code=3)], "poststop": [ctx.hook("poststop")]}


def c_hook_timeout(config, ctx):
    config["hooks"] = {"createRuntime": [ctx.hook("createRuntime", timeout=1, sleep=30)]}


def c_seccomp_errno(config, ctx):
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                                "errnoRet": 13}]}
    shell(config, "mkdir /tmp/d 2>&1; grep Seccomp: /proc/self/status")


def c_seccomp_kill(config, ctx):
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL"}]}
    shell(config, "echo before; exec cat /proc/self/status >/dev/null")


def c_seccomp_denies_close_range(config, ctx):
    config["process"]["noNewPrivileges"] = False  # the filter goes in before the runtime's last steps
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]}
    shell(config, "ls /proc/self/fd | wc -l")


def _seccomp_agent(ctx) -> str:
    """A seccomp agent at agent.sock: writes what it is sent (the JSON, normalised, and what the
    fd is) to agent.log, then closes the listener, so a notified syscall fails with ENOSYS."""
    path = ctx.path("agent.sock")
    log = ctx.path("agent.log")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(30)

    def serve():
        with server:
            connection, _ = server.accept()
            with connection:
                data, ancillary, _, _ = connection.recvmsg(65536, socket.CMSG_SPACE(16))
            fds = [int.from_bytes(a[2][i:i + 4], "little") for a in ancillary for i in range(0, len(a[2]), 4)]
            message = json.loads(data)
            kinds = [os.readlink(f"/proc/self/fd/{fd}") for fd in fds]
            for fd in fds:
                os.close(fd)
            state = message["state"]
            record = {"keys": sorted(message), "fds": message["fds"], "metadata": message["metadata"],
                      "pid-is-state-pid": message["pid"] == state["pid"], "state-keys": sorted(state),
                      "status": state["status"], "id-set": bool(state["id"]), "sent": kinds}
            with open(log, "w") as f:
                json.dump(record, f, sort_keys=True)

    threading.Thread(target=serve, daemon=True).start()
    ctx.collect.append(log)
    return path


def c_seccomp_notify(config, ctx):
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": _seccomp_agent(ctx),
                                  "listenerMetadata": "berth-test",
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    shell(config, "mkdir /tmp/notified 2>&1; ls /tmp")


def c_seccomp_notify_without_listener(config, ctx):
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}


def c_apparmor(config, ctx):
    config["process"]["apparmorProfile"] = "docker-default"


def c_selinux(config, ctx):
    config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"


def c_unknown_fields(config, ctx):
    config["somethingNew"] = {"x": 1}
    config["process"]["futureField"] = True
    config["linux"]["futureLinux"] = [1, 2]


def c_spec_version(version):
    def change(config, ctx):
        config["ociVersion"] = version
    return change


def c_mount_symlink_escape(config, ctx):
    outside = ctx.host_dir("outside")
    ctx.rootfs_symlinks.append(("escape", outside))  # an absolute symlink in the rootfs
    add_mount(config, destination="/escape/inner", type="tmpfs", source="tmpfs", options=["size=1m"])
    shell(config, "ls -la / | grep -c escape; grep ' /outside/inner\\| /escape' /proc/self/mountinfo | "
                  "awk '{print $5, $9}'")
    ctx.collect.append(outside)


def c_mount_relative_escape(config, ctx):
    add_mount(config, destination="/../../../../tmp/conformance-escape", type="tmpfs", source="tmpfs")
    shell(config, "grep conformance-escape /proc/self/mountinfo | awk '{print $5}'")


def c_proc_on_symlink(config, ctx):
    ctx.rootfs_symlinks.append(("newproc", "/tmp"))
    add_mount(config, destination="/newproc", type="proc", source="proc")


def c_terminal_console_size(config, ctx):
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 101}
    ctx.console = True
    shell(config, "stty size; tty; ls -l /dev/console 2>&1 | cut -c1; echo $TERM")


def c_terminal_default_size(config, ctx):
    config["process"]["terminal"] = True
    ctx.console = True
    shell(config, "stty size; [ -t 0 ] && [ -t 1 ] && echo tty")


def c_terminal_without_socket(config, ctx):
    config["process"]["terminal"] = True


def c_no_mount_namespace_bad(config, ctx):
    del config["process"]["args"]


def c_empty_args(config, ctx):
    config["process"]["args"] = []


def c_mount_missing_source(config, ctx):
    add_mount(config, destination="/nothing", type="bind", source=ctx.path("no-such-dir"), options=["rbind"])


def c_malformed_json(config, ctx):
    ctx.raw_config = '{"ociVersion": "1.0.2", "process": {'


def c_config_not_an_object(config, ctx):
    ctx.raw_config = '["not", "an", "object"]'


def c_no_config(config, ctx):
    ctx.raw_config = None


def c_userns_devices(config, ctx):
    user_namespace(config)
    config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]
    shell(config, "ls -ln /dev | awk '{print $1, $5, $6, $NF}'; head -c 4 /dev/zero | wc -c; echo x > /dev/null")


def c_userns_sysfs(config, ctx):
    user_namespace(config)
    config["mounts"].append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                             "options": ["nosuid", "noexec", "nodev", "ro"]})
    shell(config, "grep ' /sys ' /proc/self/mountinfo; ls /sys | head -3")


def c_userns_mapping_without_namespace(config, ctx):
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def c_mqueue_and_shm(config, ctx):
    shell(config, "grep -E ' /dev/(shm|mqueue) ' /proc/self/mountinfo; ipcs -m | tail -n +2 | wc -l")


def c_mount_nosymfollow(config, ctx):
    add_mount(config, destination="/data", type="bind", source=ctx.host_dir("data"),
              options=["rbind", "nosymfollow"])
    shell(config, "grep ' /data ' /proc/self/mountinfo")


def c_recursive_readonly(config, ctx):
    outer = ctx.host_dir("outer")
    inner = ctx.host_dir("outer/inner")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", inner], check=True)
    ctx.unmount.append(inner)
    add_mount(config, destination="/outer", type="bind", source=outer, options=["rbind", "rro", "rnosuid"])
    shell(config, "touch /outer/inner/x 2>/dev/null || echo refused; grep ' /outer/inner ' /proc/self/mountinfo | "
                  "awk '{print $6}'")


def c_tmpcopyup(config, ctx):
    add_mount(config, destination="/etc", type="tmpfs", source="tmpfs", options=["tmpcopyup", "size=1m"])
    shell(config, "grep -c root /etc/passwd; grep ' /etc ' /proc/self/mountinfo | awk '{print $9}'")


CASES = [
    ("default", lambda config, ctx: None),
    ("user-and-groups", c_user),
    ("user-nobody", c_nobody),
    ("umask", c_umask),
    ("caps-all-five-with-ambient", c_caps_all_five),
    ("caps-empty", c_caps_empty),
    ("caps-bounding-only", c_caps_bounding_only),
    ("caps-everything", c_caps_everything),
    ("caps-unknown-name", c_caps_unknown_name),
    ("new-privileges-allowed", c_new_privileges),
    ("rlimits", c_rlimits),
    ("rlimit-bad-type", c_rlimit_bad_type),
    ("hostname-domainname", c_hostname_domainname),
    ("env-and-missing-cwd", c_env_cwd),
    ("exit-code-and-stderr", c_exit_code),
    ("command-not-found", c_command_not_found),
    ("readonly-root", c_readonly_root),
    ("bind-ro", c_bind_ro),
    ("bind-nosuid-nodev-noexec", c_bind_nosuid_nodev_noexec),
    ("bind-file", c_bind_file),
    ("rbind-vs-bind", c_rbind_recursive),
    ("tmpfs-options", c_tmpfs_options),
    ("tmpfs-ro-noatime", c_tmpfs_ro_noatime),
    ("bind-private", c_bind_propagation("private")),
    ("bind-rslave", c_bind_propagation("rslave")),
    ("bind-rshared", c_bind_propagation("rshared")),
    ("bind-unbindable", c_bind_propagation("unbindable")),
    ("rootfs-private", c_rootfs_propagation("private")),
    ("rootfs-rslave", c_rootfs_propagation("rslave")),
    ("rootfs-shared", c_rootfs_propagation("shared")),
    ("masked-paths", c_masked_paths),
    ("readonly-paths", c_readonly_paths),
    ("sysctl", c_sysctl),
    ("sysctl-host-network-refused", c_sysctl_host_network),
    ("sysctl-not-namespaced-refused", c_sysctl_not_namespaced),
    ("devices", c_devices),
    ("device-cgroup-rules", c_device_cgroup),
    ("device-fifo-and-unbuffered", c_device_fifo),
    ("hostname-without-uts-namespace", c_hostname_without_uts),
    ("masked-paths-without-mount-namespace", c_masked_without_mount_namespace),
    ("cgroup-memory", c_cgroup_memory),
    ("cgroup-cpu-cpuset", c_cgroup_cpu),
    ("cgroup-pids", c_cgroup_pids),
    ("cgroup-blkio", c_cgroup_blkio),
    ("cgroup-mount-layout", c_cgroup_mount_layout),
    ("cgroup-memory-kernel-tcp-oom", c_cgroup_memory_more),
    ("cgroup-cpu-idle-burst", c_cgroup_cpu_more),
    ("cgroup-blkio-throttle", c_cgroup_blkio_throttle),
    ("cgroup-hugetlb-unmounted", c_cgroup_hugetlb),
    ("cgroup-network-unmounted", c_cgroup_network),
    ("cgroup-unified-on-hybrid", c_cgroup_unified),
    ("cgroup-rdma-unmounted", c_cgroup_rdma),
    ("cgroup-pids-unlimited", c_cgroup_pids_unlimited),
    ("oom-score-adj", c_oom_score_adj),
    ("host-pid-namespace", c_host_pid_namespace),
    ("cgroup-namespace", c_cgroup_namespace),
    ("join-network-by-path", c_join_network_by_path),
    ("join-bad-path", c_join_bad_path),
    ("user-namespace-root", c_userns),
    ("user-namespace-user", c_userns_user),
    ("hooks-all-six", c_hooks_all),
    ("hook-fails", c_hook_fails),
    ("hook-timeout", c_hook_timeout),
    ("seccomp-errno", c_seccomp_errno),
    ("seccomp-kill", c_seccomp_kill),
    ("seccomp-notify-agent", c_seccomp_notify),
    ("seccomp-notify-without-listener", c_seccomp_notify_without_listener),
    ("seccomp-denies-close-range", c_seccomp_denies_close_range),
    ("apparmor-without-apparmor", c_apparmor),
    ("selinux-without-selinux", c_selinux),
    ("unknown-fields", c_unknown_fields),
    ("spec-version-1.0.0", c_spec_version("1.0.0")),
    ("spec-version-2.0.0", c_spec_version("2.0.0")),
    ("spec-version-garbage", c_spec_version("not-a-version")),
    ("mount-symlink-escape", c_mount_symlink_escape),
    ("mount-dotdot-escape", c_mount_relative_escape),
    ("proc-on-symlink", c_proc_on_symlink),
    ("terminal-without-console-socket", c_terminal_without_socket),
    ("terminal-console-size", c_terminal_console_size),
    ("terminal-default-size", c_terminal_default_size),
    ("no-process-args", c_no_mount_namespace_bad),
    ("empty-args", c_empty_args),
    ("bind-missing-source", c_mount_missing_source),
    ("mqueue-and-shm", c_mqueue_and_shm),
    ("mount-nosymfollow", c_mount_nosymfollow),
    ("mount-recursive-readonly", c_recursive_readonly),
    ("tmpfs-tmpcopyup", c_tmpcopyup),
    ("malformed-json", c_malformed_json),
    ("config-not-an-object", c_config_not_an_object),
    ("no-config", c_no_config),
    ("user-namespace-devices", c_userns_devices),
    ("user-namespace-sysfs", c_userns_sysfs),
    ("mappings-without-user-namespace", c_userns_mapping_without_namespace),
]

with open("/proc/sys/kernel/cap_last_cap") as _f:
    _last = int(_f.read())
CAP_NAMES = [name for name in (
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID "
    "CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW "
    "CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT "
    "CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD "
    "CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG "
    "CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE").split()[:_last + 1]]


def _wait_ns(pid: int, kind: str) -> str:
    """The namespace link of `pid` once `unshare` has made its own (it starts in ours)."""
    from conftest import wait_for

    ours = os.readlink(f"/proc/self/ns/{kind}")
    return wait_for(lambda: (link := os.readlink(f"/proc/{pid}/ns/{kind}")) != ours and link,
                    what=f"{pid} to unshare its {kind} namespace")


class Side:
    """One runtime running one case: its bundle, state root and cgroup, and the cleanup."""

    def __init__(self, name: str, binary: str, base: str, busybox_tar: str):
        self.name = name
        self.binary = binary
        self.dir = os.path.join(base, name)
        self.bundle = os.path.join(self.dir, "bundle")
        self.state_root = os.path.join(self.dir, "state")
        self.ctx = Ctx(self.dir)
        self.ctx.unmount = []
        self.ctx.processes = []
        self.ctx.rootfs_symlinks = []
        self.ctx.raw_config = ""
        self.ctx.console = False
        self.console_output = b""
        self.id = "conf-" + uuid.uuid4().hex[:10]
        self.cgroup = f"/{CGROUP_PARENT}/{self.id}"
        os.makedirs(os.path.join(self.bundle, "rootfs"))
        subprocess.run(["tar", "-xf", busybox_tar, "-C", os.path.join(self.bundle, "rootfs")], check=True)

    def prepare(self, change) -> None:
        config = base_config()
        config["linux"]["cgroupsPath"] = self.cgroup
        change(config, self.ctx)
        for name, target in self.ctx.rootfs_symlinks:
            os.symlink(target, os.path.join(self.bundle, "rootfs", name))
        if self.ctx.raw_config is None:
            return
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            if self.ctx.raw_config:
                f.write(self.ctx.raw_config)
            else:
                json.dump(config, f, indent=1)

    def run(self) -> subprocess.CompletedProcess:
        command = [self.binary, "--root", self.state_root, "run", "-b", self.bundle, self.id]
        if not self.ctx.console:
            return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
        # runc's --console-socket protocol: the pty master arrives by SCM_RIGHTS; what the
        # container writes to its terminal is read from it until the last slave closes (EIO)
        path = os.path.join(self.dir, "console.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        reader = threading.Thread(target=self._read_console, args=(server,), daemon=True)
        reader.start()
        try:  # runc takes a console socket only detached: the exit code is not compared here
            result = subprocess.run(command[:-1] + ["-d", "--console-socket", path, self.id], capture_output=True,
                                    text=True, stdin=subprocess.DEVNULL, timeout=60)
            reader.join(20)
        finally:
            server.close()
        if result.returncode == 0:
            subprocess.run([self.binary, "--root", self.state_root, "delete", "-f", self.id], capture_output=True)
        result.stdout = self.console_output.decode(errors="replace").replace("\r\n", "\n")
        return result

    def _read_console(self, server) -> None:
        server.settimeout(30)
        connection, _ = server.accept()
        with connection:
            _, ancillary, _, _ = connection.recvmsg(1, socket.CMSG_SPACE(4))
        master = int.from_bytes(ancillary[0][2][:4], "little")
        try:
            while chunk := os.read(master, 4096):
                self.console_output += chunk
        except OSError:  # EIO: every slave closed
            pass
        finally:
            os.close(master)

    def observed(self, result: subprocess.CompletedProcess) -> dict:
        collected = {}
        for path in self.ctx.collect:
            if os.path.isdir(path):
                collected[os.path.basename(path)] = sorted(os.listdir(path))
            elif os.path.exists(path):
                with open(path) as f:
                    collected[os.path.basename(path)] = f.read()
        return {"exit": result.returncode, "stdout": normalise(result.stdout, self), "collected": collected}

    def leftovers(self) -> list[str]:
        left = []
        if os.path.isdir(os.path.join(self.state_root, self.id)):
            left.append(f"state dir of {self.id}")
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            if os.path.isdir(f"/sys/fs/cgroup/{hierarchy}/{CGROUP_PARENT}/{self.id}"):
                left.append(f"cgroup {hierarchy}/{CGROUP_PARENT}/{self.id}")
        with open("/proc/self/mountinfo") as f:
            left += [f"mount {line.split()[4]}" for line in f
                     if line.split()[4].startswith(self.bundle) and line.split()[4] not in self.ctx.unmount]
        return left

    def cleanup(self) -> None:
        if os.path.isdir(os.path.join(self.state_root, self.id)):
            subprocess.run([self.binary, "--root", self.state_root, "delete", "-f", self.id], capture_output=True)
        for process in self.ctx.processes:
            process.kill()
            process.wait()
        for path in reversed(self.ctx.unmount):
            subprocess.run(["umount", "-l", path], capture_output=True)
        with open("/proc/self/mountinfo") as f:
            stray = [line.split()[4] for line in f if line.split()[4].startswith(self.dir)]
        for path in reversed(stray):
            subprocess.run(["umount", "-l", path], capture_output=True)
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            for path in (f"/sys/fs/cgroup/{hierarchy}/{CGROUP_PARENT}/{self.id}",):
                try:
                    os.rmdir(path)
                except OSError:
                    pass


def normalise(text: str, side: Side) -> str:
    """What legitimately differs between two runs: their paths, ids and mount numbers."""
    text = text.replace(side.dir, "<dir>").replace(side.id, "<id>")
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 6 and "-" in fields and re.fullmatch(r"\d+ \d+ \d+:\d+", " ".join(fields[:3])):
            # mountinfo: drop mount/parent ids and device numbers; keep propagation kinds, not peer groups
            dash = fields.index("-")
            tags = " ".join(re.sub(r":\d+", "", tag) for tag in fields[6:dash])
            line = " ".join([fields[3], fields[4], fields[5], tags, "-", *fields[dash + 1:]])
        out.append(line)
    return "\n".join(out)


@pytest.fixture(scope="module", autouse=True)
def cgroup_parent():
    """Both runtimes leave the parent of the cgroups they made (runc does): removed at the end."""
    yield
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        try:
            os.rmdir(f"/sys/fs/cgroup/{hierarchy}/{CGROUP_PARENT}")
        except OSError:
            pass


@pytest.fixture
def sides(busybox_tar):
    # its own directory, traversable by anyone: a user namespace's root is nobody on the host
    base = tempfile.mkdtemp(prefix="berth-conformance-")
    os.chmod(base, 0o755)
    made = []
    try:
        made = [Side("runc", RUNC, base, busybox_tar), Side("berth", runtime_binary(), base, busybox_tar)]
        yield made
    finally:
        for side in made:
            side.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def _capeff(observed: dict) -> int:
    return int(re.search(r"CapEff:\t([0-9a-f]+)", observed["stdout"]).group(1), 16)


def _refused(observed: dict, err: str, says: str) -> None:
    assert observed["exit"] == 1 and says in err and len(err.strip().splitlines()) == 1, (observed, err)


# Where runc 1.1 (this host's) and berth-runtime knowingly differ: why, and what berth-runtime shows.
DIFFERENCES = {
    "caps-everything": (
        "runc refuses caps the host withholds (CAP_SYS_RESOURCE here); berth grants those it holds, so "
        "`--privileged` works in such a sandbox",
        lambda runc, berth, err: berth["exit"] == 0 and _capeff(berth) == int(open("/proc/self/status").read()
                                                                              .split("CapEff:\t")[1][:16], 16)),
    "hostname-domainname": (
        "runc 1.1.5 leaves domainname unset; the spec (and runc 1.2) set it",
        lambda runc, berth, err: "box.example\nexample.test" in berth["stdout"]),
    "hooks-all-six": (
        "runc 1.1 runs poststart during create (state \"created\", fixed in runc 1.2); berth-runtime after start",
        lambda runc, berth, err: berth["collected"]["hooks.log"] == runc["collected"]["hooks.log"].replace(
            "poststart-0 created\npoststart-1 created", "poststart-0 running\npoststart-1 running")),
    "cgroup-cpu-idle-burst": (
        "runc 1.1 ignores cpu.idle and cpu.burst (runc 1.2 sets them); berth-runtime sets them",
        lambda runc, berth, err: berth["exit"] == 0 and berth["stdout"].split("\n")[:2] == ["1", "10000"]),
    "spec-version-2.0.0": (
        "runc 1.1 runs any ociVersion; berth-runtime refuses a major version it does not implement",
        lambda runc, berth, err: _refused(berth, err, "unsupported spec version") is None),
    "spec-version-garbage": (
        "as spec-version-2.0.0",
        lambda runc, berth, err: _refused(berth, err, "unsupported spec version") is None),
}


@pytest.mark.parametrize("change", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_same_result_as_runc(request, sides, change):
    results = {}
    for side in sides:
        side.prepare(change)
        result = side.run()
        results[side.name] = (side.observed(result), result.stderr, side.leftovers())
    (runc, runc_err, runc_left), (berth, berth_err, berth_left) = results["runc"], results["berth"]
    # runc's own leftovers are cleaned up, not judged (without a mount namespace it leaves its
    # rootfs bind mounted on the host); berth-runtime must leave nothing
    assert berth_left == [], f"berth-runtime left {berth_left} (runc left {runc_left})"
    assert "Traceback" not in berth_err, berth_err
    difference = DIFFERENCES.get(request.node.callspec.id)
    if difference:
        assert difference[1](runc, berth, berth_err), f"{difference[0]}:\nrunc: {runc}\nberth: {berth}\n{berth_err}"
        return
    if "level=error" in runc_err:  # runc refused: berth-runtime too, with the same code, one line saying why
        assert berth["exit"] == runc["exit"], f"runc: {runc_err}\nberth: {berth_err}"
        assert berth_err.strip() and len(berth_err.strip().splitlines()) == 1, berth_err
        return
    if berth != runc:
        import difflib

        diff = "\n".join(difflib.unified_diff(json.dumps(runc, indent=1).replace("\\n", "\n").splitlines(),
                                             json.dumps(berth, indent=1).replace("\\n", "\n").splitlines(),
                                             "runc", "berth-runtime", lineterm=""))
        pytest.fail(f"berth-runtime differs from runc:\n{diff}\nrunc stderr: {runc_err}\nberth stderr: {berth_err}")


# -- what runc 1.1 does not know: berth-runtime alone, against what the kernel shows ---------------

def b_personality(config, ctx):
    config["linux"]["personality"] = {"domain": "LINUX32"}
    shell(config, "uname -m")


def b_io_priority(config, ctx):
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    shell(config, "ionice -p $$")


def b_scheduler(config, ctx):
    config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    shell(config, "cut -d' ' -f19 /proc/self/stat; grep -E '^policy' /proc/self/sched | tr -s ' '")


def b_idmapped_mount(config, ctx):
    data = ctx.host_dir("idmapped", {"f": "x"})
    os.chown(os.path.join(data, "f"), 1000, 1000)
    add_mount(config, destination="/idmapped", type="bind", source=data, options=["rbind"],
              uidMappings=[{"containerID": 1000, "hostID": 5000, "size": 1}],
              gidMappings=[{"containerID": 1000, "hostID": 6000, "size": 1}])
    shell(config, "stat -c '%u %g' /idmapped/f; grep ' /idmapped ' /proc/self/mountinfo | awk '{print $6}'")


def b_idmapped_tmpfs_refused(config, ctx):
    add_mount(config, destination="/idmapped", type="tmpfs", source="tmpfs",
              uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
              gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])


def b_apparmor_refused(config, ctx):
    config["process"]["apparmorProfile"] = "docker-default"


def b_unknown_scheduler_refused(config, ctx):
    config["process"]["scheduler"] = {"policy": "SCHED_SOMETIMES"}


BERTH_ONLY = [
    # runc 1.1.5 chroots too, but then fails "error closing exec fds: open /proc/self/fd" more
    # often than not (the rootfs has no /proc mounted without a mount namespace)
    ("no-namespaces-chroot", c_no_namespaces, 0,
     "/bin/busybox\n/\n0\n"),
    ("personality-linux32", b_personality, 0, "i686\n"),
    ("io-priority-idle", b_io_priority, 0, "idle\n"),
    ("scheduler-batch-nice", b_scheduler, 0, "5\npolicy : 3\n"),
    ("idmapped-mount", b_idmapped_mount, 0, "5000 6000\nrw,relatime,idmapped\n"),
    ("idmapped-tmpfs-refused", b_idmapped_tmpfs_refused, 1, "idmapped mounts are only supported for bind mounts"),
    ("apparmor-refused", b_apparmor_refused, 1, "AppArmor is not enabled on this host"),
    ("scheduler-unknown-refused", b_unknown_scheduler_refused, 1, "invalid scheduler policy"),
]


@pytest.mark.parametrize("change,code,wanted", [case[1:] for case in BERTH_ONLY], ids=[case[0] for case in BERTH_ONLY])
def test_berth_runtime_alone(sides, change, code, wanted):
    side = sides[1]
    side.prepare(change)
    result = side.run()
    assert side.leftovers() == []
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    if code:
        assert wanted in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    else:
        assert result.stdout == wanted, result.stderr
