"""Crash safety of the image store (issue 13): a commit, load or import SIGKILLed at each
rename leaves only what `image prune` collects, and `system df` counts it; `rmi` racing the
creation of a container from the same (lazily unpacked) image ends cleanly either way; a full
or read-only disk fails tag, import and commit with docker's one-line error and changes
nothing. The store is checked from the outside: its index, manifests and configs are read here
to decide what is referenced."""

import contextlib
import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
import time

import pytest

from conftest import refused

KILLED = (-9, 137)  # strace passes on the SIGKILL its tracee died of
MAX_KILL_POINTS = 20  # every command here renames fewer times than this


# -- the store, seen from outside --------------------------------------------------------------

def _read(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())


def _chains(diff_ids: list[str]) -> list[str]:
    chains = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else
                      "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def _size(path: str) -> int:
    if not os.path.isdir(path) or os.path.islink(path):
        return os.lstat(path).st_size
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(directory, name))
            total += st.st_size if (st.st_mode & 0o170000) == 0o100000 else 0
    return total


def leftovers(root: str) -> dict[str, int]:
    """What the image store holds that nothing references: {path: bytes}. Blobs no index
    entry's manifest, config or layers name; layer directories (and their .json, .lock) of no
    image's chain; temp files (*.tmp<pid>-*) anywhere; anything in tmp/."""
    store = os.path.join(root, "image")
    blobs = os.path.join(store, "blobs", "sha256")
    used_blobs, used_chains = set(), set()
    for entry in _read(os.path.join(store, "index.json"))["manifests"]:
        manifest = _read(os.path.join(blobs, entry["digest"][7:]))
        used_blobs.update([entry["digest"], manifest["config"]["digest"]] + [x["digest"] for x in manifest["layers"]])
        config = _read(os.path.join(blobs, manifest["config"]["digest"][7:]))
        used_chains.update(_chains(config["rootfs"]["diff_ids"]))
    found = {}
    for name in os.listdir(store):
        if ".tmp" in name:
            found[os.path.join(store, name)] = _size(os.path.join(store, name))
    for name in os.listdir(blobs):
        if "sha256:" + name not in used_blobs:
            found[os.path.join(blobs, name)] = _size(os.path.join(blobs, name))
    layers = os.path.join(store, "layers")
    for name in os.listdir(layers):
        chain = name.split(".")[0]
        if ".tmp" in name or "sha256:" + chain not in used_chains:
            found[os.path.join(layers, name)] = 0 if name.endswith((".json", ".lock")) else _size(
                os.path.join(layers, name))
    tmp = os.path.join(store, "tmp")
    for name in os.listdir(tmp) if os.path.isdir(tmp) else ():
        found[os.path.join(tmp, name)] = _size(os.path.join(tmp, name))
    return found


UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def _bytes(human: str) -> float:
    number = human.rstrip("BkMGT")
    return float(number) * UNITS[human[len(number):]]


def images_df(b) -> tuple[float, float]:
    """`system df`'s Images line: (size, reclaimable) in bytes (to its 3 significant digits)."""
    for line in b.ok("system", "df", "--format", "{{.Type}}|{{.Size}}|{{.Reclaimable}}").splitlines():
        kind, size, reclaimable = line.split("|")
        if kind == "Images":
            return _bytes(size), _bytes(reclaimable.split()[0])
    raise AssertionError("no Images line in system df")


def close_to(a: float, b: float) -> bool:
    return abs(a - b) <= 0.01 * max(a, b) + 10_000  # df shows 3 significant digits


def random_tar(path: str, size: int = 1_500_000) -> None:
    """A filesystem tar whose one file is random: a layer no other has."""
    data = os.urandom(size)
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("random")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))


def killed_at_rename(b, k: int, *args: str) -> subprocess.CompletedProcess:
    """Run berth under strace, SIGKILLed at its k-th rename (every step of the store ends in one)."""
    calls = "?rename,?renameat,?renameat2"
    return subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={calls}",
                           "-e", f"inject={calls}:signal=KILL:when={k}", *b.cmd(*args)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


# -- orphan blobs ------------------------------------------------------------------------------

def _prepare_import(b, work: str, k: int) -> list[str]:
    tar = os.path.join(work, f"in-{k}.tar")
    random_tar(tar)
    return ["import", tar, f"imported:{k}"]


def _prepare_load(b, work: str, k: int) -> list[str]:
    tar = os.path.join(work, f"in-{k}.tar")
    random_tar(tar)
    b.ok("import", tar, f"saved:{k}")
    archive = os.path.join(work, f"saved-{k}.tar")
    b.ok("save", "-o", archive, f"saved:{k}")
    b.ok("rmi", f"saved:{k}")
    return ["load", "-i", archive]


def _prepare_commit(b, work: str, k: int) -> list[str]:
    b.ok("run", "--name", f"src{k}", "busybox", "sh", "-c", "head -c 1500000 /dev/urandom > /random")
    return ["commit", f"src{k}", f"committed:{k}"]


@pytest.mark.parametrize("command", ["import", "load", "commit"])
def test_killed_writer_leaves_only_what_prune_collects(busybox, tmp_path, command):
    """At each rename of `command` in turn: SIGKILL, then what it left is counted by `system df`
    and collected by `image prune`, down to the last blob and temp file."""
    prepare = {"import": _prepare_import, "load": _prepare_load, "commit": _prepare_commit}[command]
    orphaned = 0
    for k in range(1, MAX_KILL_POINTS + 1):
        args = prepare(busybox, str(tmp_path), k)
        assert leftovers(busybox.root) == {}
        result = killed_at_rename(busybox, k, *args)
        if result.returncode not in KILLED:
            assert result.returncode == 0, f"{command} not killed at rename {k}: {result.stderr}"
            break
        left = leftovers(busybox.root)
        orphaned += bool(left)
        size_killed, reclaimable_killed = images_df(busybox)
        out = busybox.ok("image", "prune", "-f")
        assert leftovers(busybox.root) == {}, f"{command} killed at rename {k}: image prune left these"
        size, reclaimable = images_df(busybox)
        bytes_left = sum(left.values())
        assert close_to(size_killed - size, bytes_left), \
            f"killed at rename {k}: system df's Images grew by {size_killed - size:.0f}, {bytes_left} were left: {left}"
        assert close_to(reclaimable_killed - reclaimable, bytes_left), f"killed at rename {k}: reclaimable"
        reclaimed = _bytes(out.rsplit("Total reclaimed space: ", 1)[1].strip())
        assert reclaimed >= bytes_left * 0.99, f"killed at rename {k}: prune says {out!r}, {bytes_left} were left"
        if command == "commit":
            busybox.ok("rm", f"src{k}")
    else:
        pytest.fail(f"{command} was still killed at its rename {MAX_KILL_POINTS}")
    assert k > 3 and orphaned, f"{command}: too few kill points ({k}) or none left anything to collect"
    assert busybox.ok("run", "--rm", "busybox", "true") == ""  # the store still works


def test_dead_writers_temp_files_are_swept_live_ones_kept(busybox):
    """write_bytes' temp files (<file>.tmp<pid>-<random>) of a dead writer go, a live one's stay."""
    store = os.path.join(busybox.root, "image")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that was ours and is gone
    stale = [os.path.join(store, f"index.json.tmp{dead.pid}-0badf00d"),
             os.path.join(store, "blobs", "sha256", f"{'a' * 64}.tmp{dead.pid}-0badf00d"),
             os.path.join(store, "layers", f"{'b' * 64}.json.tmp{dead.pid}-0badf00d")]
    live = os.path.join(store, "blobs", "sha256", f"{'c' * 64}.tmp{os.getpid()}-0badf00d")
    for path in stale + [live]:
        with open(path, "wb") as f:
            f.write(b"x" * 5000)
    busybox.ok("image", "prune", "-f")
    assert [p for p in stale if os.path.exists(p)] == []
    assert os.path.exists(live)
    os.unlink(live)


def test_host_failures_in_dockers_words():
    """The errnos of a full, read-only or over-quota disk as Go (and so docker) words them, with
    the operation and path that failed; other errors are no host failure (a bug keeps its type)."""
    from berth.errors import host_failure
    from berth.fs import failed, temp_writer

    for number, words in ((28, "no space left on device"), (30, "read-only file system"),
                          (122, "disk quota exceeded")):
        err = OSError(number, os.strerror(number), "/r/image/index.json.tmp123-abcd")
        failed("write", "/r/image/index.json", err)  # the temp file's name is no help
        assert host_failure(err) == f"write /r/image/index.json: {words}"
        assert host_failure(OSError(number, os.strerror(number))) == words
    assert host_failure(FileNotFoundError(2, "No such file or directory", "/x")) is None
    assert host_failure(ValueError("x")) is None
    assert temp_writer("index.json.tmp123-abcd") == 123 and temp_writer("index.json.tmp45") == 45
    assert temp_writer("a" * 64) is None and temp_writer("x.tmpl") is None


# -- rmi racing create ---------------------------------------------------------------------------

def _layer_dirs_missing(b, container: str) -> list[str]:
    record = json.loads(b.ok("inspect", container))[0]
    return [d for d in record["GraphDriver"]["Data"]["LowerDir"].split(":") if not os.path.isdir(d)]


