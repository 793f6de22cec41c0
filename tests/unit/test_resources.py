"""Resource flags -> HostConfig with docker's checks and wording, and HostConfig -> OCI
linux.resources / linux.devices / process.rlimits (berth.engine.resources)."""

import os
import stat
from types import SimpleNamespace

import pytest

from berth.engine import resources
from berth.errors import Conflict, InvalidArgument

MB = 1024 * 1024


def features(**overrides):
    found = SimpleNamespace(version=1, memory=True, swap_limit=True, swappiness=True, oom_kill_disable=True,
                            cpus="0-1", mems="0")
    for key, value in overrides.items():
        setattr(found, key, value)
    return found


def opts(**given):
    defaults = dict(memory=None, memory_swap=None, memory_reservation=None, memory_swappiness=-1,
                    oom_kill_disable=False, cpu_shares=0, cpus=None, cpu_period=0, cpu_quota=0, cpuset_cpus=None,
                    cpuset_mems=None, pids_limit=0, device=[], device_cgroup_rule=[], ulimit=[])
    defaults.update(given)
    return SimpleNamespace(**defaults)


# -- flag values ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("32m", 32 * MB), ("32M", 32 * MB), ("32mb", 32 * MB), ("32MiB", 32 * MB), ("1g", 1024 * MB),
    ("1GB", 1024 * MB), ("512k", 512 * 1024), ("512kb", 512 * 1024), ("100", 100), ("100b", 100), ("1.5g", 1536 * MB),
])
def test_memory_sizes_like_docker(value, expected):
    assert resources.parse_memory(value, "-m, --memory") == expected


def test_memory_bad_size_has_pflags_wording():
    with pytest.raises(InvalidArgument) as err:
        resources.parse_memory("10x", "-m, --memory")
    assert str(err.value) == 'invalid argument "10x" for "-m, --memory" flag: invalid suffix: \'x\''


def test_swap_accepts_minus_one():
    assert resources.parse_swap("-1", "--memory-swap") == -1
    assert resources.parse_swap("64m", "--memory-swap") == 64 * MB


@pytest.mark.parametrize("value, nano", [
    ("1.5", 1_500_000_000), ("3/2", 1_500_000_000), ("1e0", 1_000_000_000), ("0.01", 10_000_000), (".5", 500_000_000),
    ("2", 2_000_000_000), ("-1", -1_000_000_000),
])
def test_cpus_is_a_rational_number(value, nano):
    assert resources.parse_cpus(value) == nano


def test_cpus_errors():
    with pytest.raises(InvalidArgument, match=r'^invalid argument "abc" for "--cpus" flag: failed to parse abc as a '
                                              r"rational number$"):
        resources.parse_cpus("abc")
    with pytest.raises(InvalidArgument, match="value is too precise"):
        resources.parse_cpus("0.0000000001")


@pytest.mark.parametrize("value, mapping", [
    ("/dev/null", ("/dev/null", "/dev/null", "rwm")),
    ("/dev/null:/dev/mynull", ("/dev/null", "/dev/mynull", "rwm")),
    ("/dev/null:r", ("/dev/null", "/dev/null", "r")),
    ("/dev/null:/dev/mynull:rw", ("/dev/null", "/dev/mynull", "rw")),
    ("/dev/null:/dev/x/../mynull", ("/dev/null", "/dev/mynull", "rwm")),
])
def test_device_forms(value, mapping):
    parsed = resources.parse_device(value)
    assert (parsed["PathOnHost"], parsed["PathInContainer"], parsed["CgroupPermissions"]) == mapping


@pytest.mark.parametrize("value, message", [
    ("/dev/null:rel", "rel is not an absolute path"),
    ("/dev/null:/dev/x:rwz", "bad mode specified: rwz"),
    ("/dev/null:/dev/x:rr", "bad mode specified: rr"),
    ("a:b:c:d", "bad format for path: a:b:c:d"),
    (":/dev/x", "bad format for path: :/dev/x"),
])
def test_device_errors(value, message):
    with pytest.raises(InvalidArgument) as err:
        resources.parse_device(value)
    assert str(err.value) == message


def test_device_nodes_of_a_host_device():
    nodes, rules = resources.device_nodes({"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                           "CgroupPermissions": "rw"})
    assert nodes == [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0,
                      "gid": 0}]
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]


def test_device_nodes_of_a_directory_and_a_symlink(tmp_path):
    os.mknod(tmp_path / "zero", stat.S_IFCHR | 0o640, os.makedev(1, 5))
    (tmp_path / "plain").write_text("not a device")
    nodes, rules = resources.device_nodes({"PathOnHost": str(tmp_path), "PathInContainer": "/dev/mine"})
    assert [(n["path"], n["major"], n["minor"], n["fileMode"]) for n in nodes] == [("/dev/mine/zero", 1, 5, 0o640)]
    assert rules[0]["access"] == "rwm"
    os.symlink("/dev/null", tmp_path / "link")
    nodes, _ = resources.device_nodes({"PathOnHost": str(tmp_path / "link"), "PathInContainer": "/dev/l"})
    assert (nodes[0]["major"], nodes[0]["minor"]) == (1, 3)


