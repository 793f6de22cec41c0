"""The OCI linux.seccomp section compiled to a classic BPF program, the way runc does it:
libseccomp builds the filter (every architecture of the section, argument conditions,
binary-tree dispatch), and runc's -ENOSYS stub goes in front of it so that a syscall newer
than the profile gets ENOSYS (glibc then falls back) instead of the default EPERM.

Runs only when runtime/seccomp.py finds no cached program for a section."""

import struct

from berth.errors import BerthError
from berth.runtime import libseccomp as ls

EPERM = 1
ENOSYS = 38

# runc libcontainer/seccomp/config.go
ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_ERRNO", "SCMP_ACT_TRAP",
           "SCMP_ACT_ALLOW", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPERATORS = {"SCMP_CMP_NE": ls.CMP_NE, "SCMP_CMP_LT": ls.CMP_LT, "SCMP_CMP_LE": ls.CMP_LE,
             "SCMP_CMP_EQ": ls.CMP_EQ, "SCMP_CMP_GE": ls.CMP_GE, "SCMP_CMP_GT": ls.CMP_GT,
             "SCMP_CMP_MASKED_EQ": ls.CMP_MASKED_EQ}
ARCHES = {  # OCI name -> libseccomp's name
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32", "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_LOONGARCH64": "loongarch64",
}
FLAGS = {  # seccomp(2) SECCOMP_FILTER_FLAG_*; TSYNC is accepted and ignored like runc (pid 1 is one thread)
    "SECCOMP_FILTER_FLAG_TSYNC": 0,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}

# AUDIT_ARCH_* as the kernel reports them in seccomp_data.arch (x32 runs as x86_64 with bit 30 set)
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes
_LD_W_ABS = 0x20
_JA = 0x05
_JEQ_K = 0x15
_JGT_K = 0x25
_JSET_K = 0x45
_RET_K = 0x06
_MAX_INSNS = 4096


class SeccompError(BerthError):
    pass


# seccomp(2) SECCOMP_FILTER_FLAG_NEW_LISTENER: the load returns a notification fd (SCMP_ACT_NOTIFY)
FLAG_NEW_LISTENER = 8


def uses_notify(section: dict) -> bool:
    return any(rule.get("action") == "SCMP_ACT_NOTIFY" for rule in section.get("syscalls") or ())


def check(section: dict) -> None:
    """The errors runc would give at start, raised early (create time)."""
    _action(section.get("defaultAction"), section.get("defaultErrnoRet"))
    if section.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise SeccompError("seccomp: SCMP_ACT_NOTIFY cannot be used as default action")
    if uses_notify(section):
        if not section.get("listenerPath"):
            raise SeccompError("seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the seccomp agent)")
        if any(rule.get("action") == "SCMP_ACT_NOTIFY" and "write" in (rule.get("names") or ())
               for rule in section.get("syscalls") or ()):
            raise SeccompError("seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall")
    for arch in section.get("architectures") or ():
        if arch not in ARCHES:
            raise SeccompError(f"seccomp: string {arch} is not a valid arch for seccomp")
    for flag in section.get("flags") or ():
        if flag not in FLAGS:
            raise SeccompError(f"seccomp flag {flag} is not known to berth")
    for rule in section.get("syscalls") or ():
        _action(rule.get("action"), rule.get("errnoRet"))
        for name in rule.get("names") or ():
            if not name:
                raise SeccompError("seccomp: empty string is not a valid syscall")
        _conditions(rule.get("args") or ())


def compile_section(section: dict) -> tuple[bytes, int]:
    """(BPF program, seccomp(2) filter flags) for an OCI linux.seccomp section."""
    check(section)
    default = _action(section.get("defaultAction"), section.get("defaultErrnoRet"))
    rules = [(name, rule) for rule in section.get("syscalls") or () for name in rule.get("names") or ()]
    arches = [ls.arch_token(ARCHES[arch]) for arch in section.get("architectures") or ()]
    with ls.Filter(default) as bpf_filter:
        for token in arches:
            bpf_filter.add_arch(token)
        if len(rules) > 32:  # runc: binary tree dispatch for long rule sets
            bpf_filter.set_attr(ls.FLTATR_CTL_OPTIMIZE, 2)
        for name, rule in rules:
            _add_rule(bpf_filter, default, name, rule)
        program = bpf_filter.export()
    flags = 0
    for flag in section.get("flags") or ():
        flags |= FLAGS[flag]
    if uses_notify(section):
        flags |= FLAG_NEW_LISTENER
    if _wants_enosys_stub(section):
        program = _enosys_stub(arches, [name for name, _ in rules]) + program
    if len(program) // 8 > _MAX_INSNS:
        raise SeccompError(f"seccomp: the filter has {len(program) // 8} instructions, more than the "
                           f"kernel's {_MAX_INSNS}")
    return program, flags


def _action(name, errno_ret) -> int:
    # runc getAction: KILL is KILL_THREAD; ERRNO and TRACE return EPERM unless errnoRet says otherwise
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return ls.ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return ls.ACT_KILL_PROCESS
    if name == "SCMP_ACT_ERRNO":
        return ls.errno_action(EPERM if errno_ret is None else int(errno_ret))
    if name == "SCMP_ACT_TRACE":
        return ls.trace_action(EPERM if errno_ret is None else int(errno_ret))
    if name == "SCMP_ACT_TRAP":
        return ls.ACT_TRAP
    if name == "SCMP_ACT_ALLOW":
        return ls.ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return ls.ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        return ls.ACT_NOTIFY
    raise SeccompError(f"seccomp: string {name} is not a valid action for seccomp")


