"""The container's terminal: a pty made in its own devpts, master handed to the caller
over a unix socket (runc's --console-socket protocol: one byte + SCM_RIGHTS)."""

import _socket
import fcntl
import os
import struct
import termios

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431


def open_pty_in_container(bind_console: bool = False) -> tuple[int, int]:
    """After pivot_root: (master, slave) from the container's /dev/ptmx. For the container's
    own process (`bind_console`, not an exec) the slave is bound on /dev/console too (runc's
    mountConsole)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY)
    if bind_console:
        _bind_console(f"/dev/pts/{number}")
    return master, slave


def _bind_console(slave_path: str) -> None:
    """An empty file at /dev/console (whatever was there replaced, never followed) with the
    slave bound onto it through its fd."""
    from berth.runtime import syscalls as sc

    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open("/dev/console", flags, 0o600)
    except OSError:  # a symlink, a directory or a device node: made anew
        try:
            os.unlink("/dev/console")
        except IsADirectoryError:
            os.rmdir("/dev/console")
        fd = os.open("/dev/console", flags | os.O_EXCL, 0o600)
    try:
        sc.mount(slave_path, f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else "/dev/console", None,
                 sc.MS_BIND)
    finally:
        os.close(fd)


def make_controlling(slave: int) -> None:
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def socketpair():
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)


def send_fd(sock, fd: int) -> None:
    sock.sendmsg([b"m"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])


def recv_fd(sock) -> int:
    _, ancillary, _, _ = sock.recvmsg(1, _socket.CMSG_SPACE(4))
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            return struct.unpack("i", data[:4])[0]
    raise OSError("no terminal received from the container")


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols
