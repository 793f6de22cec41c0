"""Trees a container controls, read and written by berth as root (issue 11, holes 2 and 3),
each shown by the attack. A container swaps names of its own as fast as the kernel lets it
(renameat2 RENAME_EXCHANGE in a loop): a directory with a symlink to a host directory, a
regular file with a device node of a host disk, or the entries berth creates in a shared
volume with a symlink to a host file. Meanwhile berth exports, diffs, commits, copies, sizes or
copies up, again and again for a few seconds: nothing of the host may show in what it
produces, and no host file may change.

The swapper is the host's own python3, bound read-only into a busybox container (busybox's
`mv` forks per rename and would leave the races mostly unexercised)."""

import os
import shutil
import stat
import subprocess
import tarfile
import time

import pytest

from conftest import wait_for

PYTHON = "/usr/bin/python3"
ROUNDS = 4.0  # seconds each operation is repeated under the swapper

# The attacker's part, run inside the container: `pairs` of names trade places, atomically,
# in a tight loop (both names always exist: one is the other's old self).
SWAPPER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
exchange = libc.renameat2
exchange.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
pairs = [tuple(p.encode() for p in arg.split(":")) for arg in sys.argv[1:]]
print("swapping", flush=True)
while True:
    for a, b in pairs:
        exchange(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
"""


def python_mounts() -> list[str]:
    """-v flags that give a busybox container the host's python3 (read-only)."""
    if not os.path.exists(PYTHON):
        pytest.fail(f"{PYTHON} is needed inside the attacking container", pytrace=False)
    flags = ["-v", "/usr:/usr:ro"]
    for top in ("/lib", "/lib64"):
        if os.path.exists(top):
            flags += ["-v", f"{os.path.realpath(top)}:{top}:ro"]
    return flags


def start_swapper(b, name: str, setup: str, *pairs: str, flags: tuple = ()) -> None:
    """A detached container that runs `setup` (sh) and then swaps each "a:b" pair forever."""
    b.ok("run", "-d", "--name", name, *python_mounts(), *flags, "busybox", "sh", "-c",
         f'{setup} && exec {PYTHON} -c "$0" {" ".join(pairs)}', SWAPPER)
    wait_for(lambda: "swapping" in b("logs", name).stdout, what=f"{name}'s swapper to run")


def host_dir(tmp_path, files: dict) -> str:
    """A host directory the container's symlink will name, with root-only files in it."""
    path = tmp_path / "host"
    path.mkdir(mode=0o700)
    for name, data in files.items():
        (path / name).write_bytes(data)
        os.chmod(path / name, 0o600)
    return str(path)


def repeatedly(action) -> int:
    """Run `action` again and again for ROUNDS seconds; how many times it ran."""
    deadline = time.monotonic() + ROUNDS
    runs = 0
    while time.monotonic() < deadline:
        action()
        runs += 1
    return runs


def marker() -> bytes:
    return b"host-secret-" + os.urandom(8).hex().encode()


NAMES = [f"f{i:02}" for i in range(20)]  # in the container's directory and in the host's: every one a chance


def files_like(secret: bytes) -> str:
    """sh that fills /d with NAMES, each as long as `secret` (a read of the host's file
    through the container's listing then gets all of it)."""
    return f"for f in {' '.join(NAMES)}; do printf %{len(secret)}s > /d/$f; done"


# -- hole 2: reads that a swapped directory (or file) would lead to the host ----------------

def test_export_never_follows_a_directory_swapped_for_a_symlink(busybox, tmp_path):
    secret = marker()
    host = host_dir(tmp_path, {name: secret for name in NAMES})
    start_swapper(busybox, "swapper", f"mkdir /d && {files_like(secret)} && ln -s {host} /l", "/d:/l")
    out = str(tmp_path / "export.tar")
    exported = []

    def export():
        if busybox("export", "-o", out, "swapper").returncode == 0:
            with open(out, "rb") as f:
                data = f.read()
            if secret in data:
                pytest.fail("export put a host file into the archive", pytrace=False)
            exported.append(len(data))

    repeatedly(export)
    assert exported, "no export of the running container succeeded"


def test_diff_never_lists_a_host_directory(busybox, tmp_path):
    secret = marker().decode()
    host = host_dir(tmp_path, {f"{secret}-{name}": b"x" for name in NAMES})
    start_swapper(busybox, "swapper", f"mkdir /d && echo inside > /d/f && ln -s {host} /l", "/d:/l")
    listed = []

    def diff():
        out = busybox.ok("diff", "swapper")
        if secret in out:
            pytest.fail(f"diff listed a host file:\n{out}", pytrace=False)
        listed.append(out)

    repeatedly(diff)
    assert any("/d" in out for out in listed)


def test_commit_without_pause_never_reads_host_files(busybox, tmp_path):
    """A symlink's xattrs come from the container's own entry, even when its directory turns
    into a symlink to a host directory half way through (the host's files have an xattr)."""
    secret = marker()
    host = host_dir(tmp_path, {name: secret for name in NAMES})
    for name in NAMES:
        try:
            os.setxattr(os.path.join(host, name), "user.berth-test", secret)
        except OSError as err:
            pytest.fail(f"the test's tmp dir takes no user xattrs ({err.strerror}): put it on ext4/xfs/tmpfs",
                        pytrace=False)
    links = f"for f in {' '.join(NAMES)}; do ln -s anything /d/$f; done"
    start_swapper(busybox, "swapper", f"mkdir /d && {links} && ln -s {host} /l", "/d:/l")
    images = []

    def commit():
        result = busybox("commit", "--pause=false", "swapper")
        if result.returncode == 0:
            images.append(result.stdout.strip())

    repeatedly(commit)
    assert images, "no commit of the running container succeeded"
    blobs = os.path.join(busybox.root, "image", "blobs", "sha256")
    for name in os.listdir(blobs):
        with open(os.path.join(blobs, name), "rb") as f:
            if secret in f.read():
                pytest.fail("commit put a host file's xattr into a layer", pytrace=False)


def test_cp_out_never_reads_a_device_or_a_host_directory(busybox, tmp_path):
    """`cp` reads a regular file only if it still is one when opened (a container may swap a
    block device in: here a loop device over a host file), and walks a directory only through
    its own fd (a container may swap a symlink to a host directory in)."""
    secret = marker()
    host = host_dir(tmp_path, {"f": secret})
    disk = tmp_path / "disk"
    disk.write_bytes(secret + bytes(1 << 20))
    loop = subprocess.run(["losetup", "--find", "--show", str(disk)], capture_output=True, text=True)
    assert loop.returncode == 0, f"losetup: {loop.stderr}"
    device = loop.stdout.strip()
    try:
        rdev = os.stat(device).st_rdev
        start_swapper(busybox, "swapper",
                      f"mkdir /d /e && head -c 4096 /dev/zero > /d/f && mknod /d/b b {os.major(rdev)} "
                      f"{os.minor(rdev)} && echo inside > /e/f && ln -s {host} /l", "/d/f:/d/b", "/e:/l")
        out = tmp_path / "out"
        copied = []

        def cp():
            for source in ("swapper:/d/f", "swapper:/e"):
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                if busybox("cp", source, str(out)).returncode != 0:
                    continue
                for directory, _dirs, files in os.walk(out):
                    for name in files:
                        path = os.path.join(directory, name)
                        if stat.S_ISREG(os.lstat(path).st_mode):  # cp recreates device nodes, as docker's does
                            with open(path, "rb") as f:
                                if secret in f.read():
                                    pytest.fail(f"cp {source} read the host into {name}", pytrace=False)
                            copied.append(name)

        repeatedly(cp)
        assert copied, "no cp out of the running container succeeded"
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)


def test_sizes_never_count_a_host_directory(busybox, tmp_path):
    """`ps -s` and `system df` size the upper dir and the volumes without following a
    directory swapped for a symlink (to a host directory holding a 1 TiB sparse file)."""
    host = host_dir(tmp_path, {})
    with open(os.path.join(host, "big"), "wb") as f:
        f.truncate(1 << 40)
    start_swapper(busybox, "swapper", f"mkdir /d /v/d && echo small > /d/big && echo small > /v/d/big && "
                  f"ln -s {host} /l && ln -s {host} /v/l", "/d:/l", "/v/d:/v/l", flags=("-v", "sized:/v"))

    def sizes():
        ps = busybox.ok("ps", "-s", "--format", "{{.Size}}")
        df = busybox.ok("system", "df", "--format", "{{.Type}} {{.Size}}")
        for out in (ps, df):
            assert "TB" not in out and "GB" not in out, f"a host file was counted:\n{out}"

    repeatedly(sizes)


# -- hole 3: metadata set on what a copy-up created, never on what replaced it ------------------

# Inside a second container on the same volume: as soon as the copy-up has begun (sub/
# exists), trade every name berth may create for a FIFO under sub/ with a symlink to a host file.
BAITER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
exchange = libc.renameat2
exchange.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
host, names = sys.argv[1], sys.argv[2:]
bait = b"/v/bait"
targets = [f"/v/sub/{prefix}{name}".encode() for name in names for prefix in (".berth-copy-up.", "")]
print("baiting", flush=True)
while True:
    if not os.path.isdir("/v/sub"):
        continue
    if not os.path.islink(bait):
        try:
            os.unlink(bait)
        except FileNotFoundError:
            pass
        os.symlink(host, bait)
    for target in targets:
        if exchange(-100, bait, -100, target, 2) == 0:  # berth's entry is now ours: take it away
            os.unlink(bait)
            os.symlink(host, bait)
