"""Volumes against real containers (book chapter 6): bind mounts of host directories and
files, named and anonymous volumes with the image's content copied in, the volume-container
pattern, `rm -v`, VOLUME through commit, the `volume` commands, and bad input that must
leave nothing behind. Docker is the reference for every message and JSON shape."""

import json
import os
import re
import subprocess

import pytest

from conftest import mounts_under, refused, wait_for

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def mounts_of(b, ref: str) -> list[dict]:
    return json.loads(b.ok("inspect", "--format", "{{json .Mounts}}", ref))


def volume_names(b, *filters: str) -> list[str]:
    args = ["volume", "ls", "-q"]
    for f in filters:
        args += ["--filter", f]
    return b.ok(*args).split()


def container_count(b) -> int:
    return len(b.container_ids())


# -- bind mounts: the book's examples --------------------------------------------------

def test_book_garbage_bind_mount(busybox, tmp_path, monkeypatch):
    """docker run -v "$PWD"/garbage:/test/garbage ...: writes show up on the host; a
    root-only file is readable by root in the container, not by nobody."""
    monkeypatch.chdir(tmp_path)
    garbage = os.path.join(os.getcwd(), "garbage")
    os.mkdir(garbage)
    busybox.ok("run", "--rm", "-v", f"{garbage}:/test/garbage", "busybox",
               "sh", "-c", "echo 'hello from the container' > /test/garbage/note")
    with open(os.path.join(garbage, "note")) as f:
        assert f.read() == "hello from the container\n"
    secret = os.path.join(garbage, "secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    assert busybox.ok("run", "--rm", "-v", f"{garbage}:/test/garbage", "busybox",
                      "cat", "/test/garbage/secret") == "root only\n"
    denied = busybox("run", "--rm", "-u", "nobody", "-v", f"{garbage}:/test/garbage", "busybox",
                     "cat", "/test/garbage/secret")
    assert denied.returncode == 1
    assert "Permission denied" in denied.stderr


def test_book_log_files_keep_host_ownership(busybox, tmp_path):
    """Chapter 6.3.3: -u 2000:2000 writes into a host dir owned by 2000:2000; a second
    container with the same ids appends; the host sees uid 2000 (no user namespace)."""
    logs = tmp_path / "logFiles"
    logs.mkdir()
    os.chown(logs, 2000, 2000)
    for line in ("first", "second"):
        busybox.ok("run", "--rm", "-u", "2000:2000", "-v", f"{logs}:/logFiles", "busybox",
                   "sh", "-c", f"echo {line} >> /logFiles/app.log")
    log = logs / "app.log"
    assert log.read_text() == "first\nsecond\n"
    assert (log.stat().st_uid, log.stat().st_gid) == (2000, 2000)
    # another user cannot write there
    result = busybox("run", "--rm", "-u", "3000:3000", "-v", f"{logs}:/logFiles", "busybox",
                     "sh", "-c", "echo third >> /logFiles/app.log")
    refused(result, 1, "can't create /logFiles/app.log: Permission denied")


def test_read_only_bind_refuses_writes(busybox, tmp_path):
    (tmp_path / "kept").write_text("original\n")
    result = busybox("run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox",
                     "sh", "-c", "cat /data/kept; echo changed > /data/kept")
    assert result.stdout == "original\n"
    assert result.returncode == 1 and "Read-only file system" in result.stderr
    assert (tmp_path / "kept").read_text() == "original\n"
    mount = busybox.ok("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/data,readonly", "busybox",
                       "sh", "-c", "touch /data/x 2>&1; true")
    assert "Read-only file system" in mount


