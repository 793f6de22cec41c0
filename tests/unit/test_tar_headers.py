"""The fast ustar header writer must produce exactly what tarfile produces."""

import tarfile

import pytest

from berth.image.diff import _file_header, ustar_header

KINDS = [(tarfile.REGTYPE, {"size": 10}), (tarfile.DIRTYPE, {}), (tarfile.SYMTYPE, {"linkname": "../x"}),
         (tarfile.LNKTYPE, {"linkname": "a/b/c"}), (tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
         (tarfile.BLKTYPE, {"devmajor": 8, "devminor": 0}), (tarfile.FIFOTYPE, {})]


@pytest.mark.parametrize("kind, fields", KINDS)
@pytest.mark.parametrize("name", ["f", "a/b/file", "d" * 99])
def test_same_bytes_as_tarfile(kind, fields, name):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, 0o4751, 1234, 5678, 1700000000
    info.uname = info.gname = ""
    for key, value in fields.items():
        setattr(info, key, value)
    assert ustar_header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@pytest.mark.parametrize("change", [{"name": "x" * 101}, {"name": "é"}, {"uid": 1 << 22},
                                    {"pax_headers": {"SCHILY.xattr.user.k": "v"}}])
def test_declines_what_needs_pax(change):
    info = tarfile.TarInfo("f")
    for key, value in change.items():
        setattr(info, key, value)
    assert ustar_header(info) is None


@pytest.mark.parametrize("name", ["f", "many/f1234", "d" * 100])
@pytest.mark.parametrize("mode, uid, gid, size, mtime", [(0o644, 0, 0, 5, 1700000000), (0o4751, 1234, 5678, 0, 0),
                                                         (0o600, 0o7777777, 7, (1 << 33) - 2, 0o77777777776)])
def test_file_header_is_the_ustar_header(name, mode, uid, gid, size, mtime):
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, gid, size, mtime
    info.uname = info.gname = ""
    expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert _file_header(name, mode, uid, gid, size, mtime) == expected
    assert _file_header(name, mode, uid, gid, size, mtime) == expected  # from the cached fields


@pytest.mark.parametrize("change", [{"name": "x" * 101}, {"name": "é"}, {"uid": 1 << 21}, {"size": 1 << 33},
                                    {"mtime": -1}])
def test_file_header_declines_what_needs_pax(change):
    fields = {"name": "f", "mode": 0o644, "uid": 0, "gid": 0, "size": 1, "mtime": 1700000000} | change
    assert _file_header(**fields) is None
