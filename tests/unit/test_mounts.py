"""Mount parsing with docker's rules and wording: the CLI's -v/--mount/--tmpfs, dockerd's
linux parser (binds, modes, mount configs, volumes-from), tmpfs option merging, the OCI
mount order, and the local driver's volume names, options and filters."""

import pytest

from berth.engine import mounts, volumes
from berth.engine.mounts import (
    MountRequest,
    check_proc,
    merge_tmpfs_options,
    parse_mount_flag,
    parse_mount_raw,
    parse_mount_spec,
    parse_volume_flag,
    parse_volumes_from,
    tmpfs_data,
    valid_mode,
    validate_tmpfs_destination,
    with_user_mounts,
)
from berth.errors import InvalidArgument, NotFound


def error_of(call, *args, kind: str = "invalid") -> str:
    with pytest.raises(InvalidArgument) as info:
        call(*args)
    assert info.value.kind == kind
    return str(info.value)


# -- the CLI's -v ------------------------------------------------------------------

def test_volume_flag_splits_binds_from_anonymous_volumes():
    assert parse_volume_flag("/data") == (None, "/data")
    assert parse_volume_flag("/a") == (None, "/a")
    assert parse_volume_flag("/host:/ctr") == ("/host:/ctr", None)
    assert parse_volume_flag("name:/ctr:ro") == ("name:/ctr:ro", None)
    assert parse_volume_flag("/h:/c:ro,Z,rshared") == ("/h:/c:ro,Z,rshared", None)


def test_volume_flag_makes_dot_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_volume_flag("./garbage:/test/garbage") == (f"{tmp_path}/garbage:/test/garbage", None)
    # without a leading dot it is a volume name (dockerd then rejects "foo/bar")
    assert parse_volume_flag("foo/bar:/x") == ("foo/bar:/x", None)


@pytest.mark.parametrize("spec, message", [
    ("", "invalid empty volume spec"),
    ("a:b:c:d", "invalid spec: a:b:c:d: too many colons"),
    ("a::b", "invalid spec: a::b: empty section between colons"),
    ("/a:/b:", "invalid spec: /a:/b:: empty section between colons"),
])
def test_volume_flag_errors(spec, message):
    assert error_of(parse_volume_flag, spec) == message


def test_request_from_flags_collapses_duplicates_like_the_cli_map():
    req = MountRequest.from_flags(["/a", "/h:/c", "/a", "/h:/c"], [], ["/run:size=1m", "/tmp"], ["c1:ro"])
    assert req.binds == ["/h:/c"]
    assert req.volumes == ["/a"]
    assert req.tmpfs == {"/run": "size=1m", "/tmp": ""}
    assert req.volumes_from == ["c1:ro"]


# -- the CLI's --mount ----------------------------------------------------------------

def test_mount_flag_fields():
    assert parse_mount_flag("type=bind,source=/src,target=/dst,readonly,bind-propagation=rslave") == {
        "Type": "bind", "Source": "/src", "Target": "/dst", "ReadOnly": True, "BindOptions": {"Propagation": "rslave"}}
    assert parse_mount_flag("src=vol,dst=/data,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs") == {
        "Type": "volume", "Source": "vol", "Target": "/data",
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}, "DriverConfig": {"Options": {"type": "tmpfs"}}}}
    assert parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770}}
    assert parse_mount_flag("type=bind,src=/a,dst=/b,ro=false")["ReadOnly"] is False
    # csv quoting, as docker's encoding/csv reader does it
    assert parse_mount_flag('type=bind,"src=/a,b",dst=/c')["Source"] == "/a,b"


