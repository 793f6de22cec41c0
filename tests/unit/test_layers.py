"""Layer tars become overlay lower directories: metadata is kept, OCI whiteouts become
overlay whiteouts, and nothing a tar says can land outside the layer directory.

These call berth.image.layers / berth.image.store directly on real files (run as root:
mknod, chown and trusted.* xattrs need it)."""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from berth.errors import InvalidArgument
from berth.image.layers import unpack
from berth.image.store import chain_ids

MTIME = 1_600_000_000  # 2020-09-13, any fixed time far from "now"


# -- crafted tars -------------------------------------------------------------

def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple:
    """One tar entry: TarInfo fields as keyword arguments, e.g. mode=0o755, linkname="x"."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def regular(name: str, data: bytes = b"data", **attrs) -> tuple:
    return member(name, tarfile.REGTYPE, data, **attrs)


def directory(name: str, **attrs) -> tuple:
    return member(name, tarfile.DIRTYPE, **attrs)


def symlink(name: str, target: str, **attrs) -> tuple:
    return member(name, tarfile.SYMTYPE, linkname=target, **attrs)


def hardlink(name: str, target: str) -> tuple:
    return member(name, tarfile.LNKTYPE, linkname=target)


def whiteout(name: str) -> tuple:
    return regular(name, b"")


def write_tar(path, *members) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return str(path)


@pytest.fixture
def layer(tmp_path):
    """unpack(members...) -> the unpacked layer directory (a fresh path under tmp_path)."""
    counter = iter(range(1000))

    def unpack_members(*members) -> str:
        n = next(counter)
        tar = write_tar(tmp_path / f"layer{n}.tar", *members)
        target = str(tmp_path / f"layer{n}")
        unpack(tar, target)
        return target

    return unpack_members


@pytest.fixture
def outside(tmp_path):
    """A directory a hostile tar aims at; tests assert it stays empty."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def refused(tmp_path, *members) -> str:
    """Unpack a tar that must be refused; returns the error message."""
    tar = write_tar(tmp_path / "bad.tar", *members)
    with pytest.raises(InvalidArgument) as exc:
        unpack(tar, str(tmp_path / "bad"))
    return str(exc.value)


# -- regular content ----------------------------------------------------------

def test_regular_file_keeps_content_mode_owner_and_mtime(layer):
    root = layer(regular("bin/tool", b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678))
    st = os.lstat(os.path.join(root, "bin/tool"))
    assert open(os.path.join(root, "bin/tool"), "rb").read() == b"#!/bin/sh\n"
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert st.st_mtime == MTIME


def test_setuid_bit_survives_chown(layer):
    # chown clears S_ISUID, so the mode must be applied after the owner
    root = layer(regular("su", mode=0o6755, uid=0, gid=0), regular("mine", mode=0o2750, uid=1000, gid=1000))
    assert stat.S_IMODE(os.lstat(os.path.join(root, "su")).st_mode) == 0o6755
    assert stat.S_IMODE(os.lstat(os.path.join(root, "mine")).st_mode) == 0o2750


def test_unpack_returns_total_size_of_regular_files(tmp_path):
    tar = write_tar(tmp_path / "l.tar", directory("d"), regular("d/a", b"x" * 100), regular("b", b"y" * 23),
                    symlink("s", "d/a"))
    assert unpack(tar, str(tmp_path / "out")) == 123


def test_directory_mode_owner_and_mtime_are_set_after_its_children(layer):
    root = layer(directory("srv", mode=0o750, uid=33, gid=33, mtime=MTIME),
                 regular("srv/index.html", b"<html>"), directory("srv/sub"), regular("srv/sub/x"))
    st = os.lstat(os.path.join(root, "srv"))
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert (st.st_uid, st.st_gid) == (33, 33)
    assert st.st_mtime == MTIME  # creating srv/index.html afterwards would have bumped it


def test_sticky_directory(layer):
    root = layer(directory("tmp", mode=0o1777))
    assert stat.S_IMODE(os.lstat(os.path.join(root, "tmp")).st_mode) == 0o1777


def test_root_entry_sets_layer_directory_metadata(layer):
    root = layer(directory("./", mode=0o755), regular("./etc/hostname", b"h\n"))
    assert stat.S_IMODE(os.lstat(root).st_mode) == 0o755
    assert open(os.path.join(root, "etc/hostname")).read() == "h\n"


def test_missing_parent_directories_are_created(layer):
    root = layer(regular("a/b/c/file", b"deep"))
    assert open(os.path.join(root, "a/b/c/file"), "rb").read() == b"deep"
    assert stat.S_ISDIR(os.lstat(os.path.join(root, "a/b")).st_mode)


