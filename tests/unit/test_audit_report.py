"""berth.engine.audit's and audit_policy's pure logic: a container record (and its image's config, the other
containers) -> its place on each rung, its weakenings with their flags and stronger settings;
policies parsed and applied."""

import copy
import json

import pytest

from berth.engine.audit import Context, audit, device_flag, is_root
from berth.engine.audit_policy import Policy, load_policy
from berth.errors import InvalidArgument

ID = "a" * 64
OTHER = "b" * 64


def record(**host) -> dict:
    """A record as berth writes it for `create busybox` (the fields audit reads), HostConfig
    fields overridden by `host`; Config/Mounts/NetworkSettings by the keys config/mounts/networks."""
    config = host.pop("config", {})
    mounts = host.pop("mounts", [])
    networks = host.pop("networks", {"bridge": {}})
    base = {
        "Id": ID, "Name": "/web", "Image": "sha256:" + "c" * 64,
        "Config": {"User": "", "Image": "busybox", **config},
        "HostConfig": {"NetworkMode": "bridge", "IpcMode": "private", "PidMode": "", "UTSMode": "",
                       "UsernsMode": "", "CapAdd": None, "CapDrop": None, "Privileged": False, "SecurityOpt": None,
                       "Devices": [], "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuQuota": 0, "CpuPeriod": 0,
                       "CpuShares": 0, "CpusetCpus": "", "PidsLimit": None, "ReadonlyRootfs": False, "Binds": None,
                       "PortBindings": {}, "MaskedPaths": ["/proc/kcore"], "ReadonlyPaths": ["/proc/sys"]},
        "Mounts": mounts,
        "NetworkSettings": {"Networks": networks},
    }
    base["HostConfig"].update(host)
    return base


def flags(report: dict) -> list[str]:
    return [w["Flag"] for w in report["Weakenings"]]


def weakening(report: dict, flag: str) -> dict:
    found = [w for w in report["Weakenings"] if w["Flag"] == flag]
    assert found, f"no weakening {flag!r} in {flags(report)}"
    return found[0]


def rows(report: dict, area: str) -> list[tuple[str, str, str]]:
    return [(r["Setting"], r["Status"], r["Flag"]) for r in report["Checks"] if r["Area"] == area]


# --- the ladder ----------------------------------------------------------------------------------


def test_docker_defaults_weaken_only_by_what_they_leave_out():
    report = audit(record())
    assert flags(report) == ["no --user", "no --memory", "no --cpus", "no --pids-limit", "no --read-only"]
    ladder = report["Ladder"]
    assert (ladder["Network"], ladder["IPC"], ladder["PID"], ladder["UTS"]) == ("bridged", "private", "private",
                                                                                 "private")
    assert ladder["Root"] and ladder["User"] == "root" and ladder["Seccomp"] == "default"
    assert rows(report, "capabilities") == [("docker's default 14", "default", "")]
    assert weakening(report, "no --memory")["Stronger"].startswith("--memory SIZE")
    assert weakening(report, "no --read-only")["Stronger"].startswith("--read-only")
    assert report["Violations"] == [] and report["Name"] == "web"


def test_the_report_is_plain_json():
    report = audit(record(NetworkMode="host", Privileged=True))
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {"Id", "Name", "Image", "Ladder", "Checks", "Weakenings", "Violations"}
    for row in report["Checks"]:
        assert set(row) == {"Area", "Setting", "Status", "Flag", "Why", "Stronger"}
        assert row["Status"] in ("weaker", "default", "stronger")


@pytest.mark.parametrize("mode, rung, status", [("none", "closed", "stronger"), ("bridge", "bridged", "default"),
                                                ("host", "open", "weaker"), ("appnet", "bridged", "default")])
def test_network_archetypes(mode, rung, status):
    report = audit(record(NetworkMode=mode, networks={mode: {}} if mode == "appnet" else {}))
    assert report["Ladder"]["Network"] == rung
    setting, got_status, flag = rows(report, "network")[0]
    assert got_status == status
    assert flag == ("" if mode == "bridge" else f"--network {mode}")
    if mode == "appnet":
        assert setting == "bridged (appnet)"