def _conditions(args) -> list[tuple[int, int, int, int]]:
    conditions = []
    for arg in args:
        op = OPERATORS.get(arg.get("op"))
        if op is None:
            raise SeccompError(f"seccomp: string {arg.get('op')} is not a valid operator for seccomp")
        index = int(arg.get("index") or 0)
        if not 0 <= index <= 5:
            raise SeccompError(f"seccomp: argument index {index} out of range (a syscall has 6 arguments)")
        conditions.append((index, op, int(arg.get("value") or 0), int(arg.get("valueTwo") or 0)))
    return conditions


def _add_rule(bpf_filter, default: int, name: str, rule: dict) -> None:
    """runc matchCall: a rule with the default's action is redundant; a syscall libseccomp does
    not know is skipped; conditions on distinct arguments are AND'ed in one rule, but when two
    test the same argument each becomes its own rule (OR'ed)."""
    action = _action(rule.get("action"), rule.get("errnoRet"))
    if action == default:
        return
    number = ls.resolve(name)
    if number == ls.NR_SCMP_ERROR:
        return
    conditions = _conditions(rule.get("args") or ())
    indexes = [c[0] for c in conditions]
    groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
    for group in groups:
        try:
            bpf_filter.add_rule(action, number, group)
        except OSError as err:
            raise SeccompError(f"error adding seccomp filter rule for syscall {name}: {err.strerror}") from None


def _wants_enosys_stub(section: dict) -> bool:
    # runc patchbpf.generatePatch: not when the default already allows (or logs, or traces),
    # nor when the default already answers ENOSYS.
    if section.get("defaultAction") in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
        return False
    return not (section.get("defaultAction") == "SCMP_ACT_ERRNO" and section.get("defaultErrnoRet") == ENOSYS)


def _largest_syscalls(arches: list[int], names: list[str]) -> dict[int, dict[int, int]]:
    """{audit arch: {libseccomp arch token: largest syscall number the profile names}}."""
    native = ls.native_arch()
    x32 = ls.arch_token("x32")
    largest: dict[int, dict[int, int]] = {}
    for token in dict.fromkeys([native, *arches]):
        audit = AUDIT_ARCH_X86_64 if token == x32 else token
        numbers = [n for n in (ls.resolve(name, token) for name in set(names)) if n >= 0]
        if numbers:
            largest.setdefault(audit, {})[token] = max(numbers)
    return largest


def _enosys_stub(arches: list[int], names: list[str]) -> bytes:
    """runc's patchbpf stub: per architecture, a syscall number above the largest one the
    profile names returns ENOSYS; everything else falls through to libseccomp's program."""
    x32 = ls.arch_token("x32")
    s390 = {ls.arch_token("s390"), ls.arch_token("s390x")}
    largest = _largest_syscalls(arches, names)
    code = [(_LD_W_ABS, 0, 0, 4)]  # seccomp_data.arch
    code += [(_JEQ_K, f"arch{audit}", 0, audit) for audit in largest]
    code.append((_JA, 0, 0, "filter"))
    for audit, by_token in largest.items():
        code += [f"arch{audit}", (_LD_W_ABS, 0, 0, 0)]  # seccomp_data.nr
        if s390 & by_token.keys():  # s390 multiplexes unknown syscalls through setup(0)
            code.append((_JEQ_K, "enosys", 0, 0))
        native = {t: n for t, n in by_token.items() if t != x32}
        if audit == AUDIT_ARCH_X86_64:
            if x32 in by_token:
                code.append((_JSET_K, f"x32_{audit}", 0, X32_SYSCALL_BIT))
            else:
                code.append((_JSET_K, "filter", 0, X32_SYSCALL_BIT))
        if native:
            code += [(_JGT_K, "enosys", 0, max(native.values())), (_JA, 0, 0, "filter")]
        if x32 in by_token:
            if not native:
                code += [(_JA, 0, 0, "filter")]  # an x86_64 syscall in an x32-only filter
            code += [f"x32_{audit}", (_JGT_K, "enosys", 0, by_token[x32]), (_JA, 0, 0, "filter")]
    code += ["enosys", (_RET_K, 0, 0, ls.errno_action(ENOSYS)), "filter"]
    return _assemble(code)


def _assemble(code: list) -> bytes:
    """Strings are labels; a jump field naming a label becomes the offset to it."""
    labels, position = {}, 0
    for item in code:
        if isinstance(item, str):
            labels[item] = position
        else:
            position += 1
    out = []
    for item in code:
        if isinstance(item, str):
            continue
        op, jt, jf, k = item
        after = len(out) + 1  # jumps count from the next instruction
        if op == _JA:
            k = _offset(labels, k, after, 0xFFFFFFFF)
        out.append(struct.pack("HBBI", op, _offset(labels, jt, after, 255), _offset(labels, jf, after, 255), k))
    return b"".join(out)


def _offset(labels: dict, target, after: int, limit: int) -> int:
    if not isinstance(target, str):
        return target
    distance = labels[target] - after
    if not 0 <= distance <= limit:
        raise SeccompError("seccomp: -ENOSYS stub jump out of range")
    return distance
