"""Resolving docker's -u against an image's passwd/group files, including through layers."""

import os
import stat

import pytest

from berth.engine.users import read_layered_file, resolve
from berth.errors import InvalidArgument

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    "app:x:1000:1000::/srv/app:/bin/sh\n"
)
GROUP = "root:x:0:\nwheel:x:10:root\nstaff:x:50:app,other\napp:x:1000:\nnogroup:x:65534:\n"


def test_default_is_root_with_memberships():
    u = resolve("", PASSWD, GROUP)
    assert (u.uid, u.gid, u.home, u.additional_gids) == (0, 0, "/root", [0, 10])


def test_name_and_memberships():
    u = resolve("app", PASSWD, GROUP)
    assert (u.uid, u.gid, u.home, u.additional_gids) == (1000, 1000, "/srv/app", [1000, 50])


def test_numeric_ids_need_not_exist():
    u = resolve("4242:4343", PASSWD, GROUP)
    assert (u.uid, u.gid, u.home, u.additional_gids) == (4242, 4343, "/", [4343])


def test_numeric_uid_found_in_passwd_takes_its_group_and_home():
    u = resolve("65534", PASSWD, GROUP)
    assert (u.uid, u.gid, u.home) == (65534, 65534, "/home")


def test_name_with_group_name():
    u = resolve("nobody:staff", PASSWD, GROUP)
    assert (u.uid, u.gid) == (65534, 50)


def test_unknown_names_are_errors():
    with pytest.raises(InvalidArgument, match="unable to find user ghost: no matching entries in passwd file"):
        resolve("ghost", PASSWD, GROUP)
    with pytest.raises(InvalidArgument, match="unable to find group ghosts: no matching entries in group file"):
        resolve("root:ghosts", PASSWD, GROUP)


def test_missing_passwd_file_allows_numeric_only():
    assert resolve("7", None, None).uid == 7
    with pytest.raises(InvalidArgument):
        resolve("root", None, None)


def test_layered_lookup_honours_whiteouts_and_order(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (upper / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("lower\n")
    assert read_layered_file([str(upper), str(lower)], "/etc/passwd") == "lower\n"
    (upper / "etc" / "passwd").write_text("upper\n")
    assert read_layered_file([str(upper), str(lower)], "/etc/passwd") == "upper\n"
    os.unlink(upper / "etc" / "passwd")
    os.mknod(upper / "etc" / "passwd", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # overlay whiteout
    assert read_layered_file([str(upper), str(lower)], "/etc/passwd") is None
    assert read_layered_file([str(upper), str(lower)], "/etc/group") is None
