"""berth.runtime.seccomp against the real kernel: a forked child loads a compiled profile
and reports what its syscalls return (docker's default profile for docker's default
capabilities, and small profiles for the actions and conditions)."""

import ctypes
import errno
import json
import os
import platform
import signal

import pytest

from berth.engine import security
from berth.runtime import seccomp
from berth.runtime.caps import DEFAULT_CAPS
from conftest import collect_child

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="architecture: the syscall numbers below are x86_64's")

NR = {"unshare": 272, "keyctl": 250, "add_key": 248, "reboot": 169, "personality": 135, "ptrace": 101,
      "mount": 165, "getppid": 110, "getpid": 39, "kexec_load": 246, "bpf": 321, "socket": 41,
      "clone3": 435, "chroot": 161, "acct": 163, "getpriority": 140}
CLONE_NEWUSER = 0x10000000
PTRACE_PEEKUSER = 3
AF_INET, AF_VSOCK, SOCK_STREAM = 2, 40, 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def call(name: str, *args) -> int:
    """The syscall's errno (0 on success)."""
    ctypes.set_errno(0)
    result = _libc.syscall(ctypes.c_long(NR[name]), *(ctypes.c_long(a) for a in args))
    return ctypes.get_errno() if result == -1 else 0


def in_child(program: seccomp.Program, body) -> tuple[int, dict | None]:
    """Fork, load `program` in the child, run `body()` there; (wait status, what body returned)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_fd)
            seccomp.load(program)
            os.write(write_fd, json.dumps(body()).encode())
        except BaseException as err:  # noqa: BLE001 - report anything to the parent
            os.write(write_fd, json.dumps({"error": repr(err)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    return status, json.loads(data) if data else None


@pytest.fixture(scope="module")
def default_program(tmp_path_factory) -> seccomp.Program:
    section = security.oci_seccomp(security.default_seccomp_profile(), list(DEFAULT_CAPS))
    return seccomp.prepare(section, str(tmp_path_factory.mktemp("seccomp-cache")))


def test_default_profile_blocks_what_docker_blocks(default_program):
    def probe():
        return {
            "unshare_user": call("unshare", CLONE_NEWUSER),
            "keyctl": call("keyctl", 0, 0, 0, 0),
            "add_key": call("add_key", 0, 0, 0, 0, 0),
            # bad magic: unfiltered root would get EINVAL, never a reboot
            "reboot": call("reboot", 0, 0, 0, 0),
            "kexec_load": call("kexec_load", 0, 0, 0, 0),
            "bpf": call("bpf", 0, 0, 0),
            "mount": call("mount", 0, 0, 0, 0, 0),
            "chroot": call("chroot", 0),  # CAP_SYS_CHROOT is a default cap: allowed (EFAULT on NULL)
            "acct": call("acct", 0),
            "personality_bad": call("personality", 0x0040000),  # ADDR_NO_RANDOMIZE: not in docker's list
            "personality_query": call("personality", 0xFFFFFFFF),
            "vsock": call("socket", AF_VSOCK, SOCK_STREAM, 0),
        }

    status, seen = in_child(default_program, probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, seen
    assert seen == {
        "unshare_user": errno.EPERM, "keyctl": errno.EPERM, "add_key": errno.EPERM, "reboot": errno.EPERM,
        "kexec_load": errno.EPERM, "bpf": errno.EPERM, "mount": errno.EPERM, "chroot": errno.EFAULT,
        "acct": errno.EPERM, "personality_bad": errno.EPERM, "personality_query": 0, "vsock": errno.EPERM,
    }


def test_default_profile_allows_ordinary_work(default_program, tmp_path):
    target = tmp_path / "file"

    def probe():
        import socket
        import threading

        with open(target, "w") as f:
            f.write("written")
        with open(target) as f:
            content = f.read()
        ran = []
        thread = threading.Thread(target=lambda: ran.append(True))  # clone3 -> ENOSYS, glibc falls back to clone
        thread.start()
        thread.join()
        child = os.fork()
        if child == 0:
            os._exit(7)
        _, status = os.waitpid(child, 0)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM):
            pass
        return {
            "content": content, "thread": ran, "fork": os.waitstatus_to_exitcode(status),
            "clone3": call("clone3", 0, 0),
            # ptrace is allowed on kernels >= 4.8: a missing pid gives ESRCH, not EPERM
            "ptrace": call("ptrace", PTRACE_PEEKUSER, 0x7FFFFFFF, 0, 0),
            "getpid": os.getpid() > 0,
        }

    status, seen = in_child(default_program, probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, seen
    assert seen == {"content": "written", "thread": [True], "fork": 7, "clone3": errno.ENOSYS,
                    "ptrace": errno.ESRCH, "getpid": True}


def test_cap_sys_admin_opens_what_it_covers(tmp_path):
    caps = [*DEFAULT_CAPS, "CAP_SYS_ADMIN"]
    section = security.oci_seccomp(security.default_seccomp_profile(), caps)
    program = seccomp.prepare(section, str(tmp_path))

    def probe():
        # NULL pointers: the filter lets the syscall through, the kernel then refuses the arguments
        return {"mount": call("mount", 0, 0, 0, 0, 0), "bpf": call("bpf", 0x7FFF, 0, 0),
                "clone3": call("clone3", 0, 0)}

    status, seen = in_child(program, probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, seen
    assert seen["mount"] in (errno.EFAULT, errno.ENOENT, errno.EINVAL), seen
    assert seen["bpf"] == errno.EINVAL and seen["clone3"] == errno.EINVAL, seen


def test_kill_action_kills_with_sigsys(tmp_path):
    section = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL"}]}
    program = seccomp.prepare(section, str(tmp_path))

    def probe():
        os.getppid()
        return {"survived": True}

    status, seen = in_child(program, probe)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, (status, seen)
    assert seen is None


def test_errno_ret_and_argument_conditions(tmp_path):
    section = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [
                   {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EHOSTDOWN},
                   # two conditions on one argument: separate rules, OR'ed (runc)
                   {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                             {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
                   {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EAFNOSUPPORT,
                    "args": [{"index": 0, "value": 0xF0, "valueTwo": 0x20, "op": "SCMP_CMP_MASKED_EQ"}]},
                   {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GE"}]},
               ]}
    program = seccomp.prepare(section, str(tmp_path))

    def probe():
        return {"getppid": call("getppid"),
                "personality_1": call("personality", 1), "personality_2": call("personality", 2),
                "socket_0x2a": call("socket", 0x2A, 0, 0),
                "getpriority_0": call("getpriority", 0, 0), "getpriority_9": call("getpriority", 9, 0)}

    status, seen = in_child(program, probe)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, seen
    assert seen["getppid"] == errno.EHOSTDOWN
    assert seen["personality_1"] == seen["personality_2"] == errno.EPERM
    assert seen["socket_0x2a"] == errno.EAFNOSUPPORT
    assert seen["getpriority_0"] == 0 and seen["getpriority_9"] == errno.EPERM  # unfiltered 9 would be EINVAL


def test_trap_action_raises_sigsys(tmp_path):
    section = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}]}
    program = seccomp.prepare(section, str(tmp_path))
    status, _ = in_child(program, lambda: os.getppid())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_filter_survives_exec(default_program):
    """The container's command runs under the filter pid 1 loaded."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(write_fd, 1)
            seccomp.load(default_program)
            os.execv("/bin/sh", ["sh", "-c", "grep -E '^Seccomp(_filters)?:' /proc/self/status; "
                                              "busybox unshare -U true 2>/dev/null; echo unshare=$?"])
        finally:
            os._exit(127)
    os.close(write_fd)
    text = collect_child(read_fd, pid)[0].decode()
    assert "Seccomp:\t2" in text
    assert "unshare=0" not in text, text