"""
FIFOS = [f"p{i:02}" for i in range(20)]


def fifo_image(b, tmp_path) -> str:
    """An image whose /data/sub holds FIFOs and a character device, setuid and world-writable."""
    path = str(tmp_path / "fifos.tar")
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("data", "data/sub"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name in FIFOS:
            info = tarfile.TarInfo(f"data/sub/{name}")
            info.type, info.mode = tarfile.FIFOTYPE, 0o6777
            info.pax_headers = {"SCHILY.xattr.trusted.berth-test": "copied"}
            tar.addfile(info)
        info = tarfile.TarInfo("data/sub/null")
        info.type, info.mode, info.devmajor, info.devminor = tarfile.CHRTYPE, 0o6777, 1, 3
        tar.addfile(info)
    b.ok("import", path, "fifos:latest")
    return "fifos:latest"


def empty(directory: str) -> None:
    """Remove the volume's content (sub/ first, so the baiter stops making its bait), while
    the baiter may still be trading names in it."""
    def gone():
        for name in ["sub"] + os.listdir(directory):
            path = os.path.join(directory, name)
            try:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                pass
        return not os.listdir(directory)

    wait_for(gone, what="the shared volume to be empty")


def test_volume_copy_up_never_changes_a_host_file(busybox, tmp_path):
    image = fifo_image(busybox, tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"root only\n")
    os.chmod(victim, 0o600)
    before = os.lstat(victim)
    xattrs_before = os.listxattr(victim)
    busybox.ok("run", "-d", "--name", "baiter", *python_mounts(), "-v", "shared:/v", "busybox",
               PYTHON, "-c", BAITER, str(victim), *FIFOS)
    wait_for(lambda: "baiting" in busybox("logs", "baiter").stdout, what="the baiter to run")
    data = busybox.ok("volume", "inspect", "--format", "{{.Mountpoint}}", "shared").strip()
    attempts = []

    def copy_up():
        name = f"copy{len(attempts)}"
        attempts.append(busybox("create", "--name", name, "-v", "shared:/data", image, "true").returncode)
        after = os.lstat(victim)
        assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (0o600, before.st_uid, before.st_gid), \
            f"copy-up changed a host file: mode {stat.S_IMODE(after.st_mode):o}, owner {after.st_uid}:{after.st_gid}"
        assert os.listxattr(victim) == xattrs_before, "copy-up set an xattr on a host file"
        busybox("rm", "-f", name)
        empty(data)  # the next create copies up again

    repeatedly(copy_up)
    assert 0 in attempts, "no copy-up ran to its end"


def test_user_lookup_never_reads_a_host_passwd(busybox, tmp_path):
    """`exec -u NAME` resolves NAME in the container's /etc/passwd, read by berth from its
    upper dir: an /etc swapped for a symlink to a host directory must not lend the host's."""
    host = tmp_path / "hostetc"
    host.mkdir()
    (host / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nintruder:x:4242:4242::/:/bin/sh\n")
    (host / "group").write_text("root:x:0:\nintruder:x:4242:\n")
    # /etc itself holds bind mounts (hosts, resolv.conf) and cannot move: its passwd can
    start_swapper(busybox, "swapper", f"ln -s {host}/passwd /etc/passwd.fake", "/etc/passwd:/etc/passwd.fake")
    answers = []

    def lookup():
        r = busybox("exec", "-u", "intruder", "swapper", "true")
        answers.append(r.returncode)
        if r.returncode == 0:
            pytest.fail("exec -u took a user from a host /etc/passwd", pytrace=False)
        assert "unable to find user intruder" in r.stderr or "no such file" in r.stderr.lower(), r.stderr

    repeatedly(lookup)
    assert answers