def test_symlink_is_kept_verbatim_with_owner_and_mtime(layer):
    root = layer(symlink("bin/sh", "busybox", uid=7, gid=8), symlink("etc/mtab", "/proc/mounts"))
    path = os.path.join(root, "bin/sh")
    st = os.lstat(path)
    assert stat.S_ISLNK(st.st_mode)
    assert os.readlink(path) == "busybox"
    assert (st.st_uid, st.st_gid) == (7, 8)
    assert st.st_mtime == MTIME
    # an absolute target is stored as is: it is resolved inside the container, never here
    assert os.readlink(os.path.join(root, "etc/mtab")) == "/proc/mounts"


def test_hardlink_shares_the_inode(layer):
    root = layer(regular("bin/busybox", b"ELF", mode=0o755), hardlink("bin/sh", "bin/busybox"))
    a = os.lstat(os.path.join(root, "bin/busybox"))
    b = os.lstat(os.path.join(root, "bin/sh"))
    assert a.st_ino == b.st_ino
    assert a.st_nlink == 2


def test_hardlink_to_a_symlink_links_the_symlink_itself(layer, outside):
    root = layer(symlink("s", str(outside)), hardlink("h", "s"))
    assert os.path.islink(os.path.join(root, "h"))
    assert os.readlink(os.path.join(root, "h")) == str(outside)


