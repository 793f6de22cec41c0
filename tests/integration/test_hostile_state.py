"""Hardening of berth's own state (issue 11, holes 1, 8 and 9), each shown by the attack:
another local user reading or running what berth keeps, symlinks planted where berth writes
an output file, and archive entries or references that would name a path outside berth's."""

import io
import os
import stat
import subprocess
import tarfile

import pytest

from conftest import as_nobody


def mode(path: str) -> int:
    return os.lstat(path).st_mode & 0o7777


def layer_tar(path: str, members) -> str:
    """A layer tar of (TarInfo, bytes|None) written to `path`."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind=tarfile.REGTYPE, data: bytes | None = None, mode: int = 0o644, **extra):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    if data is not None:
        info.size = len(data)
    for key, value in extra.items():
        setattr(info, key, value)
    return info, data


# -- hole 1: modes ------------------------------------------------------------------------

def _populate(b, run=None) -> str:
    """A root holding what berth keeps: a stopped container with a secret in its env and a
    setuid-root binary in its upper dir, a named volume, an imported layer with a device.
    The test's own base directory is opened up: only berth's modes may stand in the way."""
    run = run or b.ok
    os.chmod(b.base, 0o755)
    tar = layer_tar(os.path.join(b.base, "dev.tar"), [
        entry("dev", tarfile.DIRTYPE, mode=0o755),
        entry("dev/null-open", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
    ])
    run("import", tar, "devices:1")
    out = run("run", "--name", "leaky", "-e", "DB_PASSWORD=hunter2", "-v", "data:/data", "busybox",
              "sh", "-c", "cp /bin/busybox /suid && chmod 4755 /suid && echo secret > /data/file")
    assert out == ""
    return run("inspect", "--format", "{{.Id}}", "leaky").strip()


def _assert_closed(b, container_id: str) -> None:
    root, run = b.root, b.run_root
    assert mode(root) == 0o711 and mode(run) == 0o711
    for name in os.listdir(root):
        path = os.path.join(root, name)
        assert mode(path) & 0o077 == 0, f"{path} is open to others: {oct(mode(path))}"
    for name in os.listdir(run):
        path = os.path.join(run, name)
        assert mode(path) & 0o077 == 0, f"{path} is open to others: {oct(mode(path))}"
    directory = os.path.join(root, "containers", container_id)
    assert mode(directory) == 0o700
    assert mode(os.path.join(directory, "config.json")) == 0o600
    assert mode(os.path.join(directory, f"{container_id}-json.log")) == 0o600
    for name in os.listdir(os.path.join(root, "volumes")):
        assert mode(os.path.join(root, "volumes", name)) & 0o077 == 0


def _assert_nobody_locked_out(b, container_id: str) -> None:
    directory = os.path.join(b.root, "containers", container_id)
    config = os.path.join(directory, "config.json")
    assert "DB_PASSWORD" in open(config).read()
    suid = os.path.join(directory, "upper", "suid")
    assert os.stat(suid).st_mode & stat.S_ISUID
    assert as_nobody(lambda: open(config).read()).startswith("PermissionError"), "config.json readable"
    assert as_nobody(lambda: os.stat(suid)).startswith("PermissionError"), "setuid binary reachable"
    assert as_nobody(lambda: os.listdir(os.path.join(b.root, "containers"))).startswith("PermissionError")
    layers = os.path.join(b.root, "image", "layers")
    devices = [os.path.join(layers, n, "dev", "null-open") for n in os.listdir(layers)
               if os.path.exists(os.path.join(layers, n, "dev", "null-open"))]
    assert devices, "the imported layer's device is unpacked"
    assert as_nobody(lambda: os.open(devices[0], os.O_RDONLY)).startswith("PermissionError")
    data = [os.path.join(b.root, "volumes", "data", "_data", "file")]
    assert as_nobody(lambda: open(data[0]).read()).startswith("PermissionError")
    log = os.path.join(directory, f"{container_id}-json.log")
    assert as_nobody(lambda: open(log).read()).startswith("PermissionError")


def test_state_is_closed_to_other_users(busybox):
    container_id = _populate(busybox)
    _assert_closed(busybox, container_id)
    _assert_nobody_locked_out(busybox, container_id)


def test_an_inherited_umask_000_does_not_open_state(berth):
    """berth sets its own umask: started under `umask 000`, what it makes is still closed."""
    def run(*args):
        r = subprocess.run(berth.cmd(*args), capture_output=True, text=True, umask=0, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        return r.stdout

    run("import", "-c", 'CMD ["sh"]', berth.busybox_tar, "busybox:latest")
    container_id = _populate(berth, run)
    _assert_closed(berth, container_id)
    _assert_nobody_locked_out(berth, container_id)
    # what the container sees keeps docker's modes: its root, and files berth gives it
    listing = run("run", "--rm", "-u", "nobody", "busybox", "sh", "-c",
                  "stat -c '%a %n' / /etc/hosts /etc/resolv.conf /etc/hostname && cat /etc/hosts >/dev/null")
    assert listing.split("\n")[0].startswith("755 /"), listing
    assert all(line.startswith("644 ") for line in listing.strip().split("\n")[1:]), listing


def test_a_root_left_open_by_an_older_berth_is_tightened_on_first_use(busybox):
    container_id = _populate(busybox)
    # what an older berth (no umask, 0755 directories, 0644 records) left behind
    for directory, dirs, files in os.walk(busybox.root):
        for name in dirs:
            os.chmod(os.path.join(directory, name), 0o755)
        for name in files:
            path = os.path.join(directory, name)
            content = ("/upper/", "/image/layers/", "/_data/")  # what containers see keeps its modes
            if any(part in path for part in content):
                continue
            if not os.path.islink(path) and stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, 0o644)
    os.chmod(busybox.root, 0o755)
    os.chmod(busybox.run_root, 0o755)
    assert as_nobody(lambda: len(open(os.path.join(busybox.root, "containers", container_id,
                                                   "config.json")).read())).startswith("ok")
    busybox.ok("ps", "-a")
    _assert_closed(busybox, container_id)
    _assert_nobody_locked_out(busybox, container_id)
    assert busybox.ok("start", "-a", "leaky") == ""


# -- hole 8: output files ---------------------------------------------------------------------

def _last_pid() -> int:
    with open("/proc/sys/kernel/ns_last_pid") as f:
        return int(f.read())


@pytest.mark.parametrize("command", ["export", "save"])
def test_output_file_never_follows_a_planted_symlink(busybox, tmp_path, command):
    """A local user who can write the output's directory plants symlinks at every name berth
    could pick for its temp file (FILE.tmp<pid>) and at FILE itself: nothing is written
    through them, and FILE ends up a new regular file."""
    busybox.ok("create", "--name", "ctr", "busybox", "true")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    output = tmp_path / "out.tar"
    start = _last_pid()
    for pid in range(start, start + 3000):
        os.symlink(victim, f"{output}.tmp{pid}")
    os.symlink(victim, output)
    args = ["export", "-o", str(output), "ctr"] if command == "export" else ["save", "-o", str(output), "busybox"]
    busybox.ok(*args)
    assert victim.read_text() == "keep me"
    assert not output.is_symlink() and tarfile.is_tarfile(output)
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".berth")]
    assert leftovers == []


def test_output_file_mode_honours_the_callers_umask(busybox, tmp_path):
    busybox.ok("create", "--name", "ctr", "busybox", "true")
    for umask, expected in ((0o022, 0o644), (0o077, 0o600)):
        output = tmp_path / f"out-{umask:o}.tar"
        r = subprocess.run(busybox.cmd("export", "-o", str(output), "ctr"), capture_output=True, text=True,
                           umask=umask, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert mode(str(output)) == expected


def test_output_file_in_a_missing_directory_is_one_line_and_leaves_nothing(busybox, tmp_path):
    busybox.ok("create", "--name", "ctr", "busybox", "true")
    r = busybox("export", "-o", str(tmp_path / "missing" / "out.tar"), "ctr")
    assert r.returncode == 1
    assert "no such file or directory" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- hole 9: whiteouts and references -----------------------------------------------------------

@pytest.mark.parametrize("whiteout", [".wh...", ".wh..", "sub/.wh..."])
def test_whiteout_naming_a_parent_is_refused(berth, tmp_path, whiteout):
    """`.wh...` is a whiteout of `..`: unpacking it removed the layer's parent directory (the
    staging directory of concurrent imports). Refused, and nothing outside is touched."""
    berth.import_busybox(berth.busybox_tar)
    sentinel = os.path.join(berth.root, "image", "tmp", "sentinel")
    with open(sentinel, "w") as f:
        f.write("concurrent import")
    members = [entry("sub", tarfile.DIRTYPE, mode=0o755), entry("file", data=b"x"),
               entry(whiteout, data=b"")]
    tar = layer_tar(str(tmp_path / "bad.tar"), members)
    r = berth("import", tar, "bad:1")
    assert r.returncode == 1, r.stderr  # docker import: the daemon refuses, its CLI exits 1
    assert "invalid tar archive" in r.stderr and "Traceback" not in r.stderr
    assert os.path.exists(sentinel)
    assert "bad" not in berth.ok("images", "--format", "{{.Repository}}")
    assert berth.ok("run", "--rm", "busybox", "echo", "still here") == "still here\n"


def test_a_reference_is_never_used_as_a_path(busybox, tmp_path):
    """`inspect ../../x` looked up names/../../x: a planted name file and record were loaded."""
    busybox.ok("create", "--name", "real", "busybox", "true")
    real = busybox.ok("inspect", "--format", "{{.Id}}", "real").strip()
    with open(os.path.join(busybox.root, "containers", real, "config.json")) as f:
        record = f.read().replace("/real", "/planted")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "config.json").write_text(record)
    names = os.path.join(busybox.root, "names")
    os.makedirs(names, exist_ok=True)
    relative_record = os.path.relpath(planted, os.path.join(busybox.root, "containers"))
    (tmp_path / "fake").write_text(relative_record)
    ref = os.path.relpath(tmp_path / "fake", names)
    assert ref.startswith("../")
    for command in (["inspect", ref], ["rm", "-f", ref], ["start", ref], ["logs", ref]):
        r = busybox(*command)
        assert r.returncode == (0 if command[0] == "rm" else 1), (command, r.stdout, r.stderr)  # rm -f: docker's
        assert "No such" in r.stderr and "planted" not in r.stdout + r.stderr, (command, r.stderr)
    assert os.path.exists(planted / "config.json")
    r = busybox("volume", "inspect", ref)
    assert r.returncode == 1 and "no such volume" in r.stderr