def test_bind_source_made_when_missing_and_files_bind_too(busybox, tmp_path):
    missing = tmp_path / "not" / "there"
    busybox.ok("run", "--rm", "-v", f"{missing}:/m", "busybox", "touch", "/m/made")
    assert missing.is_dir() and (missing / "made").exists()
    conf = tmp_path / "app.conf"
    conf.write_text("setting=1\n")
    assert busybox.ok("run", "--rm", "-v", f"{conf}:/etc/app.conf:ro", "busybox", "cat", "/etc/app.conf") == \
        "setting=1\n"
    # a created container does not make the host directory yet (dockerd makes it at start)
    later = tmp_path / "later"
    busybox.ok("create", "--name", "later", "-v", f"{later}:/l", "busybox", "true")
    assert not later.exists()
    busybox.ok("start", "-a", "later")
    assert later.is_dir()


def test_selinux_label_modes_are_accepted_with_a_note(busybox, tmp_path):
    result = busybox("run", "--rm", "-v", f"{tmp_path}:/d:z", "busybox", "ls", "/d")
    assert result.returncode == 0
    assert "SELinux relabeling" in result.stderr


def test_inspect_mounts_shape(busybox, tmp_path):
    busybox.ok("create", "--name", "shape", "-v", f"{tmp_path}:/host:ro", "-v", "named:/named",
               "-v", "/anon", "--mount", "type=tmpfs,dst=/scratch", "--tmpfs", "/run:size=1m", "busybox", "true")
    mounts = mounts_of(busybox, "shape")
    anon = mounts[0]
    assert HEX64.match(anon["Name"])
    root = busybox.root
    assert mounts == [
        {"Type": "volume", "Name": anon["Name"], "Source": f"{root}/volumes/{anon['Name']}/_data",
         "Destination": "/anon", "Driver": "local", "Mode": "", "RW": True, "Propagation": ""},
        {"Type": "bind", "Source": str(tmp_path), "Destination": "/host", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "volume", "Name": "named", "Source": f"{root}/volumes/named/_data", "Destination": "/named",
         "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
        {"Type": "tmpfs", "Source": "", "Destination": "/scratch", "Mode": "", "RW": True, "Propagation": ""},
    ]
    host = json.loads(busybox.ok("inspect", "--format", "{{json .HostConfig}}", "shape"))
    assert host["Binds"] == [f"{tmp_path}:/host:ro", "named:/named"]
    assert host["Mounts"] == [{"Type": "tmpfs", "Target": "/scratch"}]
    assert host["Tmpfs"] == {"/run": "size=1m"}
    assert host["VolumesFrom"] is None
    config = json.loads(busybox.ok("inspect", "--format", "{{json .Config.Volumes}}", "shape"))
    assert config == {"/anon": {}}  # binds are not VOLUMEs (they must not be committed)


# -- named and anonymous volumes --------------------------------------------------------

def test_named_volume_gets_the_image_content_and_persists(busybox):
    # the image's /etc (passwd, group) is copied into the new, empty volume on first mount
    assert "nobody:x:65534" in busybox.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/passwd")
    data = os.path.join(busybox.root, "volumes", "etcvol", "_data")
    assert os.path.isfile(os.path.join(data, "passwd"))
    # the network files still come from the container, over the volume
    assert "localhost" in busybox.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/hosts")
    busybox.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "sh", "-c", "echo kept > /etc/state")
    assert busybox.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/state") == "kept\n"
    # not empty any more: a later mount copies nothing over what is there
    busybox.ok("run", "--rm", "-v", "etcvol:/etc", "busybox", "rm", "/etc/group")
    assert "No such file" in busybox("run", "--rm", "-v", "etcvol:/etc", "busybox", "cat", "/etc/group").stderr
    # the copy keeps owners and modes: /root is 0700 in the image
    busybox.ok("run", "--rm", "-v", "rootvol:/root", "busybox", "true")
    assert oct(os.stat(os.path.join(busybox.root, "volumes", "rootvol", "_data")).st_mode & 0o777) == "0o700"
    # nocopy: the volume stays empty
    assert busybox.ok("run", "--rm", "-v", "bare:/etc:nocopy", "busybox", "ls", "/etc").split() == \
        ["hostname", "hosts", "resolv.conf"]


