"""libseccomp (Debian's libseccomp2), wrapped once: build a filter, export its BPF program.

Only the compile step uses it, on a cache miss (runtime/seccomp.py); loading a program is a
raw seccomp(2) call. Like syscalls.py this uses the C layer of ctypes only: `import ctypes`
(and pyseccomp's find_library, which runs ldconfig) would cost ~20 ms on a miss."""

import _ctypes
import os
import struct


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _UInt(_ctypes._SimpleCData):
    _type_ = "I"


class _Pointer(_ctypes._SimpleCData):
    _type_ = "P"


def _function(restype):
    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = restype

    return Function


_IntFunction = _function(_Int)
_UIntFunction = _function(_UInt)
_PointerFunction = _function(_Pointer)
_VoidFunction = _function(None)


class _Library:
    _handle = None


def _open() -> None:
    if _Library._handle is None:
        try:
            _Library._handle = _ctypes.dlopen("libseccomp.so.2", os.RTLD_NOW)
        except OSError as err:
            raise OSError(f"seccomp: cannot load libseccomp.so.2 (Debian package libseccomp2): {err}") from None


def _symbol(name: str, function=_IntFunction):
    _open()
    return function((name, _Library))


# seccomp.h
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT, CMP_MASKED_EQ = range(1, 8)

FLTATR_ACT_BADARCH = 2
FLTATR_CTL_NNP = 3
FLTATR_CTL_LOG = 6
FLTATR_CTL_SSB = 7
FLTATR_CTL_OPTIMIZE = 8

NR_SCMP_ERROR = -1


def errno_action(errno: int) -> int:
    return ACT_ERRNO | (errno & 0xFFFF)


def trace_action(value: int) -> int:
    return ACT_TRACE | (value & 0xFFFF)


def _check(result: int, what: str) -> None:
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}")


def native_arch() -> int:
    return _symbol("seccomp_arch_native", _UIntFunction)()


def arch_token(name: str) -> int:
    """libseccomp's token for an architecture name ("x86_64", "x86", "x32", "aarch64", ...); 0 if unknown."""
    return _symbol("seccomp_arch_resolve_name", _UIntFunction)(name.encode())


def resolve(name: str, arch: int = 0) -> int:
    """The syscall number of `name` on `arch` (0: native); negative for libseccomp's pseudo
    numbers (a syscall this arch lacks or multiplexes), NR_SCMP_ERROR if unknown."""
    if arch:
        return _symbol("seccomp_syscall_resolve_name_arch")(_UInt(arch), name.encode())
    return _symbol("seccomp_syscall_resolve_name")(name.encode())


def version() -> tuple[int, int, int]:
    address = _symbol("seccomp_version", _PointerFunction)()
    return tuple((_UInt * 3).from_address(address))


class Filter:
    """A libseccomp filter context; `export()` gives the BPF program (native-endian sock_filter)."""

    def __init__(self, default_action: int):
        self._ctx = _symbol("seccomp_init", _PointerFunction)(_UInt(default_action))
        if not self._ctx:
            raise OSError(22, "seccomp_init: invalid default action")

    def close(self) -> None:
        if self._ctx:
            _symbol("seccomp_release", _VoidFunction)(_Pointer(self._ctx))
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_attr(self, attr: int, value: int) -> None:
        _check(_symbol("seccomp_attr_set")(_Pointer(self._ctx), attr, _UInt(value)), "seccomp_attr_set")

    def add_arch(self, token: int) -> None:
        ctx = _Pointer(self._ctx)
        if _symbol("seccomp_arch_exist")(ctx, _UInt(token)) == 0:
            return
        _check(_symbol("seccomp_arch_add")(ctx, _UInt(token)), "seccomp_arch_add")

    def add_rule(self, action: int, syscall: int, conditions=()) -> None:
        """conditions: (index, op, datum_a, datum_b) tuples, AND'ed (struct scmp_arg_cmp)."""
        array = b"".join(struct.pack("IiQQ", index, op, a & 0xFFFFFFFFFFFFFFFF, b & 0xFFFFFFFFFFFFFFFF)
                         for index, op, a, b in conditions)
        _check(_symbol("seccomp_rule_add_array")(_Pointer(self._ctx), _UInt(action), syscall,
                                                   _UInt(len(conditions)), array or None),
               "seccomp_rule_add")

    def export(self) -> bytes:
        fd = os.memfd_create("berth-seccomp", os.MFD_CLOEXEC)
        try:
            _check(_symbol("seccomp_export_bpf")(_Pointer(self._ctx), fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
