"""docker's security options: --security-opt parsing and its errors, capability names and
sets, docker's seccomp profile turned into the OCI section for a container's capabilities
(moby setupSeccomp), and the compiled program's decisions for each x86 ABI."""

import json
import os
import struct

import pytest

from berth.engine import security
from berth.engine.security import (
    effective_caps,
    lsm_warnings,
    normalize_caps,
    oci_seccomp,
    parse_security_opts,
    security_options,
)
from berth.errors import InvalidArgument
from berth.runtime.caps import CAPS, DEFAULT_CAPS
from conftest import collect_child

# --- --security-opt -----------------------------------------------------------------------------


@pytest.mark.parametrize("opt, message", [
    ("bogus=1", 'invalid --security-opt 2: "bogus=1"'),          # daemon: unknown key
    ("bogus", 'invalid --security-opt: "bogus"'),                # CLI: no value
    ("label", 'invalid --security-opt: "label"'),
    ("apparmor=", 'invalid --security-opt: "apparmor="'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("no-new-privileges=", 'invalid --security-opt 2: "no-new-privileges="'),
    ("writable-cgroups=dang", 'invalid --security-opt 2: "writable-cgroups=dang"'),
    ("systempaths=confined", 'invalid --security-opt 2: "systempaths=confined"'),
    ('quote"d=1', 'invalid --security-opt 2: "quote\\"d=1"'),
])
def test_malformed_options_fail_like_docker(opt, message):
    with pytest.raises(InvalidArgument) as err:
        parse_security_opts([opt])
    assert str(err.value) == message


def test_daemon_side_errors_for_values_the_cli_never_sends():
    with pytest.raises(InvalidArgument, match=r'^invalid --security-opt 1: "label"$'):
        security_options(["label"])
    assert security_options(["disable"]).label_opts == ["disable"]


@pytest.mark.parametrize("opt, nnp", [
    ("no-new-privileges", True), ("no-new-privileges=true", True), ("no-new-privileges:true", True),
    ("no-new-privileges=1", True), ("no-new-privileges=false", False), ("no-new-privileges:False", False),
])
def test_no_new_privileges_forms(opt, nnp):
    host = parse_security_opts([opt])
    assert host == {"SecurityOpt": [opt]}
    assert security_options(host["SecurityOpt"]).no_new_privileges is nnp


def test_lsm_options_recorded_as_typed_including_colon_forms():
    values = ["apparmor=foo", "label=user:USER", "label:level:s0:c100,c200", "label=disable", "apparmor:bar"]
    host = parse_security_opts(values)
    assert host == {"SecurityOpt": values}
    options = security_options(host["SecurityOpt"])
    assert options.apparmor_profile == "bar"
    assert options.label_opts == ["user:USER", "level:s0:c100,c200", "disable"]


def test_systempaths_unconfined_empties_masked_and_readonly_paths():
    host = parse_security_opts(["systempaths=unconfined", "no-new-privileges"])
    assert host == {"SecurityOpt": ["no-new-privileges"], "MaskedPaths": [], "ReadonlyPaths": []}


def test_seccomp_builtin_names_are_kept():
    assert parse_security_opts(["seccomp=unconfined"]) == {"SecurityOpt": ["seccomp=unconfined"]}
    assert parse_security_opts(["seccomp:builtin"]) == {"SecurityOpt": ["seccomp:builtin"]}
    assert security_options(["seccomp:unconfined"]).seccomp_profile == "unconfined"


def test_seccomp_profile_file_is_stored_as_compact_json(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW",\n  "syscalls": [\n    {"names": ["mkdir"],'
                       ' "action": "SCMP_ACT_ERRNO", "comment": "keep  spaces"}\n  ]\n}\n')
    host = parse_security_opts([f"seccomp={profile}"])
    text = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO",' \
           '"comment":"keep  spaces"}]}'
    assert host == {"SecurityOpt": ["seccomp=" + text]}
    assert security_options(host["SecurityOpt"]).seccomp_profile == text
    section = security.container_seccomp(host["SecurityOpt"], list(DEFAULT_CAPS))
    assert section == {"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_seccomp_profile_errors(tmp_path):
    with pytest.raises(InvalidArgument, match=r"^opening seccomp profile \(/nonexistent.json\) failed: open "
                                              r"/nonexistent.json: no such file or directory$"):
        parse_security_opts(["seccomp=/nonexistent.json"])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match=r"^compacting json for seccomp profile \(.*bad.json\) failed: "):
        parse_security_opts([f"seccomp={bad}"])
    cases = {
        '{"defaultAction": "SCMP_ACT_NOPE"}': "SCMP_ACT_NOPE is not a valid action",
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}':
            "both 'name' and 'names' are specified",
        '{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{}]}':
            "both 'architectures' and 'archMap' are specified",
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", '
        '"includes": {"minKernel": "4"}}]}': 'invalid kernel version: "4", expected "<kernel>.<major>"',
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", '
        '"args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]}]}': "SCMP_CMP_SIMILAR is not a valid operator",
        '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW", '
        '"args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}': "argument index 6 out of range",
        '{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}': "SCMP_ARCH_VAX is not a valid arch",
        '{"defaultAction": 3}': "Decoding seccomp profile failed",
        '[1]': "Decoding seccomp profile failed",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(InvalidArgument) as err:
            parse_security_opts([f"seccomp={bad}"])
        assert message in str(err.value), (text, str(err.value))


# --- LSM warnings -------------------------------------------------------------------------------


# Against this host's real LSMs: each test checks what this host has, whichever that is.
APPARMOR_WARNING = ("WARNING: AppArmor is not available on this host: --security-opt apparmor=foo is recorded "
                    "but not applied")
SELINUX_WARNING = ("WARNING: SELinux is not available on this host: --security-opt label=user:USER, "
                   "--security-opt label:level:s0 are recorded but not applied")


def test_one_warning_per_confinement_not_applied():
    apparmor, selinux = security.apparmor_enabled(), security.selinux_enabled()
    assert lsm_warnings(["apparmor=foo"]) == ([] if apparmor else [APPARMOR_WARNING])
    assert lsm_warnings(["label=user:USER", "label:level:s0"]) == ([] if selinux else [SELINUX_WARNING])
    # asking for no confinement needs no warning; nor do options that are no LSM
    assert lsm_warnings(["apparmor=unconfined", "label=disable", "no-new-privileges", "seccomp=unconfined"]) == []
    assert len(lsm_warnings(["apparmor:foo", "label=type:svirt_t"])) == (not apparmor) + (not selinux)


def test_apparmor_enabled_is_what_the_kernel_says():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            expected = os.path.exists("/sys/kernel/security/apparmor") and f.read(1) == "Y"
    except FileNotFoundError:
        expected = False
    assert security.apparmor_enabled() is expected


def test_apparmor_profile_recorded_like_docker():
    if security.apparmor_enabled():
        assert security.apparmor_profile(["apparmor=foo"]) == "foo"
        assert security.apparmor_profile([]) == "docker-default"
        assert security.apparmor_profile([], privileged=True) == "unconfined"
    else:  # docker records no profile on a host without AppArmor
        assert security.apparmor_profile(["apparmor=foo"]) == ""
        assert security.apparmor_profile([]) == ""
        assert security.apparmor_profile([], privileged=True) == ""


def test_label_options_are_checked_only_with_selinux():
    parse_security_opts(["label=level:s0:c1", "label=disable"])
    if security.selinux_enabled():
        with pytest.raises(InvalidArgument, match="bad label option \"bogus\""):
            parse_security_opts(["label=bogus"])
    else:
        assert parse_security_opts(["label=bogus"]) == {"SecurityOpt": ["label=bogus"]}


# --- capabilities -------------------------------------------------------------------------------


def test_cap_names_normalized_like_the_docker_client():
    add, drop = normalize_caps(["net_admin", "CAP_SYS_ADMIN", "Net_Admin", "sys_ptrace"], ["all"])
    assert add == ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]
    assert drop == ["ALL"]
    assert normalize_caps([], ["cap_chown", "MKNOD"]) == ([], ["CAP_CHOWN", "CAP_MKNOD"])


@pytest.mark.parametrize("name, shown", [("NOT_A_CAP", "CAP_NOT_A_CAP"), ("cap_bogus", "CAP_BOGUS"),
                                         ("RESET", "CAP_RESET")])
def test_unknown_capability(name, shown):
    with pytest.raises(InvalidArgument) as err:
        normalize_caps([name], [])
    assert str(err.value) == f'unknown capability: "{shown}"'
    with pytest.raises(InvalidArgument):
        normalize_caps([], [name])


def without_capability(name: str, body):
    """Run `body()` in a forked child that dropped capability `name` from its permitted and
    effective sets (as an outer container or a restricted host would have); what it returned,
    or {"error": message} if it raised."""
    import ctypes

    number = CAPS.index(name)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)

            class Header(ctypes.Structure):
                _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

            class Data(ctypes.Structure):
                _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                            ("inheritable", ctypes.c_uint32)]

            libc = ctypes.CDLL(None, use_errno=True)
            header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
            assert libc.capget(ctypes.byref(header), data) == 0
            word, bit = divmod(number, 32)
            data[word].effective &= ~(1 << bit)
            data[word].permitted &= ~(1 << bit)
            assert libc.capset(ctypes.byref(header), data) == 0, ctypes.get_errno()
            try:
                result = body()
            except InvalidArgument as err:
                result = {"error": str(err)}
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data, status = collect_child(read_fd, pid)
    assert status == 0 and data, status
    return json.loads(data)


