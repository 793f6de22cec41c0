"""Device rules on cgroup v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the
container's cgroup, which the kernel runs on every open and mknod of a device node.

Like runc's devicefilter, the OCI rules are first replayed through an emulation of the v1
devices controller (so both versions grant exactly the same), then compiled to one small
program: a block per rule that returns its verdict when the request matches, and the
default verdict at the end. The bpf() calls go through libc's syscall(), as in syscalls.py."""

import _ctypes
import os
import struct

from berth.runtime.syscalls import _libc, _Long, _LongFunction

# uapi/linux/bpf.h
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
_ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
_DEVICE_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}

# Opcodes used (class | op | source), with registers: r1 = ctx, r2 = type, r3 = access,
# r4 = major, r5 = minor, r0 = verdict.
LDX_W = 0x61    # BPF_LDX | BPF_MEM | BPF_W
AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
MOV32_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K
JNE_K = 0x55    # BPF_JMP | BPF_JNE | BPF_K
JNE_X = 0x5D    # BPF_JMP | BPF_JNE | BPF_X
EXIT = 0x95     # BPF_JMP | BPF_EXIT

_SYS_BPF = {"x86_64": 321, "aarch64": 280}


class DeviceRuleError(ValueError):
    pass


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: opcode, dst/src registers, jump offset, immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


# struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
PROLOGUE = (
    insn(LDX_W, 2, 1, 0), insn(AND32_K, 2, imm=0xFFFF),
    insn(LDX_W, 3, 1, 0), insn(RSH32_K, 3, imm=16),
    insn(LDX_W, 4, 1, 4),
    insn(LDX_W, 5, 1, 8),
)


# -- v1 semantics --------------------------------------------------------------------------
def emulate(rules) -> tuple[bool, list[tuple[str, int, int, str]]]:
    """Replay OCI device rules as the v1 devices controller would apply them, starting from
    deny-all. Returns (default_allow, exceptions): each exception is (type, major, minor,
    access) with -1 for a wildcard, and has the opposite verdict of the default."""
    default_allow = False
    exceptions: dict[tuple[str, int, int], set] = {}
    for rule in rules:
        kind = rule.get("type") or "a"
        if kind == "a":  # a whole-list reset, like writing "a" to devices.allow/deny
            default_allow = bool(rule.get("allow"))
            exceptions = {}
            continue
        if kind not in _DEVICE_TYPES:
            raise DeviceRuleError(f"invalid device type {kind!r}")
        key = (kind, _number(rule.get("major")), _number(rule.get("minor")))
        access = set(rule.get("access") or "rwm")
        if not access <= set("rwm"):
            raise DeviceRuleError(f"invalid device access {rule.get('access')!r}")
        if bool(rule.get("allow")) != default_allow:
            exceptions[key] = exceptions.get(key, set()) | access
        else:
            _remove(exceptions, key, access)
    ordered = sorted(exceptions.items(), key=lambda item: (item[0][1], item[0][2], item[0][0]))
    return default_allow, [(k[0], k[1], k[2], "".join(c for c in "rwm" if c in perms)) for k, perms in ordered]


def _number(value) -> int:
    return -1 if value is None or value < 0 else int(value)


def _remove(exceptions: dict, key: tuple, access: set) -> None:
    """Take `access` out of the exact exception. v1 silently ignores a removal that would
    punch a hole in a wildcard exception; like runc, refuse it instead of pretending."""
    kind, major, minor = key
    for wider in ((kind, -1, minor), (kind, major, -1), (kind, -1, -1)):
        if wider != key and exceptions.get(wider, set()) & access:
            raise DeviceRuleError(f"device rule {kind} {major}:{minor} cannot punch a hole in the wildcard rule "
                                  f"{wider[0]} {wider[1]}:{wider[2]} (not supported by the devices cgroup)")
    left = exceptions.get(key, set()) - access
    if left:
        exceptions[key] = left
    else:
        exceptions.pop(key, None)


# -- compile -------------------------------------------------------------------------------
def program(rules) -> bytes:
    """The eBPF instructions (8 bytes each) that grant exactly what `rules` grant on v1."""
    default_allow, exceptions = emulate(rules)
    out = list(PROLOGUE)
    verdict = 0 if default_allow else 1
    for kind, major, minor, access in exceptions:
        out.extend(_block(kind, major, minor, access, verdict))
    out.append(insn(MOV32_K, 0, imm=1 if default_allow else 0))
    out.append(insn(EXIT))
    return b"".join(out)


