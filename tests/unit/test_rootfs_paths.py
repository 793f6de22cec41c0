"""runtime.rootfs_paths: paths under a hostile rootfs resolve inside it, by fd, with the kernel's
openat2(RESOLVE_IN_ROOT) and with the userspace walk used where the kernel has none. Real trees
in tmp_path, with the symlinks an image or a container can plant, and a real concurrent swapper."""

import ctypes
import json
import os
import struct
import threading

import pytest

from berth.runtime import rootfs_paths as rp
from conftest import collect_child


@pytest.fixture
def tree(tmp_path):
    """root/ a rootfs with hostile links; outside/ a host directory they aim at."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    for path in (root / "etc", root / "dev", outside):
        path.mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (outside / "passwd").write_text("host\n")
    (root / "abs").symlink_to(outside)  # absolute: means <root>/<outside path>
    (root / "up").symlink_to("../../../../../../" + str(outside).lstrip("/"))
    (root / "etc-link").symlink_to("/etc")
    (root / "loop").symlink_to("loop")
    (root / "file").write_text("x")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield root, outside, fd
    os.close(fd)
    assert sorted(os.listdir(outside)) == ["passwd"], "something was made outside the root"


def _walk_open(root: int, path: str, flags: int = os.O_PATH) -> int:
    return rp._with_flags(rp._walk(root, path, follow_last=not flags & os.O_NOFOLLOW), flags, path)


@pytest.fixture(params=["openat2", "walk"])
def open_in_root(request):
    """Both resolvers must agree."""
    return rp.open_in_root if request.param == "openat2" else _walk_open


def _where(fd: int) -> str:
    try:
        return rp.real_path(fd)
    finally:
        os.close(fd)


def test_absolute_symlinks_restart_from_the_root(tree, open_in_root):
    root, _, fd = tree
    assert _where(open_in_root(fd, "/etc-link/passwd")) == f"{root}/etc/passwd"
    with pytest.raises(FileNotFoundError):  # <root>/<outside>/passwd: not there
        open_in_root(fd, "abs/passwd")


def test_dotdot_stops_at_the_root(tree, open_in_root):
    root, _, fd = tree
    assert _where(open_in_root(fd, "../../../../etc/passwd")) == f"{root}/etc/passwd"
    assert _where(open_in_root(fd, "/etc/../../..")) == str(root)
    with pytest.raises(FileNotFoundError):
        open_in_root(fd, "up/passwd")


def test_loops_and_non_directories(tree, open_in_root):
    _, _, fd = tree
    with pytest.raises(OSError) as err:
        open_in_root(fd, "loop/x")
    assert err.value.errno == 40  # ELOOP
    with pytest.raises(NotADirectoryError):
        open_in_root(fd, "file/x")
    with pytest.raises(NotADirectoryError):
        open_in_root(fd, "file", os.O_PATH | os.O_DIRECTORY)


def test_nofollow_opens_the_link_itself(tree, open_in_root):
    root, _, fd = tree
    link = open_in_root(fd, "etc-link", os.O_PATH | os.O_NOFOLLOW)
    try:
        assert os.readlink("", dir_fd=link) == "/etc"
    finally:
        os.close(link)


def test_other_flags_give_an_open_file(tree, open_in_root):
    _, _, fd = tree
    opened = open_in_root(fd, "etc-link/passwd", os.O_RDONLY)
    try:
        assert os.read(opened, 100) == b"inside\n"
    finally:
        os.close(opened)


def test_magic_links_are_refused(tmp_path):
    """cwd = /proc/self/fd/N of an inherited host directory (runc's CVE-2024-21626)."""
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    slash = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as err:
            rp.open_in_root(slash, f"/proc/self/fd/{leaked}")
        assert err.value.errno == 40
    finally:
        os.close(leaked)
        os.close(slash)


def test_make_dir_follows_a_dangling_link_inside(tree):
    root, outside, fd = tree
    made = rp.make_dir(fd, "/abs/sub/dir")
    assert _where(made) == f"{root}{outside}/sub/dir"
    assert _where(rp.make_dir(fd, "/etc")) == f"{root}/etc"  # existing: just opened


def test_make_file_makes_the_target_of_a_dangling_link(tree):
    """Like /etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf in an image."""
    root, _, fd = tree
    os.symlink("/run/stub/resolv.conf", root / "etc" / "resolv.conf")
    assert _where(rp.make_file(fd, "/etc/resolv.conf")) == f"{root}/run/stub/resolv.conf"
    assert _where(rp.make_file(fd, "/etc/passwd")) == f"{root}/etc/passwd"
    assert (root / "etc" / "passwd").read_text() == "inside\n"  # an existing file is not truncated


def test_make_dir_refuses_what_it_cannot_make_inside(tree):
    _, _, fd = tree
    with pytest.raises(NotADirectoryError):
        rp.make_dir(fd, "/file/sub")
    with pytest.raises(OSError):
        rp.make_dir(fd, "/loop/sub")


@pytest.mark.parametrize("path, parent, name", [("/dev/null", "/dev", "null"), ("/x", "/", "x"),
                                                ("dev/pts/", "dev", "pts")])
def test_split_parent(path, parent, name):
    assert rp.split_parent(path) == (parent, name)


@pytest.mark.parametrize("path", ["", "/", "/dev/..", "/dev/."])
def test_split_parent_refuses_what_names_no_entry(path):
    with pytest.raises(OSError):
        rp.split_parent(path)


def _without_openat2() -> None:
    """In a forked child: a seccomp filter that makes the kernel answer openat2 with ENOSYS, as
    before Linux 5.6 or under docker's older profiles."""
    from berth.runtime import syscalls as sc

    program = b"".join((
        struct.pack("HBBI", 0x20, 0, 0, 0),  # A = seccomp_data.nr
        struct.pack("HBBI", 0x15, 0, 1, 437),  # openat2 (437 on x86_64 and aarch64)?
        struct.pack("HBBI", 0x06, 0, 0, 0x00050000 | 38),  # SECCOMP_RET_ERRNO | ENOSYS
        struct.pack("HBBI", 0x06, 0, 0, 0x7FFF0000),  # SECCOMP_RET_ALLOW
    ))
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    sc.seccomp_set_mode_filter(0, program)


def test_the_walk_is_used_where_the_kernel_has_no_openat2(tree):
    root, outside, fd = tree
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _without_openat2()
            answers = [_where(rp.open_in_root(fd, "/etc-link/passwd")), rp._openat2,
                       _where(rp.make_dir(fd, "/abs/made")), _where(rp.open_in_root(fd, "etc-link/../etc/passwd"))]
            try:
                rp.open_in_root(fd, "up/passwd")
            except FileNotFoundError:
                answers.append("ENOENT")
            os.write(write_fd, json.dumps(answers).encode())
        except BaseException as err:  # shown in the parent's assertion
            os.write(write_fd, repr(err).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data, status = collect_child(read_fd, pid)
    assert status == 0
    assert data.startswith(b"["), data
    assert json.loads(data) == [f"{root}/etc/passwd", False, f"{root}{outside}/made", f"{root}/etc/passwd", "ENOENT"]


def test_concurrent_swap_never_leads_outside(tree):
    """A directory swapped with a symlink to the host directory (renameat2 RENAME_EXCHANGE, in
    a thread) while make_dir/make_file resolve through it: all they make stays in the root."""
    root, outside, fd = tree
    (root / "mnt").mkdir()
    (root / "mnt.swap").symlink_to(outside)
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()

    def swap():
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        while not stop.is_set():
            libc.renameat2(dir_fd, b"mnt", dir_fd, b"mnt.swap", 2)
        os.close(dir_fd)

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for i in range(2000):
            try:
                made = rp.make_dir(fd, f"/mnt/d{i}") if i % 2 else rp.make_file(fd, f"/mnt/f{i}")
            except OSError:
                continue  # refused mid-swap: fine, as long as nothing lands outside
            where = _where(made)
            assert where.startswith(f"{root}/"), where
    finally:
        stop.set()
        swapper.join()
