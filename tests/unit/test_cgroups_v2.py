"""The cgroup v2 backend's file writes and reads, against a fake cgroup directory tree.

A real cgroup2 with controllers cannot be made on this test host: it is a v1 "hybrid" host,
and every controller these tests need (cpu, cpuset, memory, pids, io) is bound to a v1
hierarchy; its cgroup2 mount (/sys/fs/cgroup/unified) offers only the unbound hugetlb. The
eBPF device filter needs no controller, so it IS enforced for real there (see
tests/integration/test_limits.py); here its rules are checked against v1's semantics by
interpreting the compiled program."""

import itertools

import pytest

from berth.errors import BerthError
from berth.runtime.cgroups import devicefilter
from berth.runtime.cgroups.v2 import V2Cgroup, cpu_max, cpu_weight, swap_max

MB = 1024 * 1024


# The files the kernel makes in a new v2 cgroup with these controllers (the ones written to).
INTERFACE = ("cgroup.subtree_control", "cgroup.procs", "cgroup.freeze", "cpu.max", "cpu.weight", "cpuset.cpus",
             "cpuset.mems", "memory.low", "memory.max", "memory.swap.max", "pids.max")


@pytest.fixture
def cgroup(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    for directory in (tmp_path / "berth", tmp_path / "berth" / "c1"):  # as mkdir in a cgroup2 makes them
        directory.mkdir()
        for name in INTERFACE:
            (directory / name).write_text("")
    group = V2Cgroup("/berth/c1", str(tmp_path))
    group.create()
    return group, tmp_path / "berth" / "c1"


def files(directory) -> dict:
    """The files written to (the kernel's would hold their defaults)."""
    return {p.name: p.read_text() for p in sorted(directory.iterdir()) if p.is_file() and p.read_text()}


def test_create_enables_the_controllers_down_the_path(cgroup, tmp_path):
    _group, directory = cgroup
    assert directory.is_dir()
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    assert (tmp_path / "berth" / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"


def test_apply_writes_runcs_files(cgroup):
    group, directory = cgroup
    group.apply({
        "memory": {"limit": 32 * MB, "reservation": 16 * MB, "swap": 64 * MB, "swappiness": 30,
                   "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
    })
    assert files(directory) == {
        "cpu.max": "150000 100000", "cpu.weight": "59", "cpuset.cpus": "0", "cpuset.mems": "0",
        "memory.low": str(16 * MB), "memory.max": str(32 * MB), "memory.swap.max": str(32 * MB),
        "pids.max": "50",
    }  # no swappiness nor oom_control in v2: the engine warns that they are discarded


def test_unlimited_values(cgroup):
    group, directory = cgroup
    group.apply({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1, "period": 50000}})
    assert files(directory) == {"cpu.max": "max 50000", "memory.max": "max", "memory.swap.max": "max",
                                "pids.max": "max"}


def test_equal_memory_and_swap_disables_swap(cgroup):
    group, directory = cgroup
    group.apply({"memory": {"limit": 20 * MB, "swap": 20 * MB}})
    assert files(directory)["memory.swap.max"] == "0"


def test_update_changes_limits_but_not_devices(cgroup):
    group, directory = cgroup
    rules = [{"allow": False, "access": "rwm"}]
    # The fake cgroup is a plain directory: attaching a device program to it fails for real...
    with pytest.raises(OSError, match="BPF_PROG_ATTACH"):
        group.apply({"devices": rules})
    # ...so an update that tried to change the devices would fail here too
    group.update({"cpu": {"shares": 1024}, "pids": {"limit": 20}, "devices": rules})
    assert files(directory) == {"cpu.weight": "100", "pids.max": "20"}


@pytest.mark.parametrize("shares, weight", [(2, 1), (3, 2), (512, 59), (1024, 100), (2048, 174), (262144, 10000),
                                            (1, 1), (300000, 10000)])
def test_cpu_weight_from_shares_like_runc(shares, weight):
    assert cpu_weight(shares) == weight


def test_swap_conversion_like_runc():
    assert swap_max(0, 32 * MB) is None  # unset: left alone
    assert swap_max(-1, 32 * MB) == "max"
    assert swap_max(64 * MB, 32 * MB) == str(32 * MB)
    assert swap_max(0, -1) == "max"
    assert swap_max(64 * MB, -1) == str(64 * MB)
    for swap, memory, message in ((64 * MB, 0, "unable to set swap limit without memory limit"),
                                  (16 * MB, 32 * MB, r"memory\+swap limit should be >= memory limit")):
        with pytest.raises(BerthError, match=message):
            swap_max(swap, memory)


def test_cpu_max_text():
    assert cpu_max(50000, 100000) == "50000 100000"
    assert cpu_max(0, 100000) == "max 100000"
    assert cpu_max(25000, 0) == "25000"


def test_stats_from_v2_files(cgroup):
    group, directory = cgroup
    (directory / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (directory / "memory.current").write_text("1048576\n")
    (directory / "memory.max").write_text("33554432\n")
    (directory / "memory.peak").write_text("2097152\n")
    (directory / "memory.stat").write_text("anon 524288\nfile 262144\ninactive_file 131072\n")
    (directory / "pids.current").write_text("3\n")
    (directory / "pids.max").write_text("max\n")
    (directory / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n"
                                       "8:16 rbytes=1 wbytes=2 rios=1 wios=1\n")
    stats = group.stats()
    assert (stats.cpu_usage, stats.memory_usage, stats.memory_limit, stats.memory_max_usage) == (
        1_500_000, MB, 32 * MB, 2 * MB)
    assert stats.memory_usage_no_cache() == MB - 131072
    assert (stats.pids_current, stats.pids_limit, stats.blkio_read, stats.blkio_write) == (3, None, 4097, 8194)
    (directory / "memory.max").write_text("max\n")
    assert group.stats().memory_limit is None


def test_oom_killed_from_memory_events(cgroup):
    group, directory = cgroup
    assert not group.oom_killed()
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    assert group.oom_killed()


# -- device rules as an eBPF program ----------------------------------------------------------
DOCKER_DEFAULT = [  # moby's default rules, then a --device /dev/null:/dev/mynull:r
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
    {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
]


def v1_allows(rules, kind, major, minor, access) -> bool:
    """The v1 devices controller's answer, written plainly: last whole-list reset, then whether
    some exception covers all of the requested access."""
    default_allow, exceptions = devicefilter.emulate(rules)
    for e_kind, e_major, e_minor, e_access in exceptions:
        if e_kind == kind and e_major in (-1, major) and e_minor in (-1, minor) and set(access) <= set(e_access):
            return not default_allow
    return default_allow


REQUESTS = list(itertools.product("cb", (1, 8, 10, 136), (0, 3, 5, 200), ("r", "w", "m", "rw", "rwm")))


@pytest.mark.parametrize("rules", [
    DOCKER_DEFAULT,
    [{"allow": True, "access": "rwm"}],  # privileged
    [{"allow": True, "access": "rwm"}, {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
     {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}],
    [],
])
def test_program_grants_what_v1_grants(rules):
    program = devicefilter.program(rules)
    for request in REQUESTS:
        assert devicefilter.run(program, *request) == v1_allows(rules, *request), request


def test_docker_default_rules_in_the_program():
    program = devicefilter.program(DOCKER_DEFAULT)
    assert devicefilter.run(program, "c", 1, 3, "rw")  # /dev/null
    assert devicefilter.run(program, "c", 136, 0, "rw")  # a pty
    assert devicefilter.run(program, "b", 8, 0, "r")  # the --device with permission r
    assert not devicefilter.run(program, "b", 8, 0, "w")
    assert devicefilter.run(program, "b", 8, 16, "m")  # mknod of anything, as docker allows
    assert not devicefilter.run(program, "b", 8, 16, "r")  # ... but not opening it
    assert not devicefilter.run(program, "c", 1, 1, "r")  # /dev/mem


def test_emulation_like_runc():
    assert devicefilter.emulate([{"allow": False, "access": "rwm"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
                                 {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"}]) == (
        False, [("c", 1, 3, "rw")])
    assert devicefilter.emulate([{"allow": True, "access": "rwm"}]) == (True, [])
    with pytest.raises(devicefilter.DeviceRuleError, match="cannot punch a hole"):
        devicefilter.emulate([{"allow": False, "access": "rwm"},
                              {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "rwm"},
                              {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "r"}])