@pytest.mark.parametrize("value, message", [
    ("foo", "invalid field 'foo' must be a key=value pair"),
    ("type=bind,bogus=1", "unknown option 'bogus' in 'bogus=1'"),
    ("type=volume,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=tmpfs,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'tmpfs'"),
    ("type=bind,src= /a", "invalid value for 'src' in 'src= /a': value should not have whitespace"),
    ("type=bind,ro=yes", "invalid value for 'ro': invalid boolean value (\"yes\"): must be one of \"true\", \"1\", "
                         "\"false\", or \"0\" (default \"true\")"),
    ("type=tmpfs,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
    ("", "value is empty"),
])
def test_mount_flag_errors(value, message):
    # a flag value docker's CLI cannot parse: exit 125 for any command
    expected = f'invalid argument "{value}" for "--mount" flag: {message}'
    assert error_of(parse_mount_flag, value, kind="usage") == expected


# -- dockerd's parser ---------------------------------------------------------------

def test_binds_parse_like_dockerd():
    point = parse_mount_raw("/host/dir:/ctr/dir")
    assert point.inspect() == {"Type": "bind", "Source": "/host/dir", "Destination": "/ctr/dir", "Mode": "",
                               "RW": True, "Propagation": "rprivate"}
    point = parse_mount_raw("/host/dir/:/ctr/dir/:ro,Z,rslave")
    assert (point.source, point.destination, point.mode, point.rw, point.propagation) == (
        "/host/dir", "/ctr/dir", "ro,Z,rslave", False, "rslave")
    point = parse_mount_raw("data:/var/lib/data:nocopy")
    assert (point.type, point.name, point.copy_data, point.rw) == ("volume", "data", False, True)


@pytest.mark.parametrize("raw, message", [
    ("/x:/", "invalid volume specification: '/x:/': invalid mount config for type \"bind\": invalid specification: "
             "destination can't be '/'"),
    ("/x:relative", "invalid volume specification: '/x:relative': invalid mount config for type \"bind\": "
                    "invalid mount path: 'relative' mount path must be absolute"),
    ("/x:/y:bogus", "invalid mode: bogus"),
    ("/x:/y:ro,rw", "invalid mode: ro,rw"),
    ("/x:rw", "invalid volume specification: '/x:rw'"),
    (":/x", "invalid volume specification: ':/x'"),
    ("/a:/b:ro:shared", "invalid volume specification: '/a:/b:ro:shared'"),
])
def test_bind_errors_are_dockerds(raw, message):
    assert error_of(parse_mount_raw, raw) == message


def test_valid_modes():
    for mode in ("", "ro", "rw", "z", "Z", "ro,z", "rshared", "ro,Z,rslave", "nocopy", "cached", "rw,nocopy"):
        assert valid_mode(mode), mode
    for mode in ("ro,rw", "z,Z", "shared,slave", "exec", "ro,"):
        assert not valid_mode(mode), mode


def test_mount_spec_validation(tmp_path):
    assert parse_mount_spec({"Type": "bind", "Source": str(tmp_path), "Target": "/x"}).propagation == "rprivate"
    with pytest.raises(InvalidArgument, match="bind source path does not exist: /nonexistent"):
        parse_mount_spec({"Type": "bind", "Source": "/nonexistent", "Target": "/x"})
    assert parse_mount_spec({"Type": "bind", "Source": "/nonexistent", "Target": "/x",
                             "BindOptions": {"CreateMountpoint": True}}).source == "/nonexistent"
    with pytest.raises(InvalidArgument, match='invalid mount config for type "tmpfs": field Source must not be '
                                              'specified'):
        parse_mount_spec({"Type": "tmpfs", "Source": "x", "Target": "/x"})
    with pytest.raises(InvalidArgument, match='invalid mount config for type "volume": field Target must not be '
                                              'empty'):
        parse_mount_spec({"Type": "volume"})
    with pytest.raises(InvalidArgument, match="invalid propagation mode: bogus"):
        parse_mount_spec({"Type": "bind", "Source": str(tmp_path), "Target": "/x",
                          "BindOptions": {"Propagation": "bogus"}})
    with pytest.raises(NotFound, match='plugin "nfs" not found'):
        parse_mount_spec({"Type": "volume", "Source": "v", "Target": "/x",
                          "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}})


def test_volumes_from_modes():
    assert parse_volumes_from("box") == ("box", "rw")
    assert parse_volumes_from("box:ro") == ("box", "ro")
    for spec in ("box:rshared", "box:nocopy", "box:bogus"):
        assert error_of(parse_volumes_from, spec) == f"invalid mode: {spec.partition(':')[2]}"
    assert error_of(parse_volumes_from, "") == "volumes-from specification cannot be an empty string"


def test_proc_is_refused_except_lxcfs_files():
    assert error_of(check_proc, "/proc") == '"/proc" cannot be mounted because it is not of type proc'
    assert error_of(check_proc, "/proc/sys/") == '"/proc/sys" cannot be mounted because it is inside /proc'
    check_proc("/proc/meminfo")
    check_proc("/process")


def test_tmpfs_destinations_and_options():
    assert error_of(validate_tmpfs_destination, "/") == "invalid specification: destination can't be '/'"
    assert error_of(validate_tmpfs_destination, "run") == "invalid mount path: 'run' mount path must be absolute"
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "size=2m"]) == [
        "nosuid", "nodev", "rprivate", "exec", "size=2m"]
    assert error_of(merge_tmpfs_options, ["foo=1"]) == 'invalid tmpfs option "foo"'
    assert tmpfs_data({"SizeBytes": 64 << 20, "Mode": 0o700}, True) == "ro,mode=700,size=64m"
    assert tmpfs_data({"SizeBytes": 1000}, False) == "size=1000"


# -- OCI mounts ---------------------------------------------------------------------

def test_user_mounts_sorted_after_defaults_and_before_etc_files():
    defaults = [{"destination": d, "type": "x", "source": d, "options": []}
                for d in ("/proc", "/dev", "/dev/pts", "/sys", "/dev/mqueue", "/dev/shm", "/etc/resolv.conf",
                          "/etc/hostname", "/etc/hosts")]
    record = {"HostConfig": {"Tmpfs": {"/run": "size=1m"}, "Mounts": []},
              "Mounts": [
                  {"Type": "bind", "Source": "/h/conf", "Destination": "/etc/app/conf", "RW": False,
                   "Propagation": "rprivate"},
                  {"Type": "volume", "Name": "v", "Source": "/r/volumes/v/_data", "Destination": "/etc",
                   "RW": True, "Propagation": ""},
                  {"Type": "bind", "Source": "/h/shm", "Destination": "/dev/shm", "RW": True,
                   "Propagation": "rprivate"},
              ]}
    result = with_user_mounts(record, defaults)
    assert [m["destination"] for m in result] == [
        "/proc", "/dev", "/dev/pts", "/sys", "/dev/mqueue",  # /dev/shm replaced by the user's
        "/etc", "/run", "/dev/shm", "/etc/app/conf",  # parents before children
        "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]
    by_dest = {m["destination"]: m for m in result}
    assert by_dest["/etc/app/conf"] == {"destination": "/etc/app/conf", "type": "bind", "source": "/h/conf",
                                        "options": ["rbind", "ro", "rprivate"]}
    assert by_dest["/etc"]["options"] == ["rbind"]
    assert by_dest["/run"] == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                               "options": ["noexec", "nosuid", "nodev", "rprivate", "size=1m"]}


def test_own_dev_drops_every_default_under_dev():
    defaults = [{"destination": d, "type": "x", "source": d, "options": []} for d in ("/proc", "/dev", "/dev/pts")]
    record = {"HostConfig": {}, "Mounts": [{"Type": "bind", "Source": "/dev", "Destination": "/dev", "RW": True,
                                            "Propagation": "rprivate"}]}
    assert [m["destination"] for m in with_user_mounts(record, defaults)] == ["/proc", "/dev"]
    assert with_user_mounts(record, defaults)[1]["source"] == "/dev"


# -- the local driver -----------------------------------------------------------------

def test_volume_names():
    for name in ("data", "my-vol.1", "a_b", "0x"):
        volumes.check_name(name)
    assert error_of(volumes.check_name, "x") == ("create x: volume name is too short, names should be at least two "
                                                 "alphanumeric characters")
    assert error_of(volumes.check_name, "foo/bar") == (
        'create foo/bar: "foo/bar" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
    for name in ("-x", ".x", "~/x", "a b", "/abs"):
        assert not volumes.valid_name(name), name


def test_local_driver_options():
    volumes.check_options("v", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    assert error_of(volumes.check_options, "v", {"foo": "1"}) == 'create v: invalid option: "foo"'
    assert error_of(volumes.check_options, "v", {"type": "nfs"}) == 'create v: missing required option: "device"'
    assert error_of(volumes.check_options, "v", {"size": "1g"}) == (
        "create v: quota size requested but no quota support")


def test_volume_filters():
    info = {"Name": "web-data", "Driver": "local", "Labels": {"tier": "web", "x": ""}}
    assert volumes.matches(info, volumes.parse_filters(["dangling=true"], volumes.LIST_FILTERS), used=False)
    assert not volumes.matches(info, volumes.parse_filters(["dangling=1"], volumes.LIST_FILTERS), used=True)
    assert volumes.matches(info, volumes.parse_filters(["dangling=false"], volumes.LIST_FILTERS), used=True)
    assert volumes.matches(info, volumes.parse_filters(["name=data"], volumes.LIST_FILTERS), used=False)
    assert not volumes.matches(info, volumes.parse_filters(["name=^data"], volumes.LIST_FILTERS), used=False)
    assert volumes.matches(info, volumes.parse_filters(["label=tier=web", "label=x"], volumes.LIST_FILTERS), False)
    assert not volumes.matches(info, volumes.parse_filters(["label=tier=db"], volumes.LIST_FILTERS), False)
    assert not volumes.matches(info, volumes.parse_filters(["driver=nfs"], volumes.LIST_FILTERS), False)
    assert not volumes.matches(info, volumes.parse_filters(["label!=tier"], volumes.PRUNE_FILTERS), False)
    assert error_of(volumes.parse_filters, ["bogus=1"], volumes.LIST_FILTERS) == "invalid filter 'bogus'"
    assert error_of(volumes.parse_filters, ["dangling=maybe"], volumes.LIST_FILTERS) == (
        "invalid filter 'dangling=maybe'")


def test_mounts_module_stays_off_the_plain_run_path():
    # run imports berth.engine.mounts only when a mount flag or an image VOLUME asks for it
    import berth.cli.run as run

    class Opts:
        volume = mount = tmpfs = volumes_from = []

    assert run.mount_request(Opts) is None
    assert mounts.MountRequest.from_flags().binds == []