def test_volume_commands(busybox):
    assert busybox.ok("volume", "create", "--label", "tier=web", "--label", "flag", "web") == "web\n"
    assert busybox.ok("volume", "create", "web") == "web\n"  # exists: returned as it is, like dockerd
    generated = busybox.ok("volume", "create").strip()
    assert HEX64.match(generated)
    [info] = json.loads(busybox.ok("volume", "inspect", "web"))
    assert list(info) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$", info["CreatedAt"])
    assert info["Driver"] == "local" and info["Scope"] == "local" and info["Name"] == "web"
    assert info["Labels"] == {"flag": "", "tier": "web"} and info["Options"] is None  # docker: null when none given
    assert info["Mountpoint"] == os.path.join(busybox.root, "volumes", "web", "_data")
    assert busybox.ok("volume", "inspect", "--format", "{{.Driver}} {{.Name}}", "web") == "local web\n"
    table = busybox.ok("volume", "ls").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["DRIVER", "VOLUME NAME"]
    assert [line.split() for line in table[1:]] == [["local", generated], ["local", "web"]]
    assert volume_names(busybox, "label=tier=web") == ["web"]
    assert volume_names(busybox, "name=we") == ["web"]
    assert busybox.ok("volume", "ls", "--format", '{{.Name}}:{{.Label "tier"}}', "--filter", "label=tier") == \
        "web:web\n"
    missing = busybox("volume", "inspect", "nope")
    assert missing.returncode == 1 and "get nope: no such volume" in missing.stderr
    bad = busybox("volume", "create", "foo/bar")
    assert bad.returncode == 1 and "includes invalid characters for a local volume name" in bad.stderr
    bad = busybox("volume", "create", "-o", "bogus=1", "v2")
    assert bad.returncode == 1 and bad.stderr == 'Error: create v2: invalid option: "bogus"\n'
    assert busybox("volume", "ls", "--filter", "bogus=1").stderr == "Error: invalid filter 'bogus'\n"
    assert busybox.ok("volume", "rm", "web", generated) == f"web\n{generated}\n"
    assert busybox("volume", "rm", "web").returncode == 1
    assert busybox.ok("volume", "rm", "-f", "web") == "web\n"
    assert volume_names(busybox) == []
    # a volume name is never a path
    escape = busybox("volume", "rm", "../image")
    assert escape.returncode == 1 and "get ../image: no such volume" in escape.stderr
    assert os.path.isdir(os.path.join(busybox.root, "image"))


def test_volume_rm_refuses_a_volume_in_use(busybox):
    container_id = busybox.ok("create", "-v", "busy:/data", "busybox", "true").strip()
    result = busybox("volume", "rm", "busy")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error response from daemon: remove busy: volume is in use - [{container_id}]"
    assert volume_names(busybox) == ["busy"]
    busybox.ok("rm", container_id)
    assert busybox.ok("volume", "rm", "busy") == "busy\n"


def test_driver_options_mount_a_tmpfs_shared_by_containers(busybox):
    busybox.ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m,mode=0750", "ram")
    busybox.ok("run", "--rm", "-v", "ram:/ram", "busybox", "sh", "-c", "echo in-memory > /ram/f")
    assert busybox.ok("run", "--rm", "-v", "ram:/ram", "busybox", "cat", "/ram/f") == "in-memory\n"
    data = os.path.join(busybox.root, "volumes", "ram", "_data")
    assert mounts_under(data)
    busybox.ok("volume", "rm", "ram")
    assert not mounts_under(data)


