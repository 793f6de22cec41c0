"""json-file rotation on files written here (monitor/logfile.py) and reading across the
rotated files (engine/logs.py); go-units' FromHumanSize, which max-size is read with."""

import gzip
import os

import pytest

from berth.engine.logs import read_logs
from berth.monitor.lean import open_writer
from berth.units import from_human_size


@pytest.mark.parametrize("text, size", [("10k", 10_000), ("10m", 10_000_000), ("1.5k", 1500), ("1KiB", 1000),
                                        ("10kb", 10_000), ("512", 512), ("1g", 10**9)])
def test_from_human_size_is_decimal(text, size):
    assert from_human_size(text) == size


@pytest.mark.parametrize("text", ["abc", "-1", "", "1x"])
def test_from_human_size_refuses_what_go_units_refuses(text):
    with pytest.raises(ValueError):
        from_human_size(text)


def record(path: str, max_file: int, compress: bool = False) -> dict:
    config = {"max-size": "1k", "max-file": str(max_file)}
    if compress:
        config["compress"] = "true"
    return {"Id": "c", "LogPath": path, "HostConfig": {"LogConfig": {"Type": "json-file", "Config": config}}}


def write_lines(path: str, count: int, **options) -> None:
    writer = open_writer(path, **options)
    for i in range(count):
        writer.write("stdout", f"line {i}\n".encode())
    writer.close()
    if writer.compressor:
        os.waitpid(writer.compressor, 0)


def test_a_full_log_is_rotated_before_the_next_entry_like_docker(tmp_path):
    path = str(tmp_path / "c-json.log")
    write_lines(path, 100, max_size=1000, max_files=3)
    sizes = {name: os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path)}
    assert sorted(sizes) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    for name in ("c-json.log.1", "c-json.log.2"):
        with open(tmp_path / name, "rb") as f:
            data = f.read()
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[1] + b"\n"
        assert len(data) - len(last) < 1000 <= len(data), (name, len(data))  # the last entry went past it


def test_reading_across_rotated_files_in_order_with_tail(tmp_path):
    path = str(tmp_path / "c-json.log")
    write_lines(path, 200, max_size=1000, max_files=4)
    got = [int(text.split()[1]) for _, _, text in read_logs(record(path, 4))]
    assert got == list(range(200 - len(got), 200)) and len(got) > 30
    tail = [text for _, _, text in read_logs(record(path, 4), tail=len(got) - 3)]
    assert tail[0] == f"line {got[3]}\n" and len(tail) == len(got) - 3


def test_compressed_rotation_is_gzip_and_read_back(tmp_path):
    path = str(tmp_path / "c-json.log")
    write_lines(path, 200, max_size=1000, max_files=3, compress=True)
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    with gzip.open(tmp_path / "c-json.log.1.gz") as f:
        assert f.read().count(b"\n") > 5
    got = [int(text.split()[1]) for _, _, text in read_logs(record(path, 3, compress=True))]
    assert got == list(range(200 - len(got), 200))
    assert [t for _, _, t in read_logs(record(path, 3, compress=True), tail=1)] == ["line 199\n"]


def test_one_file_is_emptied_when_full(tmp_path):
    path = str(tmp_path / "c-json.log")
    write_lines(path, 100, max_size=1000, max_files=1)
    assert os.listdir(tmp_path) == ["c-json.log"]
    assert os.path.getsize(path) < 1100