def test_published_ports_of_a_bridged_container():
    report = audit(record(PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
                                        "443/tcp": [{"HostIp": "", "HostPort": ""}]}, PublishAllPorts=True))
    assert rows(report, "ports") == [
        ("0.0.0.0:*->443/tcp", "default", "-p 443"),
        ("127.0.0.1:5353->53/udp", "default", "-p 127.0.0.1:5353:53/udp"),
        ("0.0.0.0:8080->80/tcp", "default", "-p 8080:80"),
        ("all exposed, on random host ports", "default", "-P"),
    ]
    stronger = [r["Stronger"] for r in report["Checks"] if r["Area"] == "ports"]
    assert stronger[2] == "-p 127.0.0.1:8080:80, when only the host connects to it" and stronger[1] == ""
    assert rows(audit(record()), "ports") == [("none", "default", "")]
    assert rows(audit(record(NetworkMode="none")), "ports") == []


def test_joined_network_names_the_container_it_joins():
    other = record()
    other["Id"], other["Name"] = OTHER, "/db"
    report = audit(record(NetworkMode=f"container:{OTHER}"), Context(None, [other]))
    assert report["Ladder"]["Network"] == "joined"
    w = weakening(report, "--network container:db")
    assert "db's network stack" in w["Why"] and "--network NAME" in w["Stronger"]


