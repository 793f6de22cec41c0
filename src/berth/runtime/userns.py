"""User namespaces: entering a new one with OCI linux.uidMappings/gidMappings written for us,
and making a namespace that only carries mappings (what an idmapped mount is given).

A mapping other than one's own uid can only be written from the parent namespace with
CAP_SETUID there, so a helper process forked before the unshare writes it, as runc's nsexec
parent does."""

import os

from berth.errors import BerthError
from berth.runtime import syscalls as sc


def format_map(mappings) -> bytes:
    """OCI [{"containerID", "hostID", "size"}] -> the text of /proc/<pid>/uid_map."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings).encode()


def write_mappings(pid: int, uid_mappings, gid_mappings, kernel=sc) -> None:
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        if not mappings:
            continue
        fd = kernel.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            kernel.write(fd, format_map(mappings))
        except OSError as err:
            raise OSError(err.errno, f"writing {name} {format_map(mappings).decode().strip()!r}: "
                                     f"{os.strerror(err.errno).lower()}") from None
        finally:
            kernel.close(fd)


def unshare_mapped(uid_mappings, gid_mappings, kernel=sc) -> None:
    """unshare(CLONE_NEWUSER) with the mappings written by a helper forked first (it shares our
    pid namespace and /proc), then become its root (runc's nsexec)."""
    me = kernel.getpid()
    go_r, go_w = kernel.pipe()
    done_r, done_w = kernel.pipe()
    helper = kernel.fork()
    if helper == 0:
        kernel.close(go_w)
        kernel.close(done_r)
        try:
            if kernel.read(go_r, 1) == b"u":
                write_mappings(me, uid_mappings, gid_mappings, kernel)
                kernel.write(done_w, b"0")
        except BaseException as err:  # noqa: BLE001 (told to the parent, which raises it)
            kernel.write(done_w, str(err).encode()[:1000] or b"?")
        kernel._exit(0)
    kernel.close(go_r)
    kernel.close(done_w)
    try:
        try:
            kernel.unshare(sc.CLONE_NEWUSER)
            kernel.write(go_w, b"u")
        finally:
            kernel.close(go_w)  # EOF: a helper not told to go exits
        result = kernel.read(done_r, 1000)
    finally:
        kernel.close(done_r)
        kernel.waitpid(helper, 0)
    if result != b"0":
        raise BerthError(f"failed to set up the user namespace: {result.decode(errors='replace') or 'helper died'}")
    # runc's nsexec: uid 0 and no groups now; gid 0 only once the other namespaces are made
    # (become_root_group), so a new IPC namespace's mqueue root shows "nogroup" as with runc.
    kernel.setgroups([])
    kernel.setresuid(0, 0, 0)


def become_root_group(kernel=sc) -> None:
    kernel.setresgid(0, 0, 0)


def mapping_namespace(uid_mappings, gid_mappings) -> int:
    """An fd of a new user namespace with these mappings and no process left in it: a child
    unshares it and waits while we write its maps and open its ns file."""
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(hold_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(hold_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(hold_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise BerthError("failed to create a user namespace for an idmapped mount")
        write_mappings(child, uid_mappings, gid_mappings)
        return os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(hold_w)
        os.waitpid(child, 0)