def test_device_errors_at_the_host_like_moby(tmp_path):
    with pytest.raises(InvalidArgument) as err:
        resources.device_nodes({"PathOnHost": "/dev/nonexistent", "PathInContainer": "/dev/nonexistent"})
    assert str(err.value) == ('error gathering device information while adding custom device "/dev/nonexistent": '
                              "no such file or directory")
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgument, match=r'custom device ".*/file": not a device node$'):
        resources.device_nodes({"PathOnHost": str(tmp_path / "file"), "PathInContainer": "/dev/x"})


def test_device_cgroup_rule_format():
    assert resources.parse_device_cgroup_rule("c 1:3 rw") == "c 1:3 rw"
    assert resources.parse_device_cgroup_rule("b *:* m") == "b *:* m"
    for bad in ("x", "c 1:3", "d 1:3 r", "c 1:3 rwmr", "c a:3 r"):
        with pytest.raises(InvalidArgument, match=f"invalid device cgroup format '{bad}'"):
            resources.parse_device_cgroup_rule(bad)


def test_ulimits_parsed_sorted_and_overridden():
    parsed = resources.parse_ulimits(["nproc=100", "nofile=1024:2048", "nofile=10:20", "core=-1"])
    assert parsed == [{"Name": "core", "Hard": -1, "Soft": -1}, {"Name": "nofile", "Hard": 20, "Soft": 10},
                      {"Name": "nproc", "Hard": 100, "Soft": 100}]


@pytest.mark.parametrize("value, message", [
    ("nofile", "invalid ulimit argument: nofile"),
    ("foo=1", "invalid ulimit type: foo"),
    ("as=1", "invalid ulimit type: as"),
    ("nofile=abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("nofile=10:5", "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
    ("nofile=-1:10", "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 10"),
    ("nofile=1:2:3", "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"),
])
def test_ulimit_errors(value, message):
    with pytest.raises(InvalidArgument) as err:
        resources.parse_ulimits([value])
    assert str(err.value) == f'invalid argument "{value}" for "--ulimit" flag: {message}'


def test_cpuset_lists():
    assert resources.parse_cpuset("0-2,4") == {0, 1, 2, 4}
    assert resources.parse_cpuset("3") == {3}
    for bad in ("1-0", "0-1,x", "a", "1-", ","):
        with pytest.raises(ValueError, match="invalid format"):
            resources.parse_cpuset(bad)


# -- the daemon's checks ------------------------------------------------------------------------
@pytest.mark.parametrize("host, message", [
    ({"Memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 20 * MB, "MemorySwap": 10 * MB},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 10 * MB}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemoryReservation": 2 * MB}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 64 * MB, "MemoryReservation": 128 * MB},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"NanoCpus": 10 ** 9, "CpuPeriod": 100000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10 ** 9, "CpuQuota": 100000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"CpusetCpus": "99"}, "Requested CPUs are not available - requested 99, available: 0-1"),
    ({"CpusetCpus": "0-1,x"}, "Invalid value 0-1,x for cpuset cpus: invalid format: 0-1,x"),
    ({"CpusetMems": "1"}, "Requested memory nodes are not available - requested 1, available: 0"),
])
def test_daemon_errors(host, message):
    with pytest.raises(InvalidArgument) as err:
        resources.validate(host, features=features())
    assert str(err.value) == message


def test_cpus_beyond_the_host():
    cpus = len(os.sched_getaffinity(0))
    with pytest.raises(InvalidArgument) as err:
        resources.validate({"NanoCpus": (cpus + 1) * 10 ** 9}, features=features())
    assert str(err.value) == f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"


def test_limits_the_host_cannot_enforce_are_warned_and_dropped():
    host = {"Memory": 64 * MB, "MemorySwappiness": 10, "OomKillDisable": True}
    warnings = resources.validate(host, features=features(version=2, swappiness=False, oom_kill_disable=False,
                                                          swap_limit=False))
    assert warnings == [
        "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without "
        "swap.",
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory "
        "swappiness discarded.",
        "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
    ]
    assert host == {"Memory": 64 * MB, "MemorySwap": -1, "MemorySwappiness": None, "OomKillDisable": False}


def test_oom_kill_disable_without_memory_limit_warns():
    assert resources.validate({"OomKillDisable": True}, features=features()) == [
        "OOM killer is disabled for the container, but no memory limit is set, this can result in the system "
        "running out of resources."]


