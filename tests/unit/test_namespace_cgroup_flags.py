"""The pure parts of docker's namespace and cgroup flags: block I/O flag parsing (docker's
opts types and words), HostConfig -> OCI (linux.namespaces by mode, linux.resources.blockIO
and real-time CPU, cgroupsPath under --cgroup-parent), the v1 and v2 files the runtime writes
for blockIO (into a scratch directory standing for a cgroup), and where the runtime writes
process.oomScoreAdj (before any namespace, read from a recording fake kernel)."""

import os
import types

import pytest
from fake_kernel import Exited, FakeKernel
from test_runtime_sequence import base_spec, plan_of

from berth.engine import resources, spec
from berth.errors import BerthError, InvalidArgument, UsageError
from berth.runtime import container
from berth.runtime.cgroups import cgroup_path, v1, v2


def features(**present):
    names = ("blkio_weight", "blkio_weight_device", "blkio_read_bps", "blkio_write_bps", "blkio_read_iops",
             "blkio_write_iops", "cpu_realtime")
    found = types.SimpleNamespace(memory=True, swap_limit=True, swappiness=True, oom_kill_disable=True, cpus="0-1",
                                  mems="0")
    for name in names:
        setattr(found, name, present.get(name, True))
    return found


# -- flags ----------------------------------------------------------------------------------

def test_throttles_parse_sizes_and_counts():
    assert resources.parse_throttle("/dev/sda:1mb", "--device-read-bps", True) == {"Path": "/dev/sda",
                                                                                    "Rate": 1 << 20}
    assert resources.parse_throttle("/dev/sda:100", "--device-read-iops", False) == {"Path": "/dev/sda",
                                                                                      "Rate": 100}
    assert resources.parse_weight_device("/dev/sda:0") == {"Path": "/dev/sda", "Weight": 0}  # 0: no weight


@pytest.mark.parametrize("value, says", [
    ("/dev/sda", "bad format: /dev/sda"), (":5", "bad format: :5"), ("sda:500", "bad format for device path"),
    ("/dev/sda:9", "invalid weight for device"), ("/dev/sda:1001", "invalid weight for device"),
    ("/dev/sda:-1", "invalid weight for device")])
def test_bad_weight_devices(value, says):
    with pytest.raises(UsageError, match=says):
        resources.parse_weight_device(value)


def test_blkio_weight_is_a_uint16():
    assert resources.parse_uint("500", "--blkio-weight", 16) == 500
    with pytest.raises(UsageError, match='parsing "65536": value out of range'):
        resources.parse_uint("65536", "--blkio-weight", 16)
    with pytest.raises(UsageError, match='parsing "1.5": invalid syntax'):
        resources.parse_uint("1.5", "--blkio-weight", 16)


# -- the daemon's checks ------------------------------------------------------------------------

def test_blkio_discarded_with_dockers_warnings_where_the_kernel_lacks_it():
    host = {"BlkioWeight": 300, "BlkioDeviceReadIOps": [{"Path": "/dev/null", "Rate": 5}]}
    warnings = resources.validate(host, features=features(blkio_weight=False, blkio_read_iops=False))
    assert warnings == [
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        "Your kernel does not support IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read "
        "limit discarded."]
    assert host == {"BlkioWeight": 0, "BlkioDeviceReadIOps": []}


def test_blkio_weight_range_and_devices_checked_where_supported():
    with pytest.raises(InvalidArgument, match="Range of blkio weight is from 10 to 1000"):
        resources.validate({"BlkioWeight": 5}, features=features())
    with pytest.raises(InvalidArgument, match="stat /dev/berth-nosuch: no such file or directory"):
        resources.validate({"BlkioDeviceWriteBps": [{"Path": "/dev/berth-nosuch", "Rate": 1}]}, features=features())


def test_realtime_needs_the_kernel_and_fits_in_its_period():
    with pytest.raises(InvalidArgument, match="^Your kernel does not support CPU real-time scheduler$"):
        resources.validate({"CpuRealtimeRuntime": 1000}, features=features(cpu_realtime=False))
    with pytest.raises(InvalidArgument, match="cannot be higher than cpu real-time period"):
        resources.validate({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 2000}, features=features())


def test_kernel_memory_and_oom_score_adj():
    assert resources.validate({"KernelMemory": 8 << 20}, features=features()) == [
        "Specifying a kernel memory limit is deprecated and will be removed in a future release."]
    with pytest.raises(InvalidArgument, match="Minimum kernel memory limit allowed is 6MB"):
        resources.validate({"KernelMemory": 4 << 20}, features=features())
    with pytest.raises(InvalidArgument, match=r"Invalid value -1001, range for oom score adj is \[-1000, 1000\]"):
        resources.validate({"OomScoreAdj": -1001}, features=features())


# -- HostConfig -> OCI ----------------------------------------------------------------------------