def test_host_network_suggests_publishing_the_ports_it_serves():
    report = audit(record(NetworkMode="host", PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                          config={"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}))
    assert weakening(report, "--network host")["Stronger"] == "-p 53:53/udp -p 8080:80"
    bare = audit(record(NetworkMode="host"))
    assert "-p for each port" in weakening(bare, "--network host")["Stronger"]


def test_ipc_modes():
    assert audit(record(IpcMode="none"))["Ladder"]["IPC"] == "none"
    alone = audit(record(IpcMode="shareable"))
    assert weakening(alone, "--ipc shareable")["Stronger"].startswith("--ipc private")
    joiner = record(IpcMode=f"container:{ID}")
    joiner["Id"], joiner["Name"] = OTHER, "/consumer"
    joined = audit(record(IpcMode="shareable"), Context(None, [joiner]))
    w = weakening(joined, "--ipc shareable")
    assert "joined by consumer" in w["Why"] and w["Stronger"] == ""
    shared = audit(joiner, Context(None, [record()]))
    assert shared["Ladder"]["IPC"] == "shared" and "--ipc container:web" in flags(shared)
    assert audit(record(IpcMode="host"))["Ladder"]["IPC"] == "host"


def test_pid_and_uts():
    report = audit(record(PidMode="host", UTSMode="host"))
    assert "--pid host" in flags(report) and "--uts host" in flags(report)
    assert weakening(report, "--uts host")["Stronger"].startswith("--hostname")
    other = record()
    other["Id"], other["Name"] = OTHER, "/app"
    shared = audit(record(PidMode=f"container:{OTHER}"), Context(None, [other]))
    assert shared["Ladder"]["PID"] == "shared" and "--pid container:app" in flags(shared)


@pytest.mark.parametrize("user, root", [("", True), ("0", True), ("root", True), ("0:0", True), ("root:wheel", True),
                                        ("nobody", False), ("1000:1000", False), ("65534", False)])
def test_is_root(user, root):
    assert is_root(user) is root


def test_user_against_the_image():
    non_root = audit(record(config={"User": "nobody"}))
    assert not non_root["Ladder"]["Root"] and rows(non_root, "user") == [("nobody", "stronger", "--user nobody")]
    image_user = audit(record(config={"User": "app"}), Context({"User": "app"}))
    assert rows(image_user, "user") == [("app", "default", "")]
    overridden = audit(record(config={"User": "root"}), Context({"User": "app"}))
    w = weakening(overridden, "--user root")
    assert "image's USER is app" in w["Why"] and w["Stronger"] == "leave out --user: the image runs as app"
    assert "the image names no USER" in weakening(audit(record()), "no --user")["Why"]


def test_a_name_the_container_maps_to_uid_0_is_root_when_it_runs():
    alias = audit(record(config={"User": "toor"}), Context(None, [], uid=0))
    assert alias["Ladder"]["Root"] and alias["Ladder"]["Uid"] == 0
    w = weakening(alias, "--user toor")
    assert w["Why"] == "runs as root: toor is uid 0 in the container's /etc/passwd"
    from_image = audit(record(config={"User": "toor"}), Context({"User": "toor"}, [], uid=0))
    assert "no --user" in flags(from_image)
    running = audit(record(config={"User": "nobody"}), Context(None, [], uid=65534))
    assert not running["Ladder"]["Root"] and running["Ladder"]["Uid"] == 65534
    assert audit(record())["Ladder"]["Uid"] is None  # not running: the kernel cannot say


def test_capabilities_against_the_default_set():
    report = audit(record(CapAdd=["CAP_SYS_ADMIN", "CAP_CHOWN"], CapDrop=["CAP_NET_RAW", "CAP_SYS_TIME"]))
    assert rows(report, "capabilities") == [
        ("+SYS_ADMIN", "weaker", "--cap-add SYS_ADMIN"),
        ("+CHOWN", "default", "--cap-add CHOWN"),  # in docker's default set: no effect
        ("-NET_RAW", "stronger", "--cap-drop NET_RAW"),  # SYS_TIME: not held by default, nothing dropped
    ]
    assert report["Ladder"]["CapAdd"] == ["SYS_ADMIN", "CHOWN"]
    assert "escape" in weakening(report, "--cap-add SYS_ADMIN")["Why"] or "mount" in \
        weakening(report, "--cap-add SYS_ADMIN")["Why"]
    both = audit(record(CapAdd=["CAP_SYS_ADMIN"], CapDrop=["CAP_SYS_ADMIN"]))  # held: the add wins, as in moby
    assert "--cap-add SYS_ADMIN" in flags(both)
    everything = audit(record(CapAdd=["ALL"]))
    assert "--cap-add ALL" in flags(everything)
    minimal = audit(record(CapAdd=["CAP_NET_BIND_SERVICE"], CapDrop=["ALL"]))
    assert ("-ALL", "stronger", "--cap-drop ALL") in rows(minimal, "capabilities")
    assert not [f for f in flags(minimal) if "cap" in f]  # a default cap re-added after ALL dropped


def test_privileged_is_one_weakening_that_shows_in_each_area():
    report = audit(record(Privileged=True, CapAdd=["CAP_NET_ADMIN"],
                          mounts=[{"Type": "bind", "Source": "/dev/fuse", "Destination": "/dev/fuse", "RW": True}],
                          Binds=["/dev/fuse:/dev/fuse"]))
    for area in ("capabilities", "privileged", "seccomp", "apparmor", "devices"):
        assert rows(report, area)[0][1:] == ("weaker", "--privileged"), area
    assert flags(report).count("--privileged") == 1
    assert weakening(report, "--privileged")["Stronger"] == \
        "--cap-add NET_ADMIN --device /dev/fuse without --privileged"
    assert report["Ladder"]["Seccomp"] == "unconfined" and report["Ladder"]["Privileged"]
    assert "--device" in weakening(audit(record(Privileged=True)), "--privileged")["Stronger"]


def test_seccomp_profiles():
    assert audit(record(SecurityOpt=["seccomp=unconfined"]))["Ladder"]["Seccomp"] == "unconfined"
    allowing = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []})
    report = audit(record(SecurityOpt=[f"seccomp={allowing}"]))
    assert report["Ladder"]["Seccomp"] == "custom"
    assert "SCMP_ACT_ALLOW" in weakening(report, "--security-opt seccomp=PROFILE")["Why"]
    refusing = json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []})
    assert not [f for f in flags(audit(record(SecurityOpt=[f"seccomp={refusing}"]))) if "seccomp" in f]