def test_capability_missing_from_this_environment():
    assert "CAP_SYS_ADMIN" in security.all_caps()  # tests run as root with every capability
    assert without_capability("CAP_SYS_ADMIN", lambda: normalize_caps(["SYS_ADMIN"], [])) == {
        "error": 'capability not supported by your kernel or not available in the current environment: '
                 '"CAP_SYS_ADMIN"'}
    # docker's other capabilities are still granted there, and --privileged gets all that is left
    assert without_capability("CAP_SYS_ADMIN", lambda: normalize_caps(["NET_ADMIN"], [])) == [["CAP_NET_ADMIN"], []]
    everything = without_capability("CAP_SYS_ADMIN", lambda: effective_caps([], [], privileged=True))
    assert everything == [c for c in security.all_caps() if c != "CAP_SYS_ADMIN"]


def test_effective_caps_follow_tweak_capabilities():
    everything = security.all_caps()
    assert everything == [c for c in CAPS if c in everything] and set(DEFAULT_CAPS) <= set(everything)
    assert effective_caps([], []) == list(DEFAULT_CAPS)
    assert effective_caps([], [], privileged=True) == everything
    assert effective_caps(["net_raw"], ["all"]) == ["CAP_NET_RAW"]
    assert effective_caps(["ALL"], ["mknod", "NET_RAW"]) == [c for c in everything
                                                               if c not in ("CAP_MKNOD", "CAP_NET_RAW")]
    tweaked = effective_caps(["SYS_ADMIN", "chown"], ["NET_RAW", "CAP_MKNOD"])
    assert tweaked == [c for c in DEFAULT_CAPS if c not in ("CAP_NET_RAW", "CAP_MKNOD")] + ["CAP_SYS_ADMIN"]
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_NOPE"'):
        effective_caps(["nope"], [])


# --- docker's profile -> OCI linux.seccomp (moby setupSeccomp) ----------------------------------------


@pytest.fixture(scope="module")
def profile() -> dict:
    return security.default_seccomp_profile()


def rules_for(section: dict, name: str) -> list[dict]:
    return [rule for rule in section["syscalls"] if name in rule["names"]]


