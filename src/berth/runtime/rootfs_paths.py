"""Paths inside a container's rootfs, resolved as if the rootfs were `/`, by file descriptor.

A rootfs (an image's layers, a container's upper dir, a bundle) is written by whoever runs
in it, and may hold `dev -> /etc` or a directory swapped for a symlink while the runtime
works. So no path under it is ever joined as a string and handed to the kernel: each one is
resolved from an O_PATH fd of the rootfs with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS),
missing parts are made with mkdirat/openat relative to the fd of their parent, and the
result is used through its fd (mounts go onto /proc/self/fd/N). Where the kernel has no
openat2 (before 5.6, or a seccomp filter hiding it), the same walk is done in userspace, one
O_NOFOLLOW component at a time (filepath-securejoin's fallback).

Every kernel call goes through `kernel` (runtime.syscalls, or a test's recording stand-in)."""

import os
import stat

from berth.runtime import syscalls as sc

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_MAX_LINKS = 40  # the kernel's MAXSYMLINKS
_RETRIES = 32  # openat2 answers EAGAIN when a rename or mount raced a ".." step
_openat2 = True  # False once the kernel said ENOSYS


def open_in_root(root: int, path: str, flags: int = os.O_PATH, kernel=sc) -> int:
    """The fd of `path` resolved under the directory fd `root` (`..` stops at it, absolute
    symlinks restart from it, magic links refuse). Raises OSError (FileNotFoundError, ...)."""
    global _openat2
    if _openat2:
        for _ in range(_RETRIES):
            try:
                return kernel.openat2(root, path, flags | os.O_CLOEXEC, _RESOLVE)
            except BlockingIOError:
                continue
            except OSError as err:
                if err.errno != 38:  # ENOSYS
                    raise
                _openat2 = False
                break
        else:
            raise OSError(11, f"openat2 {path}: the tree kept changing")
    fd = _walk(root, path, follow_last=not flags & os.O_NOFOLLOW, kernel=kernel)
    return _with_flags(fd, flags, path, kernel)


def make_dir(root: int, path: str, mode: int = 0o755, kernel=sc) -> int:
    """An O_PATH fd of directory `path` under `root`, made with its missing parents first
    (a dangling symlink on the way is followed, its target made inside `root`)."""
    try:
        return open_in_root(root, path, os.O_PATH | os.O_DIRECTORY, kernel)
    except FileNotFoundError:
        fd = _walk(root, path, create="dir", mode=mode, kernel=kernel)
        return _with_flags(fd, os.O_PATH | os.O_DIRECTORY, path, kernel)


def make_file(root: int, path: str, mode: int = 0o644, kernel=sc) -> int:
    """The fd of `path` under `root` if it exists (any type), else of a new empty file there."""
    try:
        return open_in_root(root, path, kernel=kernel)
    except FileNotFoundError:
        return _walk(root, path, create="file", mode=mode, kernel=kernel)


def split_parent(path: str) -> tuple[str, str]:
    """("/dev", "null") for "/dev/null": the directory to resolve, and the last name to create
    or replace with a *at call that never follows it."""
    head, _, name = path.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        raise OSError(22, f"{path}: not a file name")
    return head or "/", name


def fd_path(fd: int) -> str:
    """What mount(2) and friends take to act on exactly the object behind `fd`."""
    return f"/proc/self/fd/{fd}"


def real_path(fd: int, kernel=sc) -> str:
    """Where `fd` is, as this process sees the tree (for checks and messages)."""
    return kernel.readlink(fd_path(fd))


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part and part != "."]


def _walk(root: int, path: str, create: str | None = None, follow_last: bool = True, mode: int = 0o755,
          kernel=sc) -> int:
    """RESOLVE_IN_ROOT by hand: open each component with O_PATH|O_NOFOLLOW relative to the fd
    of the one before; a symlink's target is pushed back onto the path (from `root` when
    absolute); `..` pops the directories walked, never past `root`. With `create` ("dir" or
    "file"), a missing component is made (directories on the way, `create` last) instead of
    raising FileNotFoundError. Returns a new O_PATH fd (an O_WRONLY one for a new file)."""
    pending = _components(path)[::-1]
    walked: list[int] = []  # fds of the directories under root we are in; the last is current
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if walked:
                    kernel.close(walked.pop())
                continue
            current = walked[-1] if walked else root
            last = not pending
            try:
                fd = kernel.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            except FileNotFoundError:
                if create is None:
                    raise
                walked.append(_create(current, part, "file" if last and create == "file" else "dir", mode, kernel))
                continue
            st = kernel.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (follow_last or not last):
                target = kernel.readlink("", dir_fd=fd)  # of the link we hold, not of a name
                kernel.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(40, f"{path}: too many levels of symbolic links")
                if target.startswith("/"):
                    while walked:
                        kernel.close(walked.pop())
                pending.extend(_components(target)[::-1])
                continue
            walked.append(fd)
            if not last and not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(20, f"{path}: not a directory")
        return walked.pop() if walked else kernel.dup(root)
    finally:
        for fd in walked:
            kernel.close(fd)


def _create(dir_fd: int, name: str, kind: str, mode: int, kernel=sc) -> int:
    """Make `name` in `dir_fd` and return its fd; a symlink or file raced in is refused
    (O_NOFOLLOW/O_EXCL), a directory raced in is used."""
    if kind == "file":
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return kernel.open(name, flags, mode, dir_fd=dir_fd)
    try:
        kernel.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return kernel.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def _with_flags(fd: int, flags: int, path: str, kernel=sc) -> int:
    """The walk yields O_PATH fds; give the caller what it asked for."""
    if flags & os.O_DIRECTORY and not stat.S_ISDIR(kernel.fstat(fd).st_mode):
        kernel.close(fd)
        raise NotADirectoryError(20, f"{path}: not a directory")
    if flags & os.O_PATH:
        return fd
    try:  # reopening the object itself through its magic link resolves nothing again
        return kernel.open(fd_path(fd), (flags & ~os.O_NOFOLLOW) | os.O_CLOEXEC)
    finally:
        kernel.close(fd)