def test_mac_options():
    report = audit(record(SecurityOpt=["apparmor=unconfined", "no-new-privileges"]))
    assert "--security-opt apparmor=unconfined" in flags(report)
    assert rows(report, "no-new-privileges") == [("yes", "stronger", "--security-opt no-new-privileges")]
    assert report["Ladder"]["NoNewPrivileges"]
    unmasked = audit(record(MaskedPaths=[], ReadonlyPaths=[]))
    assert "--security-opt systempaths=unconfined" in flags(unmasked)


@pytest.mark.parametrize("device, flag", [
    ({"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}, "--device /dev/fuse"),
    ({"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z", "CgroupPermissions": "rwm"},
     "--device /dev/zero:/dev/z"),
    ({"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "r"},
     "--device /dev/zero:/dev/zero:r"),
])
def test_device_flag(device, flag):
    assert device_flag(device) == flag


def test_devices():
    report = audit(record(Devices=[{"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm",
                                    "CgroupPermissions": "rwm"}], DeviceCgroupRules=["c 10:* rwm"]))
    w = weakening(report, "--device /dev/kvm")
    assert "/dev/kvm" in w["Why"] and w["Stronger"].startswith("--device /dev/kvm:/dev/kvm:r")
    assert "--device-cgroup-rule 'c 10:* rwm'" in flags(report)
    assert report["Ladder"]["Devices"] == ["/dev/kvm", "c 10:* rwm"]


def test_limits():
    limited = audit(record(Memory=64 << 20, MemorySwap=128 << 20, NanoCpus=500_000_000, PidsLimit=100))
    assert not [f for f in flags(limited) if f in ("no --memory", "no --cpus", "no --pids-limit")]
    assert rows(limited, "memory") == [("64MiB", "stronger", "--memory 64MiB")]
    assert limited["Ladder"]["Cpus"] == 0.5 and limited["Ladder"]["PidsLimit"] == 100
    quota = audit(record(CpuQuota=150000, CpuPeriod=100000))
    assert quota["Ladder"]["Cpus"] == 1.5
    assert rows(quota, "cpu") == [("1.5 CPUs", "stronger", "--cpu-quota 150000 --cpu-period 100000")]
    loose = audit(record(Memory=64 << 20, MemorySwap=-1, OomKillDisable=True, CpuShares=512, PidsLimit=-1))
    assert {"--memory-swap -1", "--oom-kill-disable", "no --cpus", "--pids-limit -1"} <= set(flags(loose))
    assert "relative weight" in weakening(loose, "no --cpus")["Why"]
    assert "other processes" in weakening(audit(record(OomKillDisable=True)), "--oom-kill-disable")["Why"]


def test_read_only_rootfs():
    assert rows(audit(record(ReadonlyRootfs=True)), "rootfs") == [("read-only", "stronger", "--read-only")]


def bind(source: str, target: str, rw: bool = True) -> dict:
    return {"Type": "bind", "Source": source, "Destination": target, "RW": rw}


@pytest.mark.parametrize("source, says", [
    ("/", "the host's whole filesystem"),
    ("/var/run/docker.sock", "container engine's API socket"),
    ("/run/berth/berth.sock", "container engine's API socket"),
    ("/proc", "the host's /proc"),
    ("/sys/", "the host's /sys"),
    ("/var", "holding /var/lib/berth, /var/lib/containers, /var/lib/docker, /var/log, /var/run"),
    ("/srv/data", "the host path /srv/data"),
])
def test_host_mounts_say_what_they_expose(source, says):
    report = audit(record(mounts=[bind(source, "/host")], Binds=[f"{source}:/host"]))
    w = weakening(report, f"-v {source}:/host")
    assert says in w["Why"] and "(writable)" in w["Why"]
    assert report["Ladder"]["HostMounts"] == [f"{source}:/host"]


def test_stronger_mounts():
    data = audit(record(mounts=[bind("/srv/data", "/data")], Binds=["/srv/data:/data"]))
    assert weakening(data, "-v /srv/data:/data")["Stronger"].startswith("-v /srv/data:/data:ro")
    root = audit(record(mounts=[bind("/", "/host", rw=False)], Binds=["/:/host:ro"]))
    assert "only the host paths it needs" in weakening(root, "-v /:/host:ro")["Stronger"]
    volume = audit(record(mounts=[{"Type": "volume", "Name": "data", "Source": "/x/_data", "Destination": "/data",
                                   "RW": True}], Binds=["data:/data"], Tmpfs={"/tmp": ""}))
    assert rows(volume, "mounts") == [("volume data:/data", "default", "-v data:/data"),
                                      ("tmpfs /tmp", "default", "--tmpfs /tmp")]
    mounted = audit(record(mounts=[bind("/srv", "/srv", rw=False)],
                           Mounts=[{"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True}]))
    assert flags(mounted)[-1] == "--mount type=bind,source=/srv,target=/srv,readonly"
    node = audit(record(mounts=[bind("/dev/fuse", "/dev/fuse")], Binds=["/dev/fuse:/dev/fuse"]))
    w = weakening(node, "-v /dev/fuse:/dev/fuse")
    assert w["Why"] == "the host device node /dev/fuse (writable)" and w["Stronger"] == "--device /dev/fuse"
    inherited = audit(record(mounts=[bind("/srv", "/srv")], VolumesFrom=["web"]))
    assert "--volumes-from web" in flags(inherited)


# --- policies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rules, message", [
    ([], "a policy is a JSON object, not a list"),
    ({"allowed-network": []}, 'unknown policy key "allowed-network"'),
    ({"forbid-privileged": "yes"}, "forbid-privileged must be true or false, not a string"),
    ({"max-cap-add": -1}, "max-cap-add must be a number >= 0, not -1"),
    ({"max-cap-add": True}, "max-cap-add must be a number >= 0, not true"),
    ({"allowed-networks": "bridge"}, "allowed-networks must be a list of strings, not a string"),
    ({"allowed-ipc": ["hosts"]}, 'allowed-ipc: "hosts" is none of none, private, shareable, shared, host'),
    ({"allowed-cap-add": ["CAP_BOGUS"]}, 'allowed-cap-add: unknown capability "CAP_BOGUS"'),
])
def test_bad_policies(rules, message):
    with pytest.raises(InvalidArgument) as err:
        Policy(rules, "policy file p.json")
    assert str(err.value).startswith(f"policy file p.json: {message}")


def test_policy_files(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"forbid-privileged": true,}')
    with pytest.raises(InvalidArgument, match=r"not valid JSON: .*line 1 column 28"):
        load_policy(str(path))
    with pytest.raises(InvalidArgument, match="no such file or directory"):
        load_policy(str(tmp_path / "missing.json"))
    with pytest.raises(InvalidArgument, match="is a directory"):
        load_policy(str(tmp_path))
    path.write_text('{"require-read-only": true}')
    assert load_policy(str(path)).rules == {"require-read-only": True}


def violations(rules: dict, rec: dict, ctx: Context | None = None) -> list[str]:
    return Policy(rules, "p").violations(audit(rec, ctx))


def test_policy_networks():
    allowed = {"allowed-networks": ["none", "bridge", "appnet"]}
    assert violations(allowed, record()) == []
    assert violations(allowed, record(NetworkMode="appnet")) == []
    assert violations(allowed, record(NetworkMode="host")) == \
        ["--network host: network host (open) is not allowed: none, bridge, appnet (allowed-networks in p)"]
    assert violations({"allowed-networks": ["closed", "bridged"]}, record(NetworkMode="other")) == []
    assert violations({"allowed-networks": ["container"]}, record(NetworkMode=f"container:{OTHER}")) == []


def test_policy_namespaces_and_security():
    rec = record(IpcMode="host", PidMode="host", UTSMode="host", SecurityOpt=["seccomp=unconfined"])
    found = violations({"allowed-ipc": ["private", "shareable"], "allowed-pid": ["private"],
                        "allowed-uts": ["private"], "allowed-seccomp": ["default", "custom"],
                        "require-no-new-privileges": True}, rec)
    assert [v.split(":")[0] for v in found] == ["--ipc host", "--pid host", "--uts host",
                                                "--security-opt seccomp=unconfined",
                                                "no --security-opt no-new-privileges"]


def test_policy_capabilities():
    rec = record(CapAdd=["CAP_SYS_ADMIN", "CAP_NET_ADMIN"])
    assert violations({"max-cap-add": 2}, rec) == []
    assert violations({"max-cap-add": 1}, rec) == [
        "--cap-add SYS_ADMIN, --cap-add NET_ADMIN: 2 capabilities added beyond docker's default, 1 allowed "
        "(max-cap-add in p)"]
    assert violations({"allowed-cap-add": ["net_admin"]}, rec) == [
        "--cap-add SYS_ADMIN: capability SYS_ADMIN is not allowed: NET_ADMIN (allowed-cap-add in p)"]
    assert violations({"required-cap-drop": ["NET_RAW"]}, rec) == [
        "no --cap-drop NET_RAW: --cap-drop NET_RAW is required (required-cap-drop in p)"]
    assert violations({"required-cap-drop": ["NET_RAW"]}, record(CapDrop=["ALL"])) == []
    assert violations({"max-cap-add": 5}, record(Privileged=True)) != []


def test_policy_requirements():
    rules = {"forbid-privileged": True, "require-non-root": True, "require-memory-limit": True,
             "require-cpu-limit": True, "require-pids-limit": True, "require-read-only": True, "forbid-devices": True}
    found = violations(rules, record(Privileged=True))
    assert [v.split(":")[0] for v in found] == ["--privileged", "no --user", "no --memory", "no --cpus",
                                                "no --pids-limit", "no --read-only", "--privileged"]
    tight = record(config={"User": "nobody"}, Memory=1 << 26, NanoCpus=10**9, PidsLimit=50, ReadonlyRootfs=True)
    assert violations(rules, tight) == []
    device = record(Devices=[{"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm", "CgroupPermissions": "rwm"}])
    assert violations({"allowed-devices": ["/dev/kvm"]}, device) == []
    assert violations({"allowed-devices": []}, device) == [
        "--device /dev/kvm: device /dev/kvm is not allowed: none allowed (allowed-devices in p)"]


def test_policy_host_mounts():
    rec = record(mounts=[bind("/srv/data", "/data"), bind("/var/run/docker.sock", "/sock")],
                 Binds=["/srv/data:/data", "/var/run/docker.sock:/sock"])
    assert [v.split(":")[0] for v in violations({"forbid-host-mounts": True}, rec)] == \
        ["-v /srv/data", "-v /var/run/docker.sock"]
    assert [v.split(":")[0] for v in violations({"forbid-sensitive-host-mounts": True}, rec)] == \
        ["-v /var/run/docker.sock"]
    assert violations({"allowed-host-mounts": ["/srv"]}, rec) == [
        "-v /var/run/docker.sock:/sock: host path /var/run/docker.sock is not allowed: /srv (allowed-host-mounts in p)"]
    assert violations({"allowed-host-mounts": ["/srv/dat"]}, rec)[0].startswith("-v /srv/data:/data")


def test_strictest_policy_refuses_every_weakening():
    policy = Policy.strictest()
    report = audit(record(config={"User": "nobody"}, Memory=1 << 26, NanoCpus=10**9, PidsLimit=50,
                          ReadonlyRootfs=True))
    assert report["Weakenings"] == [] and policy.violations(report) == []
    loose = audit(record())
    assert len(policy.violations(loose)) == 5
    assert policy.violations(loose)[0] == "no --user: a weakening (user): 0 allowed (max-weakenings in --strict)"


def test_audit_reads_nothing_it_changes():
    rec = record(NetworkMode="host", CapAdd=["CAP_SYS_ADMIN"], mounts=[bind("/", "/host")], Binds=["/:/host"])
    before = copy.deepcopy(rec)
    audit(rec, Context({"User": "x"}, [rec]))
    assert rec == before
