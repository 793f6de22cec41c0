"""engine.build_upload's reading of the context tars clients send: docker's CLI ends one it added a
-f Dockerfile to right after the last member's data, which Go's archive/tar (dockerd) reads as the
end and Python's tarfile as truncated; only that ending is completed."""

import io
import tarfile

import pytest

from berth.engine.build_upload import _complete_unpadded_end, dockerfile_in
from berth.errors import InvalidArgument


def _tar(**files: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _names(path) -> list[str]:
    with tarfile.open(path) as tar:
        return [m.name for m in tar]


def _unpadded(**files: bytes) -> bytes:
    """What docker's CLI sends: the members, the last one's data, then nothing."""
    raw = _tar(**files)
    last = list(files.values())[-1]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        end = tar.getmembers()[-1].offset_data + len(last)
    return raw[:end]


def test_unpadded_end_is_completed(tmp_path):
    path = tmp_path / "ctx.tar"
    path.write_bytes(_unpadded(Dockerfile=b"FROM busybox\n", **{".dockerignore": b"x" * 47}))
    with pytest.raises(tarfile.ReadError):
        _names(path)
    _complete_unpadded_end(str(path))
    assert _names(path) == ["Dockerfile", ".dockerignore"]
    assert path.stat().st_size % 512 == 0


def test_whole_and_cut_tars_are_left_as_they_are(tmp_path):
    whole = _tar(Dockerfile=b"FROM busybox\n", big=b"y" * 5000)
    path = tmp_path / "whole.tar"
    path.write_bytes(whole)
    _complete_unpadded_end(str(path))
    assert path.read_bytes() == whole
    cut = whole[:512 * 4 + 1000]  # inside big's data: a truncated archive stays one
    path.write_bytes(cut)
    _complete_unpadded_end(str(path))
    assert path.read_bytes() == cut


def test_dockerfile_stays_in_the_context(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "link").symlink_to("/etc/passwd")
    assert dockerfile_in(str(tmp_path), None) == f"{tmp_path}/Dockerfile"
    assert dockerfile_in(str(tmp_path), "../../etc/passwd") == f"{tmp_path}/etc/passwd"
    assert dockerfile_in(str(tmp_path), "sub/link") == f"{tmp_path}/etc/passwd"
    with pytest.raises(InvalidArgument, match="Cannot locate specified Dockerfile"):
        dockerfile_in(str(tmp_path), "/")