def test_character_and_block_devices(layer):
    root = layer(member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
                 member("dev/loop9", tarfile.BLKTYPE, devmajor=7, devminor=9, mode=0o660, gid=6))
    null = os.lstat(os.path.join(root, "dev/null"))
    assert stat.S_ISCHR(null.st_mode)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(os.path.join(root, "dev/loop9"))
    assert stat.S_ISBLK(loop.st_mode)
    assert (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    assert loop.st_gid == 6


def test_fifo(layer):
    root = layer(member("run/pipe", tarfile.FIFOTYPE, mode=0o620))
    st = os.lstat(os.path.join(root, "run/pipe"))
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620


def test_xattrs_from_pax_headers(layer):
    binary = b"\xff\x00\x01".decode("utf-8", "surrogateescape")
    root = layer(regular("f", pax_headers={"SCHILY.xattr.user.foo": "bar", "SCHILY.xattr.user.bin": binary}),
                 directory("d", pax_headers={"SCHILY.xattr.trusted.mark": "yes"}))
    assert os.getxattr(os.path.join(root, "f"), "user.foo") == b"bar"
    assert os.getxattr(os.path.join(root, "f"), "user.bin") == b"\xff\x00\x01"
    assert os.getxattr(os.path.join(root, "d"), "trusted.mark") == b"yes"


def test_later_entry_replaces_earlier_one(layer):
    root = layer(regular("f", b"old"), regular("f", b"new"), directory("d"), regular("d/x"), regular("d", b"file"))
    assert open(os.path.join(root, "f"), "rb").read() == b"new"
    assert open(os.path.join(root, "d"), "rb").read() == b"file"


def test_regular_file_replacing_a_symlink_does_not_follow_it(layer, outside):
    victim = outside / "victim"
    victim.write_bytes(b"untouched")
    root = layer(symlink("x", str(victim)), regular("x", b"mine"))
    assert not os.path.islink(os.path.join(root, "x"))
    assert open(os.path.join(root, "x"), "rb").read() == b"mine"
    assert victim.read_bytes() == b"untouched"


def test_directory_replacing_a_symlink_does_not_follow_it(layer, outside):
    outside_mode = os.stat(outside).st_mode
    root = layer(symlink("d", str(outside)), directory("d", mode=0o700))
    path = os.path.join(root, "d")
    assert not os.path.islink(path) and os.path.isdir(path)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700
    assert os.stat(outside).st_mode == outside_mode  # the chmod did not go through the link


# -- whiteouts ----------------------------------------------------------------

def is_overlay_whiteout(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def test_whiteout_becomes_overlay_char_device_0_0(layer):
    root = layer(whiteout(".wh.foo"), directory("etc"), whiteout("etc/.wh.motd"))
    assert is_overlay_whiteout(os.path.join(root, "foo"))
    assert is_overlay_whiteout(os.path.join(root, "etc/motd"))
    assert not os.path.lexists(os.path.join(root, ".wh.foo"))
    assert not os.path.lexists(os.path.join(root, "etc/.wh.motd"))


def test_whiteout_in_a_directory_not_listed_in_the_tar(layer):
    root = layer(whiteout("usr/share/.wh.doc"))
    assert is_overlay_whiteout(os.path.join(root, "usr/share/doc"))


def test_opaque_marker_becomes_overlay_opaque_xattr(layer):
    root = layer(directory("dir"), whiteout("dir/.wh..wh..opq"), regular("dir/keep", b"k"))
    assert os.getxattr(os.path.join(root, "dir"), "trusted.overlay.opaque") == b"y"
    assert os.listdir(os.path.join(root, "dir")) == ["keep"]


def test_opaque_marker_before_its_directory_entry(layer):
    root = layer(whiteout("dir/.wh..wh..opq"), directory("dir", mode=0o710))
    path = os.path.join(root, "dir")
    assert os.getxattr(path, "trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o710
    assert os.listdir(path) == []


def test_whiteout_with_empty_name_is_refused_as_invalid_archive(tmp_path):
    assert "invalid tar archive" in refused(tmp_path, regular("keep"), whiteout(".wh."))


# -- refusals: nothing lands outside the layer --------------------------------

def test_refuses_absolute_path(tmp_path):
    assert "/etc/x" in refused(tmp_path, regular("/etc/x"))


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "a/../b"])
def test_refuses_dot_dot(tmp_path, name):
    assert "escapes the layer" in refused(tmp_path, regular(name))
    assert not os.path.lexists(tmp_path / "escape")


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
def test_refuses_writing_through_a_symlink(tmp_path, outside, relative):
    link = "../" * 20 + str(outside).lstrip("/") if relative else str(outside)
    message = refused(tmp_path, symlink("evil", link), regular("evil/file", b"pwned"))
    assert "symlink" in message
    assert os.listdir(outside) == []


def test_refuses_directory_through_a_symlink(tmp_path, outside):
    refused(tmp_path, symlink("evil", str(outside)), directory("evil/sub"))
    assert os.listdir(outside) == []


def test_refuses_whiteout_through_a_symlink(tmp_path, outside):
    (outside / "precious").write_bytes(b"keep me")
    refused(tmp_path, symlink("evil", str(outside)), whiteout("evil/.wh.precious"))
    assert (outside / "precious").read_bytes() == b"keep me"


def test_refuses_opaque_marker_through_a_symlink(tmp_path, outside):
    refused(tmp_path, symlink("evil", str(outside)), whiteout("evil/.wh..wh..opq"))
    with pytest.raises(OSError):
        os.getxattr(outside, "trusted.overlay.opaque")


@pytest.mark.parametrize("target", ["/etc/passwd", "../etc/passwd", "a/../../etc/passwd"])
def test_refuses_hardlink_outside(tmp_path, target):
    assert "hardlink" in refused(tmp_path, hardlink("link", target))


def test_refuses_hardlink_through_a_symlink(tmp_path, outside):
    (outside / "secret").write_bytes(b"s")
    refused(tmp_path, symlink("evil", str(outside)), hardlink("link", "evil/secret"))
    assert os.stat(outside / "secret").st_nlink == 1


def test_refuses_truncated_member_data(tmp_path):
    whole = write_tar(tmp_path / "whole.tar", regular("big", b"x" * 10000))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(open(whole, "rb").read()[:4096])
    with pytest.raises(InvalidArgument):
        unpack(str(cut), str(tmp_path / "out"))


def test_refuses_garbage(tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InvalidArgument):
        unpack(str(garbage), str(tmp_path / "out"))


# -- chain IDs ------------------------------------------------------------------

DIFF_A = "sha256:" + "a" * 64
DIFF_B = "sha256:" + "b" * 64
DIFF_C = "sha256:" + "c" * 64


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_chain_id_of_one_layer_is_its_diff_id():
    assert chain_ids([DIFF_A]) == [DIFF_A]


def test_chain_id_of_two_layers_is_digest_of_both_joined_by_a_space():
    # OCI image spec: ChainID(L0|L1) = Digest(ChainID(L0) + " " + DiffID(L1))
    assert chain_ids([DIFF_A, DIFF_B]) == [DIFF_A, digest(f"{DIFF_A} {DIFF_B}")]


def test_chain_id_recurses_over_the_previous_chain():
    ab = digest(f"{DIFF_A} {DIFF_B}")
    assert chain_ids([DIFF_A, DIFF_B, DIFF_C]) == [DIFF_A, ab, digest(f"{ab} {DIFF_C}")]


def test_chain_ids_of_no_layers():
    assert chain_ids([]) == []