def _block(kind: str, major: int, minor: int, access: str, verdict: int) -> list[bytes]:
    """if (type, access, major, minor) match: return verdict; else fall through to the next block."""
    steps = [(JNE_K, 2, 0, _DEVICE_TYPES[kind])]  # (opcode, dst, src, imm); jumps filled in below
    bits = sum(_ACCESS_BITS[c] for c in access)
    if bits != 7:  # requested access must be a subset of the rule's: (r3 & bits) == r3
        steps += [(MOV32_X, 1, 3, 0), (AND32_K, 1, 0, bits), (JNE_X, 1, 3, 0)]
    if major >= 0:
        steps.append((JNE_K, 4, 0, major))
    if minor >= 0:
        steps.append((JNE_K, 5, 0, minor))
    length = len(steps) + 2
    block = []
    for i, (code, dst, src, imm) in enumerate(steps):
        off = length - i - 1 if code in (JNE_K, JNE_X) else 0
        block.append(insn(code, dst, src, off, imm))
    block += [insn(MOV32_K, 0, imm=verdict), insn(EXIT)]
    return block


def run(prog: bytes, kind: str, major: int, minor: int, access: str) -> bool:
    """Interpret `prog` for one request (for tests: the same answer the kernel gives)."""
    regs = [0] * 11
    ctx = struct.pack("<III", (sum(_ACCESS_BITS[c] for c in access) << 16) | _DEVICE_TYPES[kind], major, minor)
    pc = 0
    while True:
        code, registers, off, imm = struct.unpack_from("<BBhi", prog, pc * 8)
        dst, src = registers & 0xF, registers >> 4
        pc += 1
        if code == LDX_W:
            regs[dst] = struct.unpack_from("<I", ctx, regs[src] + off)[0] if src == 1 else 0
        elif code == AND32_K:
            regs[dst] &= imm & 0xFFFFFFFF
        elif code == RSH32_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == MOV32_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == MOV32_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == JNE_K:
            pc += off if regs[dst] != imm else 0
        elif code == JNE_X:
            pc += off if regs[dst] != regs[src] else 0
        elif code == EXIT:
            return regs[0] == 1
        else:
            raise ValueError(f"opcode {code:#x} not interpreted")


# -- load and attach -----------------------------------------------------------------------
def attach(cgroup_dir: str, rules) -> None:
    """Load the program for `rules` and attach it to the cgroup v2 directory. The cgroup
    keeps the program alive; it goes when the cgroup is removed."""
    prog_fd = _load(program(rules))
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attr = struct.pack("IIIII", dir_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0)
            _bpf(BPF_PROG_ATTACH, attr, "BPF_PROG_ATTACH (BPF_CGROUP_DEVICE)")
        finally:
            os.close(dir_fd)
    finally:
        os.close(prog_fd)


def _load(instructions: bytes) -> int:
    license_ = b"Apache\0"

    class _UInt(_ctypes._SimpleCData):
        _type_ = "I"

    class _CharP(_ctypes._SimpleCData):
        _type_ = "z"

    class _ProgLoadAttr(_ctypes.Structure):  # the BPF_PROG_LOAD part of union bpf_attr
        _fields_ = [("prog_type", _UInt), ("insn_cnt", _UInt), ("insns", _CharP), ("license", _CharP),
                    ("log_level", _UInt), ("log_size", _UInt), ("log_buf", _CharP), ("kern_version", _UInt),
                    ("prog_flags", _UInt)]

    attr = _ProgLoadAttr(BPF_PROG_TYPE_CGROUP_DEVICE, len(instructions) // 8, instructions, license_)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD (BPF_PROG_TYPE_CGROUP_DEVICE)")
    except PermissionError:
        # Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (runc raises it the same way).
        import resource  # lazy: only kernels before 5.11

        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD (BPF_PROG_TYPE_CGROUP_DEVICE)")


def _bpf(command: int, attr, what: str) -> int:
    syscall = _libc("syscall", _LongFunction)
    if isinstance(attr, bytes):
        size = len(attr)
        pointer = attr
    else:
        size = _ctypes.sizeof(attr)
        pointer = _ctypes.byref(attr)
    result = syscall(_Long(_SYS_BPF[os.uname().machine]), _Long(command), pointer, _Long(size))
    if result < 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"bpf {what}: {os.strerror(err)}")
    return result