def test_anonymous_volumes_go_with_rm_v_named_ones_never(busybox):
    busybox.ok("create", "--name", "keeper", "-v", "/anon", "-v", "named:/named", "busybox", "true")
    anon = next(m["Name"] for m in mounts_of(busybox, "keeper") if m["Destination"] == "/anon")
    busybox.ok("create", "--name", "plain", "-v", "/other", "busybox", "true")
    other = mounts_of(busybox, "plain")[0]["Name"]
    # without -v the anonymous volume survives, dangling
    busybox.ok("rm", "plain")
    assert other in volume_names(busybox, "dangling=true")
    assert busybox.ok("volume", "inspect", "--format", "{{json .Labels}}", other).strip() == \
        '{"com.docker.volume.anonymous":""}'
    busybox.ok("rm", "-v", "keeper")
    names = volume_names(busybox)
    assert anon not in names
    assert "named" in names and other in names
    # volume prune takes anonymous volumes only; --all the named ones too
    assert busybox.ok("volume", "prune", "-f") == f"Deleted Volumes:\n{other}\n\nTotal reclaimed space: 0B\n"
    assert volume_names(busybox) == ["named"]
    assert busybox.ok("volume", "prune", "-f", "--all").startswith("Deleted Volumes:\nnamed\n")
    # --rm takes its anonymous volumes along too (docker's help says so)
    busybox.ok("run", "--rm", "-v", "/gone", "-v", "stays:/stays", "busybox", "true")
    assert volume_names(busybox) == ["stays"]


def test_volume_container_pattern(busybox):
    """A data container holds the volumes; two others share them through --volumes-from."""
    busybox.ok("create", "--name", "vc_data", "-v", "/config", "-v", "/logs", "busybox", "true")
    busybox.ok("run", "--name", "writer", "--volumes-from", "vc_data", "busybox",
               "sh", "-c", "echo setting=1 > /config/app.conf; echo started >> /logs/app.log")
    busybox.ok("run", "--name", "appender", "--volumes-from", "writer", "busybox",
               "sh", "-c", "cat /config/app.conf; echo again >> /logs/app.log")
    reader = busybox("run", "--name", "reader", "--volumes-from", "vc_data:ro", "busybox",
                     "sh", "-c", "cat /logs/app.log; echo x > /config/new")
    assert reader.stdout == "started\nagain\n"
    assert "Read-only file system" in reader.stderr
    names = {m["Destination"]: m["Name"] for m in mounts_of(busybox, "vc_data")}
    for ref in ("writer", "appender", "reader"):
        assert {m["Destination"]: m["Name"] for m in mounts_of(busybox, ref)} == names
    assert [m["RW"] for m in mounts_of(busybox, "reader")] == [False, False]
    assert [m["Mode"] for m in mounts_of(busybox, "writer")] == ["", ""]
    host = json.loads(busybox.ok("inspect", "--format", "{{json .HostConfig.VolumesFrom}}", "reader"))
    assert host == ["vc_data:ro"]
    # in use by four containers: rm -v of one of them keeps the volumes
    busybox.ok("rm", "-v", "reader")
    assert sorted(volume_names(busybox)) == sorted(names.values())
    for ref in ("writer", "appender", "vc_data"):
        busybox.ok("rm", "-v", ref)
    assert volume_names(busybox) == []


def test_volume_carried_through_commit(busybox):
    busybox.ok("run", "--name", "base", "busybox", "sh", "-c", "mkdir /data && echo from-image > /data/seed")
    busybox.ok("commit", "-c", "VOLUME /data", "base", "with-volume")
    assert json.loads(busybox.ok("image", "inspect", "--format", "{{json .Config.Volumes}}", "with-volume")) == \
        {"/data": {}}
    busybox.ok("run", "--name", "user", "with-volume", "sh", "-c", "cat /data/seed; echo more > /data/more")
    [mount] = mounts_of(busybox, "user")
    assert mount["Destination"] == "/data" and HEX64.match(mount["Name"]) and mount["Mode"] == ""
    data = mount["Source"]
    assert sorted(os.listdir(data)) == ["more", "seed"]
    # committing that container keeps the VOLUME, not the volume's content
    busybox.ok("commit", "user", "again")
    assert json.loads(busybox.ok("image", "inspect", "--format", "{{json .Config.Volumes}}", "again")) == \
        {"/data": {}}
    assert busybox.ok("run", "--rm", "again", "ls", "/data").split() == ["seed"]
    # -v with only a path is an anonymous volume the container's config (and commit) keeps
    busybox.ok("run", "--name", "anon", "-v", "/cache", "busybox", "true")
    busybox.ok("commit", "anon", "cached")
    assert json.loads(busybox.ok("image", "inspect", "--format", "{{json .Config.Volumes}}", "cached")) == \
        {"/cache": {}}


