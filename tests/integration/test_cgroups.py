"""The cgroup interface against the host's real hierarchies (v1 here; v2 through the
hybrid host's unified mount, which has no controllers but the same process interface)."""

import os
import time

import pytest

from berth.runtime.cgroups import open_cgroup
from berth.runtime.cgroups.v2 import V2Cgroup

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture(autouse=True)
def remove_test_parents():
    yield
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        try:
            os.rmdir(os.path.join("/sys/fs/cgroup", hierarchy, "berth-test"))
        except OSError:
            pass


def _sleeper() -> int:
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    return pid


def _reap(pid: int) -> None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def test_host_backend_create_add_destroy():
    path = f"/berth-test/{os.getpid()}-{os.urandom(4).hex()}"
    cgroup = open_cgroup(path)
    cgroup.create()
    pid = _sleeper()
    try:
        cgroup.apply({"pids": {"limit": 100}, "memory": {"limit": 64 * 1024 * 1024}})
        cgroup.add(pid)
        assert cgroup.pids() == [pid]
        with open(f"/proc/{pid}/cgroup") as f:
            assert path in f.read()
    finally:
        _reap(pid)
        cgroup.destroy()
    assert not cgroup.exists()


@pytest.mark.skipif(not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")),
                    reason="cgroup mode: no hybrid cgroup2 mount here")
def test_v2_backend_on_a_cgroup2_mount():
    path = f"/berth-test/{os.getpid()}-{os.urandom(4).hex()}"
    cgroup = V2Cgroup(path, UNIFIED)
    cgroup.create()
    pid = _sleeper()
    try:
        cgroup.add(pid)
        assert cgroup.pids() == [pid]
        with open(f"/proc/{pid}/cgroup") as f:
            assert f"0::{path}" in f.read()
    finally:
        _reap(pid)
        cgroup.destroy()
    assert not cgroup.exists()


def test_v2_cpu_shares_conversion_matches_runc(tmp_path):
    # cpu.weight is written as a plain file: check runc's current shares -> weight mapping
    # (docker's default 1024 shares is v2's default weight 100; tests/unit/test_cgroups_v2.py has more).
    (tmp_path / "cgroup.controllers").write_text("cpu\n")
    cgroup = V2Cgroup("/c", str(tmp_path))
    (tmp_path / "c").mkdir()
    for shares, weight in ((2, 1), (1024, 100), (262144, 10000)):
        (tmp_path / "c" / "cpu.weight").write_text("")
        cgroup.apply({"cpu": {"shares": shares}})
        assert (tmp_path / "c" / "cpu.weight").read_text() == str(weight)
