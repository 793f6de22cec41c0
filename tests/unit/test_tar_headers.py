"""The fast ustar header writer must produce exactly what tarfile produces."""

import tarfile

import pytest

from berth.image.diff import ustar_header

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