def test_block_io_names_devices_by_major_minor():
    null = os.stat("/dev/null").st_rdev
    host = {"BlkioWeight": 300, "BlkioWeightDevice": [{"Path": "/dev/null", "Weight": 400}],
            "BlkioDeviceReadBps": [{"Path": "/dev/null", "Rate": 1024}],
            "BlkioDeviceWriteIOps": [{"Path": "/dev/null", "Rate": 7}], "CpuRealtimePeriod": 1000,
            "CpuRealtimeRuntime": 500}
    device = {"major": os.major(null), "minor": os.minor(null)}
    assert resources.wanted(host)
    assert resources.oci_resources(host) == {
        "cpu": {"realtimePeriod": 1000, "realtimeRuntime": 500},
        "blockIO": {"weight": 300, "weightDevice": [{**device, "weight": 400}],
                    "throttleReadBpsDevice": [{**device, "rate": 1024}],
                    "throttleWriteIOPSDevice": [{**device, "rate": 7}]}}


@pytest.mark.parametrize("host, kinds", [
    ({}, ["mount", "pid", "uts", "cgroup"]),
    ({"PidMode": "host", "UTSMode": "host", "CgroupnsMode": "host"}, ["mount"]),
    ({"CgroupnsMode": "private"}, ["mount", "pid", "uts", "cgroup"]),
])
def test_own_namespaces_by_mode(host, kinds):
    assert [ns["type"] for ns in spec.own_namespaces(host, None)] == kinds


def test_pid_container_joins_the_donors_namespace_by_path():
    namespaces = spec.own_namespaces({"PidMode": "container:abc", "CgroupnsMode": "host"}, 4242)
    assert {"type": "pid", "path": "/proc/4242/ns/pid"} in namespaces


def test_cgroup_parent_paths():
    assert cgroup_path("c1") == "/berth/c1"
    assert cgroup_path("c1", "/mine") == "/mine/c1"
    assert cgroup_path("c1", "mine/") == "/mine/c1"  # relative: from the hierarchy's root, as dockerd's is
    assert cgroup_path("c1", "/a//b/./") == "/a/b/c1"
    assert cgroup_path("c1", "../../etc") == "/etc/c1"  # never out of the hierarchy
    assert cgroup_path("c1", "//x") == "/x/c1"


# -- the runtime's files --------------------------------------------------------------------------

BLOCK_IO = {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 400}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 7}]}


def scratch_cgroup(tmp_path, *names: str) -> str:
    for name in names:
        (tmp_path / name).write_text("")
    return str(tmp_path)


def test_v1_blkio_files(tmp_path):
    directory = scratch_cgroup(tmp_path, "blkio.weight", "blkio.weight_device", "blkio.throttle.read_bps_device",
                               "blkio.throttle.write_iops_device")
    v1._apply_blkio(directory, BLOCK_IO)
    assert (tmp_path / "blkio.weight").read_text() == "300"
    assert (tmp_path / "blkio.weight_device").read_text() == "8:0 400"
    assert (tmp_path / "blkio.throttle.read_bps_device").read_text() == "8:0 1024"
    assert (tmp_path / "blkio.throttle.write_iops_device").read_text() == "8:16 7"


def test_v1_blkio_without_cfq_uses_bfqs_files(tmp_path):
    directory = scratch_cgroup(tmp_path, "blkio.bfq.weight", "blkio.bfq.weight_device")
    v1._apply_blkio(directory, {"weight": 300, "weightDevice": BLOCK_IO["weightDevice"]})
    assert (tmp_path / "blkio.bfq.weight").read_text() == "300"
    assert (tmp_path / "blkio.bfq.weight_device").read_text() == "8:0 400"


def test_v1_blkio_without_the_hierarchy_is_an_error():
    with pytest.raises(BerthError, match="blkio cgroup is not mounted"):
        v1._apply_blkio(None, BLOCK_IO)


def test_v2_io_files(tmp_path):
    cgroup = v2.V2Cgroup("/", str(tmp_path))
    scratch_cgroup(tmp_path, "io.weight", "io.max")
    cgroup._apply_io({"weight": 300, "throttleWriteIOPSDevice": BLOCK_IO["throttleWriteIOPSDevice"]})
    assert (tmp_path / "io.weight").read_text() == str(v2.io_weight(300))
    assert (tmp_path / "io.max").read_text() == "8:16 wiops=7"
    assert v2.io_weight(10) == 1 and v2.io_weight(1000) == 10000 and v2.io_weight(500) == 4950


def test_v2_bfq_weight(tmp_path):
    cgroup = v2.V2Cgroup("/", str(tmp_path))
    scratch_cgroup(tmp_path, "io.bfq.weight", "io.max")
    cgroup._apply_io({"weight": 300})
    assert (tmp_path / "io.bfq.weight").read_text() == "300"


def test_oom_score_adj_is_written_before_any_namespace():
    kernel = FakeKernel(files={"/proc/self/oom_score_adj": 0o100644}, forks=[77],
                        pipes=[("status", b""), ("joined", b"j")])
    status_w, joined_r = kernel.pipe()[1], kernel.pipe()[0]
    with pytest.raises(Exited):
        container._intermediate(plan_of(base_spec(oomScoreAdj=-500)), status_w, joined_r, None, kernel)
    assert kernel.log[:3] == ["prctl(PR_SET_DUMPABLE, 0)", 'open("/proc/self/oom_score_adj", O_WRONLY|O_CLOEXEC)',
                              "write(</proc/self/oom_score_adj>, '-500')"]
    assert kernel.log[3].startswith("unshare(")
    assert "/proc/self/oom_score_adj" not in kernel.fds.values()  # closed