def test_tmpfs_mounts(busybox):
    out = busybox.ok("run", "--rm", "--tmpfs", "/run:size=1m,mode=700", "busybox",
                     "sh", "-c", "grep ' /run ' /proc/mounts; stat -c %a /run")
    assert "tmpfs /run tmpfs rw,nosuid,nodev,noexec" in out and "size=1024k" in out and out.endswith("700\n")
    out = busybox.ok("run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=2m", "busybox", "grep", " /t ",
                     "/proc/mounts")
    assert "size=2048k" in out


# -- failures ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["-v", "foo/bar:/x"], 'create foo/bar: "foo/bar" includes invalid characters for a local volume name, only '
                           '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use '
                           "absolute path"),
    (["-v", "{tmp}/h:/"], "invalid volume specification: '{tmp}/h:/': invalid mount config for type \"bind\": "
                          "invalid specification: destination can't be '/'"),
    (["-v", "{tmp}/h:/proc"], '"/proc" cannot be mounted because it is not of type proc'),
    (["-v", "{tmp}/h:/proc/sys/kernel"], '"/proc/sys/kernel" cannot be mounted because it is inside /proc'),
    (["-v", "{tmp}/h:/x:rw,bogus"], "invalid mode: rw,bogus"),
    (["-v", "{tmp}/h:/x", "-v", "{tmp}/h:/x:ro"], "Duplicate mount point: /x"),
    (["--volumes-from", "nosuchbox"], "No such container: nosuchbox"),
    (["--mount", "type=bind,src={tmp}/h,dst=/x"], 'invalid mount config for type "bind": bind source path does not '
                                                  "exist: {tmp}/h"),
    (["--mount", "type=volume,src=v1,dst=/x,bogus=1"], 'invalid argument "type=volume,src=v1,dst=/x,bogus=1" for '
                                                       "\"--mount\" flag: unknown option 'bogus' in 'bogus=1'"),
    (["--tmpfs", "/"], "invalid specification: destination can't be '/'"),
    (["--tmpfs", "/run:bogus=1"], 'invalid tmpfs option "bogus"'),
    # a good volume first, then a bad one: the good one is not created either
    (["-v", "good:/good", "-v", "{tmp}/h:/"], "invalid volume specification: '{tmp}/h:/': invalid mount config "
                                              "for type \"bind\": invalid specification: destination can't be '/'"),
])
def test_bad_mounts_fail_with_dockers_words_and_leave_nothing(busybox, tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = busybox("run", "--rm", *args, "busybox", "true")
    assert result.returncode == 125
    assert result.stderr == f"Error: {message.replace('{tmp}', str(tmp_path))}\n"
    assert container_count(busybox) == 0
    assert volume_names(busybox) == []
    assert not (tmp_path / "h").exists()


def test_image_volume_over_a_file_is_refused(busybox):
    busybox.ok("run", "--name", "filer", "busybox", "sh", "-c", "echo x > /data")
    busybox.ok("commit", "-c", "VOLUME /data", "filer", "file-volume")
    result = busybox("run", "--rm", "file-volume", "true")
    assert result.returncode == 125
    assert "cannot mount volume over existing file, file exists /data" in result.stderr
    assert volume_names(busybox) == []
    assert container_count(busybox) == 1  # only "filer"


def test_interrupted_copy_up_is_completed_or_reported(busybox):
    """A copy-up leaves a marker until it is whole: a crash mid-copy (simulated: the marker
    with half of the files and a temporary one) is completed by the next mount; if the
    image's layers are gone, the next mount says so."""
    busybox.ok("create", "--name", "first", "-v", "half:/etc", "busybox", "true")
    volume = os.path.join(busybox.root, "volumes", "half")
    data = os.path.join(volume, "_data")
    whole = sorted(os.listdir(data))
    assert "passwd" in whole
    os.unlink(os.path.join(data, "passwd"))
    with open(os.path.join(data, ".berth-copy-up.passwd"), "w") as f:
        f.write("root:x:0")  # a file cut short
    lower = busybox.ok("inspect", "--format", "{{.GraphDriver.Data.LowerDir}}", "first").strip()
    with open(os.path.join(volume, "copy-up.json"), "w") as f:
        json.dump({"LowerDir": lower, "Path": "/etc"}, f)
    assert "nobody" in busybox.ok("run", "--rm", "-v", "half:/etc", "busybox", "cat", "/etc/passwd")
    assert sorted(os.listdir(data)) == whole
    assert not os.path.exists(os.path.join(volume, "copy-up.json"))
    # a marker its writer was killed writing (torn): nothing was copied yet, so a fresh copy
    fresh = os.path.join(busybox.root, "volumes", "torn")
    busybox.ok("volume", "create", "torn")
    with open(os.path.join(fresh, "copy-up.json"), "w") as f:
        f.write('{"LowerDir": "/var/li')
    assert "nobody" in busybox.ok("run", "--rm", "-v", "torn:/etc", "busybox", "cat", "/etc/passwd")
    assert sorted(os.listdir(os.path.join(fresh, "_data"))) == whole
    assert sorted(os.listdir(fresh)) == ["_data", "volume.json"]  # no marker, no temp file
    # the start of a container that uses it completes it too; gone layers are reported
    with open(os.path.join(volume, "copy-up.json"), "w") as f:
        json.dump({"LowerDir": "/nonexistent/layer:/nonexistent/other", "Path": "/etc"}, f)
    busybox.fails(1, "start", "-a", "first",  # docker's start exits 1 on an engine error
                  says="volume half: copying the image's content into it was interrupted and cannot be completed")


def test_concurrent_first_mounts_share_one_whole_copy(busybox):
    """Eight containers created at once on a new named volume: one volume, copied once and
    whole before any of them sees it."""
    import subprocess

    procs = [subprocess.Popen(busybox.cmd("run", "--rm", "--network", "none", "-v", "shared:/etc", "busybox",
                                          "grep", "-c", "nobody", "/etc/passwd"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 8, [r[1] for r in results]
    assert [r[0] for r in results] == ["1\n"] * 8
    assert volume_names(busybox) == ["shared"]
    assert not os.path.exists(os.path.join(busybox.root, "volumes", "shared", "copy-up.json"))


def test_plain_inspect_finds_volumes_and_networks(busybox):
    busybox.ok("volume", "create", "findme")
    assert busybox.ok("inspect", "-f", "{{.Name}} {{.Driver}}", "findme") == "findme local\n"
    assert busybox.ok("inspect", "-f", "{{.Name}} {{.Driver}}", "none") == "none null\n"
    missing = busybox("inspect", "--type", "volume", "nope")
    assert missing.returncode == 1 and "get nope: no such volume" in missing.stderr


def test_system_df_counts_local_volumes(busybox):
    busybox.ok("run", "--name", "writer", "-v", "dfvol:/data", "busybox", "sh", "-c",
               "head -c 100000 /dev/zero > /data/f")
    busybox.ok("volume", "create", "idle")
    rows = {line.split()[0] + line.split()[1]: line.split() for line in busybox.ok("system", "df").splitlines()[1:]}
    local = rows["LocalVolumes"]
    assert local[2:5] == ["2", "1", "100kB"]


def test_shared_propagation_needs_a_shared_source_and_then_reaches_the_host(busybox, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    result = busybox("run", "--rm", "-v", f"{private}:/p:shared", "busybox", "true")
    assert result.returncode == 125 and "but it is not a shared mount" in result.stderr
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        (shared / "sub").mkdir()
        cid = busybox.ok("run", "-d", "-v", f"{shared}:/s:rshared", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                         "mount -t tmpfs from-container /s/sub && touch /s/sub/made-inside && sleep 60").strip()
        # the container's mount propagated to the host
        wait_for((shared / "sub" / "made-inside").exists, what="the container's mount on the host")
        busybox.ok("rm", "-f", cid)
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared)], check=False)