def allowed_unconditionally(section: dict) -> set[str]:
    return {name for rule in section["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
            for name in rule["names"]}


def test_default_profile_is_dockers(profile):
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    names = {name for rule in profile["syscalls"] for name in rule["names"]}
    assert {"read", "write", "clone", "unshare", "ptrace", "personality", "socket"} <= names
    assert not {"keyctl", "add_key", "request_key", "kexec_load", "userfaultfd"} & {
        name for rule in profile["syscalls"] if not rule.get("includes") for name in rule["names"]}


def test_default_caps_on_amd64(profile):
    section = oci_seccomp(profile, DEFAULT_CAPS, arch="x86_64", kernel=(6, 1))
    assert section["defaultAction"] == "SCMP_ACT_ERRNO" and section["defaultErrnoRet"] == 1
    assert section["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = allowed_unconditionally(section)
    assert {"read", "ptrace", "arch_prctl", "modify_ldt", "chroot"} <= allowed
    for blocked in ("unshare", "mount", "setns", "bpf", "reboot", "kcmp", "init_module", "clone", "clone3",
                    "iopl", "settimeofday", "syslog", "perf_event_open", "open_by_handle_at", "acct"):
        assert blocked not in allowed, blocked
    # clone without namespace flags only; clone3 answers ENOSYS so glibc falls back to clone
    assert rules_for(section, "clone") == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert rules_for(section, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert [rule["args"][0]["value"] for rule in rules_for(section, "personality")] == [
        0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert not any(rule.get("includes") or rule.get("excludes") or rule.get("comment")
                   for rule in section["syscalls"])


def test_sys_admin_opens_namespaces_and_mounts(profile):
    section = oci_seccomp(profile, [*DEFAULT_CAPS, "CAP_SYS_ADMIN"], arch="x86_64", kernel=(6, 1))
    allowed = allowed_unconditionally(section)
    assert {"clone", "clone3", "unshare", "mount", "setns", "bpf", "umount2", "sethostname"} <= allowed
    assert rules_for(section, "clone") == [{"names": rules_for(section, "clone")[0]["names"],
                                            "action": "SCMP_ACT_ALLOW"}]
    assert all(rule["action"] == "SCMP_ACT_ALLOW" for rule in rules_for(section, "clone3"))


@pytest.mark.parametrize("cap, names", [
    ("CAP_SYS_PTRACE", {"kcmp", "pidfd_getfd", "process_madvise"}), ("CAP_SYS_BOOT", {"reboot"}),
    ("CAP_SYS_MODULE", {"init_module", "finit_module", "delete_module"}), ("CAP_SYS_TIME", {"settimeofday"}),
    ("CAP_SYS_RAWIO", {"iopl", "ioperm"}), ("CAP_DAC_READ_SEARCH", {"open_by_handle_at"}),
    ("CAP_SYSLOG", {"syslog"}), ("CAP_BPF", {"bpf"}), ("CAP_PERFMON", {"perf_event_open"}),
    ("CAP_SYS_NICE", {"mbind", "set_mempolicy"}), ("CAP_SYS_PACCT", {"acct"}),
])
def test_each_capability_opens_its_syscalls(profile, cap, names):
    without = allowed_unconditionally(oci_seccomp(profile, DEFAULT_CAPS, arch="x86_64", kernel=(6, 1)))
    with_cap = allowed_unconditionally(oci_seccomp(profile, [*DEFAULT_CAPS, cap], arch="x86_64", kernel=(6, 1)))
    assert names <= with_cap and not names & without


def test_chroot_needs_sys_chroot(profile):
    caps = [c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT"]
    assert "chroot" not in allowed_unconditionally(oci_seccomp(profile, caps, arch="x86_64", kernel=(6, 1)))


def test_ptrace_needs_kernel_4_8_without_sys_ptrace(profile):
    assert "ptrace" in allowed_unconditionally(oci_seccomp(profile, DEFAULT_CAPS, arch="x86_64", kernel=(4, 8)))
    assert "ptrace" not in allowed_unconditionally(oci_seccomp(profile, DEFAULT_CAPS, arch="x86_64", kernel=(4, 7)))
    old = oci_seccomp(profile, [*DEFAULT_CAPS, "CAP_SYS_PTRACE"], arch="x86_64", kernel=(3, 10))
    assert "ptrace" in allowed_unconditionally(old)


def test_other_architectures(profile):
    arm64 = oci_seccomp(profile, DEFAULT_CAPS, arch="aarch64", kernel=(6, 1))
    assert arm64["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    allowed = allowed_unconditionally(arm64)
    assert "set_tls" in allowed and "arch_prctl" not in allowed and "modify_ldt" not in allowed
    s390x = oci_seccomp(profile, DEFAULT_CAPS, arch="s390x", kernel=(6, 1))
    assert [rule["args"][0]["index"] for rule in rules_for(s390x, "clone")] == [1]
    riscv = oci_seccomp(profile, DEFAULT_CAPS, arch="riscv64", kernel=(6, 1))
    assert riscv["architectures"] == ["SCMP_ARCH_RISCV64"]


def test_profile_shapes(profile):
    assert oci_seccomp({}, DEFAULT_CAPS) is None
    legacy = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                            "args": [{"index": 1, "value": 7, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]}
    assert oci_seccomp(legacy, DEFAULT_CAPS, arch="x86_64") == {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                      "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]}]}
    excluded = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.0"}},
        {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}}]}
    assert oci_seccomp(excluded, DEFAULT_CAPS, arch="x86_64", kernel=(4, 19))["syscalls"] == [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW"}]
    assert "syscalls" not in oci_seccomp(excluded, DEFAULT_CAPS, arch="x86_64", kernel=(5, 0))


def test_kernel_version_parsing():
    assert security.kernel_version("6.18.44-fc-v657") == (6, 18)
    assert security.kernel_version("3.12-1-amd64") == (3, 12)
    assert security.kernel_version("4.8.0") == (4, 8)


# --- the compiled program, run through a classic BPF interpreter ---------------------------------------

AUDIT_X86_64, AUDIT_I386, AUDIT_AARCH64 = 0xC000003E, 0x40000003, 0xC00000B7
X32 = 0x40000000
ALLOW, KILL_THREAD = 0x7FFF0000, 0


def errno_ret(n: int) -> int:
    return 0x00050000 | n


def run_bpf(program: bytes, arch: int, nr: int, args=(0,) * 6) -> int:
    """A cBPF interpreter for the opcodes libseccomp and our stub emit."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack_from("HBBI", program, i) for i in range(0, len(program), 8)]
    acc, mem, pc = 0, [0] * 16, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:                     # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x00:                   # ld #k
            acc = k
        elif code == 0x60:                   # ld M[k]
            acc = mem[k]
        elif code == 0x02:                   # st M[k]
            mem[k] = acc
        elif code == 0x54:                   # and #k
            acc &= k
        elif code == 0x05:                   # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:                   # ret #k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")


@pytest.fixture(scope="module")
def compiled(profile) -> bytes:
    from berth.runtime.seccomp_compile import compile_section

    section = oci_seccomp(profile, DEFAULT_CAPS, arch="x86_64", kernel=(6, 1))
    program, flags = compile_section(section)
    assert flags == 0
    return program


def test_program_decides_per_abi(compiled):
    eperm, enosys = errno_ret(1), errno_ret(38)
    # x86_64
    assert run_bpf(compiled, AUDIT_X86_64, 0) == ALLOW                      # read
    assert run_bpf(compiled, AUDIT_X86_64, 272) == eperm                    # unshare
    assert run_bpf(compiled, AUDIT_X86_64, 250) == eperm                    # keyctl
    assert run_bpf(compiled, AUDIT_X86_64, 435) == enosys                   # clone3
    assert run_bpf(compiled, AUDIT_X86_64, 999) == enosys                   # newer than the profile
    assert run_bpf(compiled, AUDIT_X86_64, 56, [0x10000000]) == eperm       # clone(CLONE_NEWUSER)
    assert run_bpf(compiled, AUDIT_X86_64, 56, [0x11]) == ALLOW             # clone(SIGCHLD|...)
    assert run_bpf(compiled, AUDIT_X86_64, 135, [0xFFFFFFFF]) == ALLOW      # personality query
    assert run_bpf(compiled, AUDIT_X86_64, 135, [0x0040000]) == eperm
    assert run_bpf(compiled, AUDIT_X86_64, 41, [2]) == ALLOW                # socket(AF_INET)
    assert run_bpf(compiled, AUDIT_X86_64, 41, [40]) == eperm               # socket(AF_VSOCK)
    # i386: same decisions under its own numbers
    assert run_bpf(compiled, AUDIT_I386, 3) == ALLOW                        # read
    assert run_bpf(compiled, AUDIT_I386, 310) == eperm                      # unshare
    assert run_bpf(compiled, AUDIT_I386, 88) == eperm                       # reboot
    assert run_bpf(compiled, AUDIT_I386, 120, [0x10000000]) == eperm        # clone(CLONE_NEWUSER)
    assert run_bpf(compiled, AUDIT_I386, 999) == enosys
    # x32: x86_64's numbers with bit 30
    assert run_bpf(compiled, AUDIT_X86_64, X32 | 0) == ALLOW
    assert run_bpf(compiled, AUDIT_X86_64, X32 | 272) == eperm
    assert run_bpf(compiled, AUDIT_X86_64, X32 | 999) == enosys
    # an ABI the profile does not name: libseccomp's bad-arch action
    assert run_bpf(compiled, AUDIT_AARCH64, 63) == KILL_THREAD


def test_allow_by_default_gets_no_enosys_stub():
    from berth.runtime.seccomp_compile import compile_section

    program, _ = compile_section({"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    assert run_bpf(program, AUDIT_X86_64, 110) == 0x80000000
    assert run_bpf(program, AUDIT_X86_64, 999) == ALLOW


def test_filter_flags():
    from berth.runtime.seccomp_compile import SeccompError, compile_section

    _, flags = compile_section({"defaultAction": "SCMP_ACT_ALLOW",
                                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]})
    assert flags == 2
    with pytest.raises(SeccompError, match="seccomp flag SECCOMP_FILTER_FLAG_NOPE is not known to berth"):
        compile_section({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]})


def test_compact_json_keeps_strings():
    text = '{ "a" : "x  y\\" z" ,\n "b": [1, 2] }'
    compact = security._compact_json(text)
    assert compact == '{"a":"x  y\\" z","b":[1,2]}'
    assert json.loads(compact) == json.loads(text)


def test_lxc_conf_error_names_the_replacements():
    message = security.lxc_conf_error(["lxc.cgroup.cpuset.cpus=0,1", "lxc.cgroup.memory.limit_in_bytes=1g"])
    assert message.startswith("--lxc-conf is not supported: berth has no LXC execution driver")
    assert "lxc.cgroup.cpuset.cpus -> --cpuset-cpus" in message and "-m/--memory" in message
    assert "\n" not in message
    assert "--cpuset-cpus" in security.lxc_conf_error(["lxc.whatever=1"])
