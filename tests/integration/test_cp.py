"""`berth cp` against the real kernel: docker's path rules in both directions, for stopped and
running containers, tar streams on stdin/stdout, ownership, symlinks that must never lead to
the host, and docker's error messages. No test may leave a mount behind."""

import contextlib
import io
import os
import subprocess
import tarfile

import pytest

from conftest import mounts_under, wait_for

BUSYBOX_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"

# The tree every source container holds, made by its own command.
SETUP = ("mkdir -p /data/sub && echo hello > /data/file.txt && echo nested > /data/sub/inner.txt"
         " && ln -sf /etc/passwd /data/link && ln -sfn / /data/esc"
         " && echo owned > /data/owned && chown 1234:5678 /data/owned && chmod 640 /data/owned")


@pytest.fixture
def bb(busybox):
    """busybox, checked afterwards for leaked mounts (the stopped-container overlay)."""
    yield busybox
    assert mounts_under(busybox.base) == []


@contextlib.contextmanager
def running(berth, name, script="exec sleep 60"):
    proc = subprocess.Popen(berth.cmd("run", "--rm", "--name", name, "busybox", "sh", "-c",
                                      f"{SETUP} && touch /ready && {script}"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: berth("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"
                 and berth("cp", f"{name}:/ready", "-").returncode == 0)
        yield name
    finally:
        berth("rm", "-f", name)
        proc.wait(timeout=30)


@pytest.fixture(params=["stopped", "running"])
def source(request, bb):
    """A container holding SETUP's tree, stopped (overlay mounted only for the copy) or running."""
    if request.param == "stopped":
        bb.ok("create", "--name", "src", "busybox", "sh", "-c", SETUP)
        bb.ok("start", "-a", "src")
        yield "src"
    else:
        with running(bb, "src"):
            yield "src"


def cp(berth, *args, **kw):
    return berth("cp", *args, **kw)


def untar(data: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: m for m in archive.getmembers()}


def tar_out(berth, ref: str) -> dict:
    result = berth("cp", ref, "-", input=b"")
    assert result.returncode == 0, result.stderr
    return untar(result.stdout)


def make_tar(*entries) -> bytes:
    """entries: (name, bytes) files, (name, None) directories, (name, "->target") symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content[2:]
                archive.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                archive.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def read(path) -> str:
    with open(path) as f:
        return f.read()


# -- out of a container: docker's path rules ------------------------------------------

def test_file_to_missing_dest_is_created(bb, source, tmp_path):
    cp(bb, f"{source}:/data/file.txt", str(tmp_path / "out.txt"))
    assert read(tmp_path / "out.txt") == "hello\n"


def test_container_path_is_relative_to_root(bb, source, tmp_path):
    assert cp(bb, f"{source}:data/file.txt", str(tmp_path / "out.txt")).returncode == 0
    assert read(tmp_path / "out.txt") == "hello\n"


def test_file_into_existing_dir_and_over_existing_file(bb, source, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "old.txt").write_text("old content that is longer\n")
    assert cp(bb, f"{source}:/data/file.txt", str(tmp_path / "dir")).returncode == 0
    assert cp(bb, f"{source}:/data/file.txt", str(tmp_path / "old.txt")).returncode == 0
    assert read(tmp_path / "dir" / "file.txt") == "hello\n"
    assert read(tmp_path / "old.txt") == "hello\n"


def test_file_to_missing_dir_with_slash_is_an_error(bb, source, tmp_path):
    result = cp(bb, f"{source}:/data/file.txt", str(tmp_path / "nodir") + "/")
    assert result.returncode == 1
    assert result.stderr == "no such directory\n"
    assert not (tmp_path / "nodir").exists()


def test_dir_to_missing_dest_takes_its_name(bb, source, tmp_path):
    assert cp(bb, f"{source}:/data", str(tmp_path / "copy")).returncode == 0
    assert sorted(os.listdir(tmp_path / "copy")) == ["esc", "file.txt", "link", "owned", "sub"]
    assert read(tmp_path / "copy" / "sub" / "inner.txt") == "nested\n"
    assert os.stat(tmp_path / "copy" / "owned").st_mode & 0o777 == 0o640


def test_dir_into_existing_dir(bb, source, tmp_path):
    (tmp_path / "exist").mkdir()
    assert cp(bb, f"{source}:/data", str(tmp_path / "exist")).returncode == 0
    assert os.listdir(tmp_path / "exist") == ["data"]
    assert read(tmp_path / "exist" / "data" / "file.txt") == "hello\n"


def test_dir_slash_dot_copies_contents(bb, source, tmp_path):
    (tmp_path / "exist").mkdir()
    assert cp(bb, f"{source}:/data/.", str(tmp_path / "exist")).returncode == 0
    assert sorted(os.listdir(tmp_path / "exist")) == ["esc", "file.txt", "link", "owned", "sub"]


def test_dir_onto_existing_file_is_an_error(bb, source, tmp_path):
    (tmp_path / "file").write_text("keep\n")
    result = cp(bb, f"{source}:/data", str(tmp_path / "file"))
    assert result.returncode == 1
    assert result.stderr == "cannot copy directory\n"
    assert read(tmp_path / "file") == "keep\n"


def test_dest_parent_must_exist(bb, source, tmp_path):
    result = cp(bb, f"{source}:/data/file.txt", str(tmp_path / "a" / "b"))
    assert result.returncode == 1
    assert result.stderr == f'invalid output path: directory "{tmp_path / "a"}" does not exist\n'


def test_relative_host_dest(bb, source, tmp_path):
    result = subprocess.run(bb.cmd("cp", f"{source}:/data/file.txt", "rel.txt"), cwd=tmp_path,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert read(tmp_path / "rel.txt") == "hello\n"


# -- tar streams ------------------------------------------------------------------

def test_dash_dest_streams_a_tar_named_after_the_source(bb, source):
    members = tar_out(bb, f"{source}:/data")
    assert sorted(members) == ["data", "data/esc", "data/file.txt", "data/link", "data/owned", "data/sub",
                               "data/sub/inner.txt"]
    assert members["data"].isdir()
    assert members["data/link"].issym() and members["data/link"].linkname == "/etc/passwd"
    assert (members["data/owned"].uid, members["data/owned"].gid) == (1234, 5678)
    assert list(tar_out(bb, f"{source}:/data/file.txt")) == ["file.txt"]
    assert sorted(tar_out(bb, f"{source}:/data/sub/.")) == [".", "./inner.txt"]


def test_dash_dest_of_root_skips_other_filesystems(bb, source):
    members = tar_out(bb, f"{source}:/")
    assert "./bin/busybox" in members and "./data/file.txt" in members
    assert not [name for name in members if name.startswith(("./proc/", "./sys/"))]


def test_dash_source_extracts_into_a_directory(bb, source, tmp_path):
    data = make_tar(("dir", None), ("dir/a.txt", b"from tar\n"), ("top.txt", b"top\n"), ("lnk", "->dir/a.txt"))
    result = cp(bb, "-", f"{source}:/tmp", input=data)
    assert result.returncode == 0, result.stderr
    members = tar_out(bb, f"{source}:/tmp/.")
    assert {"./dir", "./dir/a.txt", "./top.txt", "./lnk"} <= set(members)
    assert members["./lnk"].linkname == "dir/a.txt"
    assert members["./dir/a.txt"].mtime == 1_600_000_000
    assert cp(bb, f"{source}:/tmp/dir/a.txt", str(tmp_path / "a.txt")).returncode == 0
    assert read(tmp_path / "a.txt") == "from tar\n"


def test_dash_source_needs_a_directory(bb, source):
    result = cp(bb, "-", f"{source}:/data/file.txt", input=make_tar(("x", b"x")))
    assert result.returncode == 1
    assert result.stderr == f'destination "{source}:/data/file.txt" must be a directory\n'.encode()


def test_dash_source_member_cannot_climb_out(bb, source):
    result = cp(bb, "-", f"{source}:/data/sub", input=make_tar(("../../../escaped", b"no\n")))
    assert result.returncode == 1
    assert b"is outside of" in result.stderr
    assert not [name for name in tar_out(bb, f"{source}:/") if name.endswith("escaped")]


# -- into a container ------------------------------------------------------------------

def test_copy_into_stopped_container_then_run_it(bb, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "hello.txt").write_text("copied in\n")
    bb.ok("create", "--name", "reader", "busybox", "sh", "-c", "cat /tmp/in/hello.txt; stat -c '%u:%g %a' /tmp/in")
    assert cp(bb, str(tmp_path / "in"), "reader:/tmp").returncode == 0
    assert bb.ok("start", "-a", "reader") == "copied in\n0:0 755\n"


def test_copy_into_running_container_then_back_out(bb, tmp_path):
    (tmp_path / "note.txt").write_text("live\n")
    with running(bb, "live"):
        assert cp(bb, str(tmp_path / "note.txt"), "live:/tmp/renamed.txt").returncode == 0
        assert cp(bb, "live:/tmp/renamed.txt", str(tmp_path / "back.txt")).returncode == 0
        assert read(tmp_path / "back.txt") == "live\n"


def test_file_into_container_dir_and_over_file(bb, source, tmp_path):
    (tmp_path / "new.txt").write_text("new\n")
    assert cp(bb, str(tmp_path / "new.txt"), f"{source}:/data/sub").returncode == 0
    assert cp(bb, str(tmp_path / "new.txt"), f"{source}:/data/file.txt").returncode == 0
    members = tar_out(bb, f"{source}:/data")
    assert members["data/sub/new.txt"].size == 4
    assert members["data/file.txt"].size == 4


def test_dir_onto_container_file_is_an_error(bb, source, tmp_path):
    (tmp_path / "d").mkdir()
    result = cp(bb, str(tmp_path / "d"), f"{source}:/data/file.txt")
    assert (result.returncode, result.stderr) == (1, "cannot copy directory\n")


def test_missing_container_parent_is_reported_by_the_daemon(bb, source, tmp_path):
    (tmp_path / "f").write_text("f\n")
    result = cp(bb, str(tmp_path / "f"), f"{source}:/nodir/f")
    assert result.returncode == 1
    assert result.stderr == f"Error response from daemon: Could not find the file /nodir in container {source}\n"


def test_missing_host_source(bb, source, tmp_path):
    result = cp(bb, str(tmp_path / "nope"), f"{source}:/tmp")
    assert result.returncode == 1
    assert result.stderr == f"lstat {tmp_path / 'nope'}: no such file or directory\n"


# -- ownership -----------------------------------------------------------------------

def test_copy_out_owner_is_the_caller_unless_archive(bb, source, tmp_path):
    assert cp(bb, f"{source}:/data/owned", str(tmp_path / "plain")).returncode == 0
    assert cp(bb, "-a", f"{source}:/data/owned", str(tmp_path / "kept")).returncode == 0
    plain, kept = os.stat(tmp_path / "plain"), os.stat(tmp_path / "kept")
    assert (plain.st_uid, plain.st_gid) == (os.getuid(), os.getgid())
    assert (kept.st_uid, kept.st_gid) == (1234, 5678)
    assert plain.st_mode & 0o777 == kept.st_mode & 0o777 == 0o640


def test_copy_in_owner_is_root_unless_archive(bb, source, tmp_path):
    for name in ("plain", "kept"):
        (tmp_path / name).write_text(name)
        os.chown(tmp_path / name, 4321, 8765)
    assert cp(bb, str(tmp_path / "plain"), f"{source}:/tmp/").returncode == 0
    assert cp(bb, "-a", str(tmp_path / "kept"), f"{source}:/tmp/").returncode == 0
    data = make_tar(("fromtar", b"t"))
    assert cp(bb, "-", f"{source}:/tmp", input=data).returncode == 0
    members = tar_out(bb, f"{source}:/tmp")
    assert (members["tmp/plain"].uid, members["tmp/plain"].gid) == (0, 0)
    assert (members["tmp/kept"].uid, members["tmp/kept"].gid) == (4321, 8765)
    assert (members["tmp/fromtar"].uid, members["tmp/fromtar"].gid) == (0, 0)


# -- symlinks ------------------------------------------------------------------------

def test_symlink_is_copied_as_a_link(bb, source, tmp_path):
    assert cp(bb, f"{source}:/data/link", str(tmp_path / "link")).returncode == 0
    assert os.readlink(tmp_path / "link") == "/etc/passwd"


def test_follow_link_copies_the_containers_file_not_the_hosts(bb, source, tmp_path):
    assert cp(bb, "-L", f"{source}:/data/link", str(tmp_path / "passwd")).returncode == 0
    assert not os.path.islink(tmp_path / "passwd")
    assert read(tmp_path / "passwd") == BUSYBOX_PASSWD != read("/etc/passwd")
    (tmp_path / "dir").mkdir()
    assert cp(bb, "-L", f"{source}:/data/link", str(tmp_path / "dir")).returncode == 0
    assert read(tmp_path / "dir" / "link") == BUSYBOX_PASSWD  # keeps the link's name
    assert list(tar_out(bb, f"{source}:/data/link")) == ["link"]


def test_links_in_container_paths_stay_in_the_container(bb, source, tmp_path):
    # /data/esc -> / : reading through it reads the container's root, not the host's
    assert cp(bb, f"{source}:/data/esc/etc/passwd", str(tmp_path / "pw")).returncode == 0
    assert read(tmp_path / "pw") == BUSYBOX_PASSWD
    # a link naming a host directory: the host directory never receives anything
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    data = make_tar(("hostlink", f"->{host_dir}"), ("hostlink/pwned", b"pwned\n"))
    assert cp(bb, "-", f"{source}:/data", input=data).returncode == 0
    (tmp_path / "f").write_text("f\n")
    cp(bb, str(tmp_path / "f"), f"{source}:/data/hostlink/g")
    assert os.listdir(host_dir) == []
    members = tar_out(bb, f"{source}:{host_dir}")  # both landed inside the container
    assert {f"{host_dir.name}/pwned", f"{host_dir.name}/g"} <= set(members)


# -- errors --------------------------------------------------------------------------

def test_missing_container(bb, tmp_path):
    result = cp(bb, "nosuch:/x", str(tmp_path / "x"))
    assert (result.returncode, result.stderr) == (1, "Error response from daemon: No such container: nosuch\n")


def test_missing_source_path(bb, source, tmp_path):
    result = cp(bb, f"{source}:/nope", str(tmp_path / "x"))
    assert result.returncode == 1
    assert result.stderr == f"Error response from daemon: Could not find the file /nope in container {source}\n"


@pytest.mark.parametrize("args, message", [
    (("aa:/x", "bb:/y"), "copying between containers is not supported"),
    (("/tmp/x", "./y:z"), "must specify at least one container source"),
])
def test_exactly_one_side_is_a_container(bb, args, message):
    result = cp(bb, *args)
    assert (result.returncode, result.stderr) == (1, message + "\n")


def test_summary_when_not_quiet(bb, source, tmp_path):
    result = cp(bb, "-q=false", f"{source}:/data/file.txt", str(tmp_path / "f"))
    assert result.returncode == 0
    assert result.stderr == f"Successfully copied 6B (transferred 2.05kB) to {tmp_path / 'f'}\n"
    assert cp(bb, f"{source}:/data/file.txt", str(tmp_path / "g")).stderr == ""  # no terminal: quiet