def test_rmi_racing_create_of_the_same_image(busybox, tmp_path):
    """A committed image is unpacked when a container is first created from it. `rmi` started
    at the same time as that `create` must leave either a container whose layers exist, with
    rmi refused, or no container and 'No such image', never a traceback."""
    payload = tmp_path / "payload"
    busybox.ok("create", "--name", "src", "busybox", "true")
    rng = random.Random(13)
    created = removed = 0
    deadline = time.monotonic() + 60
    rounds = 0
    for rounds in range(1, 101):
        if time.monotonic() > deadline:
            break
        payload.write_bytes(os.urandom(1_000_000))  # a new layer each round: its unpack is lazy
        busybox.ok("cp", str(payload), "src:/payload")
        image = busybox.ok("commit", "src", f"lazy:{rounds}").strip()
        name = f"c{rounds}"
        # which one starts first alternates at random, so both outcomes come however loaded
        # the machine is (a fixed head start lets one side always win)
        # --pull never: a create that lost the race must not go looking for lazy:N on Docker Hub
        commands = [busybox.cmd("rmi", f"lazy:{rounds}"),
                    busybox.cmd("create", "--pull", "never", "--name", name, f"lazy:{rounds}", "true")]
        order = [0, 1] if rng.random() < 0.5 else [1, 0]
        procs = {}
        for i in order:
            procs[i] = subprocess.Popen(commands[i], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0, 0.03))
        outputs = {i: procs[i].communicate(timeout=60) for i in (0, 1)}
        rmi_result, create = (subprocess.CompletedProcess(procs[i].args, procs[i].returncode, *outputs[i])
                              for i in (0, 1))
        rmi_err = rmi_result.stderr
        if create.returncode == 0:
            created += 1
            assert _layer_dirs_missing(busybox, name) == [], f"round {rounds}: created without its layers"
            refused(rmi_result, 1, "conflict")
            busybox.ok("rm", name)
            busybox.ok("rmi", image)
        else:
            removed += 1
            refused(create, 125, "No such image")
            assert rmi_result.returncode == 0, f"round {rounds}: {rmi_err}"
            assert name not in busybox.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert rounds >= 20, "too few rounds in the time given"
    assert created and removed, f"the race never went both ways ({created} created, {removed} removed)"
    # whoever won, what is left starts
    busybox.ok("commit", "src", "last:1")
    busybox.ok("run", "--rm", "last:1", "true")


# -- full and read-only disks ---------------------------------------------------------------------

@pytest.fixture
def small_root(berth):
    """`berth` with its --root on a 32 MB tmpfs of its own, unmounted afterwards, even on failure."""
    os.makedirs(berth.root, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0711", "tmpfs", berth.root], check=True)
    try:
        yield berth
    finally:
        for container in berth.container_ids():
            berth("rm", "-f", container)
        berth.teardown_network()  # what it knows of its bridge and tables is on the tmpfs
        if subprocess.run(["umount", berth.root], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", berth.root], check=True)


def fill(directory: str) -> str:
    """Fill the filesystem of `directory` to its last byte; returns the filler file."""
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    chunk = b"\0" * (1 << 20)
    try:
        while True:
            os.write(fd, chunk)  # a short write is the last one that fits; the next raises
    except OSError as err:
        assert err.errno == 28, err
    finally:
        os.close(fd)
    return path


def snapshot(root: str) -> dict[str, bytes | None]:
    """Every file of the image store with its content (None for directories)."""
    found = {}
    store = os.path.join(root, "image")
    for directory, dirs, files in os.walk(store):
        for name in dirs:
            found[os.path.join(directory, name)] = None
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".lock"):
                continue  # created empty by whoever locks
            with open(path, "rb") as f:
                found[path] = f.read() if os.path.getsize(path) < (1 << 16) else hashlib.sha256(f.read()).digest()
    return found


def one_line_error(result: subprocess.CompletedProcess, words: str) -> str:
    err = refused(result, 1, words)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"not one line of docker's form:\n{err}"
    return lines[0]


def test_full_disk_fails_tag_import_and_commit_cleanly(small_root, tmp_path):
    b = small_root
    b.import_busybox(b.busybox_tar)
    b.ok("run", "--name", "changed", "busybox", "sh", "-c", "head -c 300000 /dev/urandom > /f")
    tar = str(tmp_path / "random.tar")
    random_tar(tar, 500_000)
    index = os.path.join(b.root, "image", "index.json")
    filler = fill(b.root)
    try:
        before = snapshot(b.root)
        line = one_line_error(b("tag", "busybox", "other:1"), "no space left on device")
        assert line == f"Error: write {index}: no space left on device"
        assert snapshot(b.root) == before
        one_line_error(b("import", tar, "imported:1"), "no space left on device")
        assert snapshot(b.root) == before
        one_line_error(b("commit", "changed", "committed:1"), "no space left on device")
        assert snapshot(b.root) == before
        assert leftovers(b.root) == {}
    finally:
        os.unlink(filler)
    b.ok("tag", "busybox", "other:1")  # room again: everything works
    b.ok("import", tar, "imported:1")
    b.ok("commit", "changed", "committed:1")
    assert leftovers(b.root) == {}


def test_read_only_disk_fails_tag_cleanly(small_root):
    b = small_root
    b.import_busybox(b.busybox_tar)
    before = snapshot(b.root)
    subprocess.run(["mount", "-o", "remount,ro", b.root], check=True)
    try:
        line = one_line_error(b("tag", "busybox", "other:1"), "read-only file system")
        assert "Errno" not in line and "OSError" not in line
    finally:
        subprocess.run(["mount", "-o", "remount,rw", b.root], check=True)
    assert snapshot(b.root) == before
    with contextlib.suppress(FileNotFoundError):
        assert leftovers(b.root) == {}
