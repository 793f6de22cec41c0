"""runc's stats JSON for blkio and hugetlb (libcontainer's types.Blkio and types.Hugetlb), read
from cgroup files written into a temporary directory."""

from berth.runtime.cgroups import files
from berth.runtime.cgroups.v2 import V2Cgroup


def write(directory, **contents) -> None:
    for name, text in contents.items():
        (directory / name.replace("__", ".")).write_text(text)


def test_blkio_v1_takes_runcs_first_group_with_entries_and_omits_zero_fields(tmp_path):
    write(tmp_path, blkio__throttle__io_service_bytes_recursive="8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
          blkio__throttle__io_serviced_recursive="8:0 Read 1\n8:0 Write 0\nTotal 1\n",
          blkio__throttle__io_service_bytes="8:16 Read 1\nTotal 1\n")
    assert files.blkio_v1(str(tmp_path)) == {
        "ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096}, {"major": 8, "op": "Write"}],
        "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1}, {"major": 8, "op": "Write"}]}


def test_blkio_v1_without_io_is_empty(tmp_path):
    write(tmp_path, blkio__throttle__io_service_bytes_recursive="Total 0\n",
          blkio__throttle__io_serviced_recursive="Total 0\n", blkio__throttle__io_service_bytes="Total 0\n",
          blkio__throttle__io_serviced="Total 0\n")
    assert files.blkio_v1(str(tmp_path)) == {}


def test_blkio_v2_from_io_stat(tmp_path):
    write(tmp_path, io__stat="259:0 rbytes=8192 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n")
    assert files.blkio_v2(str(tmp_path)) == {
        "ioServiceBytesRecursive": [{"major": 259, "op": "Read", "value": 8192}, {"major": 259, "op": "Write"}],
        "ioServicedRecursive": [{"major": 259, "op": "Read", "value": 2}, {"major": 259, "op": "Write"}]}


def test_hugetlb_per_page_size_as_runc_names_them(tmp_path, monkeypatch):
    monkeypatch.setattr("berth.runtime.cgroups.v2.huge_page_sizes", lambda: ["2MB", "1GB"])
    write(tmp_path, **{"hugetlb__2MB__current": "4194304\n", "hugetlb__2MB__events": "max 3\n",
                       "hugetlb__1GB__current": "0\n", "hugetlb__1GB__events": "max 0\n"})
    cgroup = V2Cgroup("c", str(tmp_path.parent))
    cgroup.dir = str(tmp_path)
    assert cgroup.hugetlb_stats() == {"2MB": {"usage": 4194304, "failcnt": 3}, "1GB": {"failcnt": 0}}


def test_huge_page_sizes_are_named_as_runc_names_them(monkeypatch):
    monkeypatch.setattr(files.os, "listdir", lambda path: ["hugepages-2048kB", "hugepages-1048576kB", "x"])
    assert files.huge_page_sizes() == ["1GB", "2MB"]
