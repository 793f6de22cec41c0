"""Seccomp for a container's pid 1: the OCI linux.seccomp section as a BPF program, compiled
once and cached by content, then loaded with seccomp(2) at runc's moment just before exec.

The cache is `<cache_dir>/<sha256>.bpf`, keyed by the section itself (which already reflects
the container's capabilities and the kernel's minKernel rules), the machine, the kernel
release and the compiler's version; a hit costs one small file read. Compiling (libseccomp)
lives in seccomp_compile, imported only on a miss."""

import os
import struct

from berth import fastjson as json  # `import json` costs ~8 ms
from berth.fs import write_bytes
from berth.runtime import syscalls

try:
    from _sha256 import sha256  # hashlib would load OpenSSL: ~3.5 ms
except ImportError:  # Python >= 3.12
    from hashlib import sha256  # the fallback: loads OpenSSL

COMPILER_VERSION = 1  # bump when seccomp_compile's output changes for the same section
_MAGIC = b"BSC1"
_HEADER = struct.Struct("=4sII")  # magic, seccomp(2) flags, instruction count


class Program:
    """A compiled filter: a classic BPF program and the seccomp(2) flags to load it with."""

    __slots__ = ("bpf", "flags")

    def __init__(self, bpf: bytes, flags: int = 0):
        self.bpf = bpf
        self.flags = flags

    def __len__(self) -> int:
        return len(self.bpf) // 8


def cache_key(section: dict) -> str:
    uname = os.uname()
    text = json.dumps([COMPILER_VERSION, uname.machine, uname.release, section])
    return sha256(text.encode()).hexdigest()


def prepare(section: dict, cache_dir: str | None = None) -> Program:
    """The program for `section`, from `cache_dir` if compiled before, else compiled (and saved
    there). Call it before forking the container (pid 1 cannot see the cache after pivot_root),
    so a bad profile fails the start cleanly."""
    path = os.path.join(cache_dir, cache_key(section) + ".bpf") if cache_dir else None
    if path is not None:
        program = read_cached(path)
        if program is not None:
            return program
    from berth.runtime.seccomp_compile import compile_section  # lazy: only a cache miss compiles (libseccomp)

    program = Program(*compile_section(section))
    if path is not None:
        save(path, program)
    return program


def load(program: Program) -> None:
    """Install the filter on the calling (single-threaded) process: from now on every syscall,
    across execve, goes through it. Without no_new_privs this needs CAP_SYS_ADMIN, so pid 1
    calls it before dropping capabilities; with no_new_privs, as late as possible."""
    syscalls.seccomp_set_mode_filter(program.flags, program.bpf)


def supported() -> bool:
    """Whether the kernel has seccomp filters (CONFIG_SECCOMP_FILTER), tested like docker's
    sysinfo: PR_SET_SECCOMP with a NULL filter fails EFAULT if it does, EINVAL if not."""
    try:
        syscalls.prctl(22, 2, 0)  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL
    except OSError as err:
        return err.errno != 22
    return True  # not reached: a NULL filter never loads


def read_cached(path: str) -> Program | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER.size:
        return None
    magic, flags, count = _HEADER.unpack_from(data)
    bpf = data[_HEADER.size:]
    if magic != _MAGIC or len(bpf) != count * 8 or not count:
        return None  # torn or foreign: compile again
    return Program(bpf, flags)


def save(path: str, program: Program) -> None:
    """Atomically (temp + rename); the directory is root's alone: a filter read from it is trusted."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # a cache: a host crash may lose it (read_cached then rejects a torn one), so no fsync
    write_bytes(path, _HEADER.pack(_MAGIC, program.flags, len(program)) + program.bpf, durable=False)