def test_cache_is_reused_and_a_torn_file_recompiled(tmp_path):
    section = {"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}
    first = seccomp.prepare(section, str(tmp_path))
    path = tmp_path / (seccomp.cache_key(section) + ".bpf")
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    again = seccomp.prepare(section, str(tmp_path))
    assert again.bpf == first.bpf and again.flags == first.flags
    path.write_bytes(path.read_bytes()[:20])  # torn
    assert seccomp.prepare(section, str(tmp_path)).bpf == first.bpf
    assert path.read_bytes()[12:] == first.bpf
    other = {**section, "defaultErrnoRet": 13}
    assert seccomp.cache_key(other) != seccomp.cache_key(section)


def test_unconfined_and_privileged_get_no_section():
    caps = list(DEFAULT_CAPS)
    assert security.container_seccomp(["seccomp=unconfined"], caps) is None
    assert security.container_seccomp([], caps, privileged=True) is None
    assert security.container_seccomp([], caps)["defaultAction"] == "SCMP_ACT_ERRNO"
    custom = '{"defaultAction":"SCMP_ACT_ALLOW"}'
    assert security.container_seccomp(["seccomp=" + custom], caps, privileged=True) == {
        "defaultAction": "SCMP_ACT_ALLOW"}


def test_kernel_has_seccomp_filters():
    assert seccomp.supported()


# --- end to end: berth run ----------------------------------------------------------------------

# busybox (Debian's busybox-static) has unshare, mount, nsenter; its `unshare -U` makes the
# same unshare(CLONE_NEWUSER) call docker's profile refuses.
PROBE = ("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
         "unshare -U true 2>/dev/null; echo unshare=$?; "
         "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null; echo mount=$?")


def status_fields(out: str) -> dict:
    return dict(line.replace("\t", "").split(":", 1) for line in out.splitlines() if ":" in line) | dict(
        line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_run_applies_the_default_profile(busybox):
    seen = status_fields(busybox.ok("run", "--rm", "busybox", "sh", "-c", PROBE))
    assert seen["Seccomp"] == "2" and seen["NoNewPrivs"] == "0"
    assert seen["unshare"] != "0" and seen["mount"] != "0"


def test_run_unconfined_and_privileged(busybox):
    seen = status_fields(busybox.ok("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
                                    PROBE))
    assert seen["Seccomp"] == "0"
    seen = status_fields(busybox.ok("run", "--rm", "--privileged", "busybox", "sh", "-c", PROBE))
    assert seen["Seccomp"] == "0" and seen["unshare"] == "0" and seen["mount"] == "0"


def test_run_with_no_new_privileges_and_a_custom_profile(busybox, tmp_path):
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}))
    out = busybox.ok("run", "--rm", "--security-opt", "no-new-privileges", "--security-opt", f"seccomp={profile}",
                     "busybox", "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                     "mkdir /tmp/x 2>&1; echo mkdir=$?")
    seen = status_fields(out)
    assert seen["Seccomp"] == "2" and seen["NoNewPrivs"] == "1" and seen["mkdir"] != "0"
    assert "Permission denied" in out


def test_run_cap_sys_admin_allows_mount(busybox):
    seen = status_fields(busybox.ok("run", "--rm", "--cap-add", "sys_admin", "busybox", "sh", "-c", PROBE))
    assert seen["Seccomp"] == "2" and seen["mount"] == "0"


def test_inspect_records_security_options(busybox, tmp_path):
    profile = tmp_path / "p.json"
    profile.write_text('{\n "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    busybox.ok("create", "--name", "sec", "--security-opt", "apparmor=foo", "--security-opt", "label:level:s0",
               "--security-opt", f"seccomp={profile}", "--security-opt", "systempaths=unconfined",
               "--cap-add", "net_admin", "--cap-drop", "Mknod", "busybox", "true")
    host = json.loads(busybox.ok("inspect", "sec"))[0]["HostConfig"]
    assert host["SecurityOpt"] == ["apparmor=foo", "label:level:s0", 'seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']
    assert host["MaskedPaths"] == [] and host["ReadonlyPaths"] == []
    assert host["CapAdd"] == ["CAP_NET_ADMIN"] and host["CapDrop"] == ["CAP_MKNOD"]


def test_lsm_options_warn_when_not_applied(busybox):
    # A host with AppArmor applies the profile (and says nothing); one without says it cannot.
    option = "apparmor=unconfined" if security.apparmor_enabled() else "apparmor=foo"
    result = busybox("run", "--rm", "--security-opt", option, "busybox", "true")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings == ([] if security.apparmor_enabled() else [
        "WARNING: AppArmor is not available on this host: --security-opt apparmor=foo is recorded but not applied"])


@pytest.mark.parametrize("args, message", [
    (["--security-opt", "bogus=1"], 'invalid --security-opt 2: "bogus=1"'),
    (["--security-opt", "seccomp=/nonexistent.json"], "opening seccomp profile (/nonexistent.json) failed"),
    (["--cap-add", "NOT_A_CAP"], 'unknown capability: "CAP_NOT_A_CAP"'),
])
def test_bad_security_input_fails_with_125_and_creates_nothing(busybox, args, message):
    result = busybox("run", "--rm", *args, "busybox", "true")
    assert result.returncode == 125 and message in result.stderr, result.stderr
    assert busybox.container_ids() == []


def test_filter_is_found_by_the_containers_options_the_second_time(busybox):
    import glob

    for _ in range(2):
        assert busybox.ok("run", "--rm", "busybox", "grep", "^Seccomp:", "/proc/self/status").split() == \
            ["Seccomp:", "2"]
    aliases = glob.glob(os.path.join(busybox.run_root, "seccomp", "by-options-*.bpf"))
    assert len(aliases) == 1
    assert busybox.ok("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "grep", "^Seccomp:",
                      "/proc/self/status").split() == ["Seccomp:", "2"]
    assert len(glob.glob(os.path.join(busybox.run_root, "seccomp", "by-options-*.bpf"))) == 2  # other caps
    assert busybox.ok("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "grep", "^Seccomp:",
                      "/proc/self/status").split() == ["Seccomp:", "0"]