def test_a_limit_larger_than_the_host_is_accepted():
    assert resources.validate({"Memory": 1 << 50}, features=features()) == []


def test_update_may_set_swap_alone():
    assert resources.validate({"MemorySwap": 64 * MB}, update=True, features=features()) == []


# -- flags -> HostConfig ---------------------------------------------------------------------
def test_host_config_from_flags(capsys):
    # The real validate, against this host's cgroups: what it cannot enforce is dropped with a warning.
    from berth.runtime.cgroups import features

    found = features()
    host = resources.host_config_from(opts(
        memory="32m", memory_reservation="16m", cpu_shares=512, cpus="1", cpuset_cpus="0", pids_limit=50,
        device=["/dev/null:/dev/mynull:rw"], ulimit=["nofile=1024:2048"], memory_swappiness=30,
        oom_kill_disable=True))
    expected = {
        "Memory": 32 * MB, "MemorySwap": 64 * MB, "MemoryReservation": 16 * MB, "MemorySwappiness": 30,
        "OomKillDisable": True, "CpuShares": 512, "NanoCpus": 1_000_000_000, "CpusetCpus": "0", "PidsLimit": 50,
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}],
        "Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024}],
    }
    warnings = []
    if not found.memory:
        expected.update(Memory=0, MemorySwap=-1)
        warnings.append("Your kernel does not support memory limit capabilities")
    elif not found.swap_limit:
        expected["MemorySwap"] = -1
        warnings.append("Your kernel does not support swap limit capabilities")
    if not found.swappiness:
        expected["MemorySwappiness"] = None
        warnings.append("Your kernel does not support memory swappiness capabilities")
    if not found.oom_kill_disable:
        expected["OomKillDisable"] = False
        warnings.append("Your kernel does not support OomKillDisable")
    assert host == expected
    printed = capsys.readouterr().err.splitlines()
    assert len(printed) == len(warnings) and all(line.startswith("WARNING: " + w) for line, w in
                                                  zip(printed, warnings, strict=True)), printed


def test_host_config_defaults_like_docker(capsys):
    assert resources.host_config_from(opts(memory="10m", memory_swap="-1"))["MemorySwap"] == -1
    assert resources.host_config_from(opts(memory="10m"))["MemorySwap"] == 20 * MB  # as much swap as memory
    assert resources.host_config_from(opts(pids_limit=-1)) == {}  # unlimited: docker stores no limit
    assert resources.host_config_from(opts(pids_limit=0)) == {}
    assert resources.host_config_from(opts()) == {}
    assert capsys.readouterr().err == ""


def test_host_config_keeps_an_explicit_swap_the_host_can_limit():
    from berth.runtime.cgroups import features

    swap = resources.host_config_from(opts(memory="10m", memory_swap="10m"))["MemorySwap"]
    assert swap == (10 * MB if features().swap_limit else -1)


def test_host_config_is_validated_like_docker():
    # host_config_from runs the daemon's checks itself: a bad combination never reaches a container
    with pytest.raises(InvalidArgument, match=r"^Minimum memory limit allowed is 6MB$"):
        resources.host_config_from(opts(memory="1m"))
    with pytest.raises(InvalidArgument, match=r"^Minimum memoryswap limit should be larger than memory limit"):
        resources.host_config_from(opts(memory="32m", memory_swap="16m"))
    with pytest.raises(InvalidArgument, match=r"^Conflicting options: Nano CPUs and CPU Period cannot both be set$"):
        resources.host_config_from(opts(cpus="0.5", cpu_period=50000))


def test_swappiness_out_of_range_is_a_cli_error():
    with pytest.raises(InvalidArgument, match=r"^invalid value: 200. Valid memory swappiness range is 0-100$"):
        resources.host_config_from(opts(memory_swappiness=200))


def test_device_that_does_not_exist_fails_at_create():
    with pytest.raises(InvalidArgument, match="while adding custom device"):
        resources.host_config_from(opts(device=["/dev/nonexistent"]))


# -- HostConfig -> OCI ---------------------------------------------------------------------------
def test_oci_resources_like_moby():
    host = {"Memory": 32 * MB, "MemorySwap": 64 * MB, "MemoryReservation": 16 * MB, "MemorySwappiness": 30,
            "OomKillDisable": True, "CpuShares": 512, "NanoCpus": 1_500_000_000, "CpusetCpus": "0", "CpusetMems": "0",
            "PidsLimit": 50, "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                                          "CgroupPermissions": "rw"}], "DeviceCgroupRules": ["c 10:* rwm"]}
    assert resources.oci_resources(host) == {
        "memory": {"limit": 32 * MB, "reservation": 16 * MB, "swap": 64 * MB, "swappiness": 30,
                   "disableOOMKiller": True},
        "cpu": {"shares": 512, "cpus": "0", "mems": "0", "period": 100000, "quota": 150000},
        "pids": {"limit": 50},
        "devices": [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                    {"allow": True, "type": "c", "major": 10, "minor": -1, "access": "rwm"}],
    }


def test_oci_resources_edge_cases():
    assert resources.oci_resources({"MemorySwap": -1, "PidsLimit": 0, "CpuPeriod": 50000, "CpuQuota": 25000}) == {
        "cpu": {"period": 50000, "quota": 25000}, "pids": {"limit": -1}}
    assert resources.oci_resources({"Memory": 0, "CpuShares": 0}) == {}
    with pytest.raises(InvalidArgument, match="shares: invalid argument"):
        resources.oci_resources({"CpuShares": -5})


def test_privileged_devices_need_no_rules():
    mapping = [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "r"},
               {"PathOnHost": "/dev/null", "PathInContainer": "/dev/other", "CgroupPermissions": "r"}]
    host = {"Privileged": True, "Devices": mapping}
    assert "devices" not in resources.oci_resources(host)
    assert [d["path"] for d in resources.oci_devices(host)] == ["/dev/other"]


def test_rlimits_in_oci_terms():
    host = {"Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024}, {"Name": "core", "Hard": -1, "Soft": -1}]}
    assert resources.rlimits(host) == [
        {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 2 ** 64 - 1, "soft": 2 ** 64 - 1},
    ]


def test_apply_to_spec_keeps_the_default_device_rules_first():
    default = [{"allow": False, "access": "rwm"}]
    spec = {"process": {}, "linux": {"resources": {"devices": list(default)}}}
    resources.apply_to_spec(spec, {"Memory": 32 * MB, "Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rwm"}],
        "Ulimits": [{"Name": "nproc", "Hard": 5, "Soft": 5}]})
    linux = spec["linux"]
    assert linux["resources"]["devices"] == default + [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    assert linux["resources"]["memory"] == {"limit": 32 * MB}
    assert [d["path"] for d in linux["devices"]] == ["/dev/mynull"]
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NPROC", "hard": 5, "soft": 5}]


def test_wanted_is_false_for_docker_defaults():
    assert not resources.wanted({"Memory": 0, "CpuShares": 0, "PidsLimit": None, "Devices": [], "Ulimits": None})
    assert resources.wanted({"MemorySwappiness": 0})


# -- update ---------------------------------------------------------------------------------------
def test_update_fields():
    changes = resources.update_fields(SimpleNamespace(memory="64m", memory_swap="-1", memory_reservation=None,
                                                      cpu_shares=300, cpu_period=0, cpu_quota=0, cpuset_cpus="1",
                                                      cpuset_mems="", cpus="0.5", pids_limit=-1))
    assert changes == {"Memory": 64 * MB, "MemorySwap": -1, "CpuShares": 300, "CpusetCpus": "1",
                       "NanoCpus": 500_000_000, "PidsLimit": 0}


@pytest.mark.parametrize("host, changes, message", [
    ({"CpuPeriod": 50000}, {"NanoCpus": 10 ** 9},
     "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"),
    ({"CpuQuota": 50000}, {"NanoCpus": 10 ** 9},
     "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"),
    ({"NanoCpus": 10 ** 9}, {"CpuPeriod": 50000},
     "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"),
    ({"NanoCpus": 10 ** 9}, {"CpuQuota": 50000},
     "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"),
    ({"Memory": 32 * MB, "MemorySwap": 64 * MB}, {"Memory": 100 * MB},
     "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"),
    ({"Memory": 0, "MemorySwap": 0}, {"Memory": 10 * MB},  # docker's quirk: no limit yet means swap 0
     "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"),
])
def test_update_conflicts(host, changes, message):
    with pytest.raises(Conflict) as err:
        resources.merge_update(host, changes)
    assert str(err.value) == message


def test_update_merges_and_restart_policy():
    host = {"Memory": 32 * MB, "MemorySwap": 64 * MB, "CpuShares": 0, "AutoRemove": False}
    resources.merge_update(host, {"Memory": 48 * MB, "CpuShares": 300}, {"Name": "always", "MaximumRetryCount": 0})
    assert host["Memory"] == 48 * MB and host["CpuShares"] == 300
    assert host["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    with pytest.raises(Conflict, match="Restart policy cannot be updated because AutoRemove is enabled"):
        resources.merge_update({"AutoRemove": True}, {}, {"Name": "always", "MaximumRetryCount": 0})


def test_live_resources_only_what_changed():
    assert resources.live_resources({"PidsLimit": 0, "CpuShares": 300}) == {"cpu": {"shares": 300},
                                                                            "pids": {"limit": -1}}
    assert resources.live_resources({"Memory": 64 * MB, "MemorySwap": -1}) == {"memory": {"limit": 64 * MB}}
